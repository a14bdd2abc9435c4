"""Step 5 · Dashboard: tails a run directory's events.jsonl and status.json.

The trainer is a separate process; this screen is only a reader. Every 0.5 s a thread worker reads
the complete events appended since the last byte offset (modelwiz.engine.events.read_events) and the
status, and posts them as one message; the screen folds them with the engine's one reducer,
`RunState` (so "best" means here what it means in `modelwiz runs`, the report and the exported
model: the best evaluation on the run's metric), and redraws. Attaching late replays the whole
history from offset 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Label, ProgressBar, RichLog, Static

from modelwiz.engine.events import RunState, read_events
from modelwiz.engine.runs import ACTIVE_STATES, FINAL_STATES, effective_state, read_status
from modelwiz.tui.base import EngineReply, ModelwizScreen
from modelwiz.tui.dialogs import ConfirmDialog, MessageDialog
from modelwiz.tui.format import (
    DASH,
    display_model,
    fmt_elapsed,
    fmt_metric,
    fmt_params,
    fmt_seconds,
    metric_name,
    number,
)
from modelwiz.tui.messages import StepRequested
from modelwiz.tui.nvml import cuda_index
from modelwiz.tui.state import Services, step_label
from modelwiz.tui.widgets import LineChart, Series, downsample

POLL_SECONDS = 0.5
MAX_EVAL_ROWS = 5
LOG_STYLES = {"info": "", "good": "green", "warning": "yellow", "error": "bold red"}


def read_run(run_dir: Path, offset: int) -> tuple[list[dict[str, Any]], int, dict[str, Any]]:
    """The complete events after byte `offset`, the offset to go on from, and status.json."""
    events, end = read_events(run_dir / "events.jsonl", offset)
    return events, end, read_status(run_dir)


def elapsed(run: RunState) -> float:
    """Seconds from the run's start to its latest event (the events' own clock, not ours)."""
    if run.started is None or run.last_time is None:
        return 0.0
    return run.last_time - run.started


def event_line(ev: dict[str, Any], run: RunState) -> tuple[str, str] | None:
    """The log line for one event already folded into `run`: (text, level), or None for none."""
    kind = ev.get("event")
    if kind == "run_started":
        text, level = f"run started (pid {ev.get('pid')})", "info"
        if ev.get("resumed"):
            text = "run resumed from its checkpoint"
    elif kind == "resumed":
        text, level = f"resumed at epoch {ev.get('epoch')}, step {ev.get('step')}", "info"
    elif kind == "data":
        text = f"data: {ev.get('train_size')} train / {ev.get('val_size')} validation · {ev.get('num_classes')} classes"
        level = "info"
    elif kind == "model":
        text = (
            f"model {display_model(run.model or '?')}: {fmt_params(run.params)}M params, "
            f"{fmt_params(run.trainable_params)}M trainable · {run.strategy} · {run.device} · {run.precision}"
        )
        level = "info"
    elif kind == "plan":
        epochs = f"{run.epochs} epoch{'s' if run.epochs != 1 else ''}"
        lr = number(ev.get("learning_rate"))
        lr_text = f" · lr {lr:.1e}" if lr is not None else ""
        text = (
            f"plan: {epochs} · batch {ev.get('batch_size')}{lr_text} · {run.total_steps} steps · "
            f"best by {metric_name(run.metric)}"
        )
        level = "info"
    elif kind == "eval":
        parts = [
            f"{metric_name(k)} {fmt_metric(ev.get(k))}"
            for k in ("accuracy", "macro_f1", "val_loss")
            if number(ev.get(k)) is not None
        ]
        best = " · best so far" if ev.get("epoch") == run.best_epoch else ""
        text, level = f"epoch {ev.get('epoch')} evaluated: " + " · ".join(parts) + best, "good"
    elif kind == "checkpoint":
        text, level = f"checkpoint saved (epoch {ev.get('epoch')}, step {ev.get('step')})", "info"
    elif kind == "exported":
        text, level = f"model of epoch {ev.get('epoch')} exported to {ev.get('model_path')}", "good"
    elif kind == "log":
        lvl = str(ev.get("level") or "info").lower()
        level = "warning" if lvl.startswith("warn") else "error" if lvl in ("error", "critical") else "info"
        text = str(ev.get("message", ""))
    elif kind == "bakeoff_started":
        names = ", ".join(display_model(str(c.get("name") or c.get("model"))) for c in ev.get("contenders") or [])
        rounds = len(ev.get("rounds") or [])
        text, level = f"bake-off: {names} race in {rounds} round{'s' if rounds != 1 else ''}", "info"
    elif kind == "bakeoff_round":
        name = display_model(str(_contender_name(run, ev.get("index"), ev.get("model"))))
        value = fmt_metric(ev.get("value"))
        text = f"bake-off round {ev.get('round')}: {name} {metric_name(str(ev.get('metric')))} {value}"
        level = "info"
    elif kind == "bakeoff_cut":
        out = ", ".join(display_model(str(_contender_name(run, None, m))) for m in ev.get("dropped") or [])
        text, level = f"bake-off round {ev.get('round')}: {out} out", "info"
    elif kind == "bakeoff_result":
        name = display_model(str(_contender_name(run, ev.get("winner_index"), ev.get("winner"))))
        text, level = f"bake-off: {name} won; its run goes on from step {ev.get('steps')}", "good"
    elif kind == "run_finished":
        status = str(ev.get("status") or "completed")
        text = f"run {status}" + (f": {ev['error']}" if ev.get("error") else "")
        level = "good" if status == "completed" else "error"
    else:
        return None
    t = number(ev.get("time"))
    stamp = "" if t is None or run.started is None else f"+{fmt_elapsed(t - run.started)} "
    return stamp + text, level


def _contender_name(run: RunState, index: object, model: object) -> object:
    for c in run.bakeoff.get("contenders") or []:
        if c.get("index") == index or c.get("model") == model:
            return c.get("name") or c.get("model")
    return model or "?"


SPARKS = "▁▂▃▄▅▆▇█"
GAUGE_WIDTH = 12


def sparkline(values: list[float], width: int) -> str:
    """`values` (downsampled to `width`) as block characters from their minimum to their maximum."""
    if not values:
        return ""
    values = downsample(values, width)
    lo, hi = min(values), max(values)
    if hi - lo < 1e-6 * max(1.0, hi):
        return SPARKS[3] * len(values)  # flat: a level line
    top = len(SPARKS) - 1
    return "".join(SPARKS[round((v - lo) / (hi - lo) * top)] for v in values)


def gauge(used: float, total: float, width: int = GAUGE_WIDTH) -> Content:
    filled = min(width, max(0, round(used / total * width))) if total else 0
    return Content.assemble(("█" * filled, "$mw-bar"), ("░" * (width - filled), "$text-muted 40%"))


def training_content(run: RunState, mem_history: list[float], nvml: tuple[float, float] | None = None) -> Content:
    """Loss, speed, ETA and memory of a running run: the trainer's allocated and peak figures from
    the event stream, the device-wide use it reports (CUDA: total - free; RAM in use on the CPU),
    the allocation over time as a sparkline. `nvml`: the device's use across every process as this
    process reads it from NVML (used, total GB), shown in the place of the trainer's device figure
    (the same quantity, sampled by the trainer once a step); None: no NVML here."""
    mem = run.memory
    rows: list[tuple[str, Content | str]] = []
    lr = f" (lr {run.lr:.1e})" if run.lr is not None else ""
    rows.append(("Loss", f"{run.losses[-1][1]:.4f}{lr}" if run.losses else DASH))
    rows.append(("Speed", f"{run.samples_per_s:.1f} samples/s" if run.samples_per_s is not None else DASH))
    rows.append(("ETA", fmt_seconds(run.eta_s) if run.eta_s else DASH))
    allocated = number(mem.get("mem_allocated_gb"))
    peak = run.mem_peak_gb or None
    if allocated is None:
        rows.append(("Memory", DASH))
    else:
        rows.append(("Memory", f"{allocated:.2f} GB allocated" + (f" · peak {peak:.2f}" if peak else "")))
    used, total = number(mem.get("mem_device_gb")), number(mem.get("mem_total_gb"))
    if nvml is not None:  # read live by this process: the same device-wide figure, between steps too
        rows.append(("NVML", Content.assemble(gauge(*nvml), f" {nvml[0]:.1f}/{nvml[1]:.1f} GB")))
    elif used is not None and total:
        rows.append(("Device", Content.assemble(gauge(used, total), f" {used:.1f} of {total:.1f} GB")))
    else:
        rows.append(("Device", DASH))
    if mem_history:
        rows.append(("", Content(sparkline(mem_history, 24)).stylize("$mw-bar")))
    return Content("\n").join(
        Content.assemble((name.ljust(7), "bold"), value if isinstance(value, Content) else Content(value))
        for name, value in rows
    )


def results_table(run: RunState, status: str) -> Table:
    """The finished run: its status and the best evaluation's figures (the exported model's)."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_row(
        "Status",
        Text.assemble(
            (status, "bold green" if status == "completed" else "bold red"), f" · took {fmt_elapsed(elapsed(run))}"
        ),
    )
    best = run.best_metrics()
    epoch = f"epoch {run.best_epoch} of {run.epochs}" if run.best_epoch is not None else DASH
    table.add_row("Best", f"{epoch} by {metric_name(run.metric)}")
    table.add_row("Accuracy", Text(fmt_metric(best.get("accuracy")), style="bold"))
    table.add_row("Macro-F1", Text(fmt_metric(best.get("macro_f1")), style="bold"))
    table.add_row("Prec / rec", f"{fmt_metric(best.get('precision'))} / {fmt_metric(best.get('recall'))}")
    table.add_row("Val loss", fmt_metric(best.get("val_loss")))
    return table


