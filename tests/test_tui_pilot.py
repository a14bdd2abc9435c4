"""Pilot tests: the wizard driven by keys only, asserting on state and on what the screen says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from textual.coordinate import Coordinate
from textual.widgets import DataTable
from tui_fixtures import walk
from tui_fixtures.fakes import (
    FIXTURES,
    RUN_ID,
    THEMES,
    FakeProbe,
    RecordedRuns,
    make_services,
    write_run,
    write_runs,
)
from tui_fixtures.walk import async_test

from modelwiz.engine import demo as demo_module
from modelwiz.engine.config import STRATEGIES, load_config
from modelwiz.engine.demo import demo_config
from modelwiz.engine.errors import UserError
from modelwiz.engine.recommend import rank
from modelwiz.tui.app import ModelwizApp, WizardCommands
from modelwiz.tui.dialogs import (
    ChoiceDialog,
    ColumnsDialog,
    ConfirmDialog,
    FilePickerDialog,
    MessageDialog,
    PathDialog,
)
from modelwiz.tui.screens.compare import CompareScreen
from modelwiz.tui.screens.dashboard import DashboardScreen
from modelwiz.tui.screens.help import HelpScreen
from modelwiz.tui.screens.recommend import COLUMNS, SORT_ORDER
from modelwiz.tui.screens.runs import RunsScreen
from modelwiz.tui.widgets import LineChart

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
DEBERTA = "microsoft/deberta-v3-large"


def table_ids(table: DataTable) -> list[str]:
    return [table.coordinate_to_cell_key(Coordinate(i, 0)).row_key.value for i in range(table.row_count)]


@async_test
async def test_whole_flow_by_keyboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    app, runs = walk.make_app(tmp_path, train="")
    async with app.run_test(size=(80, 24)) as pilot:
        # 1 · task: type the data path, enter checks it
        await walk.settle(pilot)
        assert walk.on_step(app, "task")
        await pilot.press(*"tickets.csv", "enter")
        await walk.wait_until(pilot, lambda: app.state.data_ok)
        summary = app.state.data.summary
        assert (summary.rows, summary.num_classes, summary.text_column) == (41, 3, "text")
        assert "1 duplicate texts" in walk.screen_text(app)

        # 2 · hardware: the fake report is shown; cap the model size at 500M parameters
        await pilot.press("ctrl+n")
        await walk.wait_until(pilot, lambda: walk.on_step(app, "hardware") and app.state.hardware is not None)
        await walk.settle(pilot)
        assert "Fake GPU 24GB" in walk.screen_text(app)
        await pilot.press("tab", "tab", *"500")
        assert app.state.config.constraints.max_params_m == 500

        # 3 · models: the 7B model is filtered out by the cap
        await pilot.press("ctrl+n")
        await walk.wait_until(pilot, lambda: walk.on_step(app, "recommend") and app.state.recommendation is not None)
        await walk.settle(pilot)
        screen = app.screen
        table = screen.query_one("#models", DataTable)
        ranked_ids = [r.candidate.id for r in app.state.recommendation.ranked]
        assert len(ranked_ids) == 6 and "Qwen/Qwen2.5-7B" not in ranked_ids
        assert table_ids(table) == ranked_ids

        await pilot.press("S")  # the next sort column: score, best first
        scores = [next(r.score for r in screen.rows if r.candidate.id == i) for i in table_ids(table)]
        assert screen.sort_key == "score" and scores == sorted(scores, reverse=True)
        await pilot.press("S")  # by size, smallest first
        params = [next(r.candidate.params for r in screen.rows if r.candidate.id == i) for i in table_ids(table)]
        assert screen.sort_key == "params" and params == sorted(params)
        assert table_ids(table)[0] == MINILM

        await pilot.press("space", "space")  # mark the two smallest
        assert screen.marked == table_ids(table)[:2]
        await pilot.press("c")
        await walk.settle(pilot)
        assert isinstance(app.screen, CompareScreen)
        assert [r.candidate.id for r in app.screen.models] == screen.marked
        assert "Memory" in walk.screen_text(app)
        await pilot.press("end")  # the reasons are at the foot of the comparison, which scrolls
        await pilot.pause()
        assert "Why" in walk.screen_text(app)
        await pilot.press("ctrl+b")
        await walk.settle(pilot)
        assert app.screen is screen

        await pilot.press("up", "up", "enter")  # back on the smallest model; choose it
        await walk.wait_until(pilot, lambda: walk.on_step(app, "setup"))
        await walk.settle(pilot)
        assert app.state.chosen.candidate.id == MINILM

        # 4 · setup: 5 epochs; the predicted total follows
        setup = app.screen
        before = setup.plan
        assert before.epochs == 3
        await pilot.press("end", "ctrl+u", "5")
        assert app.state.config.train.epochs == 5
        assert setup.plan.epochs == 5 and setup.plan.total_seconds == pytest.approx(5 * before.epoch_seconds)
        assert "for 5 epochs" in walk.screen_text(app)
        await pilot.press("tab", "tab", "end", "ctrl+u", *"16")  # batch size 16
        assert setup.plan.batch_size == 16 and setup.plan.memory.total_gb < before.memory.total_gb

        # 5 · train: the fake start_run writes the recorded run; the dashboard shows its results
        await pilot.press("ctrl+r")
        await walk.wait_until(pilot, lambda: walk.on_step(app, "dashboard"))
        dashboard = app.screen
        await walk.wait_until(pilot, lambda: dashboard.done)
        await walk.settle(pilot)
        config, ranked = runs.started[0]
        assert config.train.epochs == 5 and ranked.plan.epochs == 5 and ranked.plan.batch_size == 16
        assert ranked.candidate.id == MINILM
        assert dashboard.run.best_metrics()["accuracy"] == pytest.approx(0.8889)
        text = walk.screen_text(app)
        assert re.search(r"Accuracy\s+0\.8889", text) and "completed" in text
        assert f'modelwiz predict {RUN_ID} "some text"' in text
        assert "/model" in text

        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0
    assert app.exit_notice == ""  # the run had finished: nothing left in the background


@async_test
async def test_bad_data_path_stays_on_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    app, _ = walk.make_app(tmp_path, train="")
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.settle(pilot)
        await pilot.press("ctrl+n")  # nothing typed yet
        await walk.settle(pilot)
        assert walk.on_step(app, "task") and "enter the path" in app.screen.error

        await pilot.press(*"no-such.csv", "enter")
        await walk.settle(pilot)
        assert "does not exist" in app.screen.error
        assert "does not exist" in walk.screen_text(app)
        await pilot.press("ctrl+n")
        await walk.settle(pilot)
        assert walk.on_step(app, "task") and app.state.data is None

        # a folder, and a validation fraction that is not a number
        await pilot.press("ctrl+u", ".", "enter")
        await walk.settle(pilot)
        # a folder means image data: the modality follows, and this folder has no class folders
        assert "no class sub-folders" in app.screen.error and app.state.data is None
        assert app.state.config.task.modality == "image"
        await pilot.press("ctrl+u", *"tickets.csv", "shift+tab", "ctrl+u", *"lots", "enter")
        await walk.settle(pilot)
        assert "validation" in app.screen.error and walk.on_step(app, "task")

        # fixed: the check passes and ctrl+n moves on
        await pilot.press("ctrl+u", *"0.25", "ctrl+n")
        await walk.wait_until(pilot, lambda: walk.on_step(app, "hardware"))
        assert app.state.config.task.validation == 0.25


@async_test
async def test_bad_constraints_are_inline_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    app, _ = walk.make_app(tmp_path, start="hardware")
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.shown(pilot)
        await pilot.press("tab", *"lots")  # max memory
        assert "not a number" in app.screen.error
        await pilot.pause()
        assert "'lots' is not a" in walk.screen_text(app)
        await pilot.press("ctrl+n")
        await walk.settle(pilot)
        assert walk.on_step(app, "hardware")
        await pilot.press("ctrl+u", *"-3")
        assert "above 0" in app.screen.error
        await pilot.press("ctrl+u", "8", "ctrl+n")
        await walk.wait_until(pilot, lambda: walk.on_step(app, "recommend"))
        assert app.state.config.constraints.max_memory_gb == 8.0


@async_test
async def test_a_device_this_machine_lacks_is_an_inline_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A config asking for cuda on a machine without a GPU: said on the form, not a crash, and the
    wizard does not go on until the device is one that exists."""
    monkeypatch.chdir(FIXTURES)
    app, _ = walk.make_app(tmp_path, start="hardware", gpu=False)
    app.state.config.constraints.device = "cuda"
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.shown(pilot)
        await walk.wait_until(pilot, lambda: app.state.hardware is not None)
        assert 'device = "cuda" but no CUDA GPU was detected' in app.screen.error
        await pilot.press("ctrl+n")
        await walk.settle(pilot)
        assert walk.on_step(app, "hardware")
        app.screen.query_one("#device").value = "cpu"
        await walk.settle(pilot)
        assert app.screen.error == ""
        await pilot.press("ctrl+n")
        await walk.wait_until(pilot, lambda: walk.on_step(app, "recommend"))
        assert app.state.config.constraints.device == "cpu"


