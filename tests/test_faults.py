"""Fault tests: SIGKILL mid-run then resume to the same result; cancel keeps a checkpoint."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from conftest import REPO, run_cli, write_text_data
from engine.config import load_config
from engine.events import read_events
from engine.runs import create_run, launch_trainer, read_status, wait_for_final

pytestmark = pytest.mark.slow


def _config(tmp: Path, model: Path, epochs: int = 4) -> Path:
    write_text_data(tmp / "d.csv", n_per_class=40)
    p = tmp / "c.toml"
    p.write_text(f'[task]\ntrain = "d.csv"\n[model]\nid = "{model}"\n[train]\nepochs = {epochs}\n'
                 'learning_rate = 0.002\nbatch_size = 8\nmax_length = 32\nstrategy = "full"\n'
                 '[constraints]\ndevice = "cpu"\n')
    return p


def _wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def _events(run_dir: Path) -> list[dict]:
    return read_events(run_dir / "events.jsonl")[0]


def _start(cfg_path: Path, model: Path, runs: Path) -> Path:
    cfg = load_config(cfg_path)
    run_dir = create_run(cfg, model_id=str(model), runs_dir=runs)
    launch_trainer(run_dir, env={**os.environ, "PYTHONPATH": str(REPO)})
    return run_dir


def test_sigkill_then_resume_reaches_the_same_result(tmp_path, tiny_bert):
    cfg = _config(tmp_path, tiny_bert)
    # reference: an uninterrupted run
    ref = _start(cfg, tiny_bert, tmp_path / "runs")
    assert wait_for_final(ref, timeout_s=300) == "completed"
    ref_report = json.loads((ref / "report.json").read_text())

    run = _start(cfg, tiny_bert, tmp_path / "runs")
    # kill hard after the second epoch's checkpoint, mid-way through epoch 3
    _wait_for(lambda: sum(e["event"] == "checkpoint" for e in _events(run)) >= 2)
    _wait_for(lambda: any(e["event"] == "step" and e["epoch"] == 3 for e in _events(run)))
    os.kill(read_status(run)["pid"], signal.SIGKILL)
    _wait_for(lambda: run_cli("runs", "--runs-dir", str(run.parent), "--json").stdout.count('"interrupted"') == 1)

    proc = run_cli("resume", run.name, "--runs-dir", str(run.parent), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["status"] == "completed"
    report = json.loads((run / "report.json").read_text())
    # same data order, RNG and optimizer state: the resumed run ends where the reference did
    assert [h["epoch"] for h in report["history"]] == [1, 2, 3, 4]
    assert report["metrics"]["accuracy"] == ref_report["metrics"]["accuracy"]
    assert report["metrics"]["val_loss"] == pytest.approx(ref_report["metrics"]["val_loss"], abs=1e-4)
    # the event log keeps the whole history, both attempts
    started = [e for e in _events(run) if e["event"] == "run_started"]
    assert [e["resumed"] for e in started] == [False, True]


def test_cancel_stops_cleanly_and_keeps_checkpoint(tmp_path, tiny_bert):
    cfg = _config(tmp_path, tiny_bert, epochs=50)
    run = _start(cfg, tiny_bert, tmp_path / "runs")
    _wait_for(lambda: any(e["event"] == "checkpoint" for e in _events(run)))
    proc = run_cli("cancel", run.name, "--runs-dir", str(run.parent))
    assert proc.returncode == 0, proc.stderr
    assert "cancelled" in proc.stdout
    assert read_status(run)["state"] == "cancelled"
    assert (run / "checkpoints" / "last.pt").is_file()
    assert _events(run)[-1]["event"] == "run_finished" and _events(run)[-1]["status"] == "cancelled"
    again = run_cli("cancel", run.name, "--runs-dir", str(run.parent))
    assert again.returncode == 2 and "not running" in again.stderr
