"""The modelwiz wizard: a Textual app over the engine's public API.

Entry points used by `modelwiz.cli`:
- `run_wizard(config, demo=..., runs_dir=...)`: the five-step wizard; returns an exit code.
- `run_dashboard(run_dir)`: the live dashboard alone, for `modelwiz attach RUN`.
- `ModelwizApp(config, demo=..., runs_dir=..., services=...)`: the app itself; tests inject
  `Services` fakes (fixed hardware, fixed candidates, a recorded run).

The UI process never imports torch: hardware comes from the engine's probe subprocess, metrics from
the trainer's event stream.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import App
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import ModalScreen, Screen
from textual.theme import Theme

from modelwiz.engine.config import Config
from modelwiz.engine.demo import demo_config
from modelwiz.engine.errors import UserError
from modelwiz.tui import theme as mw_theme
from modelwiz.tui.base import StepScreen
from modelwiz.tui.dialogs import MessageDialog
from modelwiz.tui.messages import (
    BakeoffChanged,
    ConstraintsChanged,
    HardwareRead,
    ModelChosen,
    RecommendationMade,
    RunOpened,
    RunStarted,
    StepRequested,
    TaskChecked,
    TrainingChanged,
)
from modelwiz.tui.screens.task import TaskScreen
from modelwiz.tui.settings import load_settings, save_settings
from modelwiz.tui.state import STEP_TITLES, STEPS, Services, WizardState
from modelwiz.tui.widgets import MIN_HEIGHT, MIN_WIDTH

if TYPE_CHECKING:
    from modelwiz.engine.runs import RunInfo

# Start-up: only the first screen (the task) is imported with the app; every other screen, and
# the engine's runs and ranking modules behind them, when first shown (bench/startup.py).
__all__ = ["ModelwizApp", "Services", "WizardState", "run_dashboard", "run_runs", "run_wizard"]

ROOMY_HEIGHT = 34  # taller terminals get bigger charts and panes
MAX_PALETTE_RUNS = 10


class WizardCommands(Provider):
    """Command palette (ctrl+p): jump to a step, switch theme, open a run's dashboard."""

    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app: ModelwizApp = self.app  # type: ignore[assignment]
        commands: list[tuple[str, Callable[[], object], str]] = []
        if not app.attach_only:
            for i, step in enumerate(STEPS, 1):
                if app.state.reachable(step):
                    commands.append(
                        (
                            f"Jump to step {i}: {STEP_TITLES[step]}",
                            partial(app.goto_step, step),
                            "go to this wizard step",
                        )
                    )
        commands.append(("Runs: every run, attach, resume, cancel", app.action_runs, "the runs list (ctrl+o)"))
        for name in sorted(app.available_themes):
            if name != app.theme:
                commands.append((f"Switch theme: {name}", partial(app.set_theme, name), "change the colours"))
        for run in app.recent_runs(MAX_PALETTE_RUNS):
            commands.append(
                (
                    f"Open run: {run.run_id} ({run.state}, {run.model})",
                    partial(app.open_dashboard, run.run_dir),
                    "show this run's dashboard",
                )
            )
        return commands

    async def discover(self) -> Hits:
        for name, command, help_text in self._commands():
            yield DiscoveryHit(name, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, command, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), command, help=help_text)