@async_test
async def test_bad_training_settings_are_inline_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    app, runs = walk.make_app(tmp_path, start="setup")
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.shown(pilot)
        setup = app.screen
        await pilot.press("end", "ctrl+u", *"ten")  # epochs
        assert "epochs" in setup.error and "not a whole number" in setup.error
        await pilot.pause()
        assert "not a whole" in walk.screen_text(app)
        await pilot.press("ctrl+r")  # refused: nothing starts
        await walk.settle(pilot)
        assert walk.on_step(app, "setup") and runs.started == []
        await pilot.press("ctrl+u", "2", "tab", "end", "ctrl+u", "0")  # learning rate 0
        assert "learning rate" in setup.error
        await pilot.press("ctrl+u", *"3e-5")
        assert setup.error == "" and app.state.config.train.learning_rate == 3e-5
        assert app.state.config.train.epochs == 2


@async_test
async def test_setup_reranks_as_values_change_and_starts_the_plan_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FIXTURES)
    app, runs = walk.make_app(tmp_path, start="setup", gpu=False)  # on CPU, speed moves the score
    app.state.chosen = next(r for r in app.state.recommendation.ranked if r.candidate.id == DEBERTA)
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.shown(pilot)
        setup = app.screen
        before = setup.ranked
        assert before.plan.strategy == "linear-probe" and app.state.chosen is before

        # strategy: full (the last option, after auto, linear-probe, partial, gradual)
        downs = ["down"] * STRATEGIES.index("full")
        await pilot.press("shift+tab", "enter", *downs, "enter")
        await walk.settle(pilot)
        after = setup.ranked
        assert app.state.config.train.strategy == "full" and after.plan.strategy == "full"
        # a fresh ranking of the same candidate under the same settings: score, reasons, plan
        s = app.state.data.summary
        fresh = rank(
            app.state.config,
            app.state.hardware,
            train_size=s.train_size,
            num_classes=s.num_classes,
            language=s.language,
            candidates=[before.candidate],
            val_size=s.val_size,
            text_lengths=s.length_words or None,
        )[0]
        assert (after.score, after.reasons, after.plan) == (fresh.score, fresh.reasons, fresh.plan)
        assert after.score < before.score and after.plan.epoch_seconds > before.plan.epoch_seconds
        assert after.reasons != before.reasons and any("(full, batch" in r for r in after.reasons)
        text = walk.screen_text(app)
        mem = after.plan.memory.total_gb
        assert f"Score         {fresh.score:.3f}" in text and f"{mem:.2f} of {after.plan.budget_gb:.1f} GB ✓" in text
        # the time reason as the engine words it for this plan (no figure written into the test),
        # found by scrolling the plan to its reasons (below the figures; the plan's notes follow)
        timing = next(r for r in after.reasons if "/epoch on cpu" in r).split(" (")[0]
        box = setup.query_one("#plan-box")
        box.scroll_home(animate=False)
        for _ in range(40):
            await pilot.pause()
            if timing in walk.screen_text(app):
                break
            box.scroll_relative(y=2, animate=False)
        assert timing in walk.screen_text(app) and mem > before.plan.memory.total_gb
        assert app.state.chosen is after  # the app holds what the screen shows

        await pilot.press("tab", "end", "ctrl+u", "5")  # epochs: time follows, score does not
        await walk.settle(pilot)
        assert setup.plan.epochs == 5 and setup.plan.total_seconds == pytest.approx(
            5 * after.plan.epoch_seconds, rel=0.01
        )
        assert setup.ranked.score == after.score

        await pilot.press("ctrl+r")
        await walk.wait_until(pilot, lambda: walk.on_step(app, "dashboard"))
        config, ranked = runs.started[0]
        assert ranked is setup.ranked  # the very plan shown is the one started
        assert ranked.plan.to_dict() == setup.plan.to_dict() and ranked.plan.strategy == "full"
        assert config.train.strategy == "full" and config.train.epochs == 5
        assert app.state.run_dir == tmp_path / RUN_ID


@async_test
async def test_dashboard_cancel_asks_then_calls_cancel_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    app, runs = walk.make_app(tmp_path, start="dashboard", state="running", lines=12)
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.shown(pilot)
        dashboard = app.screen
        assert dashboard.status == "running" and dashboard.run.epoch == 1
        await pilot.press("x")
        await walk.settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")  # keep training
        await walk.settle(pilot)
        assert app.screen is dashboard and runs.cancelled == []
        await pilot.press("x")
        await walk.settle(pilot)
        await pilot.press("y")
        await walk.settle(pilot)
        assert runs.cancelled == [app.state.run_dir]
        assert dashboard.status == "cancelling"
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0
    assert app.exit_notice == f"training continues in the background; modelwiz attach {RUN_ID}"


