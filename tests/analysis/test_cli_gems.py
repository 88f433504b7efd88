"""`raygems gems` end to end on small parquet files: a result store, a matrix, local model cards."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raygems.cli import main
from raygems.replay import CorrectnessMatrix
from raygems.tasks.registry import scoring_version

TREE = pd.DataFrame({"model_id": ["org/base", "org/inst", "u/a", "u/b"], "kind": ["base", "finetune", "finetune",
                                                                                   "adapter"],
                     "base_model": [None, "org/base", "org/inst", "org/base"], "revision": ["r0", "r1", "r2", "r3"],
                     "downloads": [1000, 5000, 10, 3], "likes": [1, 2, 0, 0], "created_at": [None] * 4,
                     "pipeline_tag": [None] * 4, "library_name": [None] * 4, "depth": [0, 1, 2, 1],
                     "is_base": [True, True, False, False], "path": [None] * 4})
# per model, per task: correct answers out of 10 queries
SCORES = {"org/base": {"gsm8k": 5, "mbpp": 4}, "org/inst": {"gsm8k": 6, "mbpp": 7},
          "u/a": {"gsm8k": 9, "mbpp": 2}, "u/b": {"gsm8k": 4, "mbpp": 8}}


@pytest.fixture
def files(tmp_path):
    tree_path = tmp_path / "acme.parquet"
    TREE.to_parquet(tree_path)
    rows = []
    for model, per_task in SCORES.items():
        for task, correct in per_task.items():
            for q in range(10):
                for variant, bonus in (("system", 0), ("plain", -1)):      # the system prompt is better
                    rows.append({"model_id": model, "revision": TREE.set_index("model_id").at[model, "revision"],
                                 "query_id": f"{task}-{q}", "task": task, "variant": variant,
                                 "reward": float(q < correct + bonus)})
    store = tmp_path / "store"
    store.mkdir()
    rows = pd.DataFrame(rows)
    rows["scoring_version"] = rows["task"].map(scoring_version)     # scored by the tasks' current scorers
    rows.to_parquet(store / "results-0.parquet")
    cards = tmp_path / "cards"
    (cards / "u" / "a").mkdir(parents=True)
    (cards / "u" / "a" / "README.md").write_text("---\nbase_model: org/inst\n---\n- GSM8K: 90.0\n")
    (cards / "u" / "b").mkdir(parents=True)
    (cards / "u" / "b" / "README.md").write_text("---\nbase_model: org/base\n---\n# no evaluations\n")
    return tree_path, store, cards


def test_gems_from_a_result_store_with_cards(files, tmp_path, capsys):
    tree_path, store, cards = files
    out = tmp_path / "report"
    assert main(["gems", "--tree", str(tree_path), "--results", str(store), "--cards-from", str(cards),
                 "--out", str(out), "--plots"]) == 0
    printed = capsys.readouterr().out
    assert "| acme | Base | 60.0 | 70.0 | 65.0 |" in printed                   # org/inst is the popular model
    assert "| acme | ✓ | ✗ | – |" in printed                                   # u/a documented, u/b not
    summary = pd.read_parquet(out / "summary.parquet").set_index("task")
    assert summary.loc["gsm8k", "best_gem"] == "u/a" and summary.loc["mbpp", "best_gem"] == "u/b"
    assert summary.loc["overall", "best_gem"] != summary.loc["overall", "best_gem"]   # no overall gem: NaN
    assert pd.read_csv(out / "table1.csv", index_col=0).loc["Gain", "gsm8k"] == pytest.approx(30.0)
    docs = pd.read_parquet(out / "documentation.parquet")
    assert docs[["model_id", "symbol"]].values.tolist() == [["u/a", "✓"], ["u/b", "✗"]]
    assert (out / "report.md").read_text().startswith("Table 1")
    for task in ("gsm8k", "mbpp", "overall"):
        assert (out / f"atlas_{task}.png").stat().st_size > 5000
        assert (out / f"cumulative_{task}.png").exists()


def test_gems_from_a_matrix(files, tmp_path, capsys):
    tree_path, _, _ = files
    values = np.array([[1] * 5 + [0] * 5, [1] * 6 + [0] * 4, [1] * 9 + [0], [1] * 4 + [0] * 6], dtype=np.uint8)
    matrix = CorrectnessMatrix(values, tuple(TREE["model_id"]), tuple(f"q{i}" for i in range(10)), ("gsm8k",) * 10)
    path = matrix.to_parquet(tmp_path / "matrix.parquet")
    assert main(["gems", "--tree", str(tree_path), "--matrix", str(path), "--name", "M"]) == 0
    printed = capsys.readouterr().out
    assert "| M | Base | 60.0 |" in printed and "|  | Gem | 90.0 |" in printed
    assert "| gsm8k | u/a | 90.0 | 10 |" in printed
    assert "overall" not in printed                                             # one task: no aggregate


def test_usage_errors(files, tmp_path, capsys):
    tree_path, store, _ = files
    assert main(["gems", "--tree", str(tmp_path / "none.parquet"), "--results", str(store)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["gems", "--tree", str(tree_path), "--results", str(store), "--plots"]) == 2
    assert "--plots needs --out" in capsys.readouterr().err
    assert main(["gems", "--tree", str(tree_path), "--results", str(store), "--cards-from", "nowhere"]) == 2
    with pytest.raises(SystemExit):
        main(["gems", "--tree", str(tree_path)])                               # --results or --matrix
    other = TREE.assign(model_id=TREE["model_id"] + "-renamed")
    other.to_parquet(tmp_path / "other.parquet")
    assert main(["gems", "--tree", str(tmp_path / "other.parquet"), "--results", str(store)]) == 2
    assert "not in the tree" in capsys.readouterr().err


# ------------------------------------------------------------------ what --results is, checked before anything else
def one_line_err(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert captured.out == ""                                 # refused before any work: no report printed
    return lines[0]


def test_results_that_are_missing_empty_or_not_results_are_named(tmp_path, capsys):
    """Not "--tree is needed": the bad --results itself is named, with what is wrong with it."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not results")
    for path, message in ((tmp_path / "nope", "no such file or directory"),
                          (tmp_path / "empty", "holds no results"),
                          (tmp_path / "notes.txt", "is not a .parquet file")):
        assert main(["gems", "--results", str(path)]) == 2
        err = one_line_err(capsys)
        assert f"{path}" in err and message in err and "--tree is needed" not in err, err


