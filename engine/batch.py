"""Headless runs: validate data, rank, start the detached trainer and follow it to the end.

`run_batch` reports progress through a callback (one dict per event, the same shape as the
trainer's events) and returns the summary object of the contract. Front-ends decide how to show
events (JSON lines, a Rich progress bar); this module prints nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelwiz.engine import events as ev_schema
from modelwiz.engine.checkpoints import checkpoint_paths
from modelwiz.engine.config import Config
from modelwiz.engine.events import RunState, fold, read_events
from modelwiz.engine.fsutil import read_json
from modelwiz.engine.runs import (
    FINAL_STATES,
    effective_state,
    launch_trainer,
    read_status,
    reap,
    request_cancel,
    trainer_exit_code,
)
from modelwiz.engine.workflow import choose, measure_architecture, prepare_run, read_hardware, recommend, start_run

EventSink = Callable[[dict[str, Any]], None]
POLL_S = 0.25


def run_batch(
    config: Config,
    on_event: EventSink,
    *,
    stop: Callable[[], bool] = lambda: False,
    runs_dir: str | Path | None = None,
    top: int = 5,
    start: bool = True,
) -> dict[str, Any]:
    """Check, rank, choose, create the run and follow its trainer to the end. `start=False`
    stops once the run directory is ready (for a trainer started by hand, e.g. torchrun on
    several nodes) and returns its `run_created` event."""
    rec = recommend(config, hardware=lambda: _measured_hardware(config, on_event, stop))
    on_event(ev_schema.DataChecked(summary=rec.summary.to_dict()).to_json())
    on_event(ev_schema.HardwareRead(report=rec.hardware.to_dict()).to_json())
    on_event(ev_schema.Recommendation(models=[r.to_dict() for r in rec.ranked[:top]]).to_json())
    choice = measure_architecture(
        config,
        rec.data,
        rec.hardware,
        choose(config, rec),
        log=lambda line: on_event(ev_schema.Log(level="info", message=line).to_json()),
    )
    c = choice.to_dict()
    on_event(
        ev_schema.ModelChosen(
            id=c["id"],
            name=c["name"],
            source=c["source"],
            score=c["score"],
            est_train_memory_gb=c["est_train_memory_gb"],
            strategy=c["strategy"],
            batch_size=c["batch_size"],
            precision=c["precision"],
            device=c["device"],
            reasons=c["reasons"],
        ).to_json()
    )
    run_dir = (start_run if start else prepare_run)(config, choice, runs_dir=runs_dir, ranked=rec.ranked)
    created = ev_schema.RunCreated(run_id=run_dir.name, run_dir=str(run_dir)).to_json()
    on_event(created)
    return follow_run(run_dir, on_event, stop=stop) if start else created


def _measured_hardware(config: Config, on_event: EventSink, stop: Callable[[], bool]) -> Any:
    """The hardware report, after this machine's CPU speed benchmark when the probe has just started
    it (a machine's first run: about 10 s), so that the ranking and the plan use measured times and
    the trainer does not start beside it."""
    from modelwiz.engine import speed

    hardware = read_hardware(config)
    if speed.benchmark_running("cpu"):
        on_event(
            ev_schema.Log(
                level="info",
                message="measuring this CPU's speed for the time predictions (once per machine, about 10 s)",
            ).to_json()
        )
        speed.wait_for_benchmark("cpu", stop=stop)
    return hardware


def follow_run(
    run_dir: Path, on_event: EventSink, *, stop: Callable[[], bool] = lambda: False, offset: int = 0
) -> dict[str, Any]:
    """Relay a run's events until it finishes; `stop()` true asks the trainer to cancel (it
    checkpoints first) and keeps following until it has stopped. The summary comes from the
    whole stream folded (engine.events.RunState), whatever `offset` relaying started at."""
    events_path = run_dir / "events.jsonl"
    state = fold(read_events(events_path, 0, end=offset)[0]) if offset else RunState()
    # a resumed run's earlier ending (cancelled, failed) is not this one's: follow until it ends again
    state.finished = False
    cancel_sent = False
    dead_since: float | None = None
    while not state.finished:
        events, offset = read_events(events_path, offset)
        for obj in events:
            state.apply(obj)
            on_event(obj)
        if state.finished:
            break
        if stop() and not cancel_sent:
            cancel_sent = True
            request_cancel(run_dir)
        reap()
        if effective_state(read_status(run_dir)) in FINAL_STATES:
            # give the writer a moment to flush its last event, then stop waiting
            dead_since = dead_since or time.monotonic()
            if time.monotonic() - dead_since > 2.0:
                break
        time.sleep(POLL_S)
    return summarize(run_dir, state)


def summarize(run_dir: Path, state: RunState) -> dict[str, Any]:
    """The contract's summary object: metrics are the best evaluation's (the exported model)."""
    status = read_status(run_dir)
    outcome = state.status if state.finished else effective_state(status, run_dir)
    exit_code = (
        state.exit_code
        if state.finished and state.exit_code is not None
        else {"completed": 0, "cancelled": 130}.get(outcome, 1)
    )
    pid = status.get("pid")
    if not state.finished and outcome == "failed" and pid and trainer_exit_code(pid) == 2:
        exit_code = 2
    metrics = state.best_metrics()
    summary = ev_schema.Summary(
        run_id=status.get("run_id", run_dir.name),
        run_dir=str(run_dir),
        status=outcome,
        model=status.get("model"),
        metrics={"accuracy": metrics.pop("accuracy", None), "macro_f1": metrics.pop("macro_f1", None), **metrics},
        model_path=state.model_path if outcome == "completed" else None,
        exit_code=int(exit_code),
        best_epoch=state.best_epoch,
        resumed_from_step=state.resumed_from_step,
        bakeoff=state.bakeoff_summary(),
        error=(state.error or status.get("error") or f"the trainer stopped unexpectedly; see {run_dir / 'trainer.log'}")
        if outcome == "failed"
        else None,
    )
    return summary.to_json()


def resume_run(run_dir: Path) -> None:
    """Relaunch an interrupted or cancelled run from its last checkpoint."""
    from modelwiz.engine.errors import UserError

    state = effective_state(read_status(run_dir), run_dir)
    if state in ("running", "queued", "cancelling"):
        raise UserError(f"run {run_dir.name} is still {state}; `modelwiz attach {run_dir.name}` to watch it")
    if state == "completed":
        raise UserError(f"run {run_dir.name} already completed; nothing to resume")
    plan = read_json(run_dir / "plan.json", default={}) or {}
    in_bakeoff = bool((plan.get("bakeoff") or {}).get("contenders"))  # its rounds keep their own record
    if not checkpoint_paths(run_dir) and not in_bakeoff:
        raise UserError(
            f"run {run_dir.name} has no checkpoint yet (it stopped before its first epoch ended); "
            "start a new run with the same config"
        )
    launch_trainer(run_dir, resume=True)
