"""Search settings are checked before anything is downloaded or written, and `--resume` keeps the saved search
while honouring the runtime flags given on the command line. No Ray needed: everything here fails or is
decided before the cluster is contacted."""
from __future__ import annotations

import json

import pytest

from raygems.cli import build_parser
from raygems.cli.search import config_from_args
from raygems.errors import UsageError
from raygems.runtime import SearchConfig, run_search

from runtime_helpers import write_matrix


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return write_matrix(tmp_path_factory.mktemp("recorded"), finetunes=8, adapters=2, per_task=10)


@pytest.mark.parametrize("settings, message", [
    ({"backend": "vlm"}, "unknown backend 'vlm'"),
    ({"backend_settings": {"batch_sise": 64}}, "batch_sise"),
    ({"max_models": 1}, "max_models must be at least 2"),
    ({"cpus_per_model": -1}, "cpus_per_model must be a finite number >= 0"),
    ({"gpus_per_model": -0.5}, "gpus_per_model must be a finite number >= 0"),
    ({"per_task": 0}, "per_task must be at least 1"),
    ({"backend": "simulated-replay"}, "answers from a correctness matrix"),
    ({"method": "sequential-halving", "method_options": {"late_eta": 1.3}}, r"takes no option\(s\) \['late_eta'\]"),
    ({"seed": -1}, "seed must be >= 0, got -1"),
    ({"cpus_per_model": float("nan")}, "cpus_per_model must be a finite number >= 0, got nan"),
    ({"gpus_per_model": float("inf")}, "gpus_per_model must be a finite number >= 0, got inf"),
    ({"cache_limit": "inf"}, "cache limit 'inf': give a finite size"),
    ({"models": "models.parquet"}, "--models models.parquet: a models table goes with --matrix"),
    ({"data_dir": "/nonexistent/benchmarks"}, "--data-dir /nonexistent/benchmarks: no such directory"),
    # settings of the wrong kind (a mistyped call, a hand-edited search.json): named, not a TypeError inside
    ({"budget": "x"}, "search setting budget must be a whole number, got 'x'"),
    ({"budget": True}, "search setting budget must be a whole number, got True"),
    ({"tasks": 5}, "search setting tasks must be a name or a list of names, got 5"),
    ({"backend_settings": 5}, r"search setting backend_settings must be a mapping \(a JSON object\), got 5"),
    ({"method_options": [1]}, "search setting method_options must be a mapping"),
    ({"seed": None}, "search setting seed must be a whole number, got None"),
    ({"prior_keep": "1"}, "search setting prior_keep must be a number, got '1'"),
    ({"backend_settings": {"batch_size": None}}, "batch_size must be a positive whole number, got None"),
    ({"backend_settings": {"device": 5}}, "device must be one of"),
])
def test_bad_settings_are_refused_with_the_bad_value(settings, message):
    with pytest.raises(ValueError, match=message):
        SearchConfig(tree="some/tree", **settings)


@pytest.mark.parametrize("settings, named", [
    ({"tasks": ("gsm8k",)}, "--tasks gsm8k: "),
    ({"per_task": None}, "--per-task all: "),
    ({"pool_seed": 3, "max_models": 5}, "--pool-seed 3, --max-models 5: "),
    ({"kinds": ("finetune",), "max_depth": 1}, "--kinds finetune, --max-depth 1: "),
])
def test_a_matrix_search_refuses_the_settings_it_would_ignore(recorded, settings, named):
    # the matrix's models and queries are the search's: --tasks gsm8k would have run every task, silently
    _, matrix, models = recorded
    with pytest.raises(UsageError, match=f"^{named}a --matrix search has the matrix's own models and queries"):
        SearchConfig(matrix=str(matrix), models=str(models), **settings)
    default = SearchConfig(matrix=str(matrix), models=str(models), tasks="routerbench")   # the default, said
    assert default.tasks == ("routerbench",)
    said = SearchConfig(matrix=str(matrix), models=str(models), kinds=tuple(reversed(default.kinds)))   # any order
    assert set(said.kinds) == set(default.kinds)


def test_inputs_are_checked_before_the_search_is_saved(recorded, tmp_path):
    _, matrix, models = recorded
    out = tmp_path / "run"
    too_big = SearchConfig(out=str(out), matrix=str(matrix), models=str(models), budget=10_000, progress=False)
    with pytest.raises(ValueError, match="exceeds the pool"):
        run_search(too_big)
    assert not (out / "search.json").exists()     # so the corrected command is not refused as "different"


def test_resume_keeps_the_saved_search_and_takes_the_runtime_flags(recorded, tmp_path):
    _, matrix, models = recorded
    out = tmp_path / "run"
    out.mkdir()
    saved = SearchConfig(out=str(out), matrix=str(matrix), models=str(models), budget=7, max_loaded=3,
                         chunk_size=16)
    (out / "search.json").write_text(json.dumps(saved.identity() | {"max_loaded": 3, "chunk_size": 16}))
    args = build_parser().parse_args(["search", "--out", str(out), "--resume", "--max-loaded", "5", "--quiet"])
    config = config_from_args(args)
    assert config.resume and config.budget == 7 and config.matrix == str(matrix)   # the saved search
    assert config.max_loaded == 5                                                  # given now
    assert config.chunk_size == 16                                                 # saved, not given


