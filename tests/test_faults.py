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


def _config(tmp: Path, model: Path, epochs: int = 4, n_per_class: int = 40, **train) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    write_text_data(tmp / "d.csv", n_per_class=n_per_class)
    p = tmp / "c.toml"
    opts = {"learning_rate": 0.002, "batch_size": 8, **train}
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in opts.items())
    p.write_text(
        f'[task]\ntrain = "d.csv"\n[model]\nid = "{model}"\n[train]\nepochs = {epochs}\n'
        f'max_length = 32\nstrategy = "full"\n{extra}[constraints]\ndevice = "cpu"\n'
    )
    return p


def _batch(cfg: Path, tmp: Path, **env: str):
    proc = run_cli("--batch", str(cfg), "--json", "--runs-dir", str(tmp / "runs"), cwd=tmp, env=env)
    lines = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.strip()]
    return proc, lines


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


@pytest.mark.parametrize("grouped", [False, True], ids=["shuffled", "grouped-by-length"])
def test_sigkill_then_resume_reaches_the_same_result(tmp_path, tiny_bert, grouped):
    cfg = _config(tmp_path, tiny_bert, group_by_length=grouped)
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
    plan = json.loads((run / "plan.json").read_text())
    assert plan["group_by_length"] is grouped
    measured = next(e for e in _events(ref) if e["event"] == "memory_measured")
    # grouped: the measured (third) step is the epoch's longest, and says how long
    assert (measured["length"] is not None) is grouped


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
    # read through the same buffered stream (communicate() would skip what it already buffered)
    rest, err = proc.stdout.read(), proc.stderr.read()
    proc.wait(timeout=120)
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


def test_out_of_memory_halves_the_micro_batch_and_keeps_each_step(tmp_path, tiny_bert):
    cfg = _config(tmp_path, tiny_bert, epochs=2, batch_size=16)
    proc, lines = _batch(cfg, tmp_path, MODELWIZ_FAULT_OOM_ABOVE="4")
    assert proc.returncode == 0, proc.stderr
    changes = [e for e in lines if e["event"] == "plan_changed"]
    assert [(c["plan"]["batch_size"], c["plan"]["grad_accum"]) for c in changes] == [(8, 2), (4, 4)]
    assert "out of memory at step 0 with micro-batch 16" in changes[0]["reason"]
    plan = json.loads(Path(lines[-1]["run_dir"], "plan.json").read_text())
    assert (plan["batch_size"], plan["grad_accum"]) == (4, 4)  # a resume continues with it
    steps = [e for e in lines if e["event"] == "step"]
    total = next(e for e in lines if e["event"] == "plan")["total_steps"]
    assert steps[-1]["step"] == total == 2 * 6  # 96 examples, 16 per step
    assert lines[-1]["status"] == "completed"
    # the same computation as a run planned with that micro-batch from the start
    ref_cfg = _config(tmp_path / "ref", tiny_bert, epochs=2, batch_size=4, grad_accum=4)
    ref_proc, ref = _batch(ref_cfg, tmp_path / "ref")
    assert ref_proc.returncode == 0, ref_proc.stderr
    assert lines[-1]["metrics"] == ref[-1]["metrics"]


def test_out_of_memory_at_batch_one_gives_up_with_one_line(tmp_path, tiny_bert):
    cfg = _config(tmp_path, tiny_bert, epochs=1, batch_size=4)
    proc, lines = _batch(cfg, tmp_path, MODELWIZ_FAULT_OOM_ABOVE="0")
    assert proc.returncode == 1
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "out of memory at step 0 even with a micro-batch of 1" in err[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, tiny_bert):
    cfg = _config(tmp_path, tiny_bert, epochs=2, checkpoint_every=2, keep_checkpoints=3)
    proc, lines = _batch(cfg, tmp_path, MODELWIZ_FAULT_ENOSPC_AT_STEP="4")
    assert proc.returncode == 0, proc.stderr
    warned = [e["message"] for e in lines if e["event"] == "log" and e["level"] == "warning"]
    assert any("checkpoint at step 4 not written" in w and "step-00000002.pt) is intact" in w for w in warned)
    run_dir = Path(lines[-1]["run_dir"])
    saved = sorted(p.name for p in (run_dir / "checkpoints").glob("step-*.pt"))
    assert saved == ["step-00000020.pt", "step-00000022.pt", "step-00000024.pt"]  # 12 steps per epoch, last 3 kept
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))  # no half-written file left


