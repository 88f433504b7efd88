"""Loaders on the real benchmark files (original release formats) and through the hub code path."""
from __future__ import annotations

import json
import re

import pytest

from raygems.tasks import QUERY_KEYS, get_task
from raygems.tasks.sources import DATA_DIR_ENV

EXPECTED = {"arc_challenge": 1172, "winogrande": 1267, "mmlu": 14042, "gsm8k": 1319, "mbpp": 500}


@pytest.fixture(scope="module")
def loaded(benchmarks_dir):
    return {name: get_task(name, data_dir=benchmarks_dir).load() for name in EXPECTED}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_test_item_becomes_a_complete_query(loaded, name):
    queries = loaded[name]
    assert len(queries) == EXPECTED[name]
    ids = [q["query_id"] for q in queries]
    assert len(set(ids)) == len(ids)
    for query in queries:
        assert set(QUERY_KEYS) <= set(query)
        assert query["task"] == name and query["query_id"].startswith(f"{name}/")
        assert isinstance(query["source_id"], str) and query["source_id"]
        assert [m["role"] for m in query["messages"]] == ["user"]
        assert query["messages"][0]["content"].strip()
        assert isinstance(query["reference"], str) and query["reference"]


def test_loading_is_stable(benchmarks_dir, loaded):
    again = get_task("mmlu", data_dir=benchmarks_dir).load()
    assert again == loaded["mmlu"]


def test_arc_references_are_letters_even_for_numbered_options(loaded):
    queries = loaded["arc_challenge"]
    assert all(q["reference"] in q["meta"]["labels"] for q in queries)
    assert all(q["meta"]["labels"] == list("ABCDE"[: len(q["meta"]["choices"])]) for q in queries)
    numbered = [q for q in queries if q["meta"]["source_labels"][0] == "1"]
    assert len(numbered) == 22
    q = numbered[0]
    assert q["meta"]["source_labels"][q["meta"]["labels"].index(q["reference"])].isdigit()
    assert "\nA. " in q["messages"][0]["content"] and "\n1. " not in q["messages"][0]["content"]
    assert {len(q["meta"]["labels"]) for q in queries} == {3, 4, 5}
    assert queries[0]["query_id"] == "arc_challenge/Mercury_7175875" and queries[0]["reference"] == "C"


def test_winogrande_uses_the_labels_file_and_numbers(loaded, benchmarks_dir):
    labels = (benchmarks_dir / "winogrande" / "dev-labels.lst").read_text().split()
    queries = loaded["winogrande"]
    assert [q["reference"] for q in queries] == labels
    first = queries[0]
    assert first["query_id"] == "winogrande/0000"
    assert first["source_id"] == "3FCO4VKOZ4BJQ6IFC0VAIBK4KTWE7U-2"
    assert "1. Sarah\n2. Maria" in first["messages"][0]["content"]


def test_mmlu_covers_57_subjects_with_letter_answers(loaded):
    queries = loaded["mmlu"]
    assert len({q["meta"]["subject"] for q in queries}) == 57
    assert {q["reference"] for q in queries} == set("ABCD")
    assert queries[0]["query_id"] == "mmlu/abstract_algebra/000"


def test_gsm8k_references_are_plain_numbers(loaded):
    queries = loaded["gsm8k"]
    assert all(re.fullmatch(r"-?\d+(\.\d+)?", q["reference"]) for q in queries)
    assert queries[0]["query_id"] == "gsm8k/0000" and queries[0]["reference"] == "18"
    assert "#### N" in queries[0]["messages"][0]["content"]
    assert sorted(q["reference"] for q in queries if q["reference"].startswith("-")) == ["-10", "-3"]