def eval_table(run: RunState) -> Table:
    """The latest evaluations, the best one (on the run's metric) in bold."""
    table = Table(box=None, pad_edge=False, expand=True, show_edge=False)
    for name in ("epoch", "accuracy", "macro-F1", "val loss"):
        table.add_column(name, justify="right", no_wrap=True)
    for ev in run.evals[-MAX_EVAL_ROWS:]:
        table.add_row(
            str(ev.get("epoch", "?")),
            fmt_metric(ev.get("accuracy")),
            fmt_metric(ev.get("macro_f1")),
            fmt_metric(ev.get("val_loss")),
            style="bold" if ev.get("epoch") == run.best_epoch else "",
        )
    if not run.evals:
        table.add_row(DASH, DASH, DASH, DASH)
    return table


def best_label(run: RunState) -> str:
    """Which evaluation is 'best', in words: 'best: epoch 2 by macro-F1'."""
    if run.best_epoch is None:
        return ""
    return f"best: epoch {run.best_epoch} by {metric_name(run.metric)}"


def confusion_title(run: RunState) -> str:
    exported = (
        " · the exported model" if run.exported_epoch is not None and run.exported_epoch == run.best_epoch else ""
    )
    return f"Confusion matrix · best epoch {run.best_epoch} by {metric_name(run.metric)}{exported}"


