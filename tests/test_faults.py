"""Fault tests: SIGKILL mid-run then resume to the same result; cancel keeps a checkpoint."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import run_cli, write_text_data

from modelwiz.engine import workflow
from modelwiz.engine.config import load_config
from modelwiz.engine.events import read_events
from modelwiz.engine.runs import read_status, wait_for_final

pytestmark = pytest.mark.slow


def _config(tmp: Path, model: Path, epochs: int = 4) -> Path:
    write_text_data(tmp / "d.csv", n_per_class=40)
    p = tmp / "c.toml"
    p.write_text(
        f'[task]\ntrain = "d.csv"\n[model]\nid = "{model}"\n[train]\nepochs = {epochs}\n'
        'learning_rate = 0.002\nbatch_size = 8\nmax_length = 32\nstrategy = "full"\n'
        '[constraints]\ndevice = "cpu"\n'
    )
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
    cfg.model.id = str(model)
    rec = workflow.recommend(cfg)
    return workflow.start_run(cfg, workflow.choose(cfg, rec), runs_dir=runs)


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
    assert list((run / "checkpoints").glob("step-*.pt"))
    assert _events(run)[-1]["event"] == "run_finished" and _events(run)[-1]["status"] == "cancelled"
    again = run_cli("cancel", run.name, "--runs-dir", str(run.parent))
    assert again.returncode == 2 and "not running" in again.stderr


def test_batch_ctrl_c_cancels_with_exit_130(tmp_path, tiny_bert):
    import subprocess
    import sys

    cfg = _config(tmp_path, tiny_bert, epochs=50)
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelwiz.cli", "--batch", str(cfg), "--json", "--runs-dir", str(tmp_path / "runs")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    lines = []
    for line in proc.stdout:
        lines.append(json.loads(line))
        if lines[-1]["event"] == "checkpoint":
            proc.send_signal(signal.SIGINT)
            break
    rest, err = proc.communicate(timeout=120)
    lines += [json.loads(ln) for ln in rest.splitlines() if ln.strip()]
    assert proc.returncode == 130, err
    summary = lines[-1]
    assert summary["status"] == "cancelled" and summary["event"] == "summary"
    assert list(Path(summary["run_dir"], "checkpoints").glob("step-*.pt"))
    assert "Traceback" not in err


def test_training_failure_exits_1_with_one_line(tmp_path, tiny_bert):
    cfg = _config(tmp_path, tiny_bert, epochs=2)
    proc = run_cli(
        "--batch",
        str(cfg),
        "--json",
        "--runs-dir",
        str(tmp_path / "runs"),
        cwd=tmp_path,
        env={"MODELWIZ_FAULT_AT_STEP": "3"},
    )
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["status"] == "failed" and "injected fault at step 3" in summary["error"]
    err_lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(err_lines) == 1 and "injected fault" in err_lines[0]
    run_dir = Path(summary["run_dir"])
    # the traceback is kept for the developer, in the run's log, not on the user's terminal
    assert "Traceback" in (run_dir / "trainer.log").read_text()
    assert json.loads((run_dir / "status.json").read_text())["state"] == "failed"


def test_torchvision_model_from_cached_weights(tmp_path):
    """The torchvision path: DEFAULT weights found in TORCH_HOME's cache (as after a download),
    a new head, training, export as a state dict that torchvision loads without modelwiz."""
    import torch
    from conftest import write_image_data
    from safetensors.torch import load_file
    from torchvision import models as tvm

    from modelwiz.engine.sources.torchvision_registry import weights_file

    weights = tvm.get_model_weights("mobilenet_v3_small").DEFAULT
    target = weights_file(weights.url)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(tvm.get_model("mobilenet_v3_small", weights=None).state_dict(), target)

    write_image_data(tmp_path / "images", n_per_class=12)
    cfg = tmp_path / "tv.toml"
    cfg.write_text(
        '[task]\nmodality = "image"\ntrain = "images"\nvalidation = 0.25\n'
        '[constraints]\noffline = true\n[model]\nid = "torchvision:mobilenet_v3_small"\n'
        "[train]\nepochs = 1\nbatch_size = 8\nimage_size = 64\nlearning_rate = 0.001\n"
    )
    proc = run_cli("--batch", str(cfg), "--json", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["status"] == "completed"
    model = tvm.get_model("mobilenet_v3_small", weights=None, num_classes=3)
    model.load_state_dict(load_file(str(Path(summary["model_path"]) / "model.safetensors")))
    img = next((tmp_path / "images" / "red_h").glob("*.png"))
    pred = run_cli("predict", summary["run_id"], str(img), "--runs-dir", str(tmp_path / "runs"), "--json")
    assert pred.returncode == 0, pred.stderr
    assert json.loads(pred.stdout)["label"] in ("red_h", "green_v", "blue_d")
