"""The event stream: one schema for everything a run reports, and one reducer over it.

The trainer appends one JSON object per line to `events.jsonl` in the run directory, flushed per
event; the batch front-end emits its own events (data checked, model chosen, ...) through the
same records. Readers (the batch progress display, the TUI dashboard, `summarize`, `modelwiz
runs`) tail the file from a byte offset, consuming only complete lines, and fold what they read
with `RunState.apply`: one definition of "the state of a run" and of "best" for every reader.

Each line is `{"v": MAJOR, "event": TYPE, "time": UNIX_SECONDS, ...fields}`. The fields of each
type are the dataclass below registered under that type. Within a major version fields may be
added (readers ignore fields they do not know); anything else bumps the major version, and
readers refuse a major version they do not know with one clear line.
"""

from __future__ import annotations

import dataclasses
import json
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from modelwiz.engine.errors import UserError

SCHEMA_VERSION = 2  # the major version this module writes and reads
DEFAULT_METRIC = "macro_f1"
METRICS = ("macro_f1", "accuracy", "val_loss")  # what "best" may mean; val_loss is minimised


class SchemaError(ValueError):
    """A line that does not match the schema."""


# ------------------------------------------------------------------------------ the records


@dataclass
class Event:
    """Base of every record; `kind` is the value of the line's `event` key."""

    kind: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "v": SCHEMA_VERSION,
            "event": self.kind,
            "time": round(time.time(), 3),
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
        }


EVENT_TYPES: dict[str, type[Event]] = {}


def _register(cls: type[Event]) -> type[Event]:
    EVENT_TYPES[cls.kind] = cls
    return cls


# batch front-end: before the trainer starts


@_register
@dataclass
class DataChecked(Event):
    kind: ClassVar[str] = "data_checked"
    summary: dict[str, Any]  # engine.data.DataSummary.to_dict()


@_register
@dataclass
class HardwareRead(Event):
    kind: ClassVar[str] = "hardware"
    report: dict[str, Any]  # engine.hardware.HardwareReport.to_dict()


@_register
@dataclass
class Recommendation(Event):
    kind: ClassVar[str] = "recommendation"
    models: list[Any]  # engine.recommend.Ranked.to_dict(), best first


@_register
@dataclass
class ModelChosen(Event):
    kind: ClassVar[str] = "model_chosen"
    id: str
    name: str
    source: str
    score: float
    est_train_memory_gb: float
    strategy: str
    batch_size: int
    precision: str
    device: str
    reasons: list[str]


@_register
@dataclass
class RunCreated(Event):
    kind: ClassVar[str] = "run_created"
    run_id: str
    run_dir: str


# recommend --probe: transferability scores on the user's data (engine.transfer)


@_register
@dataclass
class ProbeStarted(Event):
    kind: ClassVar[str] = "probe_started"
    models: list[str]
    examples: int


@_register
@dataclass
class ProbeModel(Event):
    kind: ClassVar[str] = "probe_model"
    model: str
    index: int
    of: int
    examples: int


@_register
@dataclass
class ProbeProgress(Event):
    kind: ClassVar[str] = "probe_progress"
    model: str
    index: int
    done: int
    total: int


@_register
@dataclass
class ProbeFailed(Event):
    kind: ClassVar[str] = "probe_failed"
    model: str
    error: str


@_register
@dataclass
class ProbeResult(Event):
    kind: ClassVar[str] = "probe_result"
    model: str
    logme: float | None
    h_score: float | None
    examples: int
    dim: int
    seconds: float | None
    feature_seconds: float | None
    cached: bool
    rank: int = 0
    of: int = 0
    error: str = ""


# the trainer


@_register
@dataclass
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    run_id: str
    pid: int
    resumed: bool


@_register
@dataclass
class Resumed(Event):
    """A resumed run has loaded its checkpoint and continues from this point."""

    kind: ClassVar[str] = "resumed"
    epoch: int  # the epoch in progress (1-based)
    step: int  # optimizer steps already done


@_register
@dataclass
class DataLoaded(Event):
    kind: ClassVar[str] = "data"
    train_size: int
    val_size: int
    num_classes: int
    labels: list[str]
    class_counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@_register
