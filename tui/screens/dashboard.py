"""Step 5 · Dashboard: tails a run directory's events.jsonl and status.json.

The trainer is a separate process; this screen is only a reader. Every 0.5 s a thread worker reads
the complete events appended since the last byte offset (modelwiz.engine.events.read_events) and the
status, and posts them as one message; the screen folds them into a `RunProgress` and redraws.
Attaching late replays the whole history from offset 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Label, ProgressBar, RichLog, Static
from textual.worker import get_current_worker

from modelwiz.engine.events import read_events
from modelwiz.engine.runs import ACTIVE_STATES, FINAL_STATES, effective_state, read_status
from modelwiz.tui.screens.base import ModelwizScreen, error_text
from modelwiz.tui.screens.dialogs import ConfirmDialog, MessageDialog
from modelwiz.tui.screens.recommend import fmt_params, fmt_seconds
from modelwiz.tui.screens.state import step_label
from modelwiz.tui.widgets import LossSparkline

POLL_SECONDS = 0.5
MAX_EVAL_ROWS = 5
METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "precision": "precision", "recall": "recall",
                "val_loss": "val loss"}


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def fmt_elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


@dataclass
class RunProgress:
    """Everything the dashboard shows, folded from the event stream (no clocks: times are the
    events' own, relative to run_started)."""

    run_id: str = ""
    model: str = ""
    state: str = "queued"
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    lr: float | None = None
    samples_per_s: float | None = None
    eta_s: float | None = None
    mem_allocated_gb: float | None = None
    mem_device_gb: float | None = None
    mem_total_gb: float | None = None
    losses: list[float] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    params: int = 0
    trainable_params: int = 0
    strategy: str = ""
    device: str = ""
    precision: str = ""
    batch_size: int | None = None
    t0: float | None = None
    t_last: float | None = None
    finished: dict[str, Any] | None = None
    model_path: str = ""
    events_seen: int = 0

    @property
    def final_metrics(self) -> dict[str, Any]:
        if self.finished is None:
            return {}
        metrics = self.finished.get("metrics")
        return metrics if isinstance(metrics, dict) else {}

    @property
    def best_eval(self) -> dict[str, Any] | None:
        scored = [e for e in self.evals if _num(e.get("accuracy")) is not None]
        return max(scored, key=lambda e: e["accuracy"]) if scored else None

    def elapsed(self) -> float:
        if self.t0 is None or self.t_last is None:
            return 0.0
        return self.t_last - self.t0

    def stamp(self, ev: dict[str, Any]) -> str:
        t = _num(ev.get("time"))
        return "" if t is None or self.t0 is None else f"+{fmt_elapsed(t - self.t0)} "

    def apply(self, ev: dict[str, Any]) -> list[tuple[str, str]]:
        """Fold one event in; returns log lines as (text, level)."""
        kind = ev.get("event")
        self.events_seen += 1
        t = _num(ev.get("time"))
        if t is not None:
            if self.t0 is None:
                self.t0 = t
            self.t_last = t
        out: list[tuple[str, str]] = []
        if kind == "run_started":
            self.run_id = str(ev.get("run_id") or self.run_id)
            if self.state in ("queued", "unknown"):
                self.state = "running"
            out.append(("run resumed from checkpoint" if ev.get("resumed") else f"run started (pid {ev.get('pid')})",
                        "info"))
        elif kind == "data":
            self.labels = [str(x) for x in ev.get("labels") or []]
            out.append((f"data: {ev.get('train_size')} train / {ev.get('val_size')} validation · "
                        f"{ev.get('num_classes')} classes", "info"))
        elif kind == "model":
            if not self.model:
                self.model = display_model(str(ev.get("model") or ""))
            self.params = int(_num(ev.get("params")) or 0)
            self.trainable_params = int(_num(ev.get("trainable_params")) or 0)
            self.strategy = str(ev.get("strategy") or "")
            self.device = str(ev.get("device") or "")
            self.precision = str(ev.get("precision") or "")
            out.append((f"model {display_model(str(ev.get('model') or '?'))}: {fmt_params(self.params)}M params, "
                        f"{fmt_params(self.trainable_params)}M trainable · {self.strategy} · {self.device} · "
                        f"{self.precision}", "info"))
        elif kind == "plan":
            self.epochs = int(_num(ev.get("epochs")) or self.epochs)
            self.total_steps = int(_num(ev.get("total_steps")) or self.total_steps)
            self.batch_size = int(_num(ev.get("batch_size")) or 0) or None
            lr = _num(ev.get("learning_rate"))
            epochs = f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}"
            lr_text = f" · lr {lr:.1e}" if lr is not None else ""
            out.append((f"plan: {epochs} · batch {self.batch_size}{lr_text} · {self.total_steps} steps", "info"))
        elif kind == "epoch_started":
            self.epoch = int(_num(ev.get("epoch")) or self.epoch)
        elif kind == "step":
            self.epoch = int(_num(ev.get("epoch")) or self.epoch)
            self.step = int(_num(ev.get("step")) or self.step)
            self.total_steps = int(_num(ev.get("total_steps")) or self.total_steps)
            loss = _num(ev.get("loss"))
            if loss is not None:
                self.loss = loss
                self.losses.append(loss)
            for name in ("lr", "samples_per_s", "eta_s", "mem_allocated_gb", "mem_device_gb", "mem_total_gb"):
                value = _num(ev.get(name))
                if value is not None:
                    setattr(self, name, value)
        elif kind == "eval":
            self.evals.append(dict(ev))
            parts = [f"{METRIC_NAMES[k]} {ev[k]:.4f}" for k in ("accuracy", "macro_f1", "val_loss")
                     if _num(ev.get(k)) is not None]
            out.append((f"epoch {ev.get('epoch')} evaluated: " + " · ".join(parts), "good"))
        elif kind == "checkpoint":
            out.append((f"checkpoint saved (epoch {ev.get('epoch')}, step {ev.get('step')})", "info"))
        elif kind == "exported":
            self.model_path = str(ev.get("model_path") or "")
            out.append((f"model exported to {self.model_path}", "good"))
        elif kind == "log":
            level = str(ev.get("level") or "info").lower()
            out.append((str(ev.get("message", "")), "warning" if level.startswith("warn") else
                        "error" if level in ("error", "critical") else "info"))
        elif kind == "run_finished":
            self.finished = dict(ev)
            if ev.get("model_path") and not self.model_path:
                self.model_path = str(ev["model_path"])
            status = str(ev.get("status") or "completed")
            self.state = status
            self.eta_s = None
            error = ev.get("error")
            out.append((f"run {status}" + (f": {error}" if error else ""),
                        "good" if status == "completed" else "error"))
        return [(self.stamp(ev) + text, level) for text, level in out]


