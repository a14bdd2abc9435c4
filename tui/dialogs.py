"""Small modal dialogs any screen may open: confirm, message/error, ask for a path, pick a data file,
choose one of a list, choose several of a list."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Button, DirectoryTree, Input, Label, OptionList, SelectionList, Static
from textual.widgets.option_list import Option

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


DATA_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")


class DataTree(DirectoryTree):
    """Folders and data files only (no hidden entries): what `[task] train` can name."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".") and (_is_dir(p) or p.suffix.lower() in DATA_SUFFIXES)]


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


class FilePickerDialog(ModalBase[str | None]):
    """Choose the data by keyboard: a tree of folders and .csv/.tsv/.jsonl files from `start`.
    enter on a file picks it (on a folder opens it); `s` picks the highlighted folder (image data:
    one sub-folder per class); backspace goes up a folder; Esc or ctrl+b cancels. Dismissed with
    the path (relative to the working directory when under it) or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "pick_folder", "Choose folder"),
        Binding("backspace", "up", "Up a folder"),
        Binding("ctrl+b,escape", "cancel", "Cancel"),
    ]

    def __init__(self, start: Path) -> None:
        super().__init__()
        self.root = Path(start).resolve()

    def compose_dialog(self) -> Iterable[Widget]:
        with Vertical(classes="dialog picker"):
            yield Label(Content("Choose the data"), classes="dialog-title")
            yield Static(Content(self._where()), id="picker-root", classes="dialog-hint")
            yield DataTree(self.root, id="picker-tree")
            yield Static(
                Content("enter: choose a file / open a folder · s: choose the folder (images) · backspace: up"),
                classes="dialog-hint",
            )

    def on_mount(self) -> None:
        self.query_one("#picker-tree", DataTree).focus()

    def _where(self) -> str:
        """The folder shown: relative to the working directory when inside it, else in full."""
        cwd = Path.cwd().resolve()
        if self.root == cwd:
            return "in the working directory"
        try:
            return f"in ./{self.root.relative_to(cwd)}"
        except ValueError:
            return f"in {self.root}"

    def _answer(self, path: Path) -> None:
        cwd = Path.cwd().resolve()
        try:
            shown = str(path.resolve().relative_to(cwd))
        except ValueError:
            shown = str(path)
        self.dismiss(shown)

    @on(DirectoryTree.FileSelected, "#picker-tree")
    def _file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self._answer(event.path)

    def action_pick_folder(self) -> None:
        node = self.query_one("#picker-tree", DataTree).cursor_node
        if node is not None and node.data is not None and _is_dir(node.data.path):
            self._answer(node.data.path)

    def action_up(self) -> None:
        parent = self.root.parent
        if parent != self.root:
            self.root = parent
            self.query_one("#picker-tree", DataTree).path = parent
            self.query_one("#picker-root", Static).update(Content(self._where()))

    def action_cancel(self) -> None:
        self.dismiss(None)


class ChoiceDialog(ModalBase[str | None]):
    """One of `options` ((key, label) pairs): enter chooses the highlighted one; Esc or ctrl+b
    cancels. Dismissed with the key or None. `current` starts highlighted."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+b,escape", "cancel", "Cancel"),
    ]

    def __init__(self, title: str, options: list[tuple[str, str]], current: str | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.options = options
        self.current = current

    def compose_dialog(self) -> Iterable[Widget]:
        with Vertical(classes="dialog choice"):
            yield Label(Content(self.title_text), classes="dialog-title")
            yield OptionList(*(Option(Content(label), id=key) for key, label in self.options), id="choices")
            yield Static(Content("enter: choose · Esc / ctrl+b: cancel"), classes="dialog-hint")

    def on_mount(self) -> None:
        choices = self.query_one("#choices", OptionList)
        keys = [key for key, _ in self.options]
        if self.current in keys:
            choices.highlighted = keys.index(self.current)
        choices.focus()

    @on(OptionList.OptionSelected, "#choices")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ColumnsDialog(ModalBase[list[str] | None]):
    """Several of `options` ((key, label, selected) triples): space toggles, enter accepts, Esc or
    ctrl+b cancels. Dismissed with the selected keys in the options' order, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "accept", "Apply", priority=True),
        Binding("ctrl+b,escape", "cancel", "Cancel"),
    ]

    def __init__(self, title: str, options: list[tuple[str, str, bool]]) -> None:
        super().__init__()
        self.title_text = title
        self.options = options

    def compose_dialog(self) -> Iterable[Widget]:
        with Vertical(classes="dialog choice"):
            yield Label(Content(self.title_text), classes="dialog-title")
            yield SelectionList[str](*((label, key, on) for key, label, on in self.options), id="columns")
            yield Static(Content("space: show / hide · enter: apply · Esc / ctrl+b: cancel"), classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#columns", SelectionList).focus()

    def action_accept(self) -> None:
        selected = set(self.query_one("#columns", SelectionList).selected)
        self.dismiss([key for key, _, _ in self.options if key in selected])

    def action_cancel(self) -> None:
        self.dismiss(None)
