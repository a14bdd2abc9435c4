"""Step 1 · Task: modality, the labelled data, columns, validation split; preview and class balance."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.suggester import Suggester
from textual.widget import Widget
from textual.widgets import DataTable, Input, Label, Select, Static

from modelwiz.engine.config import Config
from modelwiz.engine.data import TaskData
from modelwiz.tui.base import EngineReply, StepScreen
from modelwiz.tui.dialogs import FilePickerDialog
from modelwiz.tui.messages import TaskChecked
from modelwiz.tui.state import task_key
from modelwiz.tui.widgets import ClassBalance

PREVIEW_TEXT_CHARS = 72


class PathSuggester(Suggester):
    """Completes file and folder names as you type (→ or End accepts)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value or "\n" in value:
            return None
        path = Path(value).expanduser()
        folder, prefix = (path, "") if value.endswith(("/", os.sep)) else (path.parent, path.name)
        try:
            entries = sorted(
                (
                    e
                    for e in os.scandir(folder)
                    if e.name.startswith(prefix) and (prefix.startswith(".") or not e.name.startswith("."))
                ),
                key=lambda e: e.name,
            )
        except OSError:
            return None
        if not entries:
            return None
        entry = entries[0]
        rest = entry.name[len(prefix) :]
        try:
            if entry.is_dir():
                rest += os.sep
        except OSError:
            pass
        return value + rest if rest else None


def guess_modality(path: str) -> str:
    """'image' for an existing folder, 'text' for a .csv/.tsv/.jsonl file, '' when unsure."""
    if not path:
        return ""
    p = Path(path)
    if p.is_dir():
        return "image"
    if p.suffix.lower() in (".csv", ".tsv", ".jsonl", ".ndjson"):
        return "text"
    return ""


def parse_validation(text: str) -> float | str:
    """A fraction in (0, 0.9], or the path of a validation file/folder. Raises ValueError."""
    text = text.strip()
    if not text:
        raise ValueError("validation: enter a fraction such as 0.2, or the path of a validation file")
    try:
        value = float(text)
    except ValueError:
        path = Path(text).expanduser()
        if not path.exists():
            raise ValueError(f"validation: '{text}' is neither a fraction (e.g. 0.2) nor an existing file") from None
        return str(path)
    if not 0 < value <= 0.9:
        raise ValueError(f"validation: fraction must be above 0 and at most 0.9, got {text}")
    return value