def test_a_parquet_name_that_is_not_a_parquet_of_result_rows_is_named(files, tmp_path, capsys):
    """With or without --tree: exit 2 naming the file and what it lacks, not the advice meant for a store's part."""
    tree_path, _, _ = files
    (tmp_path / "fake.parquet").write_text("not parquet")
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "other.parquet")
    for path, message in ((tmp_path / "fake.parquet", "is not a parquet file of result rows (ArrowInvalid"),
                          (tmp_path / "other.parquet", "lacks the column(s) ['model_id'")):
        for extra in ([], ["--tree", str(tree_path)]):
            assert main(["gems", "--results", str(path), *extra]) == 2
            err = one_line_err(capsys)
            assert str(path) in err and message in err and "move it out" not in err, err


def test_a_run_directory_without_a_store_has_no_results_yet(files, tmp_path, capsys):
    """An interrupted search: search.json, tree.parquet and pool.parquet, no store/ yet. Its pool is not a result
    part to move out of a store: the run has recorded no results."""
    tree_path, _, _ = files
    run = tmp_path / "interrupted"
    run.mkdir()
    (run / "search.json").write_text("{}")
    TREE.to_parquet(run / "tree.parquet")
    pd.DataFrame({"query_id": ["q0"], "task": ["gsm8k"], "messages": ["hi"]}).to_parquet(run / "pool.parquet")
    for argv in (["gems", "--results", str(run)], ["gems", "--results", str(run), "--tree", str(tree_path)]):
        assert main(argv) == 2
        err = one_line_err(capsys)
        assert "recorded no results yet" in err and str(run) in err, err
        assert "pool.parquet" not in err and "move it out" not in err
    (run / "store" / "results").mkdir(parents=True)               # a store nothing was written to yet
    assert main(["gems", "--results", str(run)]) == 2
    assert "recorded no results yet" in one_line_err(capsys)


