"""Shared screen chrome: header with the step name, footer with every key, the too-small notice."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Iterable

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.screen import ModalScreen, Screen, ScreenResultType
from textual.widget import Widget
from textual.widgets import Footer, Header

from modelwiz.engine.errors import UserError
from modelwiz.tui.screens.state import STEPS, Services, WizardState, step_label
from modelwiz.tui.widgets import TooSmall

if TYPE_CHECKING:
    from modelwiz.tui.app import ModelwizApp


def error_text(exc: BaseException) -> str:
    """One line for the user: a UserError's own message, anything else named but never a traceback."""
    if isinstance(exc, UserError):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"unexpected error: {type(exc).__name__}" + (f": {text}" if text else "")


class ModelwizScreen(Screen):
    """A full screen: header, body (`compose_body`), too-small notice, footer."""

    STEP: ClassVar[str] = ""
    FOOTER_PALETTE: ClassVar[bool] = True     # show "^p palette" at the right of the footer

    @property
    def mw(self) -> "ModelwizApp":
        return self.app  # type: ignore[return-value]

    @property
    def state(self) -> WizardState:
        return self.mw.state

    @property
    def services(self) -> Services:
        return self.mw.services

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with Container(classes="body"):
            yield from self.compose_body()
        yield TooSmall()
        yield Footer(compact=True, show_command_palette=self.FOOTER_PALETTE)

    def compose_body(self) -> Iterable[Widget]:
        return ()

    def on_mount(self) -> None:
        # runs after a subclass's own on_mount, which may have set a more specific sub-title
        if self.STEP and self.sub_title is None:
            self.sub_title = step_label(self.STEP)


class StepScreen(ModelwizScreen):
    """One wizard step: ctrl+n / ctrl+b move on and back (Esc also goes back)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "next_step", "Next"),
        Binding("ctrl+b", "previous_step", "Back"),
        Binding("escape", "previous_step", "Back", show=False),
    ]

    def action_next_step(self) -> None:
        """Subclasses validate their inputs, then call `self.mw.goto_step(...)`."""

    def action_previous_step(self) -> None:
        index = STEPS.index(self.STEP)
        if index > 0:
            self.mw.goto_step(STEPS[index - 1])
        else:
            self.notify("This is the first step. ctrl+q quits.", timeout=3)


class ModalBase(ModalScreen[ScreenResultType]):
    """A dialog; also shows the too-small notice at tiny sizes."""

    def compose(self) -> ComposeResult:
        yield from self.compose_dialog()
        yield TooSmall()

    def compose_dialog(self) -> Iterable[Widget]:
        return ()