def test_a_search_saved_with_the_retired_test_hook_resumes_as_the_same_search(recorded, tmp_path):
    """Earlier versions saved `"fail": {}` (replay failures for tests, now raygems.runtime.testing's backend
    settings) with every search: such a search is the same search, and a non-empty one is not resumed."""
    _, matrix, models = recorded
    out = tmp_path / "run"
    out.mkdir()
    saved = SearchConfig(out=str(out), matrix=str(matrix), models=str(models), budget=7)
    assert "fail" not in saved.identity()
    (out / "search.json").write_text(json.dumps(saved.identity() | {"fail": {}}))
    args = build_parser().parse_args(["search", "--out", str(out), "--resume", "--quiet"])
    assert config_from_args(args).identity() == saved.identity()
    (out / "search.json").write_text(json.dumps(saved.identity() | {"fail": {"org/a": ["load", "broken"]}}))
    with pytest.raises(ValueError, match=r"unknown search setting\(s\) \['fail'\]"):
        config_from_args(args)


def test_resume_refuses_settings_that_differ_from_the_saved_search(recorded, tmp_path, capsys):
    from raygems.cli import main

    _, matrix, models = recorded
    out = tmp_path / "run"
    out.mkdir()
    saved = SearchConfig(out=str(out), matrix=str(matrix), models=str(models), budget=7, method="ours")
    (out / "search.json").write_text(json.dumps(saved.identity()))
    assert main(["search", "--out", str(out), "--resume", "--budget", "9", "--method", "ours", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--budget (saved 7, given 9)" in err and "--method" not in err and len(err.splitlines()) == 1
    assert main(["search", "--out", str(out), "--resume", "--no-final-evaluation", "--quiet"]) == 2
    assert "--no-final-evaluation (saved True, given False)" in capsys.readouterr().err    # the flag as typed
    assert main(["search", "--out", str(out), "--resume", "--tree", str(tmp_path), "--quiet"]) == 2
    assert f"--tree (saved None, given {str(tmp_path)!r}) differ" in capsys.readouterr().err  # (not "give one of")
    # the saved values themselves may be repeated
    args = build_parser().parse_args(["search", "--out", str(out), "--resume", "--budget", "7", "--quiet"])
    assert config_from_args(args).budget == 7
    with pytest.raises(ValueError, match=r"settings \['budget'\] differ"):     # the library refuses too
        run_search(SearchConfig(out=str(out), matrix=str(matrix), models=str(models), budget=9, method="ours",
                                resume=True))


def test_a_search_that_must_run_code_is_refused_before_anything_is_evaluated(tmp_path, shared_dir, monkeypatch):
    """mbpp scores answers by running them: without permission the search stops with one line naming how to
    allow it, before Ray starts or anything is written (an MBPP answer is never recorded as a silent 0)."""
    from raygems.tasks.sandbox import ENV_FLAG

    monkeypatch.delenv(ENV_FLAG, raising=False)
    out = tmp_path / "run"
    config = SearchConfig(out=str(out), tree="some-org/some-model", tasks=("mbpp", "gsm8k"), per_task=3,
                          data_dir=str(shared_dir / "data" / "benchmarks"), progress=False)
    with pytest.raises(UsageError, match=f"mbpp score answers by running model-written code.*--allow-code-execution.*{ENV_FLAG}=1"):
        run_search(config)
    assert not out.exists()


def test_an_address_where_no_cluster_answers_fails_at_once():
    """Ray itself retries a dead address for minutes; the search says so in one line instead."""
    import socket

    from raygems.errors import SetupError
    from raygems.runtime.search import _check_ray_address

    with socket.socket() as unused:               # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(SetupError, match=f"no Ray cluster answers at --address 127.0.0.1:{port}"):
        _check_ray_address(f"127.0.0.1:{port}")
    for left_to_ray in (None, "auto", "local", "head-node", "ray://head:10001"):
        _check_ray_address(left_to_ray)


@pytest.mark.parametrize("saved, message", [
    ({"budget": "x"}, "search setting budget must be a whole number, got 'x'"),
    ({"kinds": None}, "search setting kinds must be a name or a list of names, got None"),
    ({"backend_settings": 5}, "search setting backend_settings must be a mapping"),
])
def test_a_hand_edited_search_json_is_named_with_its_bad_value(recorded, tmp_path, capsys, saved, message):
    from raygems.cli import main

    _, matrix, models = recorded
    out = tmp_path / "run"
    out.mkdir()
    identity = SearchConfig(out=str(out), matrix=str(matrix), models=str(models)).identity()
    (out / "search.json").write_text(json.dumps({**identity, **saved}))
    assert main(["search", "--out", str(out), "--resume", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{out / 'search.json'}: {message}" in err


def test_settings_of_equivalent_types_are_kept_as_the_plain_ones(recorded, tmp_path):
    """numpy numbers, paths, sets of names and read-only mappings are accepted, and saved in search.json as plain
    JSON (a numpy integer saved as a string would refuse the same search's next run)."""
    from pathlib import Path
    from types import MappingProxyType

    import numpy as np

    _, matrix, models = recorded
    config = SearchConfig(out=tmp_path / "run", matrix=Path(matrix), models=str(models), budget=np.int64(7),
                          prior_keep=np.float32(0.5), tasks={"routerbench"}, cache_limit=5e11,
                          allow_code_execution=np.bool_(True), cache_dir=tmp_path / "cache",
                          backend_settings=MappingProxyType({"batch_size": np.int64(8)}))
    assert type(config.budget) is int and config.budget == 7 and type(config.prior_keep) is float
    assert config.tasks == ("routerbench",) and config.allow_code_execution is True and config.cache_dir == str(tmp_path / "cache")
    assert type(config.backend_settings) is dict
    saved = json.loads(json.dumps(config.identity()))
    assert saved["budget"] == 7 and SearchConfig.from_dict({**saved, "out": str(tmp_path / "run")}).budget == 7