@dataclass
class ModelLoaded(Event):
    kind: ClassVar[str] = "model"
    model: str
    params: int
    trainable_params: int
    strategy: str
    device: str
    precision: str
    load_seconds: float = 0.0


@_register
@dataclass
class PlanStarted(Event):
    """The plan the trainer runs (the run's plan.json) and the step counts it implies."""

    kind: ClassVar[str] = "plan"
    plan: dict[str, Any]
    epochs: int
    batch_size: int
    learning_rate: float
    total_steps: int
    steps_per_epoch: int
    metric: str = DEFAULT_METRIC


@_register
@dataclass
class PlanChanged(Event):
    """The trainer amended its plan mid-run (e.g. a smaller micro-batch after running out of
    memory); plan.json holds the amended plan."""

    kind: ClassVar[str] = "plan_changed"
    plan: dict[str, Any]
    reason: str
    step: int


@_register
@dataclass
class EpochStarted(Event):
    kind: ClassVar[str] = "epoch_started"
    epoch: int


@_register
@dataclass
class Step(Event):
    kind: ClassVar[str] = "step"
    epoch: int
    step: int  # optimizer steps so far
    total_steps: int
    loss: float  # training loss, mean over the logging window
    lr: float
    samples_per_s: float
    mem_allocated_gb: float  # this process (CUDA: torch allocator; CPU: process RSS)
    eta_s: float | None = None
    mem_peak_gb: float | None = None  # CUDA: torch.cuda.max_memory_allocated
    mem_device_gb: float | None = None  # device-wide in use (CUDA: total - free; CPU: RAM in use)
    mem_total_gb: float | None = None


@_register
@dataclass
class MemoryMeasured(Event):
    """The live-tensor peak of one steady-state training step as measured (engine/memmeasure.py),
    next to the plan's prediction (engine/memory.py): every run is a data point."""

    kind: ClassVar[str] = "memory_measured"
    step: int  # the optimizer step measured (the third of the process: AdamW's state exists)
    measured_peak_gb: float
    predicted_peak_gb: float | None
    method: str  # "cuda": torch.cuda.max_memory_allocated; "cpu-profiler": the CPU allocator's records
    reserved_gb: float | None = None  # CUDA: max_memory_reserved (the caching allocator's slack included)
    batch_size: int | None = None  # the micro-batch it ran with
    # text grouped by length: the step's longest example in tokens (the prediction is at max_length)
    length: int | None = None


@_register
@dataclass
class Evaluated(Event):
    kind: ClassVar[str] = "eval"
    epoch: int
    step: int
    val_loss: float
    accuracy: float
    macro_f1: float
    precision: float
    recall: float
    confusion_matrix: list[list[int]] = field(default_factory=list)
    per_class: list[Any] = field(default_factory=list)  # per label: precision, recall, f1, support
    # measured time of this epoch: its training steps (`train_steps` of them: fewer than an epoch's
    # when a resumed run finished it) and the evaluation; the plan predicted epoch_seconds
    train_seconds: float | None = None
    train_steps: int | None = None
    eval_seconds: float | None = None


@_register
@dataclass
class CheckpointSaved(Event):
    kind: ClassVar[str] = "checkpoint"
    epoch: int
    step: int
    path: str
    best: bool = False  # this checkpoint is the best so far


@_register
@dataclass
class Exported(Event):
    kind: ClassVar[str] = "exported"
    model_path: str
    epoch: int  # the (best) epoch whose weights were exported


@_register
@dataclass
class Log(Event):
    kind: ClassVar[str] = "log"
    level: str  # info | warning | error
    message: str


@_register
@dataclass
class RunFinished(Event):
    kind: ClassVar[str] = "run_finished"
    status: str  # completed | failed | cancelled
    metrics: dict[str, Any]  # the best evaluation's metrics ({} when none ran)
    model_path: str | None = None
    checkpoint: str | None = None
    error: str | None = None
    exit_code: int = 0


# the bake-off (engine/bakeoff.py): contenders race before the winner's run; the winner's own
# steps and evaluations after it are the normal `step` and `eval` records


