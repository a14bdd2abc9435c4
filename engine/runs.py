"""Run directories and the detached trainer process.

A run directory holds `config.toml` (the user's, with the model fixed), `plan.json` (every
setting resolved), `events.jsonl`, `status.json`, `checkpoints/`, `model/`, `report.json` and
`trainer.log`. The trainer is started with `start_new_session=True` so it survives the terminal
(or SSH session) that started it; any front-end re-attaches by reading the run directory.

`status.json` has one writer at a time: the launcher until the trainer claims it, then the
trainer. Every write is a read-modify-write under a lock file and an atomic replace; the launcher
may not write while a live trainer owns the run. Cancel requests never touch it: they travel by
signal and by the cancel file, and readers show a running run with a cancel file as
`cancelling`.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelwiz.engine.config import Config
from modelwiz.engine.errors import UserError
from modelwiz.engine.events import RunState, fold_file
from modelwiz.engine.fsutil import atomic_write_json, read_json
from modelwiz.engine.paths import default_runs_dir

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; single writers still take turns by ownership
    fcntl = None  # type: ignore[assignment]

ACTIVE_STATES = ("queued", "running", "cancelling")
FINAL_STATES = ("completed", "failed", "cancelled", "interrupted")
CANCEL_FILE = "cancel.request"
LAUNCHER, TRAINER = "launcher", "trainer"
PRIVATE_DIR, PRIVATE_FILE, PRIVATE_UMASK = 0o700, 0o600, 0o077


def runs_dir_for(config: Config | None = None, override: str | Path | None = None) -> Path:
    if override:
        return Path(override).expanduser()
    if config is not None and config.output.runs_dir:
        return Path(config.output.runs_dir)
    return default_runs_dir()


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def create_run(
    config: Config,
    *,
    model_id: str,
    runs_dir: Path | None = None,
    extra: dict[str, Any] | None = None,
    fix_model: bool = True,
) -> Path:
    """Make a run directory holding the resolved config; the model is fixed from here on (but for a
    bake-off, `fix_model` false: the config keeps `[model] id` empty, the trainer picks the model).
    The run directory is private to the user (0o700: what it holds, data paths, metrics and
    weights, is no one else's to read), and so is a runs folder created here; the trainer
    writes inside it under umask 077 (`launch_trainer`)."""
    runs_dir = runs_dir or runs_dir_for(config)
    try:
        runs_dir.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    except OSError as exc:
        raise UserError(
            f"cannot create runs folder {runs_dir}: {exc.strerror}; set [output] runs_dir "
            "or --runs-dir to a writable folder"
        ) from None
    run_id = new_run_id()
    run_dir = runs_dir / run_id
    run_dir.mkdir(mode=PRIVATE_DIR)
    run_dir.chmod(PRIVATE_DIR)  # whatever the umask
    config.model.id = model_id if fix_model else ""
    config.output.runs_dir = str(runs_dir)
    config.save(run_dir / "config.toml")
    write_status(
        run_dir,
        by=LAUNCHER,
        new_attempt=True,
        run_id=run_id,
        state="queued",
        model=model_id,
        created=time.time(),
        **(extra or {}),
    )
    return run_dir


def status_path(run_dir: Path) -> Path:
    return Path(run_dir) / "status.json"


def read_status(run_dir: Path) -> dict[str, Any]:
    return read_json(status_path(run_dir), default={}) or {}


@contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    fd = os.open(Path(run_dir) / "status.lock", os.O_CREAT | os.O_RDWR, PRIVATE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_status(run_dir: Path, *, by: str, new_attempt: bool = False, **updates: Any) -> dict[str, Any] | None:
    """Merge `updates` into status.json under the lock (atomic replace); None when refused.
    `by` is the writer. The trainer owns the file from its first write on. The launcher writes
    only while it owns the file, or to start a new attempt (`new_attempt`: a new run, or a resume),
    which is refused while a live trainer owns the run."""
    with _locked(run_dir):
        status = read_status(run_dir)
        if by == TRAINER:
            status["owner"] = TRAINER
        elif new_attempt:
            if status.get("owner") == TRAINER and effective_state(status) in ACTIVE_STATES:
                return None
            status["owner"] = LAUNCHER
        elif status.get("owner", LAUNCHER) != LAUNCHER:
            return None
        status.update(updates)
        status["updated"] = time.time()
        atomic_write_json(status_path(run_dir), status)
        return status


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        import psutil

        proc = psutil.Process(int(pid))
        return proc.status() != psutil.STATUS_ZOMBIE
    except Exception:
        return False


def effective_state(status: dict[str, Any], run_dir: Path | None = None) -> str:
    """The state, with a run whose trainer died without saying so reported as `interrupted`, and
    a running one asked to stop (cancel file present, when `run_dir` is given) as `cancelling`."""
    state = status.get("state", "unknown")
    if state in ("running", "cancelling") and not pid_alive(status.get("pid")):
        return "interrupted"
    if state == "queued" and status.get("pid") and not pid_alive(status.get("pid")):
        return "interrupted"
    if state in ("queued", "running") and run_dir is not None and (Path(run_dir) / CANCEL_FILE).exists():
        return "cancelling"
    return state


@dataclass
class RunInfo:
    run_id: str
    run_dir: Path
    state: str
    model: str
    metric: str  # what "best" means for this run
    metrics: dict[str, Any]  # the best evaluation's figures
    best_epoch: int | None
    created: float
    epoch: int | None
    epochs: int | None
    # training memory: the plan's predicted peak and, once the trainer measured a step, the measured one
    memory: dict[str, Any] | None = None
    bakeoff: dict[str, Any] | None = None  # a bake-off run: winner, metric, table (RunState.bakeoff_summary)
    # seconds per epoch: the plan's prediction and, once an epoch ran, the latest measured one
    time: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "status": self.state,
            "model": self.model,
            "metric": self.metric,
            "metrics": self.metrics,
            "best_epoch": self.best_epoch,
            "created": self.created,
            "epoch": self.epoch,
            "epochs": self.epochs,
            "memory": self.memory,
            "bakeoff": self.bakeoff,
            "time": self.time,
        }


def run_state(run_dir: Path) -> RunState:
    """The run's events folded (engine.events.RunState), with the state status.json knows
    better: a trainer that died without a final event is `interrupted`. A run whose events this
    modelwiz cannot read (another schema version) is listed with what status.json says and the
    reason as its error, so one old run does not hide the others."""
    try:
        state = fold_file(Path(run_dir) / "events.jsonl")
    except UserError as exc:
        state = RunState(error=str(exc))
    status = read_status(run_dir)
    state.run_id = state.run_id or status.get("run_id", Path(run_dir).name)
    state.run_dir = str(run_dir)
    if not state.finished:
        state.status = effective_state(status, run_dir)
    return state


def memory_figures(rs: RunState) -> dict[str, Any] | None:
    """Predicted against measured peak of a steady-state step (GB), and their ratio."""
    predicted = (rs.plan.get("memory") or {}).get("peak_gb") or rs.memory_check.get("predicted_peak_gb")
    measured = rs.memory_check.get("measured_peak_gb")
    if predicted is None and measured is None:
        return None
    return {
        "predicted_peak_gb": predicted,
        "measured_peak_gb": measured,
        "predicted_over_measured": round(predicted / measured, 3) if predicted and measured else None,
        "method": (rs.plan.get("memory") or {}).get("method"),
        "measured_by": rs.memory_check.get("method"),
        "measured_at_step": rs.memory_check.get("step"),
    }


def time_figures(rs: RunState) -> dict[str, Any] | None:
    """Predicted against measured seconds per epoch (training and evaluation), and their ratio. The
    measured epoch is the latest evaluated one, its training scaled to a whole epoch's steps."""
    predicted = rs.plan.get("epoch_seconds")
    last = rs.last_eval or {}
    measured = None
    if last.get("train_seconds") is not None and last.get("train_steps"):
        epochs = int(rs.plan.get("epochs") or rs.epochs or 0)
        per_epoch = int(rs.total_steps // epochs) if rs.total_steps and epochs else int(last["train_steps"])
        measured = round(last["train_seconds"] * per_epoch / last["train_steps"] + (last.get("eval_seconds") or 0.0), 2)
    if predicted is None and measured is None:
        return None
    return {
        "predicted_epoch_seconds": predicted,
        "measured_epoch_seconds": measured,
        "predicted_over_measured": round(predicted / measured, 3) if predicted and measured else None,
        "method": rs.plan.get("time_method"),
        "measured_epoch": last.get("epoch") if measured is not None else None,
    }


def run_info(run_dir: Path) -> RunInfo:
    st = read_status(run_dir)
    rs = run_state(run_dir)
    return RunInfo(
        run_id=rs.run_id,
        run_dir=run_dir,
        state=effective_state(st, run_dir),
        model=st.get("model_name") or Path(st.get("model", "?")).name,
        metric=rs.metric,
        metrics=rs.best_metrics(),
        best_epoch=rs.best_epoch,
        created=st.get("created", 0.0),
        epoch=rs.epoch or None,
        epochs=rs.epochs or None,
        memory=memory_figures(rs),
        bakeoff=rs.bakeoff_summary(),
        time=time_figures(rs),
    )


def list_runs(runs_dir: Path) -> list[RunInfo]:
    if not runs_dir.is_dir():
        return []
    runs = [run_info(p) for p in runs_dir.iterdir() if p.is_dir() and status_path(p).is_file()]
    return sorted(runs, key=lambda r: (r.created, r.run_id))


def resolve_run(ref: str, runs_dir: Path) -> Path:
    """A run id (or unique prefix) in `runs_dir`, or a run directory path."""
    p = Path(ref).expanduser()
    if status_path(p).is_file():
        return p
    if runs_dir.is_dir():
        exact = runs_dir / ref
        if status_path(exact).is_file():
            return exact
        matches = [c for c in runs_dir.iterdir() if c.name.startswith(ref) and status_path(c).is_file()]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UserError(f"run id '{ref}' is ambiguous ({len(matches)} runs match); give more of the id")
    raise UserError(f"no run '{ref}' in {runs_dir}; `modelwiz runs` lists them (use --runs-dir to look elsewhere)")


def launch_trainer(run_dir: Path, *, resume: bool = False, env: dict[str, str] | None = None) -> int:
    """Start the trainer detached from this terminal; returns its pid."""
    run_dir = Path(run_dir)
    cmd = trainer_command(run_dir)
    if resume:
        cmd.append("--resume")
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    # queued before the child exists, so no reader mistakes the previous state for the outcome
    if write_status(run_dir, by=LAUNCHER, new_attempt=True, state="queued", pid=None, error=None) is None:
        raise UserError(f"run {run_dir.name} is still running; `modelwiz attach {run_dir.name}` to watch it")
    (run_dir / CANCEL_FILE).unlink(missing_ok=True)
    log = os.fdopen(os.open(run_dir / "trainer.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE), "ab")
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=child_env,
            cwd=str(run_dir),
            umask=PRIVATE_UMASK if os.name == "posix" else -1,  # what the trainer writes is private too
        )
    finally:
        log.close()
    # so that a trainer dying before it claims the run still reads as interrupted; refused once
    # the trainer has claimed status.json (it writes its own pid)
    write_status(run_dir, by=LAUNCHER, pid=proc.pid)
    _REAPABLE[proc.pid] = proc
    return proc.pid


def trainer_command(run_dir: Path) -> list[str]:
    """`python -m modelwiz.engine.trainer RUN_DIR`, through torchrun (one node, a free port) when the
    plan asks for several processes."""
    plan = read_json(Path(run_dir) / "plan.json", default={}) or {}
    nproc = int(plan.get("nproc") or 1)
    trainer = ["-m", "modelwiz.engine.trainer", str(run_dir)]
    if nproc <= 1:
        return [sys.executable, *trainer]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *trainer]


# Children started by this process, so that finished trainers are reaped (no zombies).
_REAPABLE: dict[int, subprocess.Popen] = {}


def reap() -> None:
    for pid, proc in list(_REAPABLE.items()):
        if proc.poll() is not None:
            _REAPABLE.pop(pid, None)


def trainer_exit_code(pid: int) -> int | None:
    proc = _REAPABLE.get(pid)
    return None if proc is None else proc.poll()


def request_cancel(run_dir: Path) -> bool:
    """Ask a running trainer to stop after the current step (it checkpoints first).
    Returns False when the run is not active."""
    status = read_status(run_dir)
    state = effective_state(status)
    if state not in ACTIVE_STATES:
        return False
    (Path(run_dir) / CANCEL_FILE).write_text(str(time.time()))
    pid = status.get("pid")
    if pid and pid_alive(pid):
        try:
            os.kill(int(pid), signal.SIGTERM)
        except OSError:
            pass
    return True


def wait_for_final(run_dir: Path, timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reap()
        state = effective_state(read_status(run_dir), run_dir)
        if state in FINAL_STATES:
            return state
        time.sleep(0.2)
    return effective_state(read_status(run_dir), run_dir)