class TaskScreen(StepScreen):
    STEP = "task"
    error: str = ""
    """The error shown now ('' when none)."""
    _checking: str = ""
    """The task key of the latest data check asked for."""
    HELP_NOTES: ClassVar[tuple[str, ...]] = (
        "Data: a .csv/.tsv/.jsonl file with a text and a label column, or (images) a folder with one "
        "sub-folder per class. Press enter (or F5) to check it; → accepts a path completion.",
        "Columns are detected automatically; type a name to override.",
        "Validation: the fraction held out (stratified, seeded), or the path of a validation file.",
        "ctrl+n checks the data when needed and moves on to the hardware step.",
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "check", "Check data"),
        Binding("ctrl+f", "browse", "Browse", priority=True),
    ]

    class DataCheckReply(EngineReply):
        """`value`: the TaskData; `tag`: (task key, the config checked, advance afterwards?)."""

    def compose_body(self) -> Iterable[Widget]:
        task = self.state.config.task
        with Horizontal(classes="form-row"):
            yield Label("Modality", classes="field-label")
            yield Select(
                [("text", "text"), ("image", "image")],
                value=task.modality,
                allow_blank=False,
                compact=True,
                id="modality",
            )
            yield Label("Validation", classes="field-label right")
            yield Input(str(task.validation), id="validation", compact=True, placeholder="0.2")
        with Horizontal(classes="form-row"):
            yield Label("Data", classes="field-label")
            yield Input(
                task.train,
                id="path",
                compact=True,
                suggester=PathSuggester(),
                placeholder="data file (.csv .tsv .jsonl) or image folder; enter checks it",
            )
        with Horizontal(classes="form-row", id="columns-row"):
            yield Label("Text column", classes="field-label")
            yield Input(task.text_column, id="text-column", compact=True, placeholder="auto")
            yield Label("Label column", classes="field-label right")
            yield Input(task.label_column, id="label-column", compact=True, placeholder="auto")
        yield Static("", id="task-status", classes="status-line")
        with Horizontal(id="task-panels"):
            table = DataTable(id="preview", cursor_type="row", zebra_stripes=True)
            table.border_title = "Preview"
            yield table
            with Vertical(id="balance-box") as box:
                box.border_title = "Classes"
                yield ClassBalance(id="balance")
        yield Static("", id="task-summary")

    def on_mount(self) -> None:
        self._toggle_columns(self.state.config.task.modality)
        self.query_one("#path", Input).focus()
        if self.state.data_ok:
            self._show_data(self.state.data)
        elif self.state.config.task.train:
            self.action_check()
        else:
            self._status("Type the path of your labelled data, then press enter.", "info")

    # ------------------------------------------------------------------ form

    def action_browse(self) -> None:
        """Pick the data with the keyboard file picker, from the working directory (or the folder
        of the path typed so far); the choice fills the path field and is checked at once."""
        typed = Path(self.query_one("#path", Input).value.strip() or ".").expanduser()
        start = typed if typed.is_dir() else typed.parent if typed.parent.is_dir() else Path.cwd()

        def picked(path: str | None) -> None:
            if path:
                self.query_one("#path", Input).value = path
                self.action_check()

        self.app.push_screen(FilePickerDialog(start), picked)

    def _toggle_columns(self, modality: str) -> None:
        self.query_one("#columns-row").display = modality == "text"

    def _read_form(self) -> tuple[Config, str]:
        """The wizard's config with this form's task settings; and an error message or ''."""
        config = copy.deepcopy(self.state.config)
        task = config.task
        modality = self.query_one("#modality", Select).value
        task.modality = str(modality) if modality in ("text", "image") else "text"
        path = self.query_one("#path", Input).value.strip()
        task.train = str(Path(path).expanduser()) if path else ""
        guessed = guess_modality(task.train)
        if guessed and guessed != task.modality:
            # a folder of class folders is image data, a table file is text: follow the data
            task.modality = guessed
            with self.prevent(Select.Changed):
                self.query_one("#modality", Select).value = guessed
            self._toggle_columns(guessed)
            self.notify(f"Modality set to {guessed} to match {Path(path).name or path}.", timeout=4)
        if task.modality == "text":
            task.text_column = self.query_one("#text-column", Input).value.strip()
            task.label_column = self.query_one("#label-column", Input).value.strip()
        else:
            task.text_column = task.label_column = ""
        try:
            task.validation = parse_validation(self.query_one("#validation", Input).value)
        except ValueError as exc:
            return config, str(exc)
        if not task.train:
            return (
                config,
                "enter the path of your data: a .csv/.tsv/.jsonl file, or a folder of class folders for images",
            )
        return config, ""

    def _status(self, text: str, kind: str) -> None:
        line = self.query_one("#task-status", Static)
        icon = {"error": "✗ ", "ok": "✓ ", "busy": "… ", "info": ""}[kind]
        line.update(Content(icon + text))
        line.set_classes(f"status-line -{kind}")
        self.error = text if kind == "error" else ""

    @on(Select.Changed, "#modality")
    def _modality_changed(self, event: Select.Changed) -> None:
        self._toggle_columns(str(event.value))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_check()

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        if self.state.data is not None and event.input.id in ("path", "text-column", "label-column", "validation"):
            self._status("Changed: press enter to check the data again.", "info")

    # ------------------------------------------------------------------ actions

    def action_check(self, advance: bool = False) -> None:
        config, problem = self._read_form()
        if problem:
            self._status(problem, "error")
            return
        key = task_key(config)
        if self.state.data is not None and key == self.state.data_key:
            self._show_data(self.state.data)  # checked with these settings already
            if advance:
                self.goto("hardware")
            return
        self._checking = key
        self._status(f"Checking {config.task.train} …", "busy")
        self.call_engine(
            self.DataCheckReply, self.services.check_data, config, group="check-data", tag=(key, config, advance)
        )

    def action_next_step(self) -> None:
        self.action_check(advance=True)

    @on(DataCheckReply)
    def _checked(self, reply: DataCheckReply) -> None:
        key, config, advance = reply.tag
        if key != self._checking:
            return  # the form changed while checking: a newer check follows
        data: TaskData | None = reply.value
        self.post_message(TaskChecked(config.task, data))
        if data is None:
            self._status(reply.error, "error")
            self._clear_data()
            self.query_one("#path", Input).focus()
            return
        self._show_data(data)
        if advance:
            self.goto("hardware")

    # ------------------------------------------------------------------ display

    def _clear_data(self) -> None:
        self.query_one("#preview", DataTable).clear(columns=True)
        self.query_one("#balance", ClassBalance).counts = {}
        self.query_one("#task-summary", Static).update("")

    def on_resize(self) -> None:
        if self.state.data_ok:
            self._fill_preview(self.state.data)

    def _fill_preview(self, data: TaskData | None) -> None:
        """The first rows, texts cut to the table's width (no sideways scrolling)."""
        if data is None:
            return
        s = data.summary
        table = self.query_one("#preview", DataTable)
        table.clear(columns=True)
        key = "text" if s.modality == "text" else "path"
        labels = [row.get("label", "") for row in s.preview]
        label_w = max([5, *(len(x) for x in labels)])
        room = table.content_size.width - label_w - 4 - 2  # cell padding, scrollbar
        text_w = max(12, room if room > 0 else PREVIEW_TEXT_CHARS)
        table.add_column("label", key="label", width=label_w)
        table.add_column("text" if key == "text" else "image", key=key, width=text_w)
        for row in s.preview:
            value = row.get(key, "")
            if key == "path":
                value = Path(value).name
            value = " ".join(value.split())
            if len(value) > text_w:
                value = value[: text_w - 1] + "…"
            table.add_row(Text(row.get("label", "")), Text(value))

    def _show_data(self, data: TaskData | None) -> None:
        if data is None:
            return
        s = data.summary
        self._status(f"{s.rows} examples checked · ctrl+n: next step (hardware)", "ok")
        if s.text_column:
            self.query_one("#text-column", Input).placeholder = f"auto: {s.text_column}"
            self.query_one("#label-column", Input).placeholder = f"auto: {s.label_column}"
        self._fill_preview(data)
        self.query_one("#balance", ClassBalance).counts = dict(s.class_counts)
        parts = [
            f"{s.rows} rows",
            f"{s.num_classes} classes",
            f"train {s.train_size} / val {s.val_size}",
            f"balance {s.balance:.2f}",
        ]
        if s.text_column:
            parts.append(f"columns '{s.text_column}' → '{s.label_column}'")
        if s.language:
            parts.append({"en": "English", "non-en": "not English"}.get(s.language, s.language))
        if s.length_words:
            parts.append(f"median {s.length_words.get('median', 0):g} words")
        lines = [Content(" · ".join(parts))]
        for warning in s.warnings:
            lines.append(Content.assemble(("⚠ ", "$warning"), warning))
        if not s.warnings:
            lines.append(Content.styled("No data problems found.", "$text-muted"))
        self.query_one("#task-summary", Static).update(Content("\n").join(lines))
