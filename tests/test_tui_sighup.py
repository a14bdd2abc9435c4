"""SSH: closing the terminal never stops a run. A real `modelwiz attach` in tmux (a real terminal
at 80x24) watches a real detached trainer; the UI gets SIGHUP mid-run, as when the SSH connection
drops; the trainer keeps going; a second `modelwiz attach` shows what happened meanwhile."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli
from test_faults import _config, _events, _start, _wait_for

from modelwiz.engine.runs import read_status, wait_for_final

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (a real terminal for the UI)"),
]

PROGRESS = re.compile(r"epoch (\d+)/(\d+) · step (\d+)/(\d+)")


class Tmux:
    """A private tmux server (its own socket): sessions at 80x24 running one command each."""

    def __init__(self, socket: Path) -> None:
        self.base = ["tmux", "-S", str(socket)]

    def __call__(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=30).stdout

    def start(self, name: str, command: list[str]) -> None:
        env = " ".join(
            f"{k}={shlex.quote(v)}" for k, v in os.environ.items() if k.startswith(("MODELWIZ_", "HF_", "TORCH_"))
        )
        line = f"env {env} TERM=xterm-256color {shlex.join(command)}"
        # remain-on-exit: the pane stays after the UI ends, so its end can be seen
        subprocess.run(
            [*self.base, "new-session", "-d", "-s", name, "-x", "80", "-y", "24", line], check=True, timeout=30
        )
        self("set-option", "-t", name, "remain-on-exit", "on")

    def screen(self, name: str) -> str:
        return self("capture-pane", "-p", "-t", name)

    def pane_pid(self, name: str) -> int:
        return int(self("display-message", "-p", "-t", name, "#{pane_pid}").strip())

    def dead(self, name: str) -> bool:
        return self("display-message", "-p", "-t", name, "#{pane_dead}").strip() == "1"

    def kill_server(self) -> None:
        self("kill-server")


def _progress(text: str) -> tuple[int, int] | None:
    m = PROGRESS.search(text)
    return (int(m.group(1)), int(m.group(3))) if m else None


def _alive(pid: int) -> bool:
    """Running (a zombie, exited but not yet reaped by the tmux server, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def test_sighup_to_the_ui_leaves_the_trainer_running_and_reattach_shows_the_meantime(tmp_path, tiny_bert):
    # short epochs (4 steps), far more of them than the test waits for: cancelled at the end
    cfg = _config(tmp_path, tiny_bert, epochs=400, n_per_class=12)
    run = _start(cfg, tiny_bert, tmp_path / "runs")
    tmux = Tmux(tmp_path / "tmux.sock")
    attach = [sys.executable, "-m", "modelwiz.cli", "attach", run.name, "--runs-dir", str(run.parent)]
    try:
        _wait_for(lambda: any(e["event"] == "eval" for e in _events(run)), timeout=300)
        tmux.start("ui", attach)
        # the dashboard is up and live: it shows the trainer's progress
        _wait_for(lambda: _progress(tmux.screen("ui")) is not None, timeout=120)
        ui_pid = tmux.pane_pid("ui")
        trainer_pid = int(read_status(run)["pid"])

        os.kill(ui_pid, signal.SIGHUP)  # the terminal is gone
        _wait_for(lambda: tmux.dead("ui"), timeout=30)
        # the pane reads dead when the pty closes; the process may still be finishing its exit
        _wait_for(lambda: not _alive(ui_pid), timeout=30)
        at_hup = _events(run)
        steps_at_hup = sum(e["event"] == "step" for e in at_hup)
        evals_at_hup = max(e["epoch"] for e in at_hup if e["event"] == "eval")

        # the trainer goes on alone: two more evaluations while nobody watches
        _wait_for(
            lambda: sum(e["event"] == "eval" and e["epoch"] > evals_at_hup for e in _events(run)) >= 2, timeout=300
        )
        assert _alive(trainer_pid) and read_status(run)["state"] == "running"

        # re-attach: the history so far, including what happened while detached, then live
        tmux.start("again", attach)
        _wait_for(lambda: (_progress(tmux.screen("again")) or (0, 0))[0] > evals_at_hup + 1, timeout=120)
        epoch, step = _progress(tmux.screen("again")) or (0, 0)
        assert epoch >= evals_at_hup + 2 and step > steps_at_hup
        screen = tmux.screen("again")
        assert "running" in screen and run.name in screen
    finally:
        tmux.kill_server()
        run_cli("cancel", run.name, "--runs-dir", str(run.parent))
        wait_for_final(run, timeout_s=120)
    assert read_status(run)["state"] == "cancelled"