@async_test
async def test_dashboard_tails_appended_events(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / RUN_ID, state="running", lines=6, pid=__import__("os").getpid())
    app = ModelwizApp(None, attach=run_dir, theme_dirs=[THEMES])
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.run.events == 6)
        dashboard = app.screen
        assert dashboard.standalone and dashboard.run.step == 0
        assert "Back" not in walk.screen_text(app)  # nowhere to go back to
        lines = (FIXTURES / "events.jsonl").read_text().splitlines(keepends=True)
        with open(run_dir / "events.jsonl", "a") as fh:  # the trainer writes on
            fh.write("".join(lines[6:10]))
            fh.write(lines[10][:20])  # a half-written line waits
        await walk.wait_until(pilot, lambda: dashboard.run.step == 4)
        assert dashboard.run.losses == [(1, 1.1021), (2, 1.0634), (3, 0.9812), (4, 0.887)]
        # the curves and the memory sparkline follow the stream (redrawn once per poll, not per event)
        loss_chart = dashboard.query_one("#loss-chart", LineChart)
        assert [p for p in loss_chart.series[0].points] == [(1.0, 1.1021), (2.0, 1.0634), (3.0, 0.9812), (4.0, 0.887)]
        assert loss_chart.x_range == (0.0, 8.0) and loss_chart.series[1].points == []  # no evaluation yet
        assert dashboard.mem_history == [0.61] * 4
        assert re.search(r"Memory 0\.61 GB allocated · peak 0\.61", walk.screen_text(app))
        with open(run_dir / "events.jsonl", "a") as fh:
            fh.write(lines[10][20:] + "".join(lines[11:]))
        await walk.wait_until(pilot, lambda: dashboard.done)
        assert dashboard.run.finished and dashboard.status == dashboard.run.status == "completed"
        assert len(dashboard.run.evals) == 2
        await walk.settle(pilot)
        metric_chart = dashboard.query_one("#metric-chart", LineChart)
        assert metric_chart.series[0].points == [(4.0, 0.7778), (8.0, 0.8889)]  # accuracy by step
        assert metric_chart.series[1].points == [(4.0, 0.7619), (8.0, 0.8857)]  # macro-F1
        assert loss_chart.series[1].points == [(4.0, 0.8312), (8.0, 0.5127)]  # validation loss
        # finished: the per-class table of the best epoch replaces the evaluation history
        assert dashboard.query_one("#val-box").border_title == "Per class"
        assert re.search(r"shipping\s+1\.000\s+0\.667\s+0\.800\s+3", walk.screen_text(app))


@async_test
async def test_save_config_asks_before_overwriting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app, _ = walk.make_app(tmp_path / "runs", train=str(FIXTURES / "tickets.csv"), start="setup")
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.shown(pilot)
        await pilot.press("end", "ctrl+u", "4", "ctrl+s")
        await walk.settle(pilot)
        assert isinstance(app.screen, PathDialog)
        await pilot.press("enter")  # default: modelwiz.toml here
        await walk.settle(pilot)
        saved = tmp_path / "modelwiz.toml"
        cfg = load_config(saved)
        assert cfg.train.epochs == 4 and cfg.model.id == MINILM
        assert cfg.task.train == str(FIXTURES / "tickets.csv")

        await pilot.press("end", "ctrl+u", "7", "ctrl+s")
        await walk.settle(pilot)
        await pilot.press("enter")
        await walk.settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)  # never overwrite silently
        await pilot.press("n")
        await walk.settle(pilot)
        assert load_config(saved).train.epochs == 4

        await pilot.press("ctrl+s")
        await walk.settle(pilot)
        await pilot.press("enter")
        await walk.settle(pilot)
        await pilot.press("y")
        await walk.settle(pilot)
        assert load_config(saved).train.epochs == 7


@async_test
async def test_help_and_back_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    app, _ = walk.make_app(tmp_path, start="recommend")
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.shown(pilot)
        await pilot.press("question_mark")
        await walk.settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        described = dict((d, k) for k, d in app.screen.rows)
        for desc in ("Choose", "Mark", "Compare", "Sort", "Back", "Quit", "Help"):
            assert desc in described
        await pilot.press("q")  # closes the help, not the app
        await walk.settle(pilot)
        assert walk.on_step(app, "recommend")
        await pilot.press("ctrl+b")
        await walk.settle(pilot)
        assert walk.on_step(app, "hardware")
        await pilot.press("escape")
        await walk.settle(pilot)
        assert walk.on_step(app, "task")


@async_test
async def test_command_palette_jumps_and_switches_theme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    app, _ = walk.make_app(tmp_path, start="setup")
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.shown(pilot)
        # by keyboard: ctrl+p, type, enter
        await pilot.press("ctrl+p")
        await walk.settle(pilot)
        await pilot.press(*"step 2")
        await pilot.pause(0.2)
        await pilot.press("enter")
        await walk.wait_until(pilot, lambda: walk.on_step(app, "hardware"))
        # the provider's other commands, called directly
        provider = WizardCommands(app.screen)
        prompts = [str(h.match_display) async for h in provider.search("theme modelwiz-light")]
        assert any("Switch theme: modelwiz-light" in p for p in prompts)
        jumps = [str(h.display) async for h in provider.discover() if "Jump" in str(h.display)]
        assert jumps == [
            "Jump to step 1: Task",
            "Jump to step 2: Hardware",
            "Jump to step 3: Models",
            "Jump to step 4: Training setup",
        ]  # no run yet: no dashboard
        theme_hits = [h async for h in provider.search("switch theme: modelwiz-light")]
        max(theme_hits, key=lambda h: h.score).command()
        assert app.theme == "modelwiz-light"


@async_test
async def test_too_small_terminal_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    app, _ = walk.make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.shown(pilot)
        assert "Terminal too small" not in walk.screen_text(app)
        await pilot.resize_terminal(59, 24)
        await walk.settle(pilot)
        assert "Terminal too small" in walk.screen_text(app)
        await pilot.resize_terminal(80, 19)
        await walk.settle(pilot)
        assert "Terminal too small" in walk.screen_text(app)
        await pilot.resize_terminal(80, 24)
        await walk.settle(pilot)
        assert "Preview" in walk.screen_text(app)


@async_test
async def test_themes_from_files_with_bad_ones_collected(tmp_path: Path) -> None:
    good = (THEMES / "modelwiz-light.toml").read_text()
    (tmp_path / "ok.toml").write_text(good.replace('"modelwiz-light"', '"mine"'))
    (tmp_path / "broken.toml").write_text("name = [")
    (tmp_path / "nocolor.toml").write_text('name = "x"\nprimary = "not-a-colour"\n')
    app = ModelwizApp(None, theme_dirs=[tmp_path])
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.settle(pilot)
        assert "mine" in app.available_themes
        assert app.theme == "textual-dark"  # no modelwiz-dark here: built-in
        assert sorted(p.split(":")[0] for p in app.theme_problems) == ["broken.toml", "nocolor.toml"]
        assert len(app._notifications) == 1  # one notification for all of them


