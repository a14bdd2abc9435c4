"""Step 3 · Models: the ranked table, sorting, marking, details pane with reasons, comparison."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Input, LoadingIndicator, Static

from modelwiz.engine.recommend import Ranked, explain_empty
from modelwiz.engine.workflow import Recommendation
from modelwiz.tui.base import EngineReply, StepScreen
from modelwiz.tui.dialogs import ConfirmDialog
from modelwiz.tui.format import fmt_params, fmt_seconds
from modelwiz.tui.messages import ModelChosen, RecommendationMade
from modelwiz.tui.state import Services, WizardState

MAX_COMPARE = 4

# sort name -> (label, key on (original rank, Ranked), default descending?)
SORTS: dict[str, tuple[str, Callable[[tuple[int, Ranked]], object], bool]] = {
    "rank": ("rank", lambda ir: ir[0], False),
    "score": ("score", lambda ir: ir[1].score, True),
    "params": ("size", lambda ir: ir[1].candidate.params, False),
    "memory": ("memory", lambda ir: ir[1].plan.memory.total_gb, False),
    "speed": ("time/epoch", lambda ir: ir[1].plan.epoch_seconds, False),
    "name": ("name", lambda ir: ir[1].candidate.name.lower(), False),
    "license": ("license", lambda ir: ir[1].candidate.license, False),
}
SORT_ORDER = tuple(SORTS)

COLUMNS = (
    ("rank", "#"),
    ("name", "Model"),
    ("source", "Source"),
    ("params", "Params"),
    ("memory", "Mem GB"),
    ("fits", "Fits"),
    ("score", "Score"),
    ("epoch", "Epoch"),
    ("license", "License"),
    ("disk", "Disk"),
)
WIDE_ONLY = {"source", "epoch"}
WIDE_TABLE = 100  # terminal width from which every column is shown
MARK = "●"


def details_content(r: Ranked) -> Content:
    c = r.candidate
    head = f"{c.name} · {c.source} · {c.arch or 'unknown arch'} · {fmt_params(c.params)}M params · license {c.license}"
    lines = [Content.styled(head, "bold"), Content.styled(c.id, "$text-muted")]
    for reason in r.reasons:
        lines.append(Content("• " + reason))
    return Content("\n").join(lines)


class RecommendScreen(StepScreen):
    STEP = "recommend"
    FOOTER_PALETTE = False  # the footer needs the room for this screen's keys
    HELP_NOTES: ClassVar[tuple[str, ...]] = (
        "Models that fit the memory budget come first; the details pane says why each is where it is.",
        "s cycles the sort column (every column), r reverses it; / filters by words in the name, id, "
        "source, license or architecture (enter or Esc returns to the table); space marks models, c compares "
        "the marked ones.",
        "enter (or ctrl+n) chooses the highlighted model and moves on to the training setup.",
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "choose", "Choose", priority=True),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("s", "sort", "Sort"),
        Binding("r", "reverse", "Reverse"),
        Binding("slash", "filter", "Filter"),
        Binding("f5", "rerank", "Re-rank", show=False),
        Binding("ctrl+n", "next_step", "Next", show=False),
    ]

    sort_key: str = "rank"
    reverse: bool = False
    filter_text: str = ""

    class RankingReply(EngineReply):
        """`value`: the Recommendation; `tag`: the ranking key it was asked for."""

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

    def compose_body(self) -> Iterable[Widget]:
        yield Static("", id="rec-status", classes="status-line")
        yield Input(id="model-filter", compact=True, placeholder="/ filters by name, id, source, license, arch")
        yield LoadingIndicator(id="rec-loading")
        yield DataTable(id="models", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="details-box") as box:
            box.border_title = "Why"
            yield Static("", id="details")

    def on_mount(self) -> None:
        self.query_one("#rec-loading").display = False
        self._set_columns()

    def on_resize(self) -> None:
        if self._wide != (self.size.width >= WIDE_TABLE):
            self._set_columns()
            self._fill()

    def _set_columns(self) -> None:
        """All columns from WIDE_TABLE cells up; at 80 columns source and time/epoch move to the
        details pane so the table fits without scrolling sideways."""
        self._wide = self.size.width >= WIDE_TABLE
        table = self.query_one("#models", DataTable)
        table.clear(columns=True)
        for key, label in COLUMNS:
            if self._wide or key not in WIDE_ONLY:
                table.add_column(label, key=key)

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
        self.post_message(RecommendationMade(reply.value, reply.tag))
        self._show_ranking(reply.value)

    def _show_ranking(self, rec: Recommendation) -> None:
        self.rows = list(rec.ranked)
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

    def _update_status(self) -> None:
        if not self.rows:
            return
        fits = sum(r.fits for r in self.rows)
        plan = self.rows[0].plan
        label = SORTS[self.sort_key][0]
        arrow = "↑" if self._ascending() else "↓"
        marked = f" · {len(self.marked)} marked" if self.marked else ""
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
        if action in ("mark", "compare", "sort", "reverse", "filter") and self._in_filter():
            return False
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
            "score": cell(f"{r.score:.3f}", 5),
            "epoch": cell(fmt_seconds(plan.epoch_seconds), 6),
            "license": cell(lic),
            "disk": cell("yes" if c.on_disk else "no"),
        }
        return [cells[key] for key, _ in COLUMNS if self._wide or key not in WIDE_ONLY]

    def _fill(self, keep: str | None = None) -> None:
        table = self.query_one("#models", DataTable)
        if keep is None and table.row_count and self.highlighted is not None:
            keep = self.highlighted.candidate.id
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
        self.query_one("#details", Static).update(details_content(r) if r else "")
        self.query_one("#details-box", VerticalScroll).scroll_home(animate=False)

    @on(DataTable.RowHighlighted, "#models")
    def _row_highlighted(self) -> None:
        self._show_details()

    # ------------------------------------------------------------------ actions

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
        table.update_cell(cid, "rank", self._row_cells(rank, r)[0])
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
