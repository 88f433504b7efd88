"""The public API is re-exported from `raygems` and importing it stays light."""
import subprocess
import sys

import raygems


def test_every_export_resolves():
    for name in raygems.__all__:
        assert getattr(raygems, name) is not None, name


def test_a_plug_in_author_finds_the_registries_and_the_types_they_implement():
    for name in ("register_method", "MethodSpec", "BanditAlgorithm", "Pulls", "register_task", "Task",
                 "register_backend", "Backend", "GenerationRequest", "Generation", "CheckpointError", "ModelPrior"):
        assert name in raygems.__all__, name
    from raygems.backends.base import Backend, GenerationRequest

    assert raygems.Backend is Backend and raygems.GenerationRequest is GenerationRequest


def test_import_raygems_loads_neither_ray_nor_torch():
    code = "import sys, raygems; raygems.make_algorithm; print('ray' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_cli_help_lists_every_sub_command():
    out = subprocess.run([sys.executable, "-m", "raygems", "--help"], capture_output=True, text=True).stdout
    for command in ("replay", "search", "demo", "tree", "gems", "sweep", "prior", "pool"):
        assert command in out, command


def test_replay_from_raygems_is_the_replay_function_in_any_import_order():
    """`raygems.replay` is also a subpackage, which Python binds to the same name when it is first imported: the
    documented `from raygems import load_matrix, replay` must still replay, whichever name was touched first."""
    orders = ["from raygems import replay, load_matrix",
              "import raygems; raygems.load_matrix; from raygems import replay, load_matrix",
              "import raygems.replay.matrix; from raygems import replay, load_matrix"]
    for imports in orders:
        code = (f"{imports}\nimport numpy as np\nfrom raygems.replay import CorrectnessMatrix\n"
                "m = CorrectnessMatrix(np.eye(3, 8, dtype=np.uint8), ['a', 'b', 'c'], [str(q) for q in range(8)])\n"
                "r = replay(m, 'sequential-halving', 2, reps=3)\nprint(type(r).__name__)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.split() == ["ReplayResult"], (imports, out.stderr[-500:])
