"""Step 3 · Models: the ranked table, sorting, marking, details pane with reasons, comparison."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Input, LoadingIndicator, ProgressBar, Static
from textual.worker import Worker, get_current_worker

from modelwiz.engine.recommend import Ranked, explain_empty
from modelwiz.engine.workflow import Recommendation
from modelwiz.tui.base import EngineReply, StepScreen
from modelwiz.tui.dialogs import ChoiceDialog, ColumnsDialog, ConfirmDialog, MessageDialog
from modelwiz.tui.format import error_text, fmt_params, fmt_seconds
from modelwiz.tui.messages import BakeoffChanged, ModelChosen, RecommendationMade
from modelwiz.tui.probe import ProbeStopped
from modelwiz.tui.state import Services, WizardState

MAX_COMPARE = 4


def _logme(r: Ranked) -> float:
    """LogME when probed; a failed probe sorts below every figure, a model not probed after it."""
    if r.probe is None:
        return float("-inf")
    value = r.probe.get("logme")
    return float(value) if value is not None and not r.probe.get("error") else -1e300


# column key -> (header, sort label, sort key on (original rank, Ranked), default descending?)
# every column sorts; a column's sort key is the column's own
COLUMN_SPECS: dict[str, tuple[str, str, Callable[[tuple[int, Ranked]], object], bool]] = {
    "rank": ("#", "rank", lambda ir: ir[0], False),
    "name": ("Model", "name", lambda ir: ir[1].candidate.name.lower(), False),
    "source": ("Source", "source", lambda ir: ir[1].candidate.source, False),
    "params": ("Params", "size", lambda ir: ir[1].candidate.params, False),
    "memory": ("Mem GB", "memory", lambda ir: ir[1].plan.memory.total_gb, False),
    "fits": ("Fits", "fits", lambda ir: ir[1].fits, True),
    "score": ("Score", "score", lambda ir: ir[1].ranking_score, True),
    "logme": ("LogME", "transferability (LogME)", lambda ir: _logme(ir[1]), True),
    "epoch": ("Epoch", "time/epoch", lambda ir: ir[1].plan.epoch_seconds, False),
    "license": ("License", "license", lambda ir: ir[1].candidate.license, False),
    "disk": ("Disk", "on disk", lambda ir: ir[1].candidate.on_disk, True),
}
SORTS: dict[str, tuple[str, Callable[[tuple[int, Ranked]], object], bool]] = {
    key: (label, fn, desc) for key, (_, label, fn, desc) in COLUMN_SPECS.items()
}
# the order S cycles through (the sort menu, s, lists every column)
SORT_ORDER = ("rank", "score", "params", "memory", "epoch", "name", "license", "source", "fits", "disk", "logme")
COLUMNS = tuple((key, spec[0]) for key, spec in COLUMN_SPECS.items())
WIDE_ONLY = {"source", "epoch"}
WIDE_TABLE = 100  # terminal width from which every column is shown
PROBE_TOP_K = 5  # models probed when none are marked (as `recommend --probe`)
BAKEOFF_MAX_ASKED = 8  # the largest bake-off offered when none are marked
MARK = "●"


def details_content(r: Ranked, notes: list[str] | None = None) -> Content:
    """The highlighted model's head line, id and reasons; then what the ranking's sources said
    (`notes`: the Hub searched, cached, unreachable or not asked, and why)."""
    c = r.candidate
    head = f"{c.name} · {c.source} · {c.arch or 'unknown arch'} · {fmt_params(c.params)}M params · license {c.license}"
    lines = [Content.styled(head, "bold"), Content.styled(c.id, "$text-muted")]
    for reason in r.reasons:
        lines.append(Content("• " + reason))
    for note in notes or []:
        lines.append(Content.styled("sources: " + note, "$text-muted"))
    return Content("\n").join(lines)


class RecommendScreen(StepScreen):
    STEP = "recommend"
    FOOTER_PALETTE = False  # the footer needs the room for this screen's keys
    HELP_NOTES: ClassVar[tuple[str, ...]] = (
        "Models that fit the memory budget come first; the details pane says why each is where it is.",
        "s opens the sort menu (every column; choosing the current one again reverses it), S moves to the "
        "next column, r reverses; v chooses the columns shown; / filters by words in the name, id, "
        "source, license or architecture (enter or Esc returns to the table); space marks models, c compares "
        "the marked ones.",
        f"p probes the marked models (none marked: the top {PROBE_TOP_K}) on a sample of your data: "
        "transferability (LogME, H-score) from each model's frozen features, in a process of its own; "
        "the probed models are then re-ranked among themselves by LogME. x stops a probe.",
        "b sets a bake-off for the run ([train] bakeoff): with models marked, they race the one you "
        "choose; with none, it asks how many of the best-ranked that fit race. The contenders train "
        "briefly by successive halving and the winner trains on (a run too short to race compares "
        "them on LogME instead). b again turns it off.",
        "enter (or ctrl+n) chooses the highlighted model and moves on to the training setup.",
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "choose", "Choose", priority=True),
        # while a probe runs its stop key comes first: the footer's end is cut off at 80 columns
        Binding("x", "stop_probe", "Stop probe", tooltip="Stop the probe"),
        Binding("space", "mark", "Mark", key_display="␣"),
        Binding("c", "compare", "Compare"),
        Binding("s", "sort_menu", "Sort"),
        Binding("S", "sort", "Next sort", show=False),
        Binding("r", "reverse", "Reverse", show=False),
        Binding("v", "columns", "Columns"),
        Binding("slash", "filter", "Filter"),
        Binding("p", "probe", "Probe"),
        Binding("b", "bakeoff", "Bake-off"),
        Binding("f5", "rerank", "Re-rank", show=False),
        Binding("ctrl+n", "next_step", "Next", show=False),
    ]

    sort_key: str = "rank"
    reverse: bool = False
    filter_text: str = ""

    class RankingReply(EngineReply):
        """`value`: the Recommendation; `tag`: the ranking key it was asked for."""

    class ProbeProgress(Message):
        """The probe's latest progress (only the latest counts)."""

        bubble = False

        def __init__(self, done: float, total: float, label: str) -> None:
            super().__init__()
            self.done, self.total, self.label = done, total, label

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, RecommendScreen.ProbeProgress)

    class ProbeReply(EngineReply):
        """`value`: the probe results (dicts, best LogME first); `tag`: the ids asked for."""

    def __init__(
        self, state: WizardState, services: Services, *, compare: Callable[[list[Ranked]], Screen[str | None]]
    ) -> None:
        """`compare` makes the comparison screen for marked models (dismissed with a model id)."""
        super().__init__(state, services)
        self.compare = compare
        self.rows: list[Ranked] = []  # in ranked order
        self.marked: list[str] = []  # candidate ids, in marking order
        self.error = ""
        self._wide = False
        self.columns_chosen: list[str] | None = None  # None: chosen by the terminal's width
        self._shown_columns: tuple[str, ...] = ()
        self._prior: list[Ranked] = []  # the ranking as the engine made it (before any probe)
        self._notes: list[str] = []  # what the ranking's sources said (the Hub searched or not, and why)
        self.probe_results: dict[str, dict] = {}  # model id -> the probe's result, for this data
        self._probe_data: object = None  # the TaskData the results were computed on
        self.probe_worker: Worker[None] | None = None
        self.probe_failures: list[str] = []

    def compose_body(self) -> Iterable[Widget]:
        yield Static("", id="rec-status", classes="status-line")
        yield Input(id="model-filter", compact=True, placeholder="/ filters by name, id, source, license, arch")
        with Horizontal(id="probe-box"):
            yield Static("", id="probe-label")
            yield ProgressBar(id="probe-bar", show_eta=False)
        yield LoadingIndicator(id="rec-loading")
        yield DataTable(id="models", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="details-box") as box:
            box.border_title = "Why"
            yield Static("", id="details")

    def on_mount(self) -> None:
        self.query_one("#rec-loading").display = False
        self.query_one("#probe-box").display = False
        self._set_columns()

    def on_resize(self) -> None:
        if self._wide != (self.size.width >= WIDE_TABLE):
            self._set_columns()
            self._fill()

    def visible_columns(self) -> tuple[str, ...]:
        """The columns chosen with v, else: all from WIDE_TABLE cells up (at 80 columns source and
        time/epoch move to the details pane so the table fits without scrolling sideways), LogME
        once a probe has given one (then, at 80 columns, in the place of on disk, which the details
        pane also says)."""
        if self.columns_chosen is not None:
            return tuple(key for key, _ in COLUMNS if key in self.columns_chosen)
        probed = any(r.probe for r in self.rows)
        narrow = set() if self._wide else WIDE_ONLY | ({"disk"} if probed else set())
        return tuple(key for key, _ in COLUMNS if key not in narrow and (key != "logme" or probed))

    def _set_columns(self) -> None:
        self._wide = self.size.width >= WIDE_TABLE
        table = self.query_one("#models", DataTable)
        table.clear(columns=True)
        self._shown_columns = self.visible_columns()
        labels = dict(COLUMNS)
        for key in self._shown_columns:
            table.add_column(labels[key], key=key)

    def on_screen_resume(self) -> None:
        rec = self.state.recommendation
        if rec is None or self.state.recommendation_key != self.state.ranking_key():
            self.action_rerank()
        elif not self.rows:
            self._show_ranking(rec)  # ranked before this screen existed
        self.query_one("#models", DataTable).focus()

    # ------------------------------------------------------------------ ranking

    def action_rerank(self) -> None:
        state = self.state
        if state.data is None or state.hardware is None:
            return
        self.query_one("#rec-loading").display = True
        self.query_one("#models").display = False
        self._status("Ranking models for your data and hardware …", "busy")
        self.call_engine(
            self.RankingReply,
            self.services.recommend,
            copy.deepcopy(state.config),
            state.data,
            state.hardware,
            group="recommend",
            tag=state.ranking_key(),
        )

    @on(RankingReply)
    def _ranking_done(self, reply: RankingReply) -> None:
        if reply.tag != self.state.ranking_key():
            return
        self.query_one("#rec-loading").display = False
        self.query_one("#models").display = True
        if reply.value is None:
            self.rows = []
            self._fill()
            self._status(reply.error, "error")
            return
        self._prior = reply.value.ranked
        rec = self._with_probes(reply.value)
        self.post_message(RecommendationMade(rec, reply.tag))
        self._show_ranking(rec)

    def _show_ranking(self, rec: Recommendation) -> None:
        if not self._prior:  # ranked before this screen existed
            self._prior = rec.ranked
        self.rows = list(rec.ranked)
        self._notes = list(rec.notes)
        ids = {r.candidate.id for r in self.rows}
        self.marked = [m for m in self.marked if m in ids]
        chosen = self.state.chosen.candidate.id if self.state.chosen else None
        self._fill(keep=chosen)
        if not self.rows:
            self._status(explain_empty(self.state.config), "error")
        else:
            self._update_status()

    # ------------------------------------------------------------------ table

    def _status(self, text: str, kind: str) -> None:
        line = self.query_one("#rec-status", Static)
        icon = {"error": "✗ ", "busy": "… ", "info": ""}[kind]
        line.update(Content(icon + text))
        line.set_classes(f"status-line -{kind}")
        self.error = text if kind == "error" else ""

    def _update_status(self, bakeoff: int | None = None) -> None:
        """`bakeoff`: the `[train] bakeoff` just asked for (the app's state has it a moment later)."""
        if not self.rows:
            return
        fits = sum(r.fits for r in self.rows)
        plan = self.rows[0].plan
        label = SORTS[self.sort_key][0]
        arrow = "↑" if self._ascending() else "↓"
        marked = f" · {len(self.marked)} marked" if self.marked else ""
        k = self.state.config.train.bakeoff if bakeoff is None else bakeoff
        if k:
            marked += f" · bake-off {k}"
        shown = len(self.sorted_rows())
        if shown != len(self.rows):
            marked += f" · {shown} shown"
        self._status(
            f"{len(self.rows)} models · {fits} fit {plan.budget_gb:.1f} GB on {plan.device} · "
            f"sorted by {label} {arrow}{marked}",
            "info",
        )

    def _ascending(self) -> bool:
        descending = SORTS[self.sort_key][2]
        return descending == self.reverse

    def sorted_rows(self) -> list[Ranked]:
        """The rows the filter leaves, in the chosen order."""
        _, key, descending = SORTS[self.sort_key]
        order = sorted(enumerate(self.rows), key=key, reverse=descending != self.reverse)
        return [r for _, r in order if self._matches(r)]

    def _matches(self, r: Ranked) -> bool:
        words = self.filter_text.lower().split()
        c = r.candidate
        haystack = " ".join((c.id, c.name, c.source, c.license, c.arch or "")).lower()
        return all(w in haystack for w in words)

    # ------------------------------------------------------------------ filter

    def action_filter(self) -> None:
        self.query_one("#model-filter", Input).focus()

    @on(Input.Changed, "#model-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self._fill()
        self._update_status()

    @on(Input.Submitted, "#model-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one("#models", DataTable).focus()

    def _in_filter(self) -> bool:
        return self.focused is not None and self.focused.id == "model-filter"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # typing in the filter: space and letters are text, not the table's keys
        if action in _TABLE_KEYS and self._in_filter():
            return False
        if action == "stop_probe":
            return self.probing
        if action == "probe" and self.probing:
            return None  # shown, greyed: one probe at a time
        return True

    def action_previous_step(self) -> None:
        if self._in_filter():  # Esc or ctrl+b in the filter: back to the table
            self.query_one("#models", DataTable).focus()
            return
        super().action_previous_step()

    def _row_cells(self, rank: int, r: Ranked) -> list[Text]:
        c, plan = r.candidate, r.plan

        def cell(text: str, width: int = 0, style: str = "") -> Text:
            # numbers are right-aligned by padding: DataTable cells do not honour Text.justify
            return Text(text.rjust(width) if width else text, style=style, no_wrap=True, overflow="ellipsis")

        mark = MARK if c.id in self.marked else " "
        width = 30 if self._wide else 20
        name = c.name if len(c.name) <= width else c.name[: width - 1] + "…"
        lic = c.license if len(c.license) <= 12 else c.license[:11] + "…"
        cells = {
            "rank": Text.assemble((mark, "bold"), str(rank).rjust(2), no_wrap=True),
            "name": cell(name),
            "source": cell(c.source),
            "params": cell(fmt_params(c.params), 6),
            "memory": cell(f"{plan.memory.total_gb:.1f}/{plan.budget_gb:.0f}", 6),
            "fits": cell(" ✓", style="green") if r.fits else cell(" ✗", style="bold red"),
            "score": cell(f"{r.ranking_score:.3f}", 5),
            "logme": cell(self._logme_text(r), 6),
            "epoch": cell(fmt_seconds(plan.epoch_seconds), 6),
            "license": cell(lic),
            "disk": cell("yes" if c.on_disk else "no"),
        }
        return [cells[key] for key in self._shown_columns]

    @staticmethod
    def _logme_text(r: Ranked) -> str:
        if r.probe is None:
            return "–"
        if r.probe.get("error") or r.probe.get("logme") is None:
            return "failed"
        return f"{r.probe['logme']:.2f}"

    def _fill(self, keep: str | None = None) -> None:
        table = self.query_one("#models", DataTable)
        if keep is None and table.row_count and self.highlighted is not None:
            keep = self.highlighted.candidate.id
        if self.visible_columns() != self._shown_columns:
            self._set_columns()
        table.clear()
        rank_of = {r.candidate.id: i + 1 for i, r in enumerate(self.rows)}
        shown = self.sorted_rows()
        for r in shown:
            table.add_row(*self._row_cells(rank_of[r.candidate.id], r), key=r.candidate.id)
        if keep is not None and keep in {r.candidate.id for r in shown}:
            table.move_cursor(row=table.get_row_index(keep), animate=False)
        self._show_details()

    @property
    def highlighted(self) -> Ranked | None:
        table = self.query_one("#models", DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:
            return None
        return next((r for r in self.rows if r.candidate.id == key), None)

    def _show_details(self) -> None:
        r = self.highlighted
        self.query_one("#details", Static).update(details_content(r, self._notes) if r else "")
        self.query_one("#details-box", VerticalScroll).scroll_home(animate=False)

    @on(DataTable.RowHighlighted, "#models")
    def _row_highlighted(self) -> None:
        self._show_details()

    # ------------------------------------------------------------------ actions

    def action_sort_menu(self) -> None:
        arrow = "↑" if self._ascending() else "↓"
        options = [
            (key, f"{SORTS[key][0]}  {arrow} (again: reverse)" if key == self.sort_key else SORTS[key][0])
            for key in SORT_ORDER
        ]

        def chosen(key: str | None) -> None:
            if key is not None:
                self.sort_by(key)

        self.app.push_screen(ChoiceDialog("Sort the models by", options, self.sort_key), chosen)

    def sort_by(self, key: str) -> None:
        """Sort by column `key`; the current column again reverses the order."""
        if key == self.sort_key:
            self.reverse = not self.reverse
        else:
            self.sort_key, self.reverse = key, False
        self._fill()
        self._update_status()

    def action_columns(self) -> None:
        labels = {key: SORTS[key][0] for key, _ in COLUMNS}
        options = [(key, labels[key], key in self.visible_columns()) for key, _ in COLUMNS]

        def chosen(keys: list[str] | None) -> None:
            if keys is not None:
                self.columns_chosen = list(keys) or ["rank", "name"]
                self._fill()

        self.app.push_screen(ColumnsDialog("Columns shown", options), chosen)

    def action_sort(self) -> None:
        i = SORT_ORDER.index(self.sort_key)
        self.sort_key = SORT_ORDER[(i + 1) % len(SORT_ORDER)]
        self.reverse = False
        self._fill()
        self._update_status()

    def action_reverse(self) -> None:
        self.reverse = not self.reverse
        self._fill()
        self._update_status()

    def action_mark(self) -> None:
        r = self.highlighted
        if r is None:
            return
        cid = r.candidate.id
        if cid in self.marked:
            self.marked.remove(cid)
        else:
            self.marked.append(cid)
        table = self.query_one("#models", DataTable)
        rank = 1 + next(i for i, x in enumerate(self.rows) if x.candidate.id == cid)
        if "rank" in self._shown_columns:
            table.update_cell(cid, "rank", self._row_cells(rank, r)[self._shown_columns.index("rank")])
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1, animate=False)
        self._update_status()

    def action_compare(self) -> None:
        by_id = {r.candidate.id: r for r in self.rows}
        models = [by_id[m] for m in self.marked if m in by_id]
        if len(models) < 2:
            self.notify(
                f"Mark at least two models with space to compare them ({len(models)} marked).",
                severity="warning",
                timeout=4,
            )
            return
        if len(models) > MAX_COMPARE:
            self.notify(f"Comparing the first {MAX_COMPARE} marked models.", timeout=3)
            models = models[:MAX_COMPARE]

        def picked(model_id: str | None) -> None:
            if model_id and model_id in by_id:
                self._choose_checked(by_id[model_id])

        self.app.push_screen(self.compare(models), picked)

    def action_next_step(self) -> None:
        self.action_choose()

    def action_choose(self) -> None:
        if self._in_filter():  # enter in the filter: back to the table, filtered
            self.query_one("#models", DataTable).focus()
            return
        r = self.highlighted
        if r is None:
            self.notify("No model to choose yet.", severity="warning", timeout=3)
            return
        self._choose_checked(r)

    def _choose_checked(self, r: Ranked) -> None:
        """Choose `r`, asking first when its predicted memory exceeds the budget."""
        if r.fits:
            self._choose(r)
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._choose(r)

        self.app.push_screen(
            ConfirmDialog(
                "Model may not fit",
                f"{r.candidate.name}: predicted training peak {r.plan.memory.total_gb:.1f} GB exceeds the "
                f"{r.plan.budget_gb:.1f} GB budget. Choose it anyway? (Lower the batch size in the next step.)",
            ),
            confirmed,
        )

    def _choose(self, r: Ranked) -> None:
        self.post_message(ModelChosen(r))

    # ------------------------------------------------------------------ transferability probe

    @property
    def probing(self) -> bool:
        return self.probe_worker is not None and self.probe_worker.is_running

    def probe_targets(self) -> list[str]:
        """The marked models, in the table's order; none marked: the top PROBE_TOP_K on disk
        (or downloadable when not offline), as `recommend --probe` picks them."""
        if self.marked:
            order = {r.candidate.id: i for i, r in enumerate(self.rows)}
            return sorted((m for m in self.marked if m in order), key=order.__getitem__)
        offline = bool(self.state.config.constraints.offline)
        return [r.candidate.id for r in self.rows if r.candidate.on_disk or not offline][:PROBE_TOP_K]

    def action_probe(self) -> None:
        if self.probing:
            return
        if not self.rows or self.state.data is None:
            self.notify("No models to probe yet.", severity="warning", timeout=3)
            return
        ids = self.probe_targets()
        if not ids:
            self.notify("None of these models is on disk, and the constraints say offline.", severity="warning")
            return
        config = copy.deepcopy(self.state.config)
        data_now = self.state.data
        probe = self.services.probe
        screen = self

        def run() -> None:
            worker = get_current_worker()
            sizes: dict[str, int] = {"models": len(ids), "examples": 0}

            def on_event(ev: dict) -> None:
                kind = ev.get("event")
                if kind == "probe_started":
                    sizes["models"], sizes["examples"] = len(ev["models"]), ev["examples"]
                    screen.post_message(screen.ProbeProgress(0, sizes["models"] * ev["examples"], "loading …"))
                elif kind == "log":  # waiting for the CPU's speed benchmark (engine/transfer.py)
                    screen.post_message(screen.ProbeProgress(0, 0, "waiting for the CPU speed benchmark …"))
                elif kind in ("probe_model", "probe_progress"):
                    per = sizes["examples"] or 1
                    done = (ev["index"] - 1) * per + (ev.get("done") or 0)
                    name = ev["model"].split("/")[-1]
                    label = f"{ev['index']}/{sizes['models']} {name}"
                    screen.post_message(screen.ProbeProgress(done, sizes["models"] * per, label))

            try:
                value, error = probe(config, ids, len(ids), on_event, lambda: worker.is_cancelled), ""
            except ProbeStopped:
                return
            except Exception as exc:
                value, error = None, error_text(exc)
            if not worker.is_cancelled:
                screen.post_message(screen.ProbeReply(value, error, (ids, data_now)))

        self.query_one("#probe-box").display = True
        self.query_one("#probe-label", Static).update(Content(f"probe: starting {len(ids)} models …"))
        self.query_one("#probe-bar", ProgressBar).update(total=None, progress=0)
        self.probe_worker = self.run_worker(
            run, name="probe", group="probe", thread=True, exclusive=True, exit_on_error=False
        )
        self.refresh_bindings()

    def action_stop_probe(self) -> None:
        if self.probe_worker is not None and self.probing:
            self.probe_worker.cancel()  # the probe process is terminated within POLL_S
        self.probe_worker = None
        self._probe_ended()
        self.notify("Probe stopped; the ranking is as it was.", timeout=3)

    def _probe_ended(self) -> None:
        self.query_one("#probe-box").display = False
        self.call_after_refresh(self.refresh_bindings)

    @on(ProbeProgress)
    def _probe_progress(self, message: ProbeProgress) -> None:
        if not self.probing:
            return
        self.query_one("#probe-label", Static).update(Content(f"probe {message.label}"))
        self.query_one("#probe-bar", ProgressBar).update(total=message.total or None, progress=message.done)

    @on(ProbeReply)
    def _probe_done(self, reply: ProbeReply) -> None:
        self.probe_worker = None
        self._probe_ended()
        if reply.value is None:
            self.app.push_screen(MessageDialog("Probe failed", reply.error))
            return
        asked, data = reply.tag
        if data is not self.state.data:
            return  # the data changed while probing: these figures are not about it
        if self._probe_data is not data:
            self.probe_results, self._probe_data = {}, data
        for res in reply.value:
            self.probe_results[res["model"]] = dict(res)
        self.probe_failures = [f"{res['model']}: {res['error']}" for res in reply.value if res.get("error")]
        if self.state.recommendation is not None and self._prior:
            rec = self._with_probes(
                Recommendation(self.state.data, self.state.hardware, self._prior, list(self._notes))
            )
            self.post_message(RecommendationMade(rec, self.state.recommendation_key))
            self._show_ranking(rec)
        got = {res["model"] for res in reply.value}
        skipped = [m for m in asked if m not in got]
        ok = len(got) - len(self.probe_failures)
        line = f"Probed {ok} of {len(asked)} models on your data; re-ranked by LogME."
        if skipped:
            line += f" {len(skipped)} skipped (not on disk, offline)."
        if self.probe_failures:
            self.app.push_screen(
                MessageDialog(
                    "Some models could not be probed",
                    "\n".join(self.probe_failures) + "\n\nThey are ranked last among the probed.",
                )
            )
        self.notify(line, timeout=5)

    def _with_probes(self, rec: Recommendation) -> Recommendation:
        """`rec` with the probe's evidence (for this data) applied by the engine's own re-rank: the
        probed models take the places they held, ordered among themselves by LogME."""
        if not self.probe_results or self._probe_data is not rec.data:
            return rec
        from modelwiz.engine.transfer import ProbeResult, rerank

        present = {r.candidate.id for r in rec.ranked}
        found = [res for mid, res in self.probe_results.items() if mid in present]
        if not found:
            return rec

        def result(d: dict) -> ProbeResult:
            num = {k: (d.get(k) if d.get(k) is not None else float("-inf")) for k in ("logme", "h_score")}
            secs = {k: d.get(k) or 0.0 for k in ("seconds", "feature_seconds")}
            return ProbeResult(
                model=d["model"],
                examples=d.get("examples", 0),
                dim=d.get("dim", 0),
                cached=bool(d.get("cached")),
                error=d.get("error", ""),
                **num,
                **secs,
            )

        results = sorted((result(d) for d in found), key=lambda x: (bool(x.error), -x.logme))
        for n, res in enumerate(results, start=1):
            res.rank, res.of = n, len(results)
        return Recommendation(rec.data, rec.hardware, rerank(copy.deepcopy(rec.ranked), results), list(rec.notes))

    # ------------------------------------------------------------------ bake-off

    def action_bakeoff(self) -> None:
        """Toggle `[train] bakeoff`: the marked models race (K = their count, the chosen one among
        them); none marked: ask how many of the best-ranked that fit race."""
        if self.state.config.train.bakeoff:
            self.post_message(BakeoffChanged(0, []))
            self.notify("Bake-off off: the chosen model trains alone.", timeout=3)
            self._update_status(bakeoff=0)
            return
        fitting = [r for r in self.rows if r.fits]
        if self.state.config.model.id:
            self.notify("A bake-off races ranked models; [model] id names one. Clear it first.", severity="warning")
            return
        if len(fitting) < 2:
            self.notify("A bake-off needs at least 2 models that fit the memory budget.", severity="warning")
            return
        marked = [r.candidate.id for r in self.rows if r.candidate.id in self.marked and r.fits]
        if len(marked) >= 2:
            self._set_bakeoff(len(marked), marked)
            return
        top = min(len(fitting), BAKEOFF_MAX_ASKED)
        options = [(str(k), f"{k}: {', '.join(r.candidate.name for r in fitting[:k])}") for k in range(2, top + 1)]

        def chosen(k: str | None) -> None:
            if k is not None:
                self._set_bakeoff(int(k), [])

        self.app.push_screen(ChoiceDialog("Bake-off: how many of the best that fit race?", options, "3"), chosen)

    def _set_bakeoff(self, k: int, models: list[str]) -> None:
        self.post_message(BakeoffChanged(k, models))
        who = f"the {k} marked models" if models else f"the chosen model and the next {k - 1} that fit"
        self.notify(f"Bake-off of {k}: {who} race; the winner trains on. Choose a model (enter).", timeout=5)
        self._update_status(bakeoff=k)


_TABLE_KEYS = (
    "mark",
    "compare",
    "sort",
    "sort_menu",
    "reverse",
    "columns",
    "filter",
    "probe",
    "stop_probe",
    "bakeoff",
)