def training_table(p: RunProgress) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    dash = "—"
    loss = f"{p.loss:.4f}" if p.loss is not None else dash
    lr = f" (lr {p.lr:.1e})" if p.lr is not None else ""
    table.add_row("Loss", loss + lr)
    table.add_row("Speed", f"{p.samples_per_s:.1f} samples/s" if p.samples_per_s is not None else dash)
    if p.finished is None:
        table.add_row("ETA", fmt_seconds(p.eta_s) if p.eta_s else dash)
    else:
        table.add_row("Took", fmt_elapsed(p.elapsed()))
    table.add_row("Memory", f"{p.mem_allocated_gb:.2f} GB allocated" if p.mem_allocated_gb is not None else dash)
    if p.mem_device_gb is not None and p.mem_total_gb:
        table.add_row("Device", f"{p.mem_device_gb:.1f} of {p.mem_total_gb:.1f} GB in use")
    else:
        table.add_row("Device", dash)
    return table


def results_table(p: RunProgress) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    status = str((p.finished or {}).get("status", p.state))
    style = "bold green" if status == "completed" else "bold red"
    table.add_row("Status", Text(status, style=style))
    metrics = p.final_metrics

    def metric(key: str) -> str:
        value = _num(metrics.get(key))
        return "—" if value is None else f"{value:.4f}"

    table.add_row("Accuracy", Text(metric("accuracy"), style="bold"))
    table.add_row("Macro-F1", Text(metric("macro_f1"), style="bold"))
    table.add_row("Prec / rec", f"{metric('precision')} / {metric('recall')}")
    table.add_row("Val loss", metric("val_loss"))
    table.add_row("Took", fmt_elapsed(p.elapsed()))
    return table


def eval_table(p: RunProgress) -> Table:
    table = Table(box=None, pad_edge=False, expand=True, show_edge=False)
    for name in ("epoch", "accuracy", "macro-F1", "val loss"):
        table.add_column(name, justify="right", no_wrap=True)
    best = p.best_eval
    for ev in p.evals[-MAX_EVAL_ROWS:]:
        style = "bold" if ev is best else ""

        def cell(key: str) -> str:
            value = _num(ev.get(key))
            return f"{value:.4f}" if value is not None else "—"

        table.add_row(str(ev.get("epoch", "?")), cell("accuracy"), cell("macro_f1"), cell("val_loss"), style=style)
    if not p.evals:
        table.add_row("—", "—", "—", "—")
    return table


def display_model(model: str) -> str:
    """A short name for a model id: Hub ids stay, a local folder becomes its last meaningful part."""
    if model.startswith(("/", "~", ".")):
        parts = [x for x in model.rstrip("/").split("/") if x and x not in ("model", "models", "snapshots")]
        return parts[-1] if parts else model
    return model