@async_test
async def test_demo_without_demo_config_shows_a_dialog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_module, "DEMO_CONFIG", tmp_path / "missing.toml")
    with pytest.raises(UserError):
        demo_config()
    app = ModelwizApp(None, demo=True, theme_dirs=[THEMES])
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.settle(pilot)
        assert isinstance(app.screen, MessageDialog)
        assert "missing.toml" in app.screen.message
        await pilot.press("enter")
        await walk.settle(pilot)
        assert walk.on_step(app, "task")


def test_ui_never_imports_torch() -> None:
    code = (
        "import modelwiz.tui.app, sys; "
        "print([m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'torchvision')])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- the runs screen


def runs_app(tmp_path: Path) -> tuple[ModelwizApp, RecordedRuns, list[Path]]:
    """`modelwiz runs` in a terminal: the app on the runs list of three recorded runs."""
    dirs = write_runs(tmp_path)
    runs = RecordedRuns(tmp_path)
    app = ModelwizApp(None, runs_dir=tmp_path, services=make_services(runs), theme_dirs=[THEMES], runs_only=True)
    return app, runs, dirs


async def runs_shown(pilot) -> RunsScreen:
    app = pilot.app
    await walk.wait_until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded)
    await walk.settle(pilot)
    return app.screen


@async_test
async def test_runs_screen_lists_every_run_and_attaches(tmp_path: Path) -> None:
    app, _, dirs = runs_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await runs_shown(pilot)
        table = screen.query_one("#runs", DataTable)
        assert table_ids(table) == [d.name for d in dirs]  # newest first
        states = [r.info.state for r in screen.rows]
        assert states == ["running", "interrupted", "completed"]
        text = walk.screen_text(app)
        assert "3 runs · 1 active · in" in text
        # best metric (the run's own: macro-F1), start and duration from the events' clock
        assert re.search(r"20250101-120000-ab12 completed\s+all-MiniLM-L6-\S*\s+0\.886 F1 01-01 \d\d:00\s+00:12", text)
        assert "Attach" in text and "Resume" in text

        # enter on the completed run: its dashboard with the whole history, then ctrl+b back to the list
        await pilot.press("down", "down", "enter")
        await walk.wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.done)
        dashboard = app.screen
        assert dashboard.run_dir == dirs[2] and dashboard.run.finished
        assert dashboard.run.best_metrics()["accuracy"] == pytest.approx(0.8889)
        await walk.settle(pilot)
        assert "completed" in walk.screen_text(app)
        await pilot.press("ctrl+b")
        await walk.settle(pilot)
        assert isinstance(app.screen, RunsScreen) and app.screen is screen
        assert screen.highlighted.info.run_dir == dirs[2]  # the cursor stayed on that run

        # attaching to the running run replays what it has written so far and keeps following it
        await pilot.press("up", "up", "enter")
        await walk.wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.run.events > 0)
        assert app.screen.run_dir == dirs[0] and not app.screen.done and app.screen.run.epoch == 1
        await pilot.press("q")
    assert app.return_code == 0


@async_test
async def test_runs_screen_resumes_an_interrupted_run_after_asking(tmp_path: Path) -> None:
    app, runs, dirs = runs_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await runs_shown(pilot)
        # on the running run, resume is not offered
        await pilot.press("r")
        await walk.settle(pilot)
        assert app.screen is screen and runs.resumed == []

        await pilot.press("down", "r")  # the interrupted run
        await walk.settle(pilot)
        assert isinstance(app.screen, ConfirmDialog) and "Resume this run?" in walk.screen_text(app)
        await pilot.press("n")  # not now: nothing happens
        await walk.settle(pilot)
        assert app.screen is screen and runs.resumed == []

        await pilot.press("r", "y")
        await walk.wait_until(pilot, lambda: runs.resumed == [dirs[1]])
        await walk.wait_until(pilot, lambda: screen.rows[1].info.state == "running")  # re-read after resuming
        assert screen.highlighted.info.run_dir == dirs[1]


@async_test
async def test_runs_screen_cancels_a_running_run_after_asking(tmp_path: Path) -> None:
    app, runs, dirs = runs_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await runs_shown(pilot)
        await pilot.press("down", "down", "x")  # the completed run: nothing to cancel
        await walk.settle(pilot)
        assert app.screen is screen
        await pilot.press("up", "up", "x")
        await walk.settle(pilot)
        assert isinstance(app.screen, ConfirmDialog) and "Cancel training?" in walk.screen_text(app)
        await pilot.press("n")
        await walk.settle(pilot)
        assert runs.cancelled == []
        await pilot.press("x", "y")
        await walk.wait_until(pilot, lambda: runs.cancelled == [dirs[0]])
        assert app.screen is screen


