"""The help screen: every key of the screen it was opened from, plus that screen's notes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import App
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Label, Static

from modelwiz.tui.base import ModalBase

GENERAL_NOTES = (
    "tab / shift+tab move between fields; arrows move in tables and lists.",
    "ctrl+p opens the command palette: jump to a step, switch theme.",
    "Keys shown as ^x mean ctrl+x.",
)


def key_rows(screen: Screen, app: App) -> list[tuple[str, str]]:
    """(keys, description) for the bindings of `screen` and the app, in footer order."""
    rows: dict[str, list[str]] = {}
    for key, active in screen.active_bindings.items():
        binding: Binding = active.binding
        if not binding.description or not isinstance(active.node, (Screen, App)):
            continue
        if binding.system:
            continue
        rows.setdefault(binding.description, [])
        shown = app.get_key_display(binding)
        if key != binding.key.split(",")[0]:
            shown = app.get_key_display(Binding(key, binding.action))
        if shown not in rows[binding.description]:
            rows[binding.description].append(shown)
    return [(" / ".join(keys), desc) for desc, keys in rows.items()]


class HelpScreen(ModalBase[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,ctrl+b,q,f1,question_mark,enter", "close", "Close"),
    ]

    def __init__(self, title: str, rows: list[tuple[str, str]], notes: Iterable[str] = ()) -> None:
        super().__init__()
        self.title_text = title
        self.rows = rows
        self.notes = list(notes)

    def compose_dialog(self) -> Iterable[Widget]:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for keys, desc in self.rows:
            table.add_row(Text(keys), Text(desc))
        with Vertical(classes="dialog help"):
            yield Label(Content(f"Keys · {self.title_text}"), classes="dialog-title")
            with VerticalScroll(id="help-body"):
                yield Static(table, id="help-keys")
                notes = [*self.notes, *GENERAL_NOTES]
                yield Static(Content("\n".join(f"• {n}" for n in notes)), id="help-notes")
            yield Static(Content("Esc, q, ctrl+b or F1 closes this help."), classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)
