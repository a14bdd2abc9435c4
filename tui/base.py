"""Shared screen chrome and plumbing: header with the step name, footer with every key, the
too-small notice, and `call_engine`, the one way a screen runs an engine call off the UI thread."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.message import Message
from textual.screen import ModalScreen, Screen, ScreenResultType
from textual.widget import Widget
from textual.widgets import Footer, Header
from textual.widgets._footer import FooterKey
from textual.worker import Worker, get_current_worker

from modelwiz.tui.format import error_text
from modelwiz.tui.messages import StepRequested
from modelwiz.tui.state import STEPS, Services, WizardState, step_label
from modelwiz.tui.widgets import TooSmall


class EngineReply(Message):
    """The outcome of one `call_engine`: `value` when the call returned, else `error` (one line for
    the user). `tag` is the caller's note of what it asked, to recognise a stale reply. Each call
    site subclasses this, so a screen's handlers tell its calls apart; replies stay on the screen."""

    bubble = False

    def __init__(self, value: Any, error: str, tag: Any) -> None:
        super().__init__()
        self.value = value
        self.error = error
        self.tag = tag


class CompactFooter(Footer):
    """Textual's compact footer, made cheaper to draw at start-up (bench/startup.py): its keys get
    their compact class as they are made (Footer binds each key's `compact` after mounting, and
    the class that adds restyles every key, each time the keys are redrawn), and binding changes
    that come together redraw the keys once."""

    def __init__(self, *, show_command_palette: bool = True) -> None:
        super().__init__(compact=True, show_command_palette=show_command_palette)

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            if isinstance(widget, FooterKey):
                widget.add_class("-compact", update=False)
            yield widget

    _recompose_pending = False

    def bindings_changed(self, screen: Screen) -> None:
        """As Footer's, but several binding changes before the next refresh redraw the keys once
        (Footer recomposes once per change: five times before the first screen is shown)."""
        self._bindings_ready = True
        if not screen.app.app_focus or not self.is_attached or screen is not self.screen:
            return
        if not self._recompose_pending:
            self._recompose_pending = True
            self.call_after_refresh(self._recompose_keys)

    async def _recompose_keys(self) -> None:
        self._recompose_pending = False
        await self.recompose()


class ModelwizScreen(Screen):
    """A full screen: header, body (`compose_body`), too-small notice, footer."""

    STEP: ClassVar[str] = ""
    FOOTER_PALETTE: ClassVar[bool] = True  # show "^p palette" at the right of the footer

    def compose(self) -> ComposeResult:
        self._preset_breakpoints()
        yield Header(icon="◆")
        with Container(classes="body"):
            yield from self.compose_body()
        yield TooSmall()
        yield CompactFooter(show_command_palette=self.FOOTER_PALETTE)

    def compose_body(self) -> Iterable[Widget]:
        return ()

    def _preset_breakpoints(self) -> None:
        """Give the screen its size classes (-wide-enough, -roomy, ...) for the terminal's size
        before its widgets exist. Textual sets them on the first resize, after mounting, which
        restyles every widget once more: a fifth of the time to the first screen."""
        width, height = self.app.size
        horizontal = (
            self.HORIZONTAL_BREAKPOINTS if self.HORIZONTAL_BREAKPOINTS is not None else self.app.HORIZONTAL_BREAKPOINTS
        )
        vertical = self.VERTICAL_BREAKPOINTS if self.VERTICAL_BREAKPOINTS is not None else self.app.VERTICAL_BREAKPOINTS
        horizontal, vertical = horizontal or [], vertical or []
        classes = {name: False for _, name in horizontal + vertical}
        for name in self._get_breakpoint_classes(width, horizontal) | self._get_breakpoint_classes(height, vertical):
            classes[name] = True
        self.update_classes(classes, animate=False)

    def on_mount(self) -> None:
        # runs after a subclass's own on_mount, which may have set a more specific sub-title
        if self.STEP and self.sub_title is None:
            self.sub_title = step_label(self.STEP)

    def call_engine(
        self, reply: type[EngineReply], fn: Callable[..., Any], *args: Any, group: str, tag: Any = None
    ) -> Worker[None]:
        """Run `fn(*args)` in a thread worker and post one `reply(value, error, tag)` to this screen.
        A newer call in the same `group` cancels the older one, whose reply is then never posted;
        an exception becomes `error` (a UserError's own line), never a traceback."""

        def call() -> None:
            worker = get_current_worker()
            try:
                value, error = fn(*args), ""
            except Exception as exc:
                value, error = None, error_text(exc)
            if not worker.is_cancelled:
                self.post_message(reply(value, error, tag))

        return self.run_worker(call, name=group, group=group, thread=True, exclusive=True, exit_on_error=False)


class StepScreen(ModelwizScreen):
    """One wizard step: ctrl+n / ctrl+b move on and back (Esc also goes back).

    It reads `state` (the app's, passed down; never assigned here) and calls the engine through
    `services`; it reports through `modelwiz.tui.messages`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "next_step", "Next"),
        Binding("ctrl+b", "previous_step", "Back"),
        Binding("escape", "previous_step", "Back", show=False),
    ]

    def __init__(self, state: WizardState, services: Services) -> None:
        super().__init__()
        self.state = state
        self.services = services

    def goto(self, step: str) -> None:
        self.post_message(StepRequested(step))

    def action_next_step(self) -> None:
        """Subclasses validate their inputs, then call `self.goto(...)`."""

    def action_previous_step(self) -> None:
        index = STEPS.index(self.STEP)
        if index > 0:
            self.goto(STEPS[index - 1])
        else:
            self.notify("This is the first step. ctrl+q quits.", timeout=3)


class ModalBase(ModalScreen[ScreenResultType]):
    """A dialog; also shows the too-small notice at tiny sizes."""

    def compose(self) -> ComposeResult:
        yield from self.compose_dialog()
        yield TooSmall()

    def compose_dialog(self) -> Iterable[Widget]:
        return ()
