"""The event schema and the one reducer: what every front-end reads a run through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelwiz.engine import events as ev
from modelwiz.engine.errors import UserError

FIXTURE = Path(__file__).parent / "tui_fixtures" / "events.jsonl"


def _eval(epoch: int, **m: float) -> dict:
    base = {"val_loss": 1.0, "accuracy": 0.5, "macro_f1": 0.5, "precision": 0.5, "recall": 0.5}
    return ev.Evaluated(epoch=epoch, step=epoch * 10, **{**base, **m}).to_json()


def test_every_record_round_trips_strictly():
    samples = [
        ev.RunStarted(run_id="r", pid=1, resumed=False),
        ev.Resumed(epoch=2, step=7),
        ev.Step(epoch=1, step=3, total_steps=9, loss=0.5, lr=1e-4, samples_per_s=10.0, mem_allocated_gb=1.0),
        _eval(1),
        ev.Log(level="info", message="hi"),
        ev.RunFinished(status="completed", metrics={}),
    ]
    for item in samples:
        obj = item if isinstance(item, dict) else item.to_json()
        assert obj["v"] == ev.SCHEMA_VERSION
        parsed = ev.parse_event(json.loads(json.dumps(obj)), strict=True)
        assert parsed.kind == obj["event"]


def test_strict_parse_refuses_undeclared_missing_and_mistyped_fields():
    good = ev.Log(level="info", message="x").to_json()
    with pytest.raises(ev.SchemaError, match="undeclared"):
        ev.parse_event({**good, "colour": "red"}, strict=True)
    ev.parse_event({**good, "colour": "red"})  # readers accept additions of the same major version
    with pytest.raises(ev.SchemaError, match="missing field 'message'"):
        ev.parse_event({k: v for k, v in good.items() if k != "message"})
    with pytest.raises(ev.SchemaError, match="'step'"):
        ev.parse_event({**_eval(1), "step": "ten"})
    with pytest.raises(ev.SchemaError, match="unknown event type"):
        ev.parse_event({**good, "event": "teleported"})


def test_readers_refuse_an_unknown_major_version_with_one_line(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({**ev.Log(level="info", message="x").to_json(), "v": ev.SCHEMA_VERSION + 1}) + "\n")
    with pytest.raises(UserError, match="newer modelwiz") as info:
        ev.read_events(path)
    assert "\n" not in str(info.value)


def test_the_recorded_fixture_matches_the_schema():
    for line in FIXTURE.read_text().splitlines():
        ev.parse_event(json.loads(line), strict=True)


@pytest.mark.parametrize("metric, expected_epoch", [("macro_f1", 2), ("accuracy", 3), ("val_loss", 1)])
def test_best_is_the_configured_metric(metric, expected_epoch):
    stream = [
        ev.PlanStarted(
            plan={}, epochs=3, batch_size=8, learning_rate=1e-4, total_steps=30, steps_per_epoch=10, metric=metric
        ).to_json(),
        _eval(1, macro_f1=0.60, accuracy=0.60, val_loss=0.40),
        _eval(2, macro_f1=0.80, accuracy=0.70, val_loss=0.50),
        _eval(3, macro_f1=0.70, accuracy=0.90, val_loss=0.45),
    ]
    state = ev.fold(stream)
    assert state.best_epoch == expected_epoch
    assert state.best_eval["epoch"] == expected_epoch
    assert state.best_metrics()["macro_f1"] == {1: 0.60, 2: 0.80, 3: 0.70}[expected_epoch]


def test_only_a_strict_improvement_is_better():
    assert not ev.is_better({"macro_f1": 0.8}, {"macro_f1": 0.8})
    assert not ev.is_better({"macro_f1": 0.7}, {"macro_f1": 0.8})
    assert ev.is_better({"val_loss": 0.2}, {"val_loss": 0.3}, "val_loss")


def test_a_resumed_stream_folds_to_one_history():
    step = dict(total_steps=20, lr=1e-4, samples_per_s=5.0, mem_allocated_gb=1.0, epoch=1)
    stream = [ev.RunStarted(run_id="r", pid=1, resumed=False).to_json()]
    stream += [ev.Step(step=s, loss=1.0 / s, **step).to_json() for s in (1, 2, 3, 4)]
    stream += [ev.RunStarted(run_id="r", pid=2, resumed=True).to_json(), ev.Resumed(epoch=1, step=2).to_json()]
    stream += [ev.Step(step=s, loss=0.5 / s, **step).to_json() for s in (3, 4, 5)]
    state = ev.fold(stream)
    assert [s for s, _ in state.losses] == [1, 2, 3, 4, 5]
    assert state.losses[2] == (3, 0.5 / 3)  # the resumed run's figure, not the lost one
    assert state.resumed_from_step == 2 and state.status == "running"


def test_the_fixture_folds_to_its_final_state():
    state = ev.fold_file(FIXTURE)
    assert state.finished and state.status == "completed"
    assert state.best_epoch == 2 and state.exported_epoch == 2
    assert state.progress == 1.0


def test_a_run_of_another_schema_version_does_not_hide_the_others(tmp_path):
    from modelwiz.engine.runs import LAUNCHER, list_runs, write_status

    for name, v in (("old", 1), ("new", ev.SCHEMA_VERSION)):
        run = tmp_path / name
        run.mkdir()
        write_status(run, by=LAUNCHER, new_attempt=True, run_id=name, state="completed", created=1.0)
        (run / "events.jsonl").write_text(json.dumps({**ev.Log(level="info", message="x").to_json(), "v": v}) + "\n")
    listed = {r.run_id: r for r in list_runs(tmp_path)}
    assert set(listed) == {"old", "new"} and listed["old"].state == "completed"
