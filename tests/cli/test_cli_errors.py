"""Bad input and an unreachable hub get one line (`raygems CMD: error: ...`) and an exit status, never a
traceback; `raygems --version` answers. Everything here runs in-process through `raygems.cli.main`."""
from __future__ import annotations

import json
import socket

import numpy as np
import pytest

from raygems import __version__
from raygems.cli import main


def one_line_error(capsys, argv, status=2) -> str:
    assert main(argv) == status
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"raygems {argv[0]}: error: "), err
    return err


def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.strip() == f"raygems {__version__}"


@pytest.fixture
def matrix_dir(tmp_path):
    folder = tmp_path / "matrix"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("case, message", [
    ("empty npy", "not a readable .npy array"),
    ("text file named .npy", "not a readable .npy array"),
    ("pickled object array", "not a readable .npy array"),
    ("index.json models is a number", "'models' must be a list of ids"),
    ("index.json with too few models", "2 models for an array with 3 rows"),
    ("index.json is not JSON", "not valid JSON"),
    ("parquet that is not parquet", "not a readable table"),
    ("structured npy", "must hold the numbers 0 and 1, got an array of dtype"),
    ("long parquet with lists for query ids", "column 'query_id' must hold names"),
])
def test_malformed_matrix_files_are_named(capsys, matrix_dir, case, message):
    npy = matrix_dir / "m.npy"
    good = np.array([[0, 1, 1], [1, 1, 0], [0, 0, 1]], dtype=np.uint8)
    if case == "empty npy":
        npy.write_bytes(b"")
    elif case == "text file named .npy":
        npy.write_text("model,query,correct\n")
    elif case == "pickled object array":
        np.save(npy, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    elif case == "structured npy":
        np.save(npy, np.zeros((3, 3), dtype=[("a", "i4"), ("b", "f4")]))
    else:
        np.save(npy, good)
    if case == "index.json models is a number":
        (matrix_dir / "index.json").write_text(json.dumps({"models": 5}))
    elif case == "index.json with too few models":
        (matrix_dir / "index.json").write_text(json.dumps({"models": ["a", "b"]}))
    elif case == "index.json is not JSON":
        (matrix_dir / "index.json").write_text("{models: [")
    path = npy
    if case == "parquet that is not parquet":
        path = matrix_dir / "m.parquet"
        path.write_text("not parquet")
    if case == "long parquet with lists for query ids":
        import pandas as pd

        path = matrix_dir / "long.parquet"
        pd.DataFrame({"model_id": ["a", "b"], "query_id": [["q1"], ["q1"]], "correct": [1, 0]}).to_parquet(path)
    err = one_line_error(capsys, ["replay", "--matrix", str(path), "--methods", "uniform", "--budgets", "2",
                                  "--reps", "1", "--quiet"])
    assert message in err and str(matrix_dir) in err


def test_a_negative_seed_for_the_papers_selection_is_refused(capsys, tmp_path):
    err = one_line_error(capsys, ["tree", "some-org/some-model", "--select", "--seed", "-1",
                                  "--out", str(tmp_path / "t.parquet")])
    assert "--seed -1, --top 300, --random 100: must be >= 0" in err


def test_out_that_is_a_directory_or_a_file(capsys, tmp_path):
    err = one_line_error(capsys, ["pool", "--tasks", "toy_arith", "--out", str(tmp_path)])
    assert f"--out {tmp_path}: is a directory" in err
    err = one_line_error(capsys, ["tree", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert f"--out {tmp_path}: is a directory" in err
    a_file = tmp_path / "taken.txt"
    a_file.write_text("x")
    for argv in (["search", "--matrix", "m.parquet", "--out", str(a_file)],
                 ["demo", "--out", str(a_file), "--quiet"],
                 ["sweep", "experiments/smoke.yaml", "--out", str(a_file)]):
        err = one_line_error(capsys, argv)
        assert f"--out {a_file}: is a file, not a directory" in err, argv


def test_a_mistyped_local_path_is_not_taken_for_a_hub_id(capsys, tmp_path):
    missing = tmp_path / "no" / "such" / "tree"
    err = one_line_error(capsys, ["search", "--tree", str(missing), "--tasks", "toy_arith", "--out",
                                  str(tmp_path / "run")])
    assert f"--tree {missing}: no such directory" in err
    err = one_line_error(capsys, ["tree", str(missing), "--out", str(tmp_path / "t.parquet")])
    assert f"{missing}: no such directory" in err
    assert not (tmp_path / "run").exists()


def test_offline_mode_is_one_line_at_once(capsys, tmp_path, monkeypatch):
    """tests/conftest.py sets HF_HUB_OFFLINE=1 for the session: the hub is refused without a connection try."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    err = one_line_error(capsys, ["tree", "some-org/some-model", "--out", str(tmp_path / "t.parquet")], status=1)
    assert "hub cannot be reached (HF_HUB_OFFLINE=1 is set)" in err
    assert "a directory in the hub layout in place of a hub id" in err
    monkeypatch.delenv("RAYGEMS_DATA_DIR", raising=False)
    err = one_line_error(capsys, ["pool", "--tasks", "gsm8k", "--out", str(tmp_path / "p.parquet")], status=1)
    assert "hub cannot be reached" in err and "--data-dir" in err and "--tree" not in err   # pool has no --tree


def test_an_unreachable_hub_is_one_line_at_once(capsys, tmp_path, monkeypatch):
    """A hub endpoint nobody listens on: one connection attempt says so (huggingface_hub's downloads retried a
    refused connection for ~25 s, a line per try; the tree listing took 8 s and printed three)."""
    import time

    from huggingface_hub import constants

    from raygems.hub import retry

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(retry, "_ANSWERED", set())          # (a server earlier in this process may have had the port)
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)             # through a proxy the check is left to the proxy
    with socket.socket() as probe:          # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    err = one_line_error(capsys, ["tree", "some-org/some-model", "--endpoint", endpoint,
                                  "--out", str(tmp_path / "t.parquet")], status=1)
    assert f"hub cannot be reached (cannot connect to {endpoint}: Connection refused)" in err
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)     # benchmark data from the hub (no --data-dir)
    monkeypatch.delenv("RAYGEMS_DATA_DIR", raising=False)
    err = one_line_error(capsys, ["pool", "--tasks", "gsm8k", "--out", str(tmp_path / "p.parquet")], status=1)
    assert f"cannot connect to {endpoint}" in err and "--data-dir" in err
    assert time.monotonic() - started < 10      # (well under a second here; generous for a loaded machine)
    err = one_line_error(capsys, ["tree", "some-org/some-model", "--endpoint", "notaurl",
                                  "--out", str(tmp_path / "t.parquet")])
    assert "hub endpoint 'notaurl': not a URL" in err


def test_other_os_errors_name_the_file(capsys, tmp_path):
    err = one_line_error(capsys, ["gems", "--results", str(tmp_path / "absent"), "--tree",
                                  str(tmp_path / "absent.parquet")])
    assert str(tmp_path / "absent") in err


def test_replay_repetitions_beyond_memory_are_refused_with_the_numbers(capsys):
    """(Once, this ran until killed, its memory growing.) The synthetic default tree: 479 models x 2,500 queries."""
    err = one_line_error(capsys, ["replay", "--methods", "uniform", "--budgets", "10", "--reps", "1000000000000",
                                  "--quiet"])
    assert "--reps 1000000000000: 1,000,000,000,000 repetitions of uniform on 479 models x 2,500 queries need " \
           "about" in err and "available: use at most" in err


def test_replay_models_table_values_are_named_with_their_row(capsys, tmp_path):
    ids = ["org/a", "org/b", "org/c"]
    matrix = tmp_path / "m.npy"
    np.save(matrix, np.array([[0, 1, 1], [1, 1, 0], [0, 0, 1]], dtype=np.uint8))
    (tmp_path / "index.json").write_text(json.dumps({"models": ids}))
    for column, values, message in (("is_base", "yes,no,perhaps", "is_base 'perhaps' in row 3 (model 'org/c')"),
                                    ("downloads", "10,many,3", "downloads 'many' in row 2 (model 'org/b')")):
        other = "downloads" if column == "is_base" else "is_base"
        rows = [f"{m},{v},{'1' if other == 'downloads' else 'no'}" for m, v in zip(ids, values.split(","))]
        models = tmp_path / f"{column}.csv"
        models.write_text(f"model_id,{column},{other}\n" + "\n".join(rows) + "\n")
        err = one_line_error(capsys, ["replay", "--matrix", str(matrix), "--models", str(models), "--methods",
                                      "best-base", "--budgets", "2", "--reps", "1", "--quiet"])
        assert f"{models}: {message}" in err


@pytest.mark.parametrize("setting, message", [
    ("overrides: {num_finetunes: abc}", "trees[0].overrides (T): num_finetunes must be a whole number, got 'abc'"),
    ("resources_per_trial: {cpu: .nan}", "resources_per_trial.cpu must be a number > 0"),
    ("resources_per_trial: {cpu: 0}", "resources_per_trial.cpu must be a number > 0"),
])
def test_sweep_settings_of_the_wrong_kind_are_one_line(capsys, tmp_path, setting, message):
    tree = "{name: T, preset: qwen-3b, " + (setting + "}" if setting.startswith("overrides") else "}")
    extra = "" if setting.startswith("overrides") else setting + "\n"
    config = tmp_path / "bad.yaml"
    config.write_text(f"budgets: [3]\nmethods: [uniform]\nreps: 2\ntrees: [{tree}]\n{extra}")
    err = one_line_error(capsys, ["sweep", str(config), "--out", str(tmp_path / "out")])
    assert message in err and not (tmp_path / "out").exists()


def test_output_paths_are_refused_before_the_work(capsys, tmp_path, monkeypatch):
    """An output that cannot be written is found before the replay (or the report), not after it."""
    import raygems.replay

    def no_work(*args, **kwargs):
        raise AssertionError("the replay ran before its --json path was checked")

    monkeypatch.setattr(raygems.replay, "replay_grid", no_work)
    a_file = tmp_path / "taken.txt"
    a_file.write_text("x")
    base = ["replay", "--methods", "uniform", "--budgets", "2", "--reps", "1", "--quiet", "--json"]
    err = one_line_error(capsys, base + [str(a_file / "y.json")])
    assert f"--json {a_file / 'y.json'}: cannot be written ({a_file} is a file, not a directory)" in err
    err = one_line_error(capsys, base + [str(tmp_path)])
    assert f"--json {tmp_path}: is a directory" in err
    err = one_line_error(capsys, ["gems", "--results", str(tmp_path / "absent"), "--out", str(a_file)])
    assert f"--out {a_file}: is a file, not a directory" in err
    assert a_file.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["taken.txt"]


def test_a_demo_run_on_another_install_of_the_tiny_tree_names_both_places(capsys, tmp_path):
    """The run directory of a demo run on a tree installed elsewhere (another RAYGEMS_CACHE): one line naming the
    tree it searched and how to continue it, before any Ray or search work."""
    out = tmp_path / "demo"
    out.mkdir()
    (out / "search.json").write_text(json.dumps({"tree": str(tmp_path / "first-cache" / "tiny-tree"),
                                                 "tasks": ["toy_arith", "toy_choice"]}))
    err = one_line_error(capsys, ["demo", "--out", str(out), "--tree-dir", str(tmp_path / "tree"), "--quiet"])
    assert f"installed at {tmp_path / 'first-cache' / 'tiny-tree'}, not at {tmp_path / 'tree'}" in err
    assert f"give --tree-dir {tmp_path / 'first-cache' / 'tiny-tree'}" in err and "another --out" in err
    # a run directory of another search (not the demo's tasks) is refused as the search refuses it
    (out / "search.json").write_text(json.dumps({"tree": "Qwen/Qwen2.5-3B", "tasks": ["gsm8k"], "budget": 50}))
    err = one_line_error(capsys, ["demo", "--out", str(out), "--tree-dir", str(tmp_path / "tree"), "--quiet"])
    assert "holds a different search" in err and "tiny tree" not in err


def test_an_output_under_a_file_and_absurd_thread_counts_are_one_line(capsys, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for argv in (["pool", "--tasks", "toy_arith", "--per-task", "3", "--out", str(a_file / "pool.parquet")],
                 ["tree", str(tmp_path), "--out", str(a_file / "tree.parquet")]):
        err = one_line_error(capsys, argv)
        assert f"cannot be written ({a_file} is a file, not a directory)" in err
    err = one_line_error(capsys, ["prior", "fit", "--records", str(tmp_path / "r.csv"), "--out", str(tmp_path / "p"),
                                  "--threads", "100000"])
    assert "--threads must be between 1 and" in err and "got 100000" in err