@async_test
async def test_runs_screen_from_any_step_and_the_palette(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    dirs = write_runs(tmp_path)
    app, _ = walk.make_app(tmp_path, start="setup")
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.shown(pilot)
        setup = app.screen
        assert "Runs" in walk.screen_text(app)  # the key is in the footer
        await pilot.press("ctrl+o")
        screen = await runs_shown(pilot)
        assert [r.info.run_dir for r in screen.rows] == dirs
        await pilot.press("ctrl+b")  # back where it was opened
        await walk.settle(pilot)
        assert app.screen is setup

        provider = WizardCommands(app.screen)
        names = [name for name, _, _ in provider._commands()]
        assert any(n.startswith("Runs:") for n in names)
        await pilot.press("ctrl+o", "down", "enter")  # attach from the list: the wizard's dashboard step
        await walk.wait_until(pilot, lambda: walk.on_step(app, "dashboard") and app.screen.done)
        assert app.state.run_dir == dirs[1] and app.screen.status == "interrupted"
        assert "modelwiz resume 20250102-100000-bb22" in walk.screen_text(app)


def test_runs_command_prints_the_table_when_not_a_terminal(tmp_path: Path) -> None:
    write_runs(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "modelwiz", "runs", "--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "20250102-100000-bb22" in out.stdout and "interrupted" in out.stdout


@async_test
async def test_hardware_says_live_how_many_models_qualify_and_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FIXTURES)
    app, _ = walk.make_app(tmp_path, start="hardware")
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.shown(pilot)
        await walk.wait_until(pilot, lambda: app.screen.count is not None)
        screen = app.screen
        # the 7 fixture models; the 7B one does not fit the 23.5 GB of the fake GPU
        assert (screen.count.total, screen.count.qualify, screen.count.fit) == (7, 7, 6)
        assert str(screen.query_one("#hw-count").content) == "7 of 7 models qualify, 6 fit in 23.5 GB"

        # a parameter cap and a memory limit: the count follows as values are typed
        screen.query_one("#max-params").focus()
        await pilot.press(*"200")
        await walk.wait_until(pilot, lambda: screen.count is not None and screen.count.qualify == 4)
        screen.query_one("#max-memory").focus()
        await pilot.press(*"0.1")
        await walk.wait_until(pilot, lambda: screen.count is not None and screen.count.budget_gb == 0.1)
        assert screen.count.fit < screen.count.qualify

        # the time budget is a field: refused inline when it is not a duration, counted when it is
        screen.query_one("#max-memory").value = ""
        screen.query_one("#time-budget").focus()
        await pilot.press(*"soon")
        await walk.settle(pilot)
        assert "not a duration" in screen.error and screen.count is None
        await pilot.press("ctrl+n")
        await walk.settle(pilot)
        assert walk.on_step(app, "hardware")  # not while a value is refused
        await pilot.press("ctrl+u", *"90m")
        await walk.wait_until(pilot, lambda: screen.count is not None and screen.count.in_time is not None)
        assert app.state.time_budget_s == 5400 and screen.error == ""
        assert str(screen.query_one("#hw-count").content).endswith("4 finish within 1.5 h")


@async_test
async def test_file_picker_chooses_the_data_by_keyboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    shutil.copy(FIXTURES / "tickets.csv", work / "data" / "reviews.csv")
    (work / "data" / "notes.txt").write_text("not data")
    (work / ".hidden").mkdir()
    monkeypatch.chdir(work)
    app, _ = walk.make_app(tmp_path / "runs", train="")
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.settle(pilot)
        assert "Browse" in walk.screen_text(app)
        await pilot.press("ctrl+f")
        await walk.settle(pilot)
        picker = app.screen
        assert isinstance(picker, FilePickerDialog) and picker.root == work.resolve()
        tree = picker.query_one("#picker-tree")
        await pilot.press("down", "enter")  # the folder "data": opens it
        await walk.wait_until(pilot, lambda: len(tree.cursor_node.children) > 0)
        names = [child.data.path.name for child in tree.cursor_node.children]
        assert names == ["reviews.csv"]  # data files only: notes.txt and hidden entries are left out
        await pilot.press("down", "enter")
        await walk.wait_until(pilot, lambda: app.state.data_ok)
        assert app.state.config.task.train == "data/reviews.csv"
        assert app.screen.query_one("#path").value == "data/reviews.csv"
        assert app.state.data.summary.rows == 41

        # it opens again where the typed path is; backspace goes up a folder; Esc cancels and keeps the path
        await pilot.press("ctrl+f")
        await walk.settle(pilot)
        assert app.screen.root == (work / "data").resolve()
        await pilot.press("backspace")
        await walk.settle(pilot)
        assert app.screen.root == work.resolve()
        await pilot.press("escape")
        await walk.settle(pilot)
        assert walk.on_step(app, "task") and app.state.config.task.train == "data/reviews.csv"


@async_test
async def test_theme_switched_from_the_palette_is_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelwiz.tui.settings import load_settings, settings_path

    monkeypatch.chdir(FIXTURES)
    assert not settings_path().exists()  # conftest: a fresh MODELWIZ_HOME
    app, _ = walk.make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.to_task(pilot)
        assert app.theme == "modelwiz-dark"
        await pilot.press("ctrl+p")
        await walk.settle(pilot)
        await pilot.press(*"modelwiz-256")
        await walk.wait_until(pilot, lambda: "Switch theme: modelwiz-256" in walk.screen_text(app))
        await pilot.press("enter")
        await walk.wait_until(pilot, lambda: app.theme == "modelwiz-256")
        await walk.wait_until(pilot, lambda: load_settings().get("theme") == "modelwiz-256")
        # the plot colours are theme variables: they follow
        assert app.get_css_variables()["mw-loss-curve"].lower() == "#ffaf5f"

    # the next session opens in it; --theme wins over the remembered one, an unknown name falls back once
    app2, _ = walk.make_app(tmp_path)
    async with app2.run_test(size=(80, 24)) as pilot:
        await walk.settle(pilot)
        assert app2.theme == "modelwiz-256"
    app3 = ModelwizApp(None, theme_dirs=[THEMES], theme="modelwiz-light")
    async with app3.run_test(size=(80, 24)) as pilot:
        await walk.settle(pilot)
        assert app3.theme == "modelwiz-light"
    assert load_settings()["theme"] == "modelwiz-light"
    app4 = ModelwizApp(None, theme_dirs=[THEMES], theme="no-such-theme")
    async with app4.run_test(size=(80, 24)) as pilot:
        await walk.settle(pilot)
        assert app4.theme == "modelwiz-light"  # no such theme: the remembered one
        assert any("no theme named 'no-such-theme'" in p for p in app4.theme_problems)
        assert len(app4._notifications) == 1


@async_test
async def test_models_filter_by_text_then_sort_mark_and_compare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FIXTURES)
    app, _ = walk.make_app(tmp_path, start="recommend")
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.shown(pilot)
        screen = app.screen
        table = screen.query_one("#models", DataTable)
        everything = table_ids(table)
        assert "Filter" in walk.screen_text(app)
        await pilot.press("slash", *"mit rob")  # words: license mit and 'rob' (roberta)
        await walk.settle(pilot)
        assert screen.filter_text == "mit rob"
        assert table_ids(table) == [i for i in everything if "roberta" in i.lower()]
        assert set(table_ids(table)) == {"FacebookAI/roberta-base", "FacebookAI/xlm-roberta-base"}
        assert "2 shown" in walk.screen_text(app)
        await pilot.press("enter")  # back to the table; enter there chooses, so the filter kept it from doing so
        await walk.settle(pilot)
        assert walk.on_step(app, "recommend") and app.focused is table
        await pilot.press("S", "S")  # by size, smallest first, still filtered
        assert screen.sort_key == "params" and table_ids(table) == [
            "FacebookAI/roberta-base",
            "FacebookAI/xlm-roberta-base",
        ]
        await pilot.press("space", "space", "c")
        await walk.settle(pilot)
        assert isinstance(app.screen, CompareScreen)
        assert [r.candidate.id for r in app.screen.models] == ["FacebookAI/roberta-base", "FacebookAI/xlm-roberta-base"]
        await pilot.press("ctrl+b")
        await walk.settle(pilot)
        # clearing the filter shows every model again, marks kept
        await pilot.press("slash", "ctrl+u", "escape")
        await walk.settle(pilot)
        assert walk.on_step(app, "recommend") and sorted(table_ids(table)) == sorted(everything)
        assert screen.marked == ["FacebookAI/roberta-base", "FacebookAI/xlm-roberta-base"]