@_register
@dataclass
class BakeoffStarted(Event):
    kind: ClassVar[str] = "bakeoff_started"
    contenders: list[Any]  # per contender: index, model, name, strategy, batch_size, learning_rate, ...
    share: float  # of one full run's time (engine.plan.bakeoff_schedule)
    metric: str
    rounds: list[Any]  # per round: round, contenders, steps (each contender's optimizer steps)
    predicted_seconds: float | None = None
    resumed_round: int = 0  # a resumed bake-off restarts this round (1-based) from its start; 0: a fresh one


@_register
@dataclass
class BakeoffStep(Event):
    """A contender's training loss, mean over a window of its steps, while it trains."""

    kind: ClassVar[str] = "bakeoff_step"
    round: int
    index: int  # the contender's place in the ranking (0: the top-ranked)
    model: str
    step: int  # the contender's optimizer steps so far, all rounds
    steps: int  # where this round ends
    loss: float


@_register
@dataclass
class BakeoffRound(Event):
    """One contender's round: its training curve and its validation figures at the end of it."""

    kind: ClassVar[str] = "bakeoff_round"
    round: int
    index: int
    model: str
    steps: int  # optimizer steps in this round
    total_steps: int  # the contender's steps so far, all rounds
    losses: list[Any]  # [step, training loss] points of this round
    metric: str
    value: float | None  # the metric's value
    accuracy: float | None  # None: a bake-off decided on evidence (no training, no evaluation)
    macro_f1: float | None
    val_loss: float | None
    seconds: float  # load, train and evaluate
    batch_size: int = 0  # the micro-batch it trained with (smaller after an out-of-memory step)
    logme: float | None = None  # a bake-off too short to race: LogME of its frozen features (metric "logme")


@_register
@dataclass
class BakeoffCut(Event):
    kind: ClassVar[str] = "bakeoff_cut"
    round: int
    kept: list[str]  # model ids, best first
    dropped: list[str]


@_register
@dataclass
class BakeoffResult(Event):
    kind: ClassVar[str] = "bakeoff_result"
    winner: str
    winner_index: int
    metric: str
    table: list[Any]  # per contender, best first: model, name, rounds, steps, the last figures, eliminated_in
    seconds: float  # the whole bake-off, loads and evaluations included
    steps: int  # the winner's steps: its run goes on from there


# the batch front-end's last line


@_register
@dataclass
class Summary(Event):
    kind: ClassVar[str] = "summary"
    run_id: str
    run_dir: str
    status: str
    model: str | None
    metrics: dict[str, Any]
    model_path: str | None
    exit_code: int
    best_epoch: int | None = None
    resumed_from_step: int | None = None
    error: str | None = None
    bakeoff: dict[str, Any] | None = None  # a bake-off run: winner, metric, table (RunState.bakeoff_summary)


# ------------------------------------------------------------------------------ validation

_HINTS: dict[type[Event], dict[str, Any]] = {}


def _hints(cls: type[Event]) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    base = origin or hint
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if base is bool:
        return isinstance(value, bool)
    if base is str:
        return isinstance(value, str)
    if base is list:
        return isinstance(value, list)
    if base is dict:
        return isinstance(value, dict)
    return True


def check_version(obj: dict[str, Any], source: str = "") -> None:
    v = obj.get("v")
    if v != SCHEMA_VERSION:
        where = f"{source}: " if source else ""
        if isinstance(v, int) and v > SCHEMA_VERSION:
            raise UserError(
                f"{where}events schema v{v} was written by a newer modelwiz (this one reads "
                f"v{SCHEMA_VERSION}); upgrade modelwiz to read this run"
            )
        raise UserError(
            f"{where}events schema v{v!r} is not one this modelwiz reads (v{SCHEMA_VERSION}); "
            "the run was written by an incompatible modelwiz version"
        )


