"""Ctrl-C during a sweep: exit 130 with one line saying that the finished cells are kept and how to go on,
no Tune messages about Tuner.restore or metrics of trials that never ran, and nothing recorded lost."""
from __future__ import annotations

import logging
import signal

import pytest

import raygems.sweep
from raygems.cli import main
from raygems.sweep import runner
from raygems.sweep.store import RESULTS_FILE, load_results

from sweep_helpers import write_config

TUNE_NOISE = ("Tuner.restore", "Failed to fetch metrics", "Stop signal received", "Experiment has been interrupted",
              "Trials did not complete")


@pytest.mark.parametrize("flags, advice", [
    ([], "run the same command again to continue"),
    (["--fresh"], "run it again without --fresh to run only the rest"),
])
def test_ctrl_c_outside_tune_says_how_to_continue(tmp_path, capsys, monkeypatch, flags, advice):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(raygems.sweep, "run_sweep", interrupted)
    out = tmp_path / "out"
    assert main(["sweep", str(write_config(tmp_path)), "--out", str(out), *flags]) == 130
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"raygems sweep: interrupted; the finished cells are kept in {out / RESULTS_FILE}; {advice}"]


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_ctrl_c_inside_tune_exits_130_and_keeps_the_finished_cells(
        ray_session, tmp_path, capsys, monkeypatch):
    """The first Ctrl-C while Tune runs the grid (here: a SIGINT sent right after the first result). Tune's own
    handler would end the grid as if it had finished (exit 1) and advise Tuner.restore; a rerun resuming from
    results.parquet is tested in test_sweep_run.py."""
    path = write_config(tmp_path, reps=3, seeds=[0, 1, 2, 3], budgets=[3, 6], references=["best-available"],
                        max_concurrent_trials=1)
    out = tmp_path / "out"
    make_recorder = runner._make_recorder

    def recorder_that_presses_ctrl_c(*args, **kwargs):
        recorder = make_recorder(*args, **kwargs)
        on_result = recorder.on_trial_result

        def on_trial_result(*a, **k):
            on_result(*a, **k)
            if not getattr(recorder, "pressed", False):
                recorder.pressed = True
                signal.raise_signal(signal.SIGINT)

        recorder.on_trial_result = on_trial_result
        return recorder

    monkeypatch.setattr(runner, "_make_recorder", recorder_that_presses_ctrl_c)
    records = _Records()
    tune_logger = logging.getLogger("ray.tune")
    tune_logger.addHandler(records)
    handler_before = signal.getsignal(signal.SIGINT)
    try:
        status = main(["sweep", str(path), "--out", str(out), "--quiet"])
    finally:
        tune_logger.removeHandler(records)
    err = capsys.readouterr().err
    assert status == 130
    assert err.strip().splitlines()[-1] == (f"raygems sweep: interrupted; the finished cells are kept in "
                                            f"{out / RESULTS_FILE}; run the same command again to continue")
    assert not [text for text in TUNE_NOISE for m in [err, *records.messages] if text in m]
    assert signal.getsignal(signal.SIGINT) is handler_before
    saved = load_results(out)
    replayed = saved[saved["method"] == "uniform"]
    assert 1 <= len(replayed) < 8          # the first trial's cells were kept, the grid was stopped

