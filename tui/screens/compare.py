"""Side-by-side comparison of marked models: one column per model, one row per attribute; the
predicted memory as a bar against the budget, the expected quality, transferability when probed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich import box
from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from modelwiz.engine.recommend import Ranked
from modelwiz.tui.base import ModelwizScreen
from modelwiz.tui.format import fmt_params, fmt_seconds
from modelwiz.tui.state import step_label

BAR_CELLS = 14


def memory_bar(used_gb: float, budget_gb: float, cells: int = BAR_CELLS) -> Text:
    """Predicted training memory against the budget: '███████░░░░░░░ 48%', over budget all red
    with the overshoot ('██████████████ 130% ✗')."""
    share = used_gb / budget_gb if budget_gb > 0 else float("inf")
    filled = cells if share >= 1 else round(share * cells)
    if 0 < share < 1 and filled == 0:
        filled = 1  # a sliver of memory still shows
    pct = "∞" if share == float("inf") else f"{share * 100:.0f}%"
    style = "bold red" if share > 1 else ("yellow" if share > 0.85 else "green")
    return Text.assemble(
        ("█" * filled, style),
        ("░" * (cells - filled), "dim"),
        (f" {pct}" + (" ✗" if share > 1 else ""), style if share > 1 else ""),
        no_wrap=True,
    )


def expected_quality(r: Ranked) -> Text:
    q = r.candidate.quality
    if q is None:
        return Text("unknown (no published benchmark)", style="dim")
    note = f" · {r.candidate.quality_note}" if r.candidate.quality_note else ""
    return Text(f"{q:.2f} prior{note}")


def transferability(r: Ranked) -> Text:
    p = r.probe
    if p is None:
        return Text("not probed (p on the models step)", style="dim")
    if p.get("error") or p.get("logme") is None:
        return Text(f"probe failed: {p.get('error') or 'no figure'}", style="red")
    place = f", {p['rank']} of {p['of']}" if p.get("rank") and p.get("of") else ""
    return Text(
        f"LogME {p['logme']:.2f}{place} · H-score {p.get('h_score') or 0:.2f} · {p.get('examples', 0)} examples"
    )


def compare_rows(models: list[Ranked]) -> list[tuple[str, list[Text]]]:
    def fits(r: Ranked) -> Text:
        return Text("✓ fits", style="green") if r.fits else Text("✗ too big", style="bold red")

    best_score = max(r.ranking_score for r in models)
    rows: list[tuple[str, list[Text]]] = [
        ("Model id", [Text(r.candidate.id, overflow="fold") for r in models]),
        ("Source", [Text(r.candidate.source) for r in models]),
        ("Architecture", [Text(r.candidate.arch or "?") for r in models]),
        ("Params", [Text(f"{fmt_params(r.candidate.params)} M") for r in models]),
        (
            "Score",
            [Text(f"{r.ranking_score:.3f}", style="bold" if r.ranking_score == best_score else "") for r in models],
        ),
        ("Memory", [memory_bar(r.plan.memory.total_gb, r.plan.budget_gb) for r in models]),
        ("", [Text(f"{r.plan.memory.total_gb:.2f} of {r.plan.budget_gb:.1f} GB") for r in models]),
        ("Fits", [fits(r) for r in models]),
        ("Quality", [expected_quality(r) for r in models]),
        ("Transfer", [transferability(r) for r in models]),
        ("Time/epoch", [Text(fmt_seconds(r.plan.epoch_seconds)) for r in models]),
        (
            "Plan",
            [
                Text(f"{r.plan.strategy} · batch {r.plan.batch_size} · {r.plan.precision} · {r.plan.device}")
                for r in models
            ],
        ),
        ("License", [Text(r.candidate.license) for r in models]),
        ("Languages", [Text(", ".join(r.candidate.languages) or "?") for r in models]),
        ("On disk", [Text("yes" if r.candidate.on_disk else "no (download)") for r in models]),
        ("Why", [Text("\n".join(f"• {x}" for x in r.reasons)) for r in models]),
    ]
    return rows


def compare_table(models: list[Ranked]) -> Table:
    table = Table(expand=True, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("", style="bold", no_wrap=True)
    for i, r in enumerate(models, 1):
        table.add_column(Text(f"{i}. {r.candidate.name}", overflow="fold"), ratio=1)
    for name, cells in compare_rows(models):
        table.add_row(name, *cells)
    return table


class CompareScreen(ModelwizScreen):
    """Dismissed with the chosen candidate id (keys 1-4) or None (back)."""

    HELP_NOTES: ClassVar[tuple[str, ...]] = (
        "Number keys choose that model and go on to the training setup; ctrl+b, b or Esc go back.",
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+b,b,escape", "back", "Back"),
        Binding("1", "pick(1)", "Choose 1"),
        Binding("2", "pick(2)", "Choose 2"),
        Binding("3", "pick(3)", "Choose 3", show=False),
        Binding("4", "pick(4)", "Choose 4", show=False),
    ]

    def __init__(self, models: list[Ranked]) -> None:
        super().__init__()
        self.models = models

    def compose_body(self) -> Iterable[Widget]:
        with VerticalScroll(id="compare-scroll"):
            yield Static(compare_table(self.models), id="compare-table")

    def on_mount(self) -> None:
        self.sub_title = step_label("recommend") + " · compare"
        self.query_one("#compare-scroll").focus()

    def action_back(self) -> None:
        self.dismiss(None)

    def action_pick(self, n: int) -> None:
        if 1 <= n <= len(self.models):
            self.dismiss(self.models[n - 1].candidate.id)