def parse_event(obj: dict[str, Any], *, strict: bool = False) -> Event:
    """The typed record of one decoded line. `strict` also refuses fields the schema does not
    declare (the trainer's own test); readers are lenient, so a newer minor version still reads."""
    check_version(obj)
    kind = obj.get("event")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise SchemaError(f"unknown event type {kind!r}")
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    extra = set(obj) - names - {"v", "event", "time"}
    if strict and extra:
        raise SchemaError(f"{kind}: undeclared field(s) {sorted(extra)}")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in obj:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SchemaError(f"{kind}: missing field '{f.name}'")
            continue
        if not _matches(obj[f.name], hints[f.name]):
            raise SchemaError(f"{kind}: field '{f.name}' = {obj[f.name]!r} does not match {hints[f.name]}")
        kwargs[f.name] = obj[f.name]
    return cls(**kwargs)


# ------------------------------------------------------------------------------ writing, reading


class EventWriter:
    """Appends records to a file, one line each, flushed per event."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")

    def emit(self, event: Event) -> dict[str, Any]:
        obj = event.to_json()
        self._fh.write(json.dumps(obj, separators=(",", ":"), default=str) + "\n")
        self._fh.flush()
        return obj

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_events(path: str | Path, offset: int = 0, end: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """Complete events after byte `offset` (up to byte `end`), and the offset to continue from. A partial last line
    (the writer is mid-write) is left for the next call; a corrupt line or an event type this
    version does not know is skipped; an unknown major version raises UserError."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read() if end is None else fh.read(max(0, end - offset))
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
        if not isinstance(obj, dict) or "event" not in obj:
            continue
        check_version(obj, str(path))
        if obj["event"] in EVENT_TYPES:
            events.append(obj)
    return events, offset + end + 1


# ------------------------------------------------------------------------------ "best", once


def metric_value(record: dict[str, Any], metric: str) -> float | None:
    value = record.get(metric)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def is_better(candidate: dict[str, Any], best: dict[str, Any] | None, metric: str = DEFAULT_METRIC) -> bool:
    """Whether evaluation `candidate` beats `best` on `metric` (val_loss lower, the others higher).
    Only a strict improvement counts: on a tie the earlier epoch stays the best, and early
    stopping's patience keeps counting."""
    new = metric_value(candidate, metric)
    if new is None:
        return False
    if not best:
        return True
    old = metric_value(best, metric)
    if old is None:
        return True
    return new < old if metric == "val_loss" else new > old


METRIC_KEYS = ("epoch", "step", "val_loss", "accuracy", "macro_f1", "precision", "recall")