@async_test
async def test_setup_recipes_checked_by_the_config_rules_and_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app, _ = walk.make_app(tmp_path / "runs", train=str(FIXTURES / "tickets.csv"), start="setup")
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.shown(pilot)
        setup = app.screen
        assert setup.query_one("#recipe-patience").value == "0"
        # refused inline with the config file's own words, and ctrl+r does not start
        setup.query_one("#recipe-patience").focus()
        await pilot.press("ctrl+u", "-", "1")
        await walk.settle(pilot)
        assert "[train] patience must be at least 0" in setup.error
        await pilot.press("ctrl+r")
        await walk.settle(pilot)
        assert walk.on_step(app, "setup")
        await pilot.press("ctrl+u", "2")
        setup.query_one("#recipe-layer_decay").focus()
        await pilot.press("ctrl+u", "2")
        await walk.settle(pilot)
        assert "[train] layer_decay must be at most 1.0" in setup.error
        await pilot.press("ctrl+u", *"0.8")
        setup.query_one("#recipe-grad_accum").focus()
        await pilot.press("ctrl+u", "2")
        setup.query_one("#schedule").value = "cosine"
        setup.query_one("#strategy").value = "gradual"
        await walk.settle(pilot)
        assert setup.error == ""
        train = app.state.config.train
        assert (train.patience, train.layer_decay, train.grad_accum, train.schedule, train.strategy) == (
            2,
            0.8,
            2,
            "cosine",
            "gradual",
        )
        assert setup.plan.strategy == "gradual"

        # "save config" writes the TOML that --batch reads, recipes included
        await pilot.press("ctrl+s")
        await walk.settle(pilot)
        await pilot.press("enter")
        await walk.settle(pilot)
        cfg = load_config(tmp_path / "modelwiz.toml")
        assert (cfg.train.patience, cfg.train.layer_decay, cfg.train.grad_accum, cfg.train.schedule) == (
            2,
            0.8,
            2,
            "cosine",
        )
        assert cfg.train.strategy == "gradual"


def probe_app(tmp_path: Path, probe: FakeProbe) -> ModelwizApp:
    app, _ = walk.make_app(tmp_path, start="recommend")
    app.services.probe = probe
    return app


@async_test
async def test_probe_the_top_k_shows_progress_then_reranks_by_logme(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FIXTURES)
    probe = FakeProbe(hold=True)
    app = probe_app(tmp_path, probe)
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.shown(pilot)
        screen = app.screen
        table = screen.query_one("#models", DataTable)
        before = table_ids(table)
        assert "p Probe" in walk.screen_text(app) and "x Stop probe" not in walk.screen_text(app)
        await pilot.press("p")
        await walk.wait_until(pilot, lambda: "probe 1/5" in walk.screen_text(app))
        text = walk.screen_text(app)
        assert "x Stop probe" in text and "50%" not in text  # 15 of 30 examples of the 1st of 5: 10%
        assert "10%" in text
        probe.gate.set()
        await walk.wait_until(pilot, lambda: not screen.probing and any(r.probe for r in screen.rows))
        # the top 5 (none marked), on disk or not (not offline), as `recommend --probe 5`
        assert probe.calls == [(before[:5], 5)]
        after = table_ids(table)
        # the probed five keep their five places, ordered among themselves by the engine's blend of
        # prior and evidence (transfer.rerank); the 6th stays
        blended = {r.candidate.id: r.probe["blended"] for r in screen.rows if r.probe}
        assert set(after[:5]) == set(before[:5]) == set(blended) and after[5] == before[5]
        assert after[:5] == sorted(after[:5], key=lambda m: -blended[m])
        assert [r.candidate.id for r in app.state.recommendation.ranked] == after  # the wizard's state too
        text = walk.screen_text(app)
        # the Score column shows what the rows are ordered by: the blend, not the prior it started from
        priors = {r.candidate.id: r.score for r in screen.rows if r.probe}
        assert all(f"{blended[m]:.3f}" in text for m in after[:5])
        assert any(f"{priors[m]:.3f}" not in text for m in after[:5])
        assert "LogME" in text and "0.70" in text and "x Stop probe" not in text
        best = next(r for r in screen.rows if r.candidate.id == "distilbert/distilbert-base-uncased")
        assert best.reasons[0].startswith("LogME 0.70, 1st of 5 on 30 of your examples")
        shown = screen.highlighted  # the cursor stays on the model it was on; its pane says its LogME
        assert shown is not None and shown.reasons[0] in str(screen.query_one("#details").render())
        # sorted by LogME from the sort menu: the same order for the probed, the unprobed last
        await pilot.press("s")
        await walk.settle(pilot)
        await pilot.press(*["down"] * SORT_ORDER.index("logme"), "enter")
        await walk.settle(pilot)
        assert screen.sort_key == "logme"
        assert table_ids(table)[:5] == sorted(before[:5], key=lambda m: -FakeProbe.LOGME[m])


@async_test
async def test_a_probed_model_keeps_its_evidence_in_the_setup_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the setup re-ranks the chosen model under its settings: a new prior, blended with the same
    # evidence, so its Score is the models step's for the same settings
    monkeypatch.chdir(FIXTURES)
    probe = FakeProbe()
    app = probe_app(tmp_path, probe)
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.shown(pilot)
        screen = app.screen
        await pilot.press("p")
        await walk.wait_until(pilot, lambda: not screen.probing and any(r.probe for r in screen.rows))
        chosen = screen.highlighted
        assert chosen is not None and chosen.probe and chosen.probe["blended"] != round(chosen.score, 4)
        await pilot.press("enter")
        await walk.wait_until(pilot, lambda: walk.on_step(app, "setup"))
        await walk.settle(pilot)
        setup = app.screen
        assert setup.ranked.probe["evidence"] == chosen.probe["evidence"]
        assert setup.ranked.probe["blended"] == pytest.approx(chosen.probe["blended"], abs=1e-3)
        assert f"Score         {chosen.probe['blended']:.3f}" in walk.screen_text(app)


@async_test
async def test_probe_marked_models_failures_and_errors_are_dialogs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FIXTURES)
    probe = FakeProbe(fail="FacebookAI/roberta-base")
    app = probe_app(tmp_path, probe)
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.shown(pilot)
        screen = app.screen
        table = screen.query_one("#models", DataTable)
        ids = table_ids(table)
        await pilot.press("down", "space", "space")  # mark the 2nd and 3rd
        marked = ids[1:3]
        assert screen.marked == marked
        await pilot.press("p")
        await walk.wait_until(pilot, lambda: isinstance(app.screen, MessageDialog))
        assert probe.calls == [(marked, 2)]
        assert "roberta-base: no weights" in app.screen.message
        await pilot.press("enter")
        await walk.settle(pilot)
        probed = [r for r in screen.rows if r.probe]
        assert sorted(r.candidate.id for r in probed) == sorted(marked)
        failed = next(r for r in probed if r.candidate.id == "FacebookAI/roberta-base")
        assert failed.reasons[0] == "probe failed: no weights"
        # a probe that cannot run at all: one dialog, the ranking as it was
        probe.error = UserError("probe failed: the data changed")
        await pilot.press("p")
        await walk.wait_until(pilot, lambda: isinstance(app.screen, MessageDialog))
        assert app.screen.message == "probe failed: the data changed"
        await pilot.press("enter")
        await walk.settle(pilot)
        assert not screen.probing and table_ids(table) == [r.candidate.id for r in screen.rows]


