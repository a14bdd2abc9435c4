"""Snapshot tests: every wizard screen at 80x24 and 120x40, on deterministic data.

Fed by tests/tui_fixtures: a fixed hardware report, tickets.csv, fixed candidates ranked by the
real engine, and a recorded run (events.jsonl). Each test starts the app at its step with the
earlier steps' results filled in (the keyboard walk itself is tested in test_tui_pilot.py).
Regenerate after a deliberate UI change with `pytest tests/test_tui_snapshots.py --snapshot-update`,
then look at the SVGs in tests/__snapshots__/.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.pilot import Pilot
from tui_fixtures import walk
from tui_fixtures.fakes import FIXTURES, THEMES, FakeProbe, RecordedRuns, make_services, write_runs

from modelwiz.engine.errors import UserError
from modelwiz.tui.app import ModelwizApp

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


@pytest.fixture(autouse=True)
def _in_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    # the data path is shown as typed ("tickets.csv"), so the screens do not depend on the checkout
    monkeypatch.chdir(FIXTURES)


def then(*keys: str, quiet: bool = False):
    """run_before: wait for the starting step, press `keys`, settle, stop cursor blinking.
    `quiet`: clear the notifications first (they time out: a slow run would lose them)."""

    async def run_before(pilot: Pilot) -> None:
        await walk.shown(pilot)
        if keys:
            await pilot.press(*keys)
        await walk.settle(pilot)
        if quiet:
            pilot.app.clear_notifications()
        walk.freeze(pilot.app)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_task(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    app, _ = walk.make_app(tmp_path)
    assert snap_compare(app, terminal_size=size, run_before=then())


@pytest.mark.parametrize("size", SIZES)
def test_hardware(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    app, _ = walk.make_app(tmp_path, start="hardware")
    assert snap_compare(app, terminal_size=size, run_before=then())


@pytest.mark.parametrize("size", SIZES)
def test_recommendations(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    app, _ = walk.make_app(tmp_path, start="recommend")
    # mark the 1st and 3rd model; the cursor rests on the 4th, whose reasons are shown
    assert snap_compare(app, terminal_size=size, run_before=then("space", "down", "space"))


@pytest.mark.parametrize("size", SIZES)
def test_compare(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    app, _ = walk.make_app(tmp_path, start="recommend")
    assert snap_compare(app, terminal_size=size, run_before=then("space", "space", "space", "c"))


@pytest.mark.parametrize("size", SIZES)
def test_setup(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    app, _ = walk.make_app(tmp_path, start="setup")
    assert snap_compare(app, terminal_size=size, run_before=then())


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_finished(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    app, _ = walk.make_app(tmp_path, start="dashboard")
    assert snap_compare(app, terminal_size=size, run_before=then())


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_running(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    # the recorded run cut after epoch 1's checkpoint, status "running" (pid: this test process)
    app, _ = walk.make_app(tmp_path, start="dashboard", state="running", lines=12)
    assert snap_compare(app, terminal_size=size, run_before=then())


@pytest.mark.parametrize("size", SIZES)
def test_task_error(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    app, _ = walk.make_app(tmp_path, train="")

    async def bad_path(pilot: Pilot) -> None:
        await walk.settle(pilot)
        await pilot.press(*"no-such-file.csv", "enter")
        await walk.settle(pilot)
        walk.freeze(pilot.app)

    assert snap_compare(app, terminal_size=size, run_before=bad_path)


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    app, _ = walk.make_app(tmp_path, start="recommend")
    assert snap_compare(app, terminal_size=size, run_before=then("f1"))


@pytest.mark.parametrize("size", SIZES)
def test_cancel_dialog(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    app, _ = walk.make_app(tmp_path, start="dashboard", state="running", lines=12)
    assert snap_compare(app, terminal_size=size, run_before=then("x"))


@pytest.mark.parametrize("size", SIZES)
def test_confusion_dialog(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    app, _ = walk.make_app(tmp_path, start="dashboard")
    assert snap_compare(app, terminal_size=size, run_before=then("m"))


@pytest.mark.parametrize("size", SIZES)
def test_sort_menu(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    app, _ = walk.make_app(tmp_path, start="recommend")
    assert snap_compare(app, terminal_size=size, run_before=then("s", "down", "down"))


@pytest.mark.parametrize("size", SIZES)
def test_columns_dialog(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    app, _ = walk.make_app(tmp_path, start="recommend")
    assert snap_compare(app, terminal_size=size, run_before=then("v"))


def probing_app(tmp_path: Path, probe: FakeProbe) -> ModelwizApp:
    app, _ = walk.make_app(tmp_path, start="recommend")
    app.services.probe = probe
    return app


@pytest.mark.parametrize("size", SIZES)
def test_probe_running(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    """Held mid-way through the first of five models (15 of 30 examples): the progress bar at 10%."""
    app = probing_app(tmp_path, FakeProbe(hold=True))

    async def probing(pilot: Pilot) -> None:
        await walk.shown(pilot)
        await pilot.press("p")
        # not walk.settle: it waits for thread workers, and this one is held until the app exits
        await walk.wait_until(pilot, lambda: "probe 1/5" in walk.screen_text(pilot.app))
        walk.freeze(pilot.app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=probing)


@pytest.mark.parametrize("size", SIZES)
def test_probed(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    """After the probe: re-ranked by LogME, the LogME column, the reason line in the details pane."""
    app = probing_app(tmp_path, FakeProbe())
    assert snap_compare(app, terminal_size=size, run_before=then("p", quiet=True))


@pytest.mark.parametrize("size", SIZES)
def test_probe_failed_dialog(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    app = probing_app(tmp_path, FakeProbe(error=UserError("probe failed: CUDA error: out of memory")))
    assert snap_compare(app, terminal_size=size, run_before=then("p"))


@pytest.mark.parametrize("size", SIZES)
def test_compare_probed(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    app = probing_app(tmp_path, FakeProbe())

    async def probed_then_compare(pilot: Pilot) -> None:
        await walk.shown(pilot)
        await pilot.press("space", "space", "p")
        await walk.wait_until(pilot, lambda: any(r.probe for r in pilot.app.screen.rows))
        await then("c", quiet=True)(pilot)

    assert snap_compare(app, terminal_size=size, run_before=probed_then_compare)


@pytest.mark.parametrize("size", SIZES)
def test_does_not_fit_dialog(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    app, _ = walk.make_app(tmp_path, start="recommend")
    # the last row: the 7B model, predicted over the 24 GB budget (models that fit come first)
    assert snap_compare(app, terminal_size=size, run_before=then("pagedown", "enter"))


@pytest.mark.parametrize("size", SIZES)
def test_save_config_dialog(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    app, _ = walk.make_app(tmp_path, start="setup")
    assert snap_compare(app, terminal_size=size, run_before=then("ctrl+s"))


def test_too_small(snap_compare, tmp_path: Path) -> None:
    app, _ = walk.make_app(tmp_path)
    assert snap_compare(app, terminal_size=(50, 15), run_before=then())


def test_light_theme(snap_compare, tmp_path: Path) -> None:
    app, _ = walk.make_app(tmp_path, start="dashboard")

    async def light(pilot: Pilot) -> None:
        pilot.app.theme = "modelwiz-light"
        await then()(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=light)


def runs_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The runs list (`modelwiz runs` in a terminal) over three recorded runs in ./runs, times in UTC."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    write_runs(Path("runs"))
    runs = RecordedRuns(Path("runs"))
    return ModelwizApp(None, runs_dir=Path("runs"), services=make_services(runs), theme_dirs=[THEMES], runs_only=True)


def runs_then(*keys: str):
    async def run_before(pilot: Pilot) -> None:
        await walk.wait_until(pilot, lambda: getattr(pilot.app.screen, "loaded", False))
        await walk.settle(pilot)
        if keys:
            await pilot.press(*keys)
        await walk.settle(pilot)
        walk.freeze(pilot.app)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_runs(snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]) -> None:
    app = runs_app(tmp_path, monkeypatch)
    assert snap_compare(app, terminal_size=size, run_before=runs_then("down"))


@pytest.mark.parametrize("size", SIZES)
def test_runs_resume_dialog(
    snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]
) -> None:
    app = runs_app(tmp_path, monkeypatch)
    assert snap_compare(app, terminal_size=size, run_before=runs_then("down", "r"))


@pytest.mark.parametrize("size", SIZES)
def test_runs_cancel_dialog(
    snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]
) -> None:
    app = runs_app(tmp_path, monkeypatch)  # the newest run is the one training
    assert snap_compare(app, terminal_size=size, run_before=runs_then("x"))


@pytest.mark.parametrize("size", SIZES)
def test_file_picker(snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]) -> None:
    work = tmp_path / "work"
    for sub in ("reviews", "images/cats", "images/dogs"):
        (work / sub).mkdir(parents=True)
    (work / "reviews" / "train.csv").write_text("text,label\nhello,a\n")
    (work / "reviews" / "notes.txt").write_text("left out")
    (work / "tickets.jsonl").write_text("{}\n")
    monkeypatch.chdir(work)
    app, _ = walk.make_app(tmp_path / "runs", train="")

    async def browse(pilot: Pilot) -> None:
        await walk.settle(pilot)
        await pilot.press("ctrl+f")
        await walk.settle(pilot)
        await pilot.press("down", "down", "enter")  # open "reviews"
        await walk.settle(pilot)
        walk.freeze(pilot.app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=browse)


def test_256_colour_theme(snap_compare, tmp_path: Path) -> None:
    app, _ = walk.make_app(tmp_path, start="dashboard")

    async def theme_256(pilot: Pilot) -> None:
        pilot.app.theme = "modelwiz-256"
        await then()(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=theme_256)


@pytest.mark.parametrize("finished", [False, True], ids=["racing", "won"])
@pytest.mark.parametrize("size", SIZES)
def test_dashboard_bakeoff(snap_compare, tmp_path: Path, size: tuple[int, int], finished: bool) -> None:
    """A recorded bake-off of three: every contender's curve; racing, the table; won, the winner."""
    from tui_fixtures.fakes import RUN_ID, write_bakeoff_run

    run = write_bakeoff_run(tmp_path / RUN_ID, finished=finished)
    runs = RecordedRuns(tmp_path)
    app = ModelwizApp(None, runs_dir=tmp_path, services=make_services(runs), theme_dirs=[THEMES], attach=run)

    async def shown(pilot: Pilot) -> None:
        await walk.wait_until(pilot, lambda: pilot.app.screen.run.events > 0)
        await walk.settle(pilot)
        walk.freeze(pilot.app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=shown)


@pytest.mark.parametrize("size", SIZES)
def test_setup_bakeoff(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    app, _ = walk.make_app(tmp_path, start="setup")
    app.state.config.train.bakeoff = 3  # the chosen model and the next two that fit
    assert snap_compare(app, terminal_size=size, run_before=then())