@dataclass
class RunState:
    """What a run's events say, folded: the one reader every front-end uses."""

    run_id: str = ""
    run_dir: str = ""
    status: str = "queued"  # queued | running | completed | failed | cancelled
    model: str = ""
    params: int = 0
    trainable_params: int = 0
    strategy: str = ""
    device: str = ""
    precision: str = ""
    labels: list[str] = field(default_factory=list)
    train_size: int = 0
    val_size: int = 0
    plan: dict[str, Any] = field(default_factory=dict)
    metric: str = DEFAULT_METRIC
    epochs: int = 0
    total_steps: int = 0
    epoch: int = 0
    step: int = 0
    resumed_from_step: int | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss)
    evals: list[dict[str, Any]] = field(default_factory=list)  # one per epoch, METRIC_KEYS
    best: dict[str, Any] = field(default_factory=dict)  # the best of `evals` on `metric`
    last_eval: dict[str, Any] = field(default_factory=dict)  # the latest eval event, in full
    best_eval: dict[str, Any] = field(default_factory=dict)  # the best eval event, in full
    samples_per_s: float | None = None
    eta_s: float | None = None
    lr: float | None = None  # the learning rate at the latest step
    memory: dict[str, float] = field(default_factory=dict)  # the latest mem_* figures
    mem_peak_gb: float = 0.0
    # the measured peak of a steady-state step against the prediction (a memory_measured event)
    memory_check: dict[str, Any] = field(default_factory=dict)
    logs: list[tuple[str, str]] = field(default_factory=list)  # (level, message)
    model_path: str | None = None
    exported_epoch: int | None = None
    checkpoint: str | None = None
    error: str | None = None
    exit_code: int | None = None
    finished: bool = False
    started: float | None = None
    last_time: float | None = None
    events: int = 0
    # a bake-off run: share, metric, rounds, round (in progress), contenders (each with its curve,
    # [step, loss], and results per round), winner, table, seconds; empty: none
    bakeoff: dict[str, Any] = field(default_factory=dict)

    @property
    def progress(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    @property
    def best_epoch(self) -> int | None:
        return self.best.get("epoch") if self.best else None

    def bakeoff_summary(self) -> dict[str, Any] | None:
        """The bake-off in brief (the batch summary, `runs --json`): winner, metric, seconds, table."""
        b = self.bakeoff
        if not b:
            return None
        return {k: b.get(k) for k in ("winner", "metric", "share", "seconds", "table")}

    def best_metrics(self) -> dict[str, Any]:
        """The best evaluation's figures (what `runs`, the summary and the report call metrics)."""
        return {k: self.best[k] for k in METRIC_KEYS if k in self.best and k not in ("epoch", "step")}

    def apply(self, obj: dict[str, Any]) -> RunState:
        """Fold one decoded event line into the state (returns self, for chaining)."""
        kind = obj.get("event")
        self.events += 1
        t = obj.get("time")
        if isinstance(t, (int, float)):
            self.last_time = float(t)
        if kind == "run_created":
            self.run_id, self.run_dir = obj.get("run_id", ""), obj.get("run_dir", "")
        elif kind == "run_started":
            self.run_id = obj.get("run_id") or self.run_id
            self.status, self.finished, self.error, self.exit_code = "running", False, None, None
            self.started = self.started or self.last_time
        elif kind == "resumed":
            self.resumed_from_step, self.step = obj.get("step"), obj.get("step", self.step)
        elif kind == "data":
            self.labels, self.train_size, self.val_size = (
                list(obj.get("labels") or []),
                obj.get("train_size", 0),
                obj.get("val_size", 0),
            )
        elif kind == "model":
            self.model, self.params, self.trainable_params = (
                obj.get("model", ""),
                obj.get("params", 0),
                obj.get("trainable_params", 0),
            )
            self.strategy, self.device, self.precision = (
                obj.get("strategy", ""),
                obj.get("device", ""),
                obj.get("precision", ""),
            )
        elif kind == "plan":
            self.plan = dict(obj.get("plan") or {})
            self.epochs, self.total_steps = obj.get("epochs", 0), obj.get("total_steps", 0)
            self.metric = obj.get("metric") or DEFAULT_METRIC
        elif kind == "plan_changed":
            self.plan = dict(obj.get("plan") or {})
        elif kind == "epoch_started":
            self.epoch = obj.get("epoch", self.epoch)
        elif kind == "step":
            self._apply_step(obj)
        elif kind == "eval":
            self._apply_eval(obj)
        elif kind == "memory_measured":
            self.memory_check = {
                k: obj.get(k)
                for k in ("step", "measured_peak_gb", "predicted_peak_gb", "method", "reserved_gb", "batch_size")
            }
        elif kind == "checkpoint":
            self.checkpoint = obj.get("path")
        elif kind == "exported":
            self.model_path, self.exported_epoch = obj.get("model_path"), obj.get("epoch")
        elif kind == "log":
            self.logs.append((str(obj.get("level", "info")), str(obj.get("message", ""))))
        elif isinstance(kind, str) and kind.startswith("bakeoff_"):
            self._apply_bakeoff(kind, obj)
        elif kind == "run_finished":
            self.status, self.finished = obj.get("status", "failed"), True
            self.error, self.exit_code = obj.get("error"), obj.get("exit_code")
            self.model_path = obj.get("model_path") or self.model_path
            self.checkpoint = obj.get("checkpoint") or self.checkpoint
        return self

    def _apply_step(self, obj: dict[str, Any]) -> None:
        step = int(obj.get("step", 0))
        if self.losses and step <= self.losses[-1][0]:
            # a resumed run repeats steps after its last checkpoint: keep the newer figures
            self.losses = [p for p in self.losses if p[0] < step]
        self.epoch, self.step = obj.get("epoch", self.epoch), step
        self.total_steps = obj.get("total_steps") or self.total_steps
        self.losses.append((step, float(obj.get("loss", 0.0))))
        self.samples_per_s, self.eta_s, self.lr = obj.get("samples_per_s"), obj.get("eta_s"), obj.get("lr")
        self.memory = {k: v for k, v in obj.items() if k.startswith("mem_") and isinstance(v, (int, float))}
        peak = max(self.memory.get("mem_peak_gb", 0.0), self.memory.get("mem_allocated_gb", 0.0))
        self.mem_peak_gb = max(self.mem_peak_gb, peak)

    def _apply_bakeoff(self, kind: str, obj: dict[str, Any]) -> None:
        b = self.bakeoff
        if kind == "bakeoff_started":
            again = int(obj.get("resumed_round") or 0)
            old = {c.get("index"): c for c in b.get("contenders", [])} if again else {}
            contenders = []
            for c in obj.get("contenders") or []:
                prev = old.get(c.get("index"), {})
                # a resumed bake-off redoes round `again`: what it had of that round goes
                results = [r for r in prev.get("results", []) if r.get("round", 0) < again]
                start = results[-1]["total_steps"] if results else 0
                curve = [p for p in prev.get("curve", []) if p[0] <= start]
                contenders.append({**c, "curve": curve, "results": results, "eliminated_in": prev.get("eliminated_in")})
            for c in contenders:
                if c["eliminated_in"] is not None and c["eliminated_in"] >= again:
                    c["eliminated_in"] = None
            self.bakeoff = {
                "share": obj.get("share"),
                "metric": obj.get("metric") or self.metric,
                "rounds": list(obj.get("rounds") or []),
                "round": max(again, 1),
                "contenders": contenders,
                "winner": None,
                "table": [],
                "seconds": None,
            }
            return
        if not b:
            return
        by_index = {c.get("index"): c for c in b["contenders"]}
        if kind in ("bakeoff_step", "bakeoff_round"):
            c = by_index.get(obj.get("index"))
            if c is None:
                return
            b["round"] = obj.get("round", b["round"])
            if kind == "bakeoff_step":
                step = int(obj.get("step", 0))
                c["curve"] = [p for p in c["curve"] if p[0] < step] + [[step, float(obj.get("loss", 0.0))]]
            else:
                first = min((int(p[0]) for p in obj.get("losses") or []), default=obj.get("total_steps", 0))
                c["curve"] = [p for p in c["curve"] if p[0] < first] + [list(p) for p in obj.get("losses") or []]
                keys = (
                    "round",
                    "steps",
                    "total_steps",
                    "value",
                    "accuracy",
                    "macro_f1",
                    "val_loss",
                    "seconds",
                    "logme",
                )
                result = {k: obj.get(k) for k in keys}
                c["results"] = [r for r in c["results"] if r.get("round") != result["round"]] + [result]
        elif kind == "bakeoff_cut":
            for c in b["contenders"]:
                if c.get("model") in (obj.get("dropped") or []):
                    c["eliminated_in"] = obj.get("round")
        elif kind == "bakeoff_result":
            b["winner"], b["table"], b["seconds"] = obj.get("winner"), list(obj.get("table") or []), obj.get("seconds")

    def _apply_eval(self, obj: dict[str, Any]) -> None:
        record = {k: obj[k] for k in METRIC_KEYS if k in obj}
        # a resumed run re-evaluates an epoch it had not finished: the newer figures replace it
        self.evals = [e for e in self.evals if e.get("epoch") != record.get("epoch")] + [record]
        self.last_eval = dict(obj)
        best = None
        for e in self.evals:
            if is_better(e, best, self.metric):
                best = e
        self.best = dict(best or {})
        if best is record:
            self.best_eval = dict(obj)
        elif self.best_eval.get("epoch") != self.best.get("epoch"):
            self.best_eval = {}


def fold(events: list[dict[str, Any]], state: RunState | None = None) -> RunState:
    state = state or RunState()
    for ev in events:
        state.apply(ev)
    return state


def fold_file(path: str | Path) -> RunState:
    return fold(read_events(path)[0])
