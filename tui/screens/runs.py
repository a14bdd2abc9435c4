"""Runs: every run in the runs folder with its state, model, best metric, start and duration.

enter attaches (the dashboard replays the full history, then follows live), `r` resumes an
interrupted, cancelled or failed run, `x` cancels a running one; both ask first. The list is read
in a thread worker (each run's events folded by the engine's reducer, so "best" and "took" mean
what they mean on the dashboard) and re-read every few seconds while any run is active.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.widget import Widget
from textual.widgets import DataTable, Static

from modelwiz.engine.runs import ACTIVE_STATES, RunInfo, list_runs, run_state
from modelwiz.tui.base import EngineReply, ModelwizScreen
from modelwiz.tui.dialogs import ConfirmDialog
from modelwiz.tui.format import DASH, display_model, fmt_elapsed, fmt_metric, metric_name
from modelwiz.tui.messages import RunOpened
from modelwiz.tui.state import Services

REFRESH_SECONDS = 2.0
RESUMABLE_STATES = ("cancelled", "interrupted", "failed")
STATE_STYLES = {
    "completed": "green",
    "running": "bold",
    "queued": "dim",
    "cancelling": "yellow",
    "cancelled": "yellow",
    "failed": "bold red",
    "interrupted": "red",
}
# (key, label, width, right-aligned); the model column takes what is left. Cells carry their own
# one-space gap (the table's padding is 0), so six columns and a 16-cell model name fit 80 columns.
COLUMNS: tuple[tuple[str, str, int, bool], ...] = (
    ("run", "Run", 20, False),
    ("state", "State", 11, False),
    ("model", "Model", 0, False),
    ("best", "Best", 8, True),
    ("started", "Started", 11, False),
    ("took", "Took", 7, True),
)
SHORT_METRICS = {"macro_f1": "F1", "accuracy": "acc", "val_loss": "loss"}


@dataclass
class RunRow:
    info: RunInfo
    took: float  # seconds from the run's first event to its latest (the events' own clock)

    @property
    def best(self) -> float | None:
        value = self.info.metrics.get(self.info.metric)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def read_runs(runs_dir: Path) -> list[RunRow]:
    """Every run in `runs_dir`, newest first."""
    rows = []
    for info in list_runs(runs_dir):
        state = run_state(info.run_dir)
        took = state.last_time - state.started if state.started is not None and state.last_time is not None else 0.0
        rows.append(RunRow(info, max(0.0, took)))
    rows.sort(key=lambda r: (r.info.created, r.info.run_id), reverse=True)
    return rows


def fmt_started(created: float, *, full: bool = False) -> str:
    if not created:
        return DASH
    return time.strftime("%Y-%m-%d %H:%M" if full else "%m-%d %H:%M", time.localtime(created))


def best_cell(row: RunRow) -> str:
    if row.best is None:
        return DASH
    return f"{row.best:.3f} {SHORT_METRICS.get(row.info.metric, row.info.metric)}"


def details_content(row: RunRow | None, runs_dir: Path) -> Content:
    if row is None:
        return Content(f"No runs in {runs_dir} yet. Start one from the training setup (ctrl+r) or with --batch.")
    info = row.info
    progress = f" · epoch {info.epoch or 0}/{info.epochs}" if info.epochs else ""
    best = (
        f"best {metric_name(info.metric)} {fmt_metric(row.best)} (epoch {info.best_epoch})"
        if row.best is not None
        else "no evaluation yet"
    )
    figures = " · ".join(
        f"{metric_name(k)} {fmt_metric(info.metrics.get(k))}"
        for k in ("accuracy", "macro_f1")
        if k in info.metrics and k != info.metric
    )
    if info.state in ACTIVE_STATES:
        keys = "enter: watch it live · x: cancel it"
    elif info.state in RESUMABLE_STATES:
        keys = "enter: its dashboard · r: resume from its last checkpoint"
    else:
        keys = "enter: its dashboard and results"
    return Content.assemble(
        (info.run_id, "bold"),
        f" · {info.state}{progress} · took {fmt_elapsed(row.took)}\n",
        f"{display_model(info.model)} · {best}" + (f" · {figures}" if figures else "") + "\n",
        (f"started {fmt_started(info.created, full=True)} · {info.run_dir}", "dim"),
        "\n",
        (keys, "italic"),
    )


class RunsScreen(ModelwizScreen):
    """The runs list. `closable`: opened over another screen (ctrl+b goes back to it)."""

    HELP_NOTES: ClassVar[tuple[str, ...]] = (
        "Every run in the runs folder, newest first; the list follows running runs every few seconds.",
        "enter opens a run's dashboard: its whole history so far, then live while it trains.",
        "r resumes an interrupted or cancelled run from its last checkpoint; x asks a running one to stop "
        "(its checkpoint is kept). Both ask first.",
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "attach", "Attach", priority=True),  # over the table's own enter
        Binding("r", "resume", "Resume"),
        Binding("x", "cancel_run", "Cancel run"),
        Binding("f5", "refresh", "Refresh"),
        Binding("ctrl+b,escape", "back", "Back"),
        Binding("q", "quit", "Quit"),
    ]

    class Listed(EngineReply):
        """`value`: the runs, newest first."""

    class Resumed(EngineReply):
        """`tag`: the run directory resumed."""

    class CancelAnswered(EngineReply):
        """`value`: what cancel_run returned (False: the run was no longer active); `tag`: its directory."""

    def __init__(self, runs_dir: Path, services: Services, *, closable: bool = True) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.services = services
        self.closable = closable
        self.rows: list[RunRow] = []
        self.loaded = False
        self._model_width = 0

    def compose_body(self) -> Iterable[Widget]:
        yield Static("", id="runs-status", classes="status-line")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True, cell_padding=0)
        yield Static("", id="run-details", classes="panel")

    def on_mount(self) -> None:
        self.sub_title = "Runs"
        self.query_one("#run-details").border_title = "Run"
        self.query_one("#runs-status", Static).update(f"Reading {self.runs_dir} …")
        self.action_refresh()
        self.set_interval(REFRESH_SECONDS, self._tick)
        self.query_one("#runs", DataTable).focus()

    def on_screen_resume(self) -> None:
        if self.loaded:
            self.action_refresh()

    def on_resize(self) -> None:
        if self._model_width != self._wanted_model_width():
            self._fill()

    # ------------------------------------------------------------------ reading

    def _tick(self) -> None:
        if any(r.info.state in ACTIVE_STATES for r in self.rows):
            self.action_refresh()

    def action_refresh(self) -> None:
        self.call_engine(self.Listed, read_runs, self.runs_dir, group="runs")

    @on(Listed)
    def _listed(self, reply: Listed) -> None:
        status = self.query_one("#runs-status", Static)
        if reply.error:
            status.update(Content(f"Cannot read {self.runs_dir}: {reply.error}"))
            return
        self.rows = reply.value
        self.loaded = True
        active = sum(r.info.state in ACTIVE_STATES for r in self.rows)
        n = len(self.rows)
        status.update(
            Content(
                f"{n} run{'s' if n != 1 else ''}" + (f" · {active} active" if active else "") + f" · in {self.runs_dir}"
            )
        )
        self._fill()

    # ------------------------------------------------------------------ drawing

    def _wanted_model_width(self) -> int:
        fixed = sum(width + 1 for key, _, width, _ in COLUMNS if key != "model") + 1 + 2
        return max(12, min(40, (self.size.width or 80) - fixed))

    def _fill(self) -> None:
        table = self.query_one("#runs", DataTable)
        keep = self.highlighted.info.run_id if self.highlighted else None
        self._model_width = self._wanted_model_width()
        table.clear(columns=True)
        widths = {key: width or self._model_width for key, _, width, _ in COLUMNS}
        right = {key for key, _, _, r in COLUMNS if r}

        def cell(key: str, text: str, style: str = "") -> Text:
            w = widths[key]
            if len(text) > w:
                text = text[: w - 1] + "…"
            return Text(" " + (text.rjust(w) if key in right else text), style=style)

        for key, label, _, _ in COLUMNS:
            table.add_column(cell(key, label), key=key, width=widths[key] + 1)
        for row in self.rows:
            info = row.info
            table.add_row(
                cell("run", info.run_id),
                cell("state", info.state, STATE_STYLES.get(info.state, "")),
                cell("model", display_model(info.model)),
                cell("best", best_cell(row)),
                cell("started", fmt_started(info.created)),
                cell("took", fmt_elapsed(row.took)),
                key=info.run_id,
            )
        if keep is not None and any(r.info.run_id == keep for r in self.rows):
            table.move_cursor(row=table.get_row_index(keep), animate=False)
        self._show_details()
        self.refresh_bindings()

    @property
    def highlighted(self) -> RunRow | None:
        table = self.query_one("#runs", DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:
            return None
        return next((r for r in self.rows if r.info.run_id == key), None)

    def _show_details(self) -> None:
        self.query_one("#run-details", Static).update(details_content(self.highlighted, self.runs_dir))

    @on(DataTable.RowHighlighted, "#runs")
    def _row_highlighted(self) -> None:
        self._show_details()
        self.refresh_bindings()

    # ------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        row = self.highlighted
        if action == "back":
            return self.closable
        if action == "attach":
            return True if row is not None else None
        if action == "resume":
            return True if row is not None and row.info.state in RESUMABLE_STATES else None
        if action == "cancel_run":
            return True if row is not None and row.info.state in ("queued", "running") else None
        return True

    def action_attach(self) -> None:
        row = self.highlighted
        if row is not None:
            self.post_message(RunOpened(row.info.run_dir))

    def action_resume(self) -> None:
        row = self.highlighted
        if row is None:
            return
        run_id = row.info.run_id
        if row.info.state not in RESUMABLE_STATES:
            self.notify(f"Run {run_id} is {row.info.state}: only a stopped run can be resumed.", timeout=3)
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.call_engine(
                    self.Resumed, self.services.resume_run, row.info.run_dir, group="resume", tag=row.info.run_dir
                )

        self.app.push_screen(
            ConfirmDialog(
                "Resume this run?",
                f"Continue run {run_id} ({display_model(row.info.model)}, {row.info.state}) from its last "
                "checkpoint, with the same data order and random state? It trains in the background.",
                yes="Resume",
                no="Not now",
            ),
            confirmed,
        )

    @on(Resumed)
    def _resumed(self, reply: Resumed) -> None:
        if reply.error:
            self.notify(f"Could not resume: {reply.error}", severity="error", timeout=6)
        else:
            self.notify(f"Run {Path(reply.tag).name} resumed: enter watches it.", timeout=4)
        self.action_refresh()

    def action_cancel_run(self) -> None:
        row = self.highlighted
        if row is None:
            return
        run_id = row.info.run_id
        if row.info.state not in ("queued", "running"):
            self.notify(f"Run {run_id} is not running ({row.info.state}).", timeout=3)
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.call_engine(
                    self.CancelAnswered,
                    self.services.cancel_run,
                    row.info.run_dir,
                    group="cancel",
                    tag=row.info.run_dir,
                )

        self.app.push_screen(
            ConfirmDialog(
                "Cancel training?",
                f"Stop run {run_id} after the current step? Its checkpoint is kept: r here, or "
                f"`modelwiz resume {run_id}`, continues it.",
                yes="Cancel run",
                no="Keep training",
            ),
            confirmed,
        )

    @on(CancelAnswered)
    def _cancel_answered(self, reply: CancelAnswered) -> None:
        if reply.error:
            self.notify(f"Could not cancel: {reply.error}", severity="error", timeout=5)
        elif reply.value is False:
            self.notify("The run is no longer active.", timeout=3)
        else:
            self.notify(f"Cancel requested: run {Path(reply.tag).name} stops after the current step.", timeout=4)
        self.action_refresh()

    def action_back(self) -> None:
        if self.closable:
            self.dismiss(None)

    async def action_quit(self) -> None:
        await self.app.action_quit()
