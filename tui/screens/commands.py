"""Command palette (ctrl+p): jump to a step, switch theme, open a run's dashboard."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Callable

from textual.command import DiscoveryHit, Hit, Hits, Provider

from modelwiz.tui.screens.state import STEP_TITLES, STEPS

if TYPE_CHECKING:
    from modelwiz.tui.app import ModelwizApp

MAX_RUNS = 10


class WizardCommands(Provider):
    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app: ModelwizApp = self.app  # type: ignore[assignment]
        commands: list[tuple[str, Callable[[], object], str]] = []
        if not app.attach_only:
            for i, step in enumerate(STEPS, 1):
                if app.state.reachable(step):
                    commands.append((f"Jump to step {i}: {STEP_TITLES[step]}", partial(app.goto_step, step),
                                     "go to this wizard step"))
        for name in sorted(app.available_themes):
            if name != app.theme:
                commands.append((f"Switch theme: {name}", partial(app.set_theme, name), "change the colours"))
        for run in app.recent_runs(MAX_RUNS):
            commands.append((f"Open run: {run.run_id} ({run.state}, {run.model})",
                             partial(app.open_dashboard, run.run_dir), "show this run's dashboard"))
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