class ModelwizApp(App[int]):
    CSS_PATH = "modelwiz.tcss"
    TITLE = "modelwiz"
    COMMANDS = App.COMMANDS | {WizardCommands}
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-too-narrow"), (MIN_WIDTH, "-wide-enough")]
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [
        (0, "-too-short"),
        (MIN_HEIGHT, "-tall-enough"),
        (ROOMY_HEIGHT, "-roomy"),
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f1,question_mark", "help", "Help"),
        Binding("ctrl+o", "runs", "Runs"),
    ]

    def __init__(
        self,
        config: Config | None = None,
        *,
        demo: bool = False,
        runs_dir: Path | None = None,
        services: Services | None = None,
        attach: Path | None = None,
        theme_dirs: list[Path] | None = None,
        state: WizardState | None = None,
        start_step: str = "task",
        runs_only: bool = False,
        theme: str | None = None,
    ) -> None:
        """`attach`: show only the dashboard of this run directory. `runs_only`: open on the runs
        list (`modelwiz runs` in a terminal); enter there shows a run's dashboard, ctrl+b comes back. `theme_dirs`: where to look for
        theme files (default: themes/ and $MODELWIZ_HOME/themes). `state` and `start_step` resume a
        wizard at a later step (tests use them to show a screen without walking to it)."""
        super().__init__()
        self.demo = demo
        self.runs_dir = Path(runs_dir) if runs_dir else None
        self.runs_only = runs_only
        self.attach_only = attach is not None or runs_only
        self._attach_dir = Path(attach) if attach else None
        self._startup_errors: list[tuple[str, str]] = []
        if config is None and demo:
            try:
                config = demo_config()
            except UserError as exc:
                self._startup_errors.append(("Demo unavailable", str(exc)))
        self.state = state if state is not None else WizardState(config=config or Config())
        if self.runs_dir is not None:
            self.state.config.output.runs_dir = str(self.runs_dir)
        self.start_step = start_step if start_step in STEPS else "task"
        self.services = (services or Services()).with_runs_dir(self.runs_dir)
        self._theme_dirs = theme_dirs
        self._theme_asked = theme  # --theme NAME; else the one remembered in settings.json
        self.theme_problems: list[str] = []
        self.current_step: str | None = None
        self.exit_notice = ""
        if demo:
            self.title = "modelwiz · demo"
        self._load_themes()

    # ------------------------------------------------------------------ start-up

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(mw_theme.VARIABLE_DEFAULTS)

    # how often the app checks that its terminal is still there (see _check_terminal)
    TERMINAL_CHECK_S: ClassVar[float] = 2.0

    def _check_terminal(self) -> None:
        """A terminal that went away without a SIGHUP (the app started by `make` in a tmux session
        that was killed: no controlling terminal, so no hang-up signal) leaves stdin at end of file
        for ever and Textual's input thread spinning (measured: 91% of a core for half an hour).
        Quit as a hang-up would; a run goes on in its own process (`modelwiz attach` shows it)."""
        if not _terminal_alive():
            self.exit(return_code=129)

    def on_mount(self) -> None:
        if _terminal_alive():  # not under the test pilot, whose stdin is no terminal
            self.set_interval(self.TERMINAL_CHECK_S, self._check_terminal)
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        if self._theme_asked == self.theme:  # --theme NAME: the next session's too
            self._remember_theme(self.current_theme)
        if self.theme_problems:
            self.notify(
                "Some theme files were skipped:\n" + "\n".join(self.theme_problems),
                title="Themes",
                severity="warning",
                timeout=8,
            )
        if self.runs_only:
            from modelwiz.tui.screens.runs import RunsScreen

            self.push_screen(RunsScreen(self.runs_path(), self.services, closable=False))
        elif self._attach_dir is not None:
            from modelwiz.tui.screens.dashboard import DashboardScreen

            self.push_screen(DashboardScreen(self._attach_dir, self.services, standalone=True))
        else:
            self.goto_step(self.start_step if self.state.reachable(self.start_step) else "task")
        for title, message in self._startup_errors:
            self.push_screen(MessageDialog(title, message))

    def _load_themes(self) -> None:
        """Register the theme files and choose one, before the app starts: choosing it later would
        restyle every mounted widget again (a third of the start-up time)."""
        dirs = self._theme_dirs if self._theme_dirs is not None else mw_theme.theme_dirs()
        themes, problems = mw_theme.load_themes(dirs)
        for t in themes:
            self.register_theme(t)
        names = {t.name for t in themes}
        # --theme, else the one remembered, else modelwiz's default, else Textual's
        remembered = load_settings().get("theme")
        default = mw_theme.DEFAULT_THEME if mw_theme.DEFAULT_THEME in names else mw_theme.FALLBACK_THEME
        choices = [self._theme_asked, remembered if isinstance(remembered, str) else None, default]
        self.theme = next(name for name in choices if name and name in self.available_themes)
        if self._theme_asked and self._theme_asked != self.theme:
            known = ", ".join(sorted(names)) or "none"
            problems.append(f"no theme named '{self._theme_asked}' (themes: {known}); using {self.theme}")
        self.theme_problems = problems

    def set_theme(self, name: str) -> None:
        if name in self.available_themes:
            self.theme = name

    def _remember_theme(self, theme: Theme) -> None:
        """A theme chosen in a session (palette, --theme) is the next session's too."""
        if load_settings().get("theme") == theme.name:
            return
        problem = save_settings({"theme": theme.name})
        if problem:
            self.notify(f"The theme is not remembered: {problem}", severity="warning", timeout=5)

    # ------------------------------------------------------------------ navigation

    def goto_step(self, step: str) -> None:
        """Show wizard step `step` (if its inputs exist). Steps 1-4 are installed screens, so each
        keeps its state when the user moves back and forth; the dashboard is a new reader of the run
        directory each time (it replays the event history, which is cheap)."""
        if self.attach_only:
            return
        if not self.state.reachable(step):
            self.notify(
                f"{STEP_TITLES[step]} is not available yet: finish the earlier steps first.",
                severity="warning",
                timeout=3,
            )
            return
        target: Screen | str
        if step == "dashboard":
            from modelwiz.tui.screens.dashboard import DashboardScreen

            assert self.state.run_dir is not None
            target = DashboardScreen(self.state.run_dir, self.services)
        else:
            if not self.is_screen_installed(step):
                self.install_screen(self._step_screen(step), step)
            target = step
        # dialogs or a comparison above the current step close first
        while len(self.screen_stack) > 2 and not self._is_step_screen(self.screen):
            self.pop_screen()
        if self.current_step is None or len(self.screen_stack) < 2:
            self.push_screen(target)
        else:
            self.switch_screen(target)
        self.current_step = step

    def _step_screen(self, step: str) -> Screen:
        if step == "task":
            return TaskScreen(self.state, self.services)
        if step == "hardware":
            from modelwiz.tui.screens.hardware import HardwareScreen

            return HardwareScreen(self.state, self.services)
        if step == "recommend":
            from modelwiz.tui.screens.compare import CompareScreen
            from modelwiz.tui.screens.recommend import RecommendScreen

            return RecommendScreen(self.state, self.services, compare=CompareScreen)
        from modelwiz.tui.screens.setup import SetupScreen

        return SetupScreen(self.state, self.services)

    def _is_step_screen(self, screen: Screen) -> bool:
        return isinstance(screen, StepScreen) or _is_a(screen, "dashboard", "DashboardScreen")

    def open_dashboard(self, run_dir: Path) -> None:
        """Show the dashboard of `run_dir` (a run just started, or one picked in the palette)."""
        from modelwiz.tui.screens.dashboard import DashboardScreen

        run_dir = Path(run_dir)
        if self.runs_only:  # over the runs list, which ctrl+b on the dashboard returns to
            while len(self.screen_stack) > 2:
                self.pop_screen()
            self.push_screen(DashboardScreen(run_dir, self.services, standalone=True, closable=True))
            return
        if self.attach_only:
            while len(self.screen_stack) > 2:
                self.pop_screen()
            self.switch_screen(DashboardScreen(run_dir, self.services, standalone=True))
            return
        self.state.run_dir = run_dir
        self.goto_step("dashboard")

    # ------------------------------------------------------------------ what the screens report

    @on(StepRequested)
    def _step_requested(self, message: StepRequested) -> None:
        self.goto_step(message.step)

    @on(TaskChecked)
    def _task_checked(self, message: TaskChecked) -> None:
        self.state.config.task = message.task
        self.state.data = message.data
        self.state.data_key = self.state.task_key() if message.data is not None else ""

    @on(HardwareRead)
    def _hardware_read(self, message: HardwareRead) -> None:
        self.state.hardware = message.report

    @on(ConstraintsChanged)
    def _constraints_changed(self, message: ConstraintsChanged) -> None:
        self.state.config.constraints = message.constraints
        self.state.time_budget_s = message.time_budget_s

    @on(RecommendationMade)
    def _recommendation_made(self, message: RecommendationMade) -> None:
        self.state.recommendation = message.recommendation
        self.state.recommendation_key = message.key

    @on(BakeoffChanged)
    def _bakeoff_changed(self, message: BakeoffChanged) -> None:
        self.state.config.train.bakeoff = message.k
        self.state.bakeoff_models = list(message.models) if message.k else []

    @on(ModelChosen)
    def _model_chosen(self, message: ModelChosen) -> None:
        self.state.chosen = message.ranked
        self.goto_step("setup")

    @on(TrainingChanged)
    def _training_changed(self, message: TrainingChanged) -> None:
        self.state.config.train = message.train
        self.state.chosen = message.ranked

    @on(RunStarted)
    def _run_started(self, message: RunStarted) -> None:
        self.open_dashboard(message.run_dir)

    @on(RunOpened)
    def _run_opened(self, message: RunOpened) -> None:
        self.open_dashboard(message.run_dir)

    def runs_path(self) -> Path:
        from modelwiz.engine.runs import runs_dir_for

        return runs_dir_for(self.state.config, self.runs_dir)

    def recent_runs(self, limit: int) -> list[RunInfo]:
        from modelwiz.engine.runs import list_runs

        try:
            runs = list_runs(self.runs_path())
        except OSError:
            return []
        return list(reversed(runs))[:limit]

    # ------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "runs":
            # from any full screen except the list itself; dialogs answer first
            return not (isinstance(self.screen, ModalScreen) or _is_a(self.screen, "runs", "RunsScreen"))
        return True

    def action_runs(self) -> None:
        """The runs list, over the current screen (ctrl+b there comes back)."""
        if isinstance(self.screen, ModalScreen) or _is_a(self.screen, "runs", "RunsScreen"):
            return
        if self.runs_only:
            while len(self.screen_stack) > 2:
                self.pop_screen()
            return
        from modelwiz.tui.screens.runs import RunsScreen

        self.push_screen(RunsScreen(self.runs_path(), self.services, closable=True))

    def action_help(self) -> None:
        from modelwiz.tui.screens.help import HelpScreen, key_rows

        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        title = STEP_TITLES.get(getattr(screen, "STEP", ""), "") or type(screen).__name__.replace("Screen", "")
        notes = getattr(screen, "HELP_NOTES", ())
        self.push_screen(HelpScreen(title, key_rows(screen, self), notes))

    def background_notice(self) -> str:
        """The message for quitting while a run is still training, '' when none is."""
        from modelwiz.engine.runs import ACTIVE_STATES, effective_state, read_status

        run_dir = self.state.run_dir or self._attach_dir
        if self.attach_only and _is_a(self.screen, "dashboard", "DashboardScreen"):
            run_dir = self.screen.run_dir  # type: ignore[attr-defined]
        if run_dir is None:
            return ""
        status = read_status(run_dir)
        if not status or effective_state(status) not in ACTIVE_STATES:
            return ""
        run_id = status.get("run_id") or Path(run_dir).name
        return f"training continues in the background; modelwiz attach {run_id}"

    async def action_quit(self) -> None:
        notice = self.background_notice()
        if notice:
            self.exit_notice = notice
            self.notify(notice, title="Quitting", timeout=5)
        self.exit(0)


