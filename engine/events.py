"""The event stream: the one channel from the trainer to every front-end.

The trainer appends one JSON object per line to `events.jsonl` in the run directory and flushes
after each event. Readers (the batch front-end, the TUI dashboard, `attach`) tail the file from
a byte offset, consuming only complete lines, so a reader can start, stop and re-attach at any
point and always sees the whole history.

Every event carries `v` (schema version), `event` (its type), `time` (UNIX seconds) and the
fields listed for its type in EVENT_FIELDS.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal, TypedDict

SCHEMA_VERSION = 1

EventType = Literal[
    "run_started", "data", "model", "plan", "epoch_started", "step", "eval", "checkpoint",
    "exported", "log", "run_finished",
]


class StepEvent(TypedDict, total=False):
    epoch: int
    step: int             # optimizer steps so far
    total_steps: int
    loss: float           # training loss, mean over the logging window
    lr: float
    samples_per_s: float
    eta_s: float
    mem_allocated_gb: float   # this process on its device (CUDA: torch allocator; CPU: process RSS)
    mem_device_gb: float      # device-wide in use (CUDA: total - free; CPU: system RAM in use)
    mem_total_gb: float


class EvalEvent(TypedDict, total=False):
    epoch: int
    step: int
    val_loss: float
    accuracy: float
    macro_f1: float
    precision: float
    recall: float


# Required fields per event type (beyond v/event/time). Tests check the trainer against this.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "run_started": ("run_id", "pid", "resumed"),
    "data": ("train_size", "val_size", "num_classes", "labels"),
    "model": ("model", "params", "trainable_params", "strategy", "device", "precision"),
    "plan": ("epochs", "batch_size", "learning_rate", "total_steps"),
    "epoch_started": ("epoch",),
    "step": ("epoch", "step", "total_steps", "loss", "lr", "samples_per_s", "mem_allocated_gb"),
    "eval": ("epoch", "step", "val_loss", "accuracy", "macro_f1"),
    "checkpoint": ("epoch", "step", "path"),
    "exported": ("model_path",),
    "log": ("level", "message"),
    "run_finished": ("status", "metrics"),
}


def make_event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"v": SCHEMA_VERSION, "event": kind, "time": round(time.time(), 3), **fields}


class EventWriter:
    """Appends events to a file, one line each, flushed per event."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")

    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = make_event(kind, **fields)
        self._fh.write(json.dumps(event, separators=(",", ":")) + "\n")
        self._fh.flush()
        return event

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_events(path: str | Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete events after byte `offset`, and the offset to continue from. A partial last line
    (the writer is mid-write) is left for the next call; a corrupt line is skipped."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    events: list[dict[str, Any]] = []
    for line in data[: end + 1].splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and "event" in obj:
            events.append(obj)
    return events, offset + end + 1

