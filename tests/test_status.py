"""status.json: one writer at a time, cancel by file and signal only, no state going backwards."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from modelwiz.engine.runs import (
    CANCEL_FILE,
    LAUNCHER,
    TRAINER,
    effective_state,
    read_status,
    request_cancel,
    write_status,
)

ORDER = {"queued": 0, "running": 1, "cancelling": 2, "cancelled": 3}


@pytest.fixture
def trainer_pid():
    """A live process standing in for the trainer: it ignores the SIGTERM that cancel sends."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\n"
            "time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    yield proc.pid
    proc.kill()
    proc.wait()


def test_cancel_requests_interleaved_with_status_updates_never_move_state_back(tmp_path, trainer_pid):
    run = tmp_path / "run"
    run.mkdir()
    write_status(run, by=LAUNCHER, new_attempt=True, run_id="run", state="queued")
    seen: list[str] = []
    stop = threading.Event()

    def trainer() -> None:
        write_status(run, by=TRAINER, state="running", pid=trainer_pid)
        for epoch in range(200):
            write_status(run, by=TRAINER, epoch=epoch)
        write_status(run, by=TRAINER, state="cancelled")

    def canceller() -> None:
        while not stop.is_set():
            request_cancel(run)

    def late_launcher() -> None:  # the launcher's post-spawn pid write, racing the trainer
        while not stop.is_set():
            write_status(run, by=LAUNCHER, pid=12345, state="queued")

    def reader() -> None:
        while not stop.is_set():
            seen.append(effective_state(read_status(run), run))

    threads = [threading.Thread(target=f) for f in (canceller, late_launcher, reader)]
    for t in threads:
        t.start()
    worker = threading.Thread(target=trainer)
    worker.start()
    worker.join()
    stop.set()
    for t in threads:
        t.join()
    seen.append(effective_state(read_status(run), run))

    ranks = [ORDER[s] for s in seen if s in ORDER]
    assert ranks == sorted(ranks), seen[:50]
    assert seen[-1] == "cancelled"
    final = read_status(run)
    assert final["owner"] == TRAINER and final["pid"] == trainer_pid and final["epoch"] == 199
    assert (run / CANCEL_FILE).exists()  # the request travelled by file, not by status.json


def test_the_launcher_cannot_write_over_a_live_trainer(tmp_path, trainer_pid):
    write_status(tmp_path, by=TRAINER, state="running", pid=trainer_pid)
    assert write_status(tmp_path, by=LAUNCHER, pid=1) is None
    assert write_status(tmp_path, by=LAUNCHER, new_attempt=True, state="queued") is None
    assert read_status(tmp_path)["state"] == "running"
    write_status(tmp_path, by=TRAINER, state="cancelled")
    assert write_status(tmp_path, by=LAUNCHER, pid=1) is None  # not this attempt's launcher
    assert write_status(tmp_path, by=LAUNCHER, new_attempt=True, state="queued") is not None  # a resume
    assert read_status(tmp_path)["owner"] == LAUNCHER