def test_mbpp_is_task_ids_11_to_510_with_test_code_as_reference(loaded):
    queries = loaded["mbpp"]
    assert [int(q["source_id"]) for q in queries] == list(range(11, 511))
    q = queries[0]
    assert q["query_id"] == "mbpp/11"
    assert q["reference"].startswith("assert remove_Occ(")
    assert q["reference"].count("assert") == 3
    assert "remove_Occ" in q["messages"][0]["content"] and "```python" in q["messages"][0]["content"]
    with_setup = [q for q in queries if q["meta"]["test_setup_code"]]
    assert len(with_setup) == 1 and with_setup[0]["reference"].startswith(with_setup[0]["meta"]["test_setup_code"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hub_path_gives_the_same_queries(name, loaded, fake_downloader):
    task = get_task(name, data_dir=None, downloader=fake_downloader)
    assert task.source.startswith("hub:")
    from_hub = task.load()
    assert all(call[2] == "dataset" for call in fake_downloader.calls)
    assert [call[0] for call in fake_downloader.calls] == [task.hub_repo]
    local = loaded[name]
    assert [q["query_id"] for q in from_hub] == [q["query_id"] for q in local]
    assert [q["messages"] for q in from_hub] == [q["messages"] for q in local]
    assert [q["reference"] for q in from_hub] == [q["reference"] for q in local]
    if name != "winogrande":  # the hub's Winogrande has no qID: source_id is the row there
        assert [q["source_id"] for q in from_hub] == [q["source_id"] for q in local]


def test_hub_revision_is_passed_to_the_downloader(fake_downloader):
    get_task("gsm8k", downloader=fake_downloader, revision="abc123").load()
    assert fake_downloader.calls == [("openai/gsm8k", "main/test-00000-of-00001.parquet", "dataset", "abc123")]


def test_hub_is_the_default_without_a_data_dir(monkeypatch, fake_downloader):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    task = get_task("arc_challenge", downloader=fake_downloader)
    assert len(task.load()) == 1172 and fake_downloader.calls


def test_data_dir_environment_variable(monkeypatch, benchmarks_dir, fake_downloader):
    monkeypatch.setenv(DATA_DIR_ENV, str(benchmarks_dir))
    task = get_task("winogrande", downloader=fake_downloader)
    assert task.source == f"local:{benchmarks_dir / 'winogrande'}"
    assert len(task.load()) == 1267
    assert fake_downloader.calls == []


def test_missing_files_name_what_is_expected(tmp_path):
    (tmp_path / "winogrande").mkdir()
    (tmp_path / "winogrande" / "dev.jsonl").write_text("")
    with pytest.raises(FileNotFoundError, match="dev-labels.lst"):
        get_task("winogrande", data_dir=tmp_path).load()


# --------------------------------------------------------------------------------------------------
# Malformed benchmark files: one clear error naming the file, the line and what is wrong
# --------------------------------------------------------------------------------------------------
ARC_ROW = {"id": "x1", "question": {"stem": "Q?", "choices": [{"text": "a", "label": "A"},
                                                              {"text": "b", "label": "B"}]}, "answerKey": "A"}
GSM_ROW = {"question": "What is 1 + 1?", "answer": "1 + 1 = 2\n#### 2"}
MBPP_ROW = {"task_id": 11, "text": "Write f.", "code": "def f():\n    return 1", "test_list": ["assert f() == 1"]}


def _write_task(root, task, files):
    for name, content in files.items():
        path = root / task / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content if isinstance(content, str) else
                            "".join(json.dumps(row) + "\n" for row in content), encoding="utf-8")
    return root


@pytest.mark.parametrize("task, files, where, message", [
    ("arc_challenge", {"ARC-Challenge-Test.jsonl": [ARC_ROW, {"id": 1}]}, "ARC-Challenge-Test.jsonl, line 2",
     "missing field 'question'"),
    ("arc_challenge", {"ARC-Challenge-Test.jsonl": [{**ARC_ROW, "question": {"stem": "Q", "choices": [{"text": "a"}]}}]},
     "ARC-Challenge-Test.jsonl, line 1", "missing field 'question.choices[0].label'"),
    ("arc_challenge", {"ARC-Challenge-Test.jsonl": [{**ARC_ROW, "answerKey": "E"}]}, "ARC-Challenge-Test.jsonl, line 1",
     "answer 'E' not among"),
    ("mbpp", {"mbpp.jsonl": [MBPP_ROW, [1, 2]]}, "mbpp.jsonl, line 2", "expected a JSON object, got a list"),
    ("mbpp", {"mbpp.jsonl": [{**MBPP_ROW, "test_list": "assert f() == 1"}]}, "mbpp.jsonl, line 1",
     "field 'test_list': expected a list"),
    ("gsm8k", {"test.jsonl": [{"question": 5}]}, "test.jsonl, line 1", "field 'question': expected text, got 5"),
    ("gsm8k", {"test.jsonl": [GSM_ROW, {"question": "q"}]}, "test.jsonl, line 2", "missing field 'answer'"),
    ("gsm8k", {"test.jsonl": [{"question": "q", "answer": "42"}]}, "test.jsonl, line 1", "without '####'"),
    ("gsm8k", {"test.jsonl": "this is text, not JSON\n"}, "test.jsonl, line 1", "not valid JSON"),
    ("gsm8k", {"test.jsonl": b"\xff\xfe\x00binary"}, "test.jsonl", "not a UTF-8 text file"),
    ("winogrande", {"dev.jsonl": [{"qID": "a", "sentence": "s _", "option1": "x"}], "dev-labels.lst": "1\n"},
     "dev.jsonl, line 1", "missing field 'option2'"),
    ("winogrande", {"dev.jsonl": [{"qID": "a", "sentence": "s _", "option1": "x", "option2": "y"}],
                    "dev-labels.lst": "3\n"}, "dev-labels.lst, line 1", "label '3' is not 1 or 2"),
    ("mmlu", {"test/x_test.csv": "q,a,b,c,d,A\nq,a,b\n"}, "x_test.csv, line 2", "expected 6 columns"),
    ("mmlu", {"test/x_test.csv": "q,a,b,c,d,E\n"}, "x_test.csv, line 1", "bad answer 'E'"),
])
def test_malformed_local_files_name_the_file_line_and_problem(tmp_path, task, files, where, message):
    from raygems.errors import UsageError

    _write_task(tmp_path, task, files)
    with pytest.raises(UsageError) as caught:
        get_task(task, data_dir=tmp_path).load()
    text = str(caught.value)
    assert "\n" not in text and str(tmp_path / task) in text
    assert where in text and message in text


def test_malformed_hub_rows_name_the_file_and_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raygems.errors import UsageError

    path = tmp_path / "openai/gsm8k/main/test-00000-of-00001.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([GSM_ROW, {"question": "q", "answer": None}]), path)
    download = lambda repo_id, filename, **kw: str(tmp_path / repo_id / filename)  # noqa: E731
    with pytest.raises(UsageError, match=r"test-00000-of-00001.parquet, row 1: field 'answer': expected text, got null"):
        get_task("gsm8k", data_dir=None, downloader=download).load()


def test_malformed_file_is_one_line_from_the_command_line(tmp_path, capsys):
    from raygems.cli import main

    _write_task(tmp_path, "arc_challenge", {"ARC-Challenge-Test.jsonl": [{"id": 1}]})
    assert main(["pool", "--tasks", "arc_challenge", "--per-task", "2", "--data-dir", str(tmp_path),
                 "--out", str(tmp_path / "p.parquet")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ARC-Challenge-Test.jsonl, line 1: missing field 'question'" in err[0]


def test_a_benchmark_file_the_hub_does_not_have_is_named_in_one_line(tmp_path, monkeypatch):
    """The hub (here the local hub server, which serves no datasets) answers 404: the error names the file and the
    dataset, and says how to work from local files; not huggingface_hub's bare '404 Client Error.'."""
    import functools

    from huggingface_hub import constants, hf_hub_download

    from raygems.errors import SetupError
    from raygems.hub.catalog import DirectoryCatalog
    from raygems.hub.serve import HubServer
    from raygems.tasks.sources import HubFetcher

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)        # real HTTP, to the loopback server only
    (tmp_path / "hub" / "org" / "model").mkdir(parents=True)
    (tmp_path / "hub" / "org" / "model" / "config.json").write_text("{}")
    with HubServer(DirectoryCatalog(tmp_path / "hub")) as hub:
        fetch = HubFetcher(downloader=functools.partial(hf_hub_download, endpoint=hub.endpoint,
                                                        cache_dir=tmp_path / "cache"))
        with pytest.raises(SetupError) as caught:
            fetch("openai/gsm8k", "main/test.parquet")
    message = str(caught.value)
    assert message.startswith("benchmark file main/test.parquet of dataset openai/gsm8k could not be downloaded "
                              "(HTTP 404: Repository Not Found") and "give --data-dir" in message
    assert "\n" not in message
