"""Small modal dialogs any screen may open: confirm, message/error, ask for a path."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Static

from modelwiz.tui.base import ModalBase


class ConfirmDialog(ModalBase[bool]):
    """Yes/no. `y` or enter on Yes confirms; `n`, Esc or ctrl+b cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("ctrl+b,escape", "answer(False)", "Cancel", show=False),
        Binding("left,right", "toggle_button", show=False),
    ]

    def __init__(self, title: str, message: str, *, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.yes_label = yes
        self.no_label = no

    def compose_dialog(self) -> Iterable[Widget]:
        with Vertical(classes="dialog"):
            yield Label(Content(self.title_text), classes="dialog-title")
            yield Static(Content(self.message), classes="dialog-message")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes_label} (y)", id="yes", variant="primary", compact=True)
                yield Button(f"{self.no_label} (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)

    def action_toggle_button(self) -> None:
        target = "#yes" if self.focused is not None and self.focused.id == "no" else "#no"
        self.query_one(target, Button).focus()

    @on(Button.Pressed, "#yes")
    def _yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#no")
    def _no(self) -> None:
        self.dismiss(False)


class MessageDialog(ModalBase[None]):
    """A message (an error by default) closed with enter, Esc, ctrl+b or `o`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,o", "close", "OK"),
        Binding("ctrl+b,escape", "close", "Close", show=False),
    ]

    def __init__(self, title: str, message: str, *, error: bool = True) -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.error = error

    def compose_dialog(self) -> Iterable[Widget]:
        with Vertical(classes="dialog" + (" -error" if self.error else "")):
            yield Label(Content(self.title_text), classes="dialog-title")
            yield Static(Content(self.message), classes="dialog-message", id="message")
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK (enter)", id="ok", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    def action_close(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        self.dismiss(None)


class PathDialog(ModalBase[str | None]):
    """Ask for a file path; enter accepts, Esc or ctrl+b cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+b,escape", "cancel", "Cancel"),
    ]

    def __init__(self, title: str, default: str, *, hint: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.default = default
        self.hint = hint

    def compose_dialog(self) -> Iterable[Widget]:
        with Vertical(classes="dialog"):
            yield Label(Content(self.title_text), classes="dialog-title")
            yield Input(value=self.default, id="path", compact=True)
            yield Static(Content(self.hint or "enter: save · Esc / ctrl+b: cancel"), classes="dialog-hint")
            yield Static("", classes="error-line", id="path-error")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    @on(Input.Submitted, "#path")
    def _submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if not value:
            self.query_one("#path-error", Static).update("enter a file name, e.g. modelwiz.toml")
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
