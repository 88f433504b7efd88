"""`raygems pool` (raygems/cli/pool.py)."""
from __future__ import annotations

import argparse

import pytest

from raygems.cli import pool as pool_cli
from raygems.tasks.pool import QueryPool


def parse(argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    pool_cli.register(sub)
    return parser.parse_args(["pool", *argv])


def test_writes_a_pool(benchmarks_dir, tmp_path, capsys):
    out = tmp_path / "pool.parquet"
    args = parse(["--tasks", "gsm8k,winogrande", "--per-task", "25", "--seed", "4",
                  "--data-dir", str(benchmarks_dir), "--out", str(out)])
    assert pool_cli.run(args) == 0
    pool = QueryPool.from_parquet(out)
    assert pool.counts() == {"gsm8k": 25, "winogrande": 25} and pool.seed == 4
    printed = capsys.readouterr().out
    assert "wrote 50 queries" in printed and pool.content_hash in printed


@pytest.mark.parametrize("text,value", [("all", None), ("ALL", None), ("0", None), ("12", 12)])
def test_per_task_values(text, value):
    assert pool_cli.parse_per_task(text) == value


@pytest.mark.parametrize("text", ["-1", "many", "1.5"])
def test_bad_per_task(text):
    with pytest.raises(ValueError, match="--per-task"):
        pool_cli.parse_per_task(text)


def test_unknown_task(tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        pool_cli.run(parse(["--tasks", "nope", "--out", str(tmp_path / "x.parquet")]))


def test_unknown_stratify_by_is_one_line(benchmarks_dir, tmp_path, capsys):
    from raygems.cli import main

    out = tmp_path / "pool.parquet"
    assert main(["pool", "--tasks", "gsm8k", "--per-task", "2", "--data-dir", str(benchmarks_dir),
                 "--stratify-by", "bogus", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'bogus'" in err[0] and not out.exists()


def test_text_data_file_names_the_file(tmp_path, capsys):
    from raygems.cli import main

    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text("not json at all\n")
    assert main(["pool", "--tasks", "gsm8k", "--data-dir", str(tmp_path), "--out", str(tmp_path / "p.parquet")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{tmp_path / 'gsm8k' / 'test.jsonl'}, line 1: not valid JSON" in err[0]
