"""Fixtures for the task-suite tests: the real benchmark files, a hub stand-in that serves them in the
hub's parquet layout, and tiny real tokenizers with hand-written chat templates."""
from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import pytest

BENCHMARK_FOLDERS = ("arc_challenge", "gsm8k", "mbpp", "mmlu", "winogrande")


@pytest.fixture(scope="session")
def benchmarks_dir(shared_dir) -> Path:
    path = shared_dir / "data" / "benchmarks"
    if not all((path / name).is_dir() for name in BENCHMARK_FOLDERS):
        pytest.skip(f"{path} does not hold the five benchmarks")
    return path


# --------------------------------------------------------------------------------------------------
# A hub stand-in: the original files converted to the parquet layout of the hub repositories
# (allenai/ai2_arc, allenai/winogrande, cais/mmlu, openai/gsm8k, google-research-datasets/mbpp).
# --------------------------------------------------------------------------------------------------
def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write_parquet(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def build_hub_snapshot(benchmarks: Path, root: Path) -> Path:
    """Write ROOT/<repo_id>/<filename> for the five hub datasets, in the hub's column schema."""
    arc = [{"id": r["id"], "question": r["question"]["stem"],
            "choices": {"text": [c["text"] for c in r["question"]["choices"]],
                        "label": [c["label"] for c in r["question"]["choices"]]},
            "answerKey": r["answerKey"]}
           for r in _jsonl(benchmarks / "arc_challenge" / "ARC-Challenge-Test.jsonl")]
    _write_parquet(arc, root / "allenai/ai2_arc/ARC-Challenge/test-00000-of-00001.parquet")

    wino = [{"sentence": r["sentence"], "option1": r["option1"], "option2": r["option2"], "answer": r["answer"]}
            for r in _jsonl(benchmarks / "winogrande" / "dev.jsonl")]
    _write_parquet(wino, root / "allenai/winogrande/winogrande_xl/validation-00000-of-00001.parquet")

    mmlu = []
    for path in sorted((benchmarks / "mmlu" / "test").glob("*_test.csv")):
        subject = path.name[: -len("_test.csv")]
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                mmlu.append({"question": row[0], "subject": subject, "choices": row[1:5],
                             "answer": "ABCD".index(row[5])})
    _write_parquet(mmlu, root / "cais/mmlu/all/test-00000-of-00001.parquet")

    gsm = [{"question": r["question"], "answer": r["answer"]} for r in _jsonl(benchmarks / "gsm8k" / "test.jsonl")]
    _write_parquet(gsm, root / "openai/gsm8k/main/test-00000-of-00001.parquet")

    mbpp = [r for r in _jsonl(benchmarks / "mbpp" / "mbpp.jsonl") if 11 <= r["task_id"] <= 510]
    _write_parquet(mbpp, root / "google-research-datasets/mbpp/full/test-00000-of-00001.parquet")
    return root


class FakeHubDownloader:
    """Same signature as ``huggingface_hub.hf_hub_download``; serves files from a local snapshot and
    records what was asked for."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[tuple[str, str, str | None, str | None]] = []

    def __call__(self, repo_id: str, filename: str, *, subfolder: str | None = None,
                 repo_type: str | None = None, revision: str | None = None, **kwargs) -> str:
        self.calls.append((repo_id, filename, repo_type, revision))
        if repo_type != "dataset":
            raise ValueError(f"expected repo_type='dataset', got {repo_type!r}")
        path = self.root / repo_id / (f"{subfolder}/{filename}" if subfolder else filename)
        if not path.is_file():
            raise FileNotFoundError(f"{repo_id} has no file {filename}")
        return str(path)


@pytest.fixture(scope="session")
def hub_snapshot(benchmarks_dir, tmp_path_factory) -> Path:
    return build_hub_snapshot(benchmarks_dir, tmp_path_factory.mktemp("hub"))


@pytest.fixture
def fake_downloader(hub_snapshot) -> FakeHubDownloader:
    return FakeHubDownloader(hub_snapshot)


# --------------------------------------------------------------------------------------------------
# The sandbox
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def sandbox_tmp(tmp_path, monkeypatch):
    """Sandbox directories are created under this test's own folder, so that any process left
    behind can be recognised by its command line."""
    root = tmp_path / "sandboxes"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


# --------------------------------------------------------------------------------------------------
# Tiny real tokenizers (a BPE trained here in milliseconds) with hand-written chat templates.
# --------------------------------------------------------------------------------------------------
SPECIAL_TOKENS = ["<|im_start|>", "<|im_end|>", "<bos>", "<start_of_turn>", "<end_of_turn>",
                  "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


@pytest.fixture(scope="session")
def bpe_tokenizer_object():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>"] + SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(["The answer is C. Solve the problem step by step. #### 42"] * 20, trainer)
    return tokenizer


@pytest.fixture(scope="session")
def make_tokenizer(bpe_tokenizer_object):
    """make_tokenizer(template or None, **special tokens) -> a PreTrainedTokenizerFast."""
    from transformers import PreTrainedTokenizerFast

    def make(chat_template: str | None, **special_tokens):
        return PreTrainedTokenizerFast(tokenizer_object=bpe_tokenizer_object, chat_template=chat_template,
                                       **special_tokens)

    return make