def confusion_text(run: RunState) -> str:
    """The best evaluation's confusion matrix as a small table ('' when there is none to show)."""
    matrix = run.best_eval.get("confusion_matrix")
    if not isinstance(matrix, list) or not matrix or len(matrix) > 6:
        return ""
    labels = run.labels if len(run.labels) == len(matrix) else [str(i) for i in range(len(matrix))]
    width = max(4, max(len(x) for x in labels[:6]))
    lines = ["rows: true class · columns: predicted"]
    lines.append(" " * (width + 1) + " ".join(x[:width].rjust(width) for x in labels))
    for name, row in zip(labels, matrix, strict=True):
        lines.append(name[:width].ljust(width) + " " + " ".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


def loss_series(run: RunState) -> list[Series]:
    """Training loss per step and validation loss per evaluation, on the step axis."""
    val = [
        (float(e["step"]), float(e["val_loss"]))
        for e in run.evals
        if number(e.get("val_loss")) is not None and number(e.get("step")) is not None
    ]
    return [
        Series("train", [(float(step), loss) for step, loss in run.losses], "$mw-loss-curve"),
        Series("val", val, "$mw-val-curve"),
    ]


# a bake-off's contenders, one colour each (theme variables: a theme switch recolours them)
CONTENDER_COLOURS = (
    "$mw-loss-curve",
    "$mw-f1-curve",
    "$mw-metric",
    "$mw-val-curve",
    "$accent",
    "$secondary",
    "$warning",
    "$primary",
)


def bakeoff_series(run: RunState) -> list[Series]:
    """Every bake-off contender's training loss on its own step axis (`RunState.bakeoff`); the
    winner's run goes on from the steps it reached, so its own curve continues it."""
    series = []
    for i, c in enumerate(run.bakeoff.get("contenders") or []):
        points = [(float(p[0]), float(p[1])) for p in c.get("curve") or [] if len(p) >= 2]
        name = display_model(str(c.get("name") or c.get("model") or "?"))
        series.append(Series(name, points, CONTENDER_COLOURS[i % len(CONTENDER_COLOURS)]))
    return series


def bakeoff_table(run: RunState) -> Table:
    """The race so far: each contender's rounds, last figures and fate; the winner starred."""
    b = run.bakeoff
    metric = b.get("metric") or run.metric
    table = Table(box=None, pad_edge=False, show_edge=False, expand=True)
    table.add_column("contender", no_wrap=True, overflow="ellipsis", ratio=1, min_width=12)
    table.add_column("steps", justify="right", no_wrap=True)
    table.add_column(metric_name(metric), justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    winner = b.get("winner")
    for c in b.get("contenders") or []:
        last = (c.get("results") or [{}])[-1]
        value = number(last.get("value"))
        if c.get("model") == winner:
            fate = Text("★ won", style="bold green")
        elif c.get("eliminated_in"):
            fate = Text(f"out r{c['eliminated_in']}", style="dim")
        else:
            fate = Text("racing" if not winner else "", style="")
        curve = c.get("curve") or []
        steps = last.get("total_steps") or (int(curve[-1][0]) if curve else 0)
        table.add_row(
            display_model(str(c.get("name") or c.get("model") or "?")),
            str(steps),
            f"{value:.3f}" if value is not None else DASH,
            fate,
        )
    return table


def bakeoff_line(run: RunState) -> str:
    """'bake-off: round 2 of 3, 2 racing' while it runs; 'bake-off: X won (macro-F1 0.812)' after."""
    b = run.bakeoff
    contenders = b.get("contenders") or []
    winner = b.get("winner")
    if winner:
        name = next((c.get("name") for c in contenders if c.get("model") == winner), None) or winner
        row = next((t for t in b.get("table") or [] if t.get("model") == winner), {})
        value = number(row.get("value"))
        figure = f" ({metric_name(b.get('metric') or run.metric)} {fmt_metric(value)})" if value is not None else ""
        return f"bake-off: {display_model(str(name))} won{figure} of {len(contenders)}"
    racing = sum(1 for c in contenders if not c.get("eliminated_in"))
    rounds = len(b.get("rounds") or [])
    return f"bake-off: round {b.get('round', 1)} of {rounds or '?'}, {racing} of {len(contenders)} racing"


def metric_series(run: RunState) -> list[Series]:
    """Validation accuracy and macro-F1 per evaluation, on the step axis."""

    def points(key: str) -> list[tuple[float, float]]:
        return [
            (float(e["step"]), float(e[key]))
            for e in run.evals
            if number(e.get(key)) is not None and number(e.get("step")) is not None
        ]

    return [
        Series("accuracy", points("accuracy"), "$mw-metric"),
        Series("macro-F1", points("macro_f1"), "$mw-f1-curve"),
    ]


def legend(title: str, series: list[Series]) -> Content:
    parts: list[Content | tuple[str, str] | str] = [title]
    for s in series:
        parts.extend([" ", ("━ " + s.name, s.style)])
    return Content.assemble(*parts)


def per_class_table(run: RunState) -> Table | None:
    """The best evaluation's precision, recall, F1 and support per class (None when not reported)."""
    per_class = run.best_eval.get("per_class")
    if not isinstance(per_class, list) or not per_class:
        return None
    labels = run.labels if len(run.labels) == len(per_class) else [str(i) for i in range(len(per_class))]
    table = Table(box=None, pad_edge=False, expand=True, show_edge=False)
    table.add_column("class", no_wrap=True, overflow="ellipsis")
    for name in ("prec", "recall", "F1", "n"):
        table.add_column(name, justify="right", no_wrap=True)
    for label, pc in zip(labels, per_class, strict=True):
        if not isinstance(pc, dict):
            continue
        table.add_row(
            label,
            f"{number(pc.get('precision')) or 0:.3f}",
            f"{number(pc.get('recall')) or 0:.3f}",
            f"{number(pc.get('f1')) or 0:.3f}",
            str(pc.get("support", "")),
        )
    return table


def read_usage(model_path: str) -> str:
    """The exported model's usage snippet: the Python block of its model card ('' when none)."""
    try:
        card = (Path(model_path) / "README.md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
    if "```python" not in card:
        return ""
    return card.split("```python", 1)[1].split("```", 1)[0].strip()


class DashboardScreen(ModelwizScreen):
    STEP = "dashboard"
    HELP_NOTES: ClassVar[tuple[str, ...]] = (
        "Training runs in its own process: quitting leaves it running; `modelwiz attach RUN_ID` re-opens this view.",
        "x asks the trainer to stop after the current step (a checkpoint is kept; `modelwiz resume` continues).",
        "Best: the evaluation with the highest value of the run's metric (default macro-F1); its weights are "
        "the exported model, and its figures are the results shown here.",
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("x", "cancel_run", "Cancel run"),
        Binding("m", "confusion", "Confusion"),
        Binding("u", "usage", "Usage"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+b,escape", "back", "Back"),
    ]

    class Tailed(EngineReply):
        """`value`: (new events, the offset after them, status.json); `tag`: the offset read from."""

    class NvmlRead(EngineReply):
        """`value`: (used GB, total GB) of the run's CUDA device from NVML, or None."""

    class UsageRead(EngineReply):
        """`value`: the exported model's usage snippet ('' when its card has none)."""

    class CancelAnswered(EngineReply):
        """`value`: what `cancel_run` returned (False: the run was no longer active)."""

    def __init__(self, run_dir: Path, services: Services, *, standalone: bool = False, closable: bool = False) -> None:
        """`standalone`: not a wizard step (`modelwiz attach`); `closable`: shown over the runs list,
        to which ctrl+b returns."""
        super().__init__()
        self.run_dir = Path(run_dir)
        self.services = services
        self.standalone = standalone
        self.closable = closable
        self.run = RunState(run_id=self.run_dir.name)
        self.status = "queued"  # shown: the run's own once finished, else status.json's (or cancelling)
        self.run_status: dict[str, Any] = {}
        self.byte_offset = 0
        self.done = False  # run_finished seen (or the run ended without saying so)
        self.cancel_requested = False
        self.mem_history: list[float] = []  # the trainer's allocated memory, one figure per step
        self.nvml: tuple[float, float] | None = None  # device-wide use from NVML (used, total GB)
        self.usage = ""  # the exported model's usage snippet, once read
        self._usage_asked = False
        self._timer: Timer | None = None

    def compose_body(self) -> Iterable[Widget]:
        yield Static("", id="run-head")
        with Horizontal(id="progress-row"):
            yield Label("", id="progress-label")
            yield ProgressBar(total=None, show_eta=False, id="progress")
        with Horizontal(id="dash-panels"):
            with Vertical(id="train-box") as box:
                box.border_title = "Training"
                yield Static("", id="train-info")
            with Vertical(id="val-box") as box:
                box.border_title = "Validation"
                yield Static("", id="val-info")
        with Horizontal(id="charts"):
            with Vertical(id="loss-box") as box:
                box.border_title = legend("Loss", loss_series(self.run))
                yield LineChart(id="loss-chart")
            with Vertical(id="metric-box") as box:
                box.border_title = legend("Val", metric_series(self.run))
                yield LineChart(id="metric-chart")
        yield Static("", id="next-steps")
        yield Static("", id="confusion")
        log = RichLog(id="log", wrap=True, markup=False, max_lines=2000, auto_scroll=True, min_width=20)
        log.border_title = "Log"
        yield log

    def on_mount(self) -> None:
        self.sub_title = f"Dashboard · {self.run_dir.name}" if self.standalone else step_label("dashboard")
        self.query_one("#next-steps").display = False
        self._redraw()
        self.poll()
        self._timer = self.set_interval(POLL_SECONDS, self.poll)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back" and self.standalone and not self.closable:
            return False
        if action == "confusion" and not confusion_text(self.run):
            return False
        if action == "usage" and not self.usage:
            return False
        if action == "cancel_run" and not self.active:
            return None  # shown dimmed: nothing to cancel
        return True

    async def action_quit(self) -> None:
        await self.app.action_quit()  # shares the footer entry of the app's ctrl+q

    def action_usage(self) -> None:
        if self.usage:
            run_id = self.run.run_id or self.run_dir.name
            text = f"{self.usage}\n\nor from the shell: modelwiz predict {run_id} INPUT..."
            self.app.push_screen(MessageDialog(f"Use the model · {self.run.model_path}", text, error=False))

    @on(UsageRead)
    def _usage_read(self, reply: UsageRead) -> None:
        self.usage = reply.value or ""
        self._redraw()
        self.refresh_bindings()

    def action_confusion(self) -> None:
        text = confusion_text(self.run)
        if text:
            self.app.push_screen(MessageDialog(confusion_title(self.run), text, error=False))

    # ------------------------------------------------------------------ tailing

    def poll(self) -> None:
        if self.done:
            if self._timer is not None:
                self._timer.stop()
            return
        self.call_engine(self.Tailed, read_run, self.run_dir, self.byte_offset, group="tail", tag=self.byte_offset)
        index = cuda_index(self.run.device)
        if index is not None and self.status in ("running", "cancelling"):
            self.call_engine(self.NvmlRead, self.services.device_memory, index, group="nvml")

    @on(NvmlRead)
    def _nvml_read(self, reply: NvmlRead) -> None:
        value = reply.value if isinstance(reply.value, tuple) else None
        if value != self.nvml:
            self.nvml = value
            self._redraw()

    @on(Tailed)
    def _tailed(self, reply: Tailed) -> None:
        log = self.query_one("#log", RichLog)
        if reply.value is None:  # e.g. events written by a newer modelwiz: say so once, stop
            self.done = True
            log.write(Text(f"cannot read this run: {reply.error}", style=LOG_STYLES["error"]))
            return
        if reply.tag != self.byte_offset:
            return  # a stale read overtaken by a newer one
        events, self.byte_offset, self.run_status = reply.value
        run, status = self.run, self.run_status
        for ev in events:
            run.apply(ev)
            if ev.get("event") == "step" and number(ev.get("mem_allocated_gb")) is not None:
                self.mem_history.append(float(ev["mem_allocated_gb"]))
            line = event_line(ev, run)
            if line is not None:
                log.write(Text(line[0], style=LOG_STYLES[line[1]]))
        state = effective_state(status, self.run_dir) if status else run.status
        if run.finished:
            self.status = run.status
        else:
            self.status = "cancelling" if self.cancel_requested and state in ("queued", "running") else state
        if run.finished or state in FINAL_STATES:
            self.done = True
            if not run.finished:
                reason = status.get("error") or "the trainer stopped without a final event"
                log.write(Text(f"run {state}: {reason}", style=LOG_STYLES["error"]))
        if run.finished and run.model_path and not self._usage_asked:
            self._usage_asked = True
            self.call_engine(self.UsageRead, read_usage, run.model_path, group="usage")
        self._redraw()
        self.refresh_bindings()

    # ------------------------------------------------------------------ drawing

    @property
    def model_name(self) -> str:
        name = self.run_status.get("model_name") or self.run.model or self.run_status.get("model") or "?"
        return display_model(str(name))

    def _redraw(self) -> None:
        run = self.run
        colors = {
            "completed": "$success",
            "running": "$accent",
            "queued": "$text-muted",
            "cancelling": "$warning",
            "cancelled": "$warning",
            "failed": "$error",
            "interrupted": "$error",
        }
        head = Content.assemble(
            ("Run ", "bold"),
            run.run_id or self.run_dir.name,
            f" · {self.model_name} · ",
            ("● " + self.status, colors.get(self.status, "")),
        )
        if run.bakeoff:
            head = Content.assemble(head, " · ", (bakeoff_line(run), "$text-muted"))
        self.query_one("#run-head", Static).update(head)
        bar = self.query_one("#progress", ProgressBar)
        if run.total_steps:
            bar.update(total=run.total_steps, progress=min(run.step, run.total_steps))
        epochs = f"epoch {run.epoch}/{run.epochs}" if run.epochs else (f"epoch {run.epoch}" if run.epoch else "waiting")
        steps = f" · step {run.step}/{run.total_steps}" if run.total_steps else ""
        self.query_one("#progress-label", Label).update(epochs + steps)
        train_box = self.query_one("#train-box")
        if run.finished:
            train_box.border_title = "Results"
            self.query_one("#train-info", Static).update(results_table(run, self.status))
        else:
            train_box.border_title = "Training"
            self.query_one("#train-info", Static).update(training_content(run, self.mem_history, self.nvml))
        self.query_one("#val-box").border_title = "Validation"
        self.query_one("#val-info", Static).update(eval_table(run))
        self.query_one("#val-box").border_subtitle = best_label(run)
        if run.bakeoff and not run.evals:  # racing: the contenders' figures, until the winner's first epoch
            self.query_one("#val-box").border_title = "Bake-off"
            self.query_one("#val-info", Static).update(bakeoff_table(run))
            self.query_one("#val-box").border_subtitle = ""
        x_range = (0.0, float(run.total_steps)) if run.total_steps else None
        losses = loss_series(run)
        if run.bakeoff:  # every contender's curve, then the winner's run going on from its own
            curves = bakeoff_series(run)
            if run.losses:
                curves.append(Series("winner's run", losses[0].points, "$text"))
            self.query_one("#loss-chart", LineChart).set_series(curves)
            self.query_one("#loss-box").border_title = legend("Loss", curves)
        else:
            self.query_one("#loss-chart", LineChart).set_series(losses, x_range=x_range)
        if run.losses:
            last = run.losses[-1][1]
            val = losses[1].points[-1][1] if losses[1].points else None
            self.query_one("#loss-box").border_subtitle = f"{last:.4f}" + (
                f" · val {val:.4f}" if val is not None else ""
            )
        self.query_one("#metric-chart", LineChart).set_series(metric_series(run), y_range=(0.0, 1.0), x_range=x_range)
        per_class = per_class_table(run) if run.finished else None
        if per_class is not None:
            self.query_one("#val-box").border_title = "Per class"
            self.query_one("#val-info", Static).update(per_class)
        nxt = self.query_one("#next-steps", Static)
        if run.finished or self.done:  # done without finishing: interrupted, say how to resume
            nxt.display = True
            nxt.update(self._next_steps())
            matrix = confusion_text(run)
            self.query_one("#confusion", Static).update(
                Content(confusion_title(run) + "\n" + matrix) if matrix else Content("")
            )

    def _next_steps(self) -> Content:
        run_id = self.run.run_id or self.run_dir.name
        lines: list[Content] = []
        if self.run.model_path:
            lines.append(Content.assemble(("Model  ", "bold"), self.run.model_path))
        if self.status == "completed":
            hint = " · u: in Python" if self.usage else ""
            lines.append(Content.assemble(("Use it ", "bold"), f'modelwiz predict {run_id} "some text"', (hint, "dim")))
        elif self.status in ("cancelled", "interrupted", "failed"):
            lines.append(Content.assemble(("Resume ", "bold"), f"modelwiz resume {run_id}"))
        return Content("\n").join(lines)

    # ------------------------------------------------------------------ actions

    @property
    def active(self) -> bool:
        return not self.run.finished and self.status in ACTIVE_STATES

    def action_cancel_run(self) -> None:
        if not self.active:
            self.notify(f"This run is not running ({self.status}).", timeout=3)
            return
        run_id = self.run.run_id or self.run_dir.name

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.call_engine(self.CancelAnswered, self.services.cancel_run, self.run_dir, group="cancel")

        self.app.push_screen(
            ConfirmDialog(
                "Cancel training?",
                f"Stop run {run_id} after the current step? Its checkpoint is kept: `modelwiz resume {run_id}` "
                "continues it.",
                yes="Cancel run",
                no="Keep training",
            ),
            confirmed,
        )

    @on(CancelAnswered)
    def _cancel_answered(self, reply: CancelAnswered) -> None:
        if reply.error:
            self.notify(f"Could not cancel: {reply.error}", severity="error", timeout=5)
        elif reply.value is not False:
            self.cancel_requested = True
            self.status = "cancelling"
            self._redraw()
            self.notify("Cancel requested: the trainer stops after the current step.", timeout=4)
        else:
            self.notify("The run is no longer active.", timeout=3)

    def action_back(self) -> None:
        if self.closable:
            self.dismiss(None)
            return
        if self.standalone:
            return
        if self.active:
            self.notify("Training continues in the background; Step 5 in the palette (ctrl+p) returns here.", timeout=4)
        self.post_message(StepRequested("setup"))