def test_an_unusable_out_is_refused_before_the_work(files, tmp_path, capsys):
    tree_path, store, _ = files
    a_file = tmp_path / "taken.txt"
    a_file.write_text("x")
    for out, message in ((a_file, f"--out {a_file}: is a file, not a directory"),
                         (a_file / "report", f"--out {a_file / 'report'}: cannot be written")):
        assert main(["gems", "--tree", str(tree_path), "--results", str(store), "--out", str(out)]) == 2
        assert message in one_line_err(capsys)
    assert a_file.read_text() == "x"
    out = tmp_path / "new" / "deeper"                       # folders that do not exist yet are fine, and made
    assert main(["gems", "--tree", str(tree_path), "--results", str(store), "--out", str(out)]) == 0
    assert (out / "report.md").is_file()


# ------------------------------------------------------------------ cards from a hub that does not answer
class _RefusingApi:
    """An HfApi whose every request finds no server (a refused connection), counting the requests."""

    endpoint = "http://127.0.0.1:9"

    def __init__(self):
        self.requests = []

    def _refuse(self, what):
        import httpx2      # the HTTP stack huggingface_hub uses here

        self.requests.append(what)
        raise httpx2.ConnectError("[Errno 111] Connection refused")

    def get_hf_file_metadata(self, *, url, **_):
        self._refuse(url)

    def hf_hub_download(self, repo_id, filename, **_):
        self._refuse(f"{repo_id}/{filename}")


@pytest.fixture
def hub_allowed(monkeypatch):
    from huggingface_hub import constants

    from raygems.hub import retry

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(retry, "_ANSWERED", set())
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_an_unreachable_hub_gives_unknown_documentation_after_one_reach(files, hub_allowed):
    """Not ✗ ("no documentation"): ?, with the reason; and one failed reach stops the asking for the other cards."""
    from raygems.analysis.gems import accuracy_from_results, find_gems
    from raygems.hub.sources import HubTreeSource

    tree_path, store, _ = files
    api, waits = _RefusingApi(), []
    source = HubTreeSource(api=api, sleep=waits.append)
    report = find_gems(pd.read_parquet(tree_path), accuracy_from_results(store), cards=source)
    docs = report.documentation
    assert set(docs["model_id"]) == {"u/a", "u/b"} and set(docs["symbol"]) == {"?"}
    assert set(docs["documentation"]) == {"unavailable"}
    # one connection attempt to the endpoint (raygems.hub.retry.check_reachable) found nobody: no card was asked for
    assert api.requests == [] and waits == []
    assert "hub cannot be reached (cannot connect to http://127.0.0.1:9" in report.cards_note
    text = report.to_markdown("acme")
    assert "| acme | ? | ? | – |" in text and "hub cannot be reached" in text


def test_cards_from_an_offline_hub_are_unknown_at_once(files, tmp_path, capsys, monkeypatch):
    """HF_HUB_OFFLINE=1 (tests/conftest.py sets it): no README.md in the cache is not "no card"."""
    import time

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    tree_path, store, _ = files
    started = time.monotonic()
    assert main(["gems", "--tree", str(tree_path), "--results", str(store), "--cards-from", "hub",
                 "--out", str(tmp_path / "report")]) == 0
    assert time.monotonic() - started < 20
    captured = capsys.readouterr()
    assert "| acme | ? | ? | – |" in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "hub cannot be reached (HF_HUB_OFFLINE=1 is set)" in err[0] and "(?)" in err[0]
    table6 = pd.read_csv(tmp_path / "report" / "table6.csv", index_col=0)
    assert table6.loc["Documentation", "gsm8k"] == "?"


def test_cards_from_a_served_hub_still_say_what_they_document(files, tmp_path, hub_allowed):
    """The reachable hub (a local server of the same cards): ✓ and ✗ as from the directory."""
    from raygems.analysis.gems import accuracy_from_results, find_gems
    from raygems.hub.catalog import DirectoryCatalog
    from raygems.hub.serve import HubServer
    from raygems.hub.sources import HubTreeSource

    tree_path, store, cards = files
    with HubServer(DirectoryCatalog(cards)) as hub:
        source = HubTreeSource(endpoint=hub.endpoint, cache_dir=tmp_path / "cache")
        report = find_gems(pd.read_parquet(tree_path), accuracy_from_results(store), cards=source)
    assert report.documentation[["model_id", "symbol"]].values.tolist() == [["u/a", "✓"], ["u/b", "✗"]]
    assert report.cards_note is None