@async_test
async def test_probe_stopped_with_x_leaves_the_ranking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    probe = FakeProbe(hold=True)
    app = probe_app(tmp_path, probe)
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.shown(pilot)
        screen = app.screen
        before = [r.candidate.id for r in screen.rows]
        await pilot.press("p")
        await walk.wait_until(pilot, lambda: "probe 1/5" in walk.screen_text(app))
        await pilot.press("x")
        await walk.settle(pilot)
        assert probe.stopped and not screen.probing
        assert [r.candidate.id for r in screen.rows] == before and not any(r.probe for r in screen.rows)
        assert "x Stop probe" not in walk.screen_text(app) and not screen.query_one("#probe-box").display


@async_test
async def test_sort_menu_every_column_again_reverses_and_columns_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FIXTURES)
    app, _ = walk.make_app(tmp_path, start="recommend")
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.shown(pilot)
        screen = app.screen
        table = screen.query_one("#models", DataTable)
        mem = {r.candidate.id: r.plan.memory.total_gb for r in screen.rows}
        await pilot.press("s")
        await walk.settle(pilot)
        assert isinstance(app.screen, ChoiceDialog)
        listed = [o.id for o in app.screen.query_one("#choices").options]
        assert listed == list(SORT_ORDER) and set(listed) == {key for key, _ in COLUMNS}  # every column
        await pilot.press(*["down"] * SORT_ORDER.index("memory"), "enter")
        await walk.settle(pilot)
        assert screen.sort_key == "memory" and not screen.reverse
        assert [mem[i] for i in table_ids(table)] == sorted(mem.values())
        assert "sorted by memory ↑" in walk.screen_text(app)
        await pilot.press("s")  # the menu opens on the current column; choosing it again reverses
        await walk.settle(pilot)
        await pilot.press("enter")
        await walk.settle(pilot)
        assert screen.sort_key == "memory" and screen.reverse
        assert [mem[i] for i in table_ids(table)] == sorted(mem.values(), reverse=True)
        await pilot.press("s", "down", "escape")  # Esc in the menu: nothing changes
        await walk.settle(pilot)
        assert screen.sort_key == "memory" and screen.reverse and walk.on_step(app, "recommend")
        # columns: at 80 cells source is hidden; show it, hide the license
        labels = [str(c.label) for c in table.columns.values()]
        assert "Source" not in labels and "License" in labels
        await pilot.press("v")
        await walk.settle(pilot)
        assert isinstance(app.screen, ColumnsDialog)
        keys = [key for key, _ in COLUMNS]
        await pilot.press(*["down"] * keys.index("source"), "space")
        await pilot.press(*["down"] * (keys.index("license") - keys.index("source")), "space", "enter")
        await walk.settle(pilot)
        labels = [str(c.label) for c in table.columns.values()]
        assert "Source" in labels and "License" not in labels
        assert screen.columns_chosen is not None and "source" in screen.columns_chosen


@async_test
async def test_compare_shows_memory_bars_quality_and_transferability(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelwiz.tui.screens.compare import memory_bar

    monkeypatch.chdir(FIXTURES)
    app = probe_app(tmp_path, FakeProbe())
    async with app.run_test(size=(120, 40)) as pilot:
        await walk.shown(pilot)
        screen = app.screen
        await pilot.press("space", "space")  # the top two, then probe only the first (marked: both)
        await pilot.press("p")
        await walk.wait_until(pilot, lambda: not screen.probing and any(r.probe for r in screen.rows))
        await pilot.press("c")
        await walk.settle(pilot)
        assert isinstance(app.screen, CompareScreen)
        text = walk.screen_text(app)
        for r in app.screen.models:
            assert memory_bar(r.plan.memory.total_gb, r.plan.budget_gb).plain in text
            assert f"{r.plan.memory.total_gb:.2f} of {r.plan.budget_gb:.1f} GB" in text
            assert f"LogME {r.probe['logme']:.2f}" in text
            q = r.candidate.quality
            assert (f"{q:.2f} prior" if q is not None else "unknown (no published benchmark)") in text
        for label in ("Memory", "Quality", "Transfer", "Time/epoch", "License", "On disk"):
            assert label in text


@async_test
async def test_dashboard_shows_nvml_device_memory_beside_the_trainers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FIXTURES)
    reads: list[int] = []

    def device_memory(index: int) -> tuple[float, float]:
        reads.append(index)
        return (10.0, 80.0)

    app, _ = walk.make_app(tmp_path, start="dashboard", state="running", lines=12)
    app.services.device_memory = device_memory
    async with app.run_test(size=(120, 40)) as pilot:
        await walk.shown(pilot)
        await walk.wait_until(pilot, lambda: app.screen.nvml is not None)
        text = walk.screen_text(app)
        assert reads and set(reads) == {0}  # the recorded run trains on cuda:0
        assert re.search(r"NVML +█+░+ 10\.0/80\.0 GB", text)
        assert "GB allocated" in text  # the trainer's own figures stay
    # without NVML (the default stand-in answers None) the device row is the trainer's figure
    app, _ = walk.make_app(tmp_path / "b", start="dashboard", state="running", lines=12)
    async with app.run_test(size=(120, 40)) as pilot:
        await walk.shown(pilot)
        await walk.settle(pilot)
        text = walk.screen_text(app)
        assert app.screen.nvml is None and "NVML" not in text and "3.4 of 24.0 GB" in text  # the trainer's