def _is_a(screen: Screen, module: str, name: str) -> bool:
    """Whether `screen` is an instance of screens.`module`.`name`, without importing that module
    (a screen whose module was never imported was never shown)."""
    mod = sys.modules.get(f"modelwiz.tui.screens.{module}")
    return mod is not None and isinstance(screen, getattr(mod, name))


def _run(app: ModelwizApp) -> int:
    app.run()
    if app.exit_notice:
        print(app.exit_notice, file=sys.stderr)
    code = app.return_code
    return 0 if code is None else int(code)


def run_wizard(
    config: Config | None, *, demo: bool = False, runs_dir: Path | None = None, theme: str | None = None
) -> int:
    """Run the wizard; returns the process exit code (0 on a normal quit). `theme`: --theme NAME."""
    return _run(ModelwizApp(config, demo=demo, runs_dir=runs_dir, theme=theme))


def run_runs(runs_dir: Path | None = None) -> int:
    """The runs list (`modelwiz runs` in a terminal): attach, resume, cancel."""
    return _run(ModelwizApp(None, runs_dir=runs_dir, runs_only=True))


def run_dashboard(run_dir: Path) -> int:
    """The live dashboard of an existing run directory (`modelwiz attach RUN`)."""
    run_dir = Path(run_dir)
    if not (run_dir / "status.json").is_file() and not (run_dir / "events.jsonl").is_file():
        raise UserError(f"{run_dir} is not a run directory (no status.json or events.jsonl)")
    return _run(ModelwizApp(None, attach=run_dir))


def _terminal_alive() -> bool:
    """Whether stdin is still a terminal (a hung-up one answers EIO: os.isatty turns false)."""
    import os

    try:
        return os.isatty(sys.__stdin__.fileno()) if sys.__stdin__ is not None else False
    except (OSError, ValueError):
        return False
