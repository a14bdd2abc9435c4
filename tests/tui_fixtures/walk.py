"""Keyboard walks through the wizard for pilot and snapshot tests."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.worker import WorkerCancelled, WorkerFailed

from modelwiz.engine.workflow import check_data
from modelwiz.tui.app import ModelwizApp
from modelwiz.tui.state import WizardState

from .fakes import RUN_ID, THEMES, RecordedRuns, fake_hardware, fake_recommend, make_config, make_services, write_run


def async_test(fn: Callable) -> Callable:
    """Run an async test function in a fresh event loop (no pytest asyncio plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


def make_app(
    runs_dir: Path,
    *,
    train: str = "tickets.csv",
    state: str = "completed",
    lines: int | None = None,
    gpu: bool = True,
    start: str = "task",
) -> tuple[ModelwizApp, RecordedRuns]:
    """The wizard on fake services. `start` other than "task" begins at that step with the earlier
    steps' results filled in (as if walked), so a snapshot does not pay for mounting every screen."""
    runs = RecordedRuns(runs_dir, state=state, lines=lines)
    wizard = prefilled(runs, start, train=train, gpu=gpu) if start != "task" else None
    app = ModelwizApp(
        make_config(train),
        runs_dir=runs_dir,
        services=make_services(runs, gpu=gpu),
        theme_dirs=[THEMES],
        state=wizard,
        start_step=start,
    )
    return app, runs


def prefilled(runs: RecordedRuns, step: str, *, train: str = "tickets.csv", gpu: bool = True) -> WizardState:
    wizard = WizardState(config=make_config(train))
    wizard.data = check_data(wizard.config)
    wizard.data_key = wizard.task_key()
    wizard.hardware = fake_hardware(gpu)
    if step in ("setup", "dashboard"):
        rec = fake_recommend(wizard.config, wizard.data, wizard.hardware)
        wizard.recommendation, wizard.recommendation_key = rec, wizard.ranking_key()
        wizard.chosen = rec.ranked[0]
    if step == "dashboard":
        wizard.run_dir = write_run(
            runs.runs_dir / RUN_ID,
            state=runs.state,
            lines=runs.lines,
            pid=os.getpid() if runs.state == "running" else None,
        )
    return wizard


async def settle(pilot: Pilot) -> None:
    """Let workers finish and their messages be handled."""
    app = pilot.app
    for _ in range(2):
        await pilot.pause()
        # thread workers only: an async worker may be waiting on a dialog the test has yet to answer
        for worker in [w for w in app.workers if w._thread_worker]:
            try:
                await worker.wait()
            except (WorkerCancelled, WorkerFailed):
                pass
    await pilot.pause()


async def wait_until(pilot: Pilot, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    waited = 0.0
    while not condition():
        if waited >= timeout:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)
        waited += 0.05
    await pilot.pause()


def on_step(app: ModelwizApp, step: str) -> bool:
    return getattr(app.screen, "STEP", "") == step


async def shown(pilot: Pilot) -> None:
    """Wait for whichever step the app started at to be ready."""
    app = pilot.app
    step = app.start_step
    if step == "task":
        await to_task(pilot)
    elif step == "hardware":
        await wait_until(pilot, lambda: on_step(app, "hardware"))
    elif step == "recommend":
        await wait_until(
            pilot,
            lambda: (
                on_step(app, "recommend")
                and app.state.recommendation is not None
                and app.state.recommendation_key == app.state.ranking_key()
            ),
        )
    elif step == "setup":
        await wait_until(pilot, lambda: on_step(app, "setup") and app.screen.plan is not None)
    elif step == "dashboard":
        await wait_until(pilot, lambda: on_step(app, "dashboard") and app.screen.run.events > 0)
    await settle(pilot)


async def to_task(pilot: Pilot) -> None:
    await wait_until(pilot, lambda: on_step(pilot.app, "task") and pilot.app.state.data_ok)
    await settle(pilot)


async def to_hardware(pilot: Pilot) -> None:
    await to_task(pilot)
    await pilot.press("ctrl+n")
    await wait_until(pilot, lambda: on_step(pilot.app, "hardware") and pilot.app.state.hardware is not None)
    await settle(pilot)


async def to_recommend(pilot: Pilot) -> None:
    await to_hardware(pilot)
    await pilot.press("ctrl+n")
    await wait_until(pilot, lambda: on_step(pilot.app, "recommend") and pilot.app.state.recommendation is not None)
    await settle(pilot)


async def to_setup(pilot: Pilot) -> None:
    await to_recommend(pilot)
    await pilot.press("enter")
    await wait_until(pilot, lambda: on_step(pilot.app, "setup"))
    await settle(pilot)


async def to_dashboard(pilot: Pilot) -> None:
    await to_setup(pilot)
    await pilot.press("ctrl+r")
    await wait_until(pilot, lambda: on_step(pilot.app, "dashboard"))
    await wait_until(pilot, lambda: pilot.app.screen.run.events > 0)
    await settle(pilot)


def screen_text(app: ModelwizApp) -> str:
    """The screen as plain text (what a user would read)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens, simplify=True))
    return console.export_text()


def freeze(app: ModelwizApp) -> None:
    """Stop cursor blinking so screenshots do not depend on timing."""
    from textual.widgets import Input

    for screen in app.screen_stack:
        for widget in screen.query(Input):
            widget.cursor_blink = False


def snap(walker: Callable) -> Callable:
    """A `run_before` for snap_compare: walk, settle, freeze."""

    async def run_before(pilot: Pilot) -> None:
        await walker(pilot)
        await settle(pilot)
        freeze(pilot.app)
        await pilot.pause()

    return run_before