def confusion_text(p: RunProgress) -> str:
    matrix = p.final_metrics.get("confusion_matrix")
    if matrix is None:
        last = next((e for e in reversed(p.evals) if e.get("confusion_matrix")), None)
        matrix = last.get("confusion_matrix") if last else None
    if not isinstance(matrix, list) or not matrix or len(matrix) > 6:
        return ""
    labels = p.labels if len(p.labels) == len(matrix) else [str(i) for i in range(len(matrix))]
    width = max(4, max(len(x) for x in labels[:6]))
    lines = ["rows: true class · columns: predicted"]
    lines.append(" " * (width + 1) + " ".join(x[:width].rjust(width) for x in labels))
    for name, row in zip(labels, matrix):
        lines.append(name[:width].ljust(width) + " " + " ".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


class DashboardScreen(ModelwizScreen):
    STEP = "dashboard"
    HELP_NOTES: ClassVar[tuple[str, ...]] = (
        "Training runs in its own process: quitting leaves it running; `modelwiz attach RUN_ID` re-opens this view.",
        "x asks the trainer to stop after the current step (a checkpoint is kept; `modelwiz resume` continues).",
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("x", "cancel_run", "Cancel run"),
        Binding("m", "confusion", "Confusion"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+b,escape", "back", "Back"),
    ]

    class Tailed(Message):
        """New events and the current status, read by the tail worker."""

        def __init__(self, start: int, end: int, events: list[dict[str, Any]], status: dict[str, Any],
                     state: str) -> None:
            super().__init__()
            self.start = start
            self.end = end
            self.events = events
            self.status = status
            self.state = state

    class CancelAnswered(Message):
        def __init__(self, ok: bool, error: str) -> None:
            super().__init__()
            self.ok = ok
            self.error = error

    def __init__(self, run_dir: Path, *, standalone: bool = False) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.standalone = standalone
        self.progress = RunProgress(run_id=self.run_dir.name)
        self.run_status: dict[str, Any] = {}
        self.byte_offset = 0
        self.done = False          # run_finished seen (or the run ended without saying so)
        self.cancel_requested = False
        self._timer = None

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
        with Vertical(id="loss-box") as box:
            box.border_title = "Training loss"
            yield LossSparkline(id="loss")
        yield Static("", id="next-steps")
        yield Static("", id="confusion")
        log = RichLog(id="log", wrap=True, markup=False, max_lines=2000, auto_scroll=True, min_width=20)
        log.border_title = "Log"
        yield log

    def on_mount(self) -> None:
        self.sub_title = (f"Dashboard · {self.run_dir.name}" if self.standalone else step_label("dashboard"))
        self.query_one("#next-steps").display = False
        self._redraw()
        self.poll()
        self._timer = self.set_interval(POLL_SECONDS, self.poll)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back" and self.standalone:
            return False
        if action == "confusion" and not confusion_text(self.progress):
            return False
        if action == "cancel_run" and not self.active:
            return None         # shown dimmed: nothing to cancel
        return True

    async def action_quit(self) -> None:
        await self.mw.action_quit()

    def action_confusion(self) -> None:
        text = confusion_text(self.progress)
        if text:
            self.app.push_screen(MessageDialog("Confusion matrix (last evaluation)", text, error=False))

    # ------------------------------------------------------------------ tailing

    def poll(self) -> None:
        if self.done:
            if self._timer is not None:
                self._timer.stop()
            return
        self._tail(self.byte_offset)

    @work(thread=True, exclusive=True, group="tail", exit_on_error=False)
    def _tail(self, offset: int) -> None:
        worker = get_current_worker()
        events, end = read_events(self.run_dir / "events.jsonl", offset)
        status = read_status(self.run_dir)
        state = effective_state(status) if status else "unknown"
        if not worker.is_cancelled:
            self.post_message(self.Tailed(offset, end, events, status, state))

    @on(Tailed)
    def _tailed(self, message: Tailed) -> None:
        if message.start != self.byte_offset:
            return      # a stale read overtaken by a newer one
        self.byte_offset = message.end
        self.run_status = message.status
        log = self.query_one("#log", RichLog)
        styles = {"info": "", "good": "green", "warning": "yellow", "error": "bold red"}
        for ev in message.events:
            for text, level in self.progress.apply(ev):
                log.write(Text(text, style=styles.get(level, "")))
        p = self.progress
        if message.status:
            p.run_id = str(message.status.get("run_id") or p.run_id)
            if message.status.get("model_name"):
                p.model = str(message.status["model_name"])
            elif not p.model and message.status.get("model"):
                p.model = display_model(str(message.status["model"]))
            if p.finished is None:
                p.state = message.state
                if self.cancel_requested and p.state in ("queued", "running"):
                    p.state = "cancelling"
        if p.finished is not None or (p.state in FINAL_STATES and message.state in FINAL_STATES):
            self.done = True
            if p.finished is None:
                reason = message.status.get("error") or "the trainer stopped without a final event"
                log.write(Text(f"run {p.state}: {reason}", style="bold red"))
        self._redraw()
        self.refresh_bindings()

    # ------------------------------------------------------------------ drawing

    def _redraw(self) -> None:
        p = self.progress
        colors = {"completed": "$success", "running": "$accent", "queued": "$text-muted", "cancelling": "$warning",
                  "cancelled": "$warning", "failed": "$error", "interrupted": "$error"}
        head = Content.assemble(("Run ", "bold"), p.run_id or self.run_dir.name,
                                f" · {p.model or '?'} · ", ("● " + p.state, colors.get(p.state, "")))
        self.query_one("#run-head", Static).update(head)
        bar = self.query_one("#progress", ProgressBar)
        if p.total_steps:
            bar.update(total=p.total_steps, progress=min(p.step, p.total_steps))
        epochs = f"epoch {p.epoch}/{p.epochs}" if p.epochs else (f"epoch {p.epoch}" if p.epoch else "waiting")
        steps = f" · step {p.step}/{p.total_steps}" if p.total_steps else ""
        self.query_one("#progress-label", Label).update(epochs + steps)
        train_box = self.query_one("#train-box")
        if p.finished is None:
            train_box.border_title = "Training"
            self.query_one("#train-info", Static).update(training_table(p))
        else:
            train_box.border_title = "Results"
            self.query_one("#train-info", Static).update(results_table(p))
        self.query_one("#val-info", Static).update(eval_table(p))
        sparkline = self.query_one("#loss", LossSparkline)
        if len(sparkline.values) != len(p.losses):
            sparkline.set_values(p.losses)
        if p.loss is not None:
            lo, hi = min(p.losses), max(p.losses)
            self.query_one("#loss-box").border_subtitle = f"last {p.loss:.4f} · min {lo:.4f} · max {hi:.4f}"
        nxt = self.query_one("#next-steps", Static)
        if p.finished is not None:
            nxt.display = True
            nxt.update(self._next_steps())
            self.query_one("#confusion", Static).update(Content(confusion_text(p)))

    def _next_steps(self) -> Content:
        p = self.progress
        run_id = p.run_id or self.run_dir.name
        status = (p.finished or {}).get("status", p.state)
        lines: list[Content] = []
        if p.model_path:
            lines.append(Content.assemble(("Model  ", "bold"), p.model_path))
        if status == "completed":
            lines.append(Content.assemble(("Use it ", "bold"), f'modelwiz predict {run_id} "some text"'))
        elif status in ("cancelled", "interrupted", "failed"):
            lines.append(Content.assemble(("Resume ", "bold"), f"modelwiz resume {run_id}"))
        return Content("\n").join(lines)

    # ------------------------------------------------------------------ actions

    @property
    def active(self) -> bool:
        return self.progress.finished is None and self.progress.state in ACTIVE_STATES

    def action_cancel_run(self) -> None:
        if not self.active:
            self.notify(f"This run is not running ({self.progress.state}).", timeout=3)
            return
        run_id = self.progress.run_id or self.run_dir.name

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._cancel()

        self.app.push_screen(ConfirmDialog(
            "Cancel training?",
            f"Stop run {run_id} after the current step? Its checkpoint is kept: `modelwiz resume {run_id}` "
            "continues it.", yes="Cancel run", no="Keep training"), confirmed)

    @work(thread=True, exclusive=True, group="cancel", exit_on_error=False)
    def _cancel(self) -> None:
        try:
            result, error = self.mw.services.cancel_run(self.run_dir), ""
        except Exception as exc:
            result, error = False, error_text(exc)
        self.post_message(self.CancelAnswered(result is not False, error))

    @on(CancelAnswered)
    def _cancel_answered(self, message: CancelAnswered) -> None:
        if message.error:
            self.notify(f"Could not cancel: {message.error}", severity="error", timeout=5)
        elif message.ok:
            self.cancel_requested = True
            self.progress.state = "cancelling"
            self._redraw()
            self.notify("Cancel requested: the trainer stops after the current step.", timeout=4)
        else:
            self.notify("The run is no longer active.", timeout=3)

    def action_back(self) -> None:
        if self.standalone:
            return
        if self.active:
            self.notify("Training continues in the background; Step 5 in the palette (ctrl+p) returns here.",
                        timeout=4)
        self.mw.goto_step("setup")