@async_test
async def test_bakeoff_key_sets_it_setup_shows_it_save_and_start_carry_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app, runs = walk.make_app(tmp_path / "runs", train=str(FIXTURES / "tickets.csv"), start="recommend")
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.shown(pilot)
        screen = app.screen
        table = screen.query_one("#models", DataTable)
        assert "b Bake-off" in walk.screen_text(app)
        ids = table_ids(table)
        await pilot.press("space", "space", "b")  # the top two marked: they race
        await walk.settle(pilot)
        assert app.state.config.train.bakeoff == 2 and app.state.bakeoff_models == ids[:2]
        assert "bake-off 2" in walk.screen_text(app)
        await pilot.press("b")  # again: off
        await walk.settle(pilot)
        assert app.state.config.train.bakeoff == 0 and app.state.bakeoff_models == []
        await pilot.press("up", "up", "space", "space")  # unmarked: none marked, so b asks how many race
        assert screen.marked == []
        await pilot.press("b")
        await walk.settle(pilot)
        assert isinstance(app.screen, ChoiceDialog)
        assert [o.id for o in app.screen.query_one("#choices").options][:2] == ["2", "3"]
        await pilot.press("enter")  # 3, highlighted first
        await walk.settle(pilot)
        assert app.state.config.train.bakeoff == 3 and app.state.bakeoff_models == []

        await pilot.press("up", "up", "up", "up", "up", "up", "enter")  # choose the top model
        await walk.wait_until(pilot, lambda: walk.on_step(app, "setup") and app.screen.plan is not None)
        await walk.settle(pilot)
        setup = app.screen
        names = [r.candidate.name for r in setup.contenders]
        assert len(names) == 3 and names[0] == app.state.chosen.candidate.name
        assert all(r.fits for r in setup.contenders)
        plan_text = str(setup.query_one("#plan").render())
        assert "Bake-off" in walk.screen_text(app) or "Bake-off" in plan_text

        await pilot.press("ctrl+s")
        await walk.settle(pilot)
        await pilot.press("enter")
        await walk.settle(pilot)
        saved = load_config(tmp_path / "modelwiz.toml")
        assert saved.train.bakeoff == 3 and saved.model.id == ""  # --batch races the top 3 itself

        await pilot.press("ctrl+r")
        await walk.wait_until(pilot, lambda: bool(runs.started))
        config, chosen = runs.started[0]
        assert config.train.bakeoff == 3 and chosen.candidate.id == app.state.chosen.candidate.id
        assert [r.candidate.id for r in runs.contenders[0]] == [r.candidate.id for r in app.state.recommendation.ranked]


@async_test
async def test_bakeoff_of_two_when_only_one_fits_is_refused_inline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FIXTURES)
    app, runs = walk.make_app(tmp_path, start="setup")
    app.state.config.train.bakeoff = 2
    app.state.bakeoff_models = ["Qwen/Qwen2.5-7B"]  # marked, but it does not fit: no one to race
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.wait_until(pilot, lambda: walk.on_step(app, "setup"))
        await walk.settle(pilot)
        assert "needs at least 2 candidate models that fit" in app.screen.error
        await pilot.press("ctrl+r")
        await walk.settle(pilot)
        assert runs.started == []  # refused before anything is created


@async_test
async def test_dashboard_shows_every_contenders_curve_and_the_winner(tmp_path: Path) -> None:
    from tui_fixtures.fakes import BAKEOFF_MODELS, write_bakeoff_run

    for finished in (False, True):
        run = write_bakeoff_run(tmp_path / f"run-{finished}", finished=finished)
        app = ModelwizApp(None, runs_dir=tmp_path, services=make_services(RecordedRuns(tmp_path)), attach=run)
        async with app.run_test(size=(120, 40)) as pilot:
            await walk.wait_until(pilot, lambda app=app: app.screen.run.events > 0)
            await walk.settle(pilot)
            chart = app.screen.query_one("#loss-chart", LineChart)
            names = [s.name for s in chart.series]
            assert names[:3] == [n for _, n in BAKEOFF_MODELS] and all(s.points for s in chart.series[:3])
            text = walk.screen_text(app)
            if finished:
                assert "bake-off: all-MiniLM-L6-v2 won (macro-F1 0.8600) of 3" in text
                assert names[3] == "winner's run"
                assert "bake-off: all-MiniLM-L6-v2 won; its run goes on from step 8" in text
            else:
                assert "bake-off: round 1 of 2, 2 of 3 racing" in text
                assert "Bake-off" in text and "out r1" in text and "racing" in text


@async_test
async def test_the_details_pane_says_what_the_sources_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ranking's notes (the Hub searched, cached, unreachable or not asked) under the reasons."""
    from tui_fixtures.fakes import fake_recommend

    monkeypatch.chdir(FIXTURES)
    note = "Hugging Face Hub: timed out after 2.0 s; no Hub models in this ranking"

    def with_note(*args: object) -> object:
        rec = fake_recommend(*args)  # type: ignore[arg-type]
        rec.notes.append(note)
        return rec

    app, _ = walk.make_app(tmp_path, start="recommend")
    app.services.recommend = with_note
    async with app.run_test(size=(120, 40)) as pilot:
        await walk.shown(pilot)
        await walk.wait_until(pilot, lambda: bool(app.screen.rows))
        await walk.settle(pilot)
        details = str(app.screen.query_one("#details").render())
        assert "sources: " + note in details
        await pilot.press("down")  # another model: the same sources line
        await walk.settle(pilot)
        assert "sources: " + note in str(app.screen.query_one("#details").render())


@async_test
async def test_the_app_quits_when_its_terminal_goes_away(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a terminal gone without a SIGHUP (a killed tmux session around `make run`) left the app
    # spinning on end-of-file; the app checks its terminal and quits as a hang-up would
    import modelwiz.tui.app as app_module

    monkeypatch.chdir(FIXTURES)
    monkeypatch.setattr(app_module, "_terminal_alive", lambda: True)
    monkeypatch.setattr(ModelwizApp, "TERMINAL_CHECK_S", 0.05)
    app, _ = walk.make_app(tmp_path, train="")
    async with app.run_test(size=(80, 24)) as pilot:
        await walk.settle(pilot)
        assert app.is_running
        monkeypatch.setattr(app_module, "_terminal_alive", lambda: False)
        await walk.wait_until(pilot, lambda: not app.is_running or app.return_code == 129)
    assert app.return_code == 129


@async_test
async def test_setup_traces_an_unmeasured_architecture_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chosen model whose architecture has no memory trace or step-cost count is measured in a
    worker (the screen says so meanwhile; the keys keep working), then the plan is made again."""
    import threading

    from modelwiz.engine import workflow

    monkeypatch.chdir(FIXTURES)
    app, _runs = walk.make_app(tmp_path, start="setup", gpu=False)
    app.state.chosen = next(r for r in app.state.recommendation.ranked if r.candidate.id == DEBERTA)
    measured: list[str] = []
    gate = threading.Event()
    monkeypatch.setattr(workflow, "needs_measuring", lambda ranked: not measured)

    def measure(config, data, hardware, ranked):
        gate.wait(10)
        measured.append(ranked.candidate.id)
        return ranked

    app.services.measure = measure
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()  # not walk.shown: it waits for the workers, the measuring one included
        setup = app.screen
        await walk.wait_until(pilot, lambda: getattr(setup, "measuring", False))
        await walk.wait_until(pilot, lambda: "tracing its training step once" in walk.screen_text(app))
        assert setup.measuring and setup.plan is not None  # the formula's plan is shown meanwhile
        await pilot.press("end", "ctrl+u", "4")  # the form (epochs has the focus) still answers
        await walk.wait_until(pilot, lambda: setup.plan.epochs == 4)
        gate.set()
        await walk.wait_until(pilot, lambda: not setup.measuring)
        await walk.settle(pilot)
        assert measured == [DEBERTA]  # once, not again on every keystroke
        assert "tracing its training step" not in walk.screen_text(app)
