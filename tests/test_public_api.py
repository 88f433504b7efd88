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