def test_an_unreadable_checkpoint_is_skipped_for_the_one_before(tmp_path, tiny_bert):
    cfg = _config(tmp_path, tiny_bert, epochs=3)
    run = _start(cfg, tiny_bert, tmp_path / "runs")
    _wait_for(lambda: sum(e["event"] == "checkpoint" for e in _events(run)) >= 2)
    os.kill(read_status(run)["pid"], signal.SIGKILL)
    _wait_for(lambda: run_cli("runs", "--runs-dir", str(run.parent), "--json").stdout.count('"interrupted"') == 1)
    newest = sorted((run / "checkpoints").glob("step-*.pt"))[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # truncated, as by a crash
    proc = run_cli("resume", run.name, "--runs-dir", str(run.parent), "--json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(ln) for ln in proc.stdout.splitlines()]
    warned = [e["message"] for e in lines if e["event"] == "log" and e["level"] == "warning"]
    assert any(newest.name in w and "unreadable" in w for w in warned), warned
    summary = lines[-1]
    assert summary["status"] == "completed" and summary["resumed_from_step"] == 12  # the first epoch's end


def test_early_stopping_exports_the_best_epoch(tmp_path, tiny_bert):
    # a learning rate too small to change any prediction: the metric never improves after epoch 1
    cfg = _config(tmp_path, tiny_bert, epochs=10, learning_rate=1e-12, patience=2, max_grad_norm=0.0)
    proc, lines = _batch(cfg, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [e["epoch"] for e in lines if e["event"] == "eval"] == [1, 2, 3]
    summary = lines[-1]
    assert summary["best_epoch"] == 1
    report = json.loads(Path(summary["run_dir"], "report.json").read_text())
    assert report["best_epoch"] == 1 and report["stopped_early"] == 3
    assert any(e["event"] == "log" and "early stopping after epoch 3" in e["message"] for e in lines)


def test_two_processes_train_through_torchrun_and_resume_after_sigkill(tmp_path, tiny_bert):
    """[train] nproc = 2 on the CPU: torchrun, gloo, DDP; rank 0 alone writes; a SIGKILL of rank 0
    reads as interrupted and `resume` finishes the run."""
    cfg = _config(tmp_path, tiny_bert, epochs=8, n_per_class=60, nproc=2, batch_size=8)
    run = _start(cfg, tiny_bert, tmp_path / "runs")
    _wait_for(lambda: sum(e["event"] == "checkpoint" for e in _events(run)) >= 1, timeout=300)
    _wait_for(lambda: any(e["event"] == "step" and e["epoch"] == 2 for e in _events(run)), timeout=300)
    os.kill(read_status(run)["pid"], signal.SIGKILL)
    _wait_for(lambda: run_cli("runs", "--runs-dir", str(run.parent), "--json").stdout.count('"interrupted"') == 1)
    proc = run_cli("resume", run.name, "--runs-dir", str(run.parent), "--json")
    assert proc.returncode == 0, proc.stderr + (run / "trainer.log").read_text()[-3000:]
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["status"] == "completed" and summary["resumed_from_step"] == 9
    assert summary["metrics"]["accuracy"] >= 0.6, summary["metrics"]  # 3 classes: chance is 1/3
    events = _events(run)
    plan = next(e for e in events if e["event"] == "plan")
    assert plan["plan"]["nproc"] == 2 and plan["steps_per_epoch"] == 9  # 144 examples, 8 x 2 per step
    assert len([e for e in events if e["event"] == "run_started"]) == 2  # rank 0 alone writes
