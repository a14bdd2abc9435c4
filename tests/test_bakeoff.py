"""The bake-off (`[train] bakeoff = K`): contenders race by successive halving, the winner is trained
on and exported as a normal run; every contender's curve and result in the events and report.json."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from conftest import build_tiny_bert, run_cli, write_text_data

from modelwiz.engine.events import fold, parse_event, read_events
from modelwiz.engine.plan import bakeoff_rounds, bakeoff_schedule

pytestmark = pytest.mark.slow


def _trained_bert(folder: Path, data: Path) -> Path:
    """A tiny BERT a little wider than the random ones (so the ranking puts it last: same prior,
    more parameters) and trained briefly on the task: the "pretrained" contender."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig

    build_tiny_bert(folder)
    cfg = BertConfig.from_pretrained(str(folder))
    cfg.intermediate_size = 80
    rows = list(csv.reader(data.open()))[1:]
    names = sorted({r[1] for r in rows})
    texts, labels = [r[0] for r in rows], [names.index(r[1]) for r in rows]
    tok = AutoTokenizer.from_pretrained(str(folder))
    torch.manual_seed(1)
    cfg.num_labels = len(names)
    model = AutoModelForSequenceClassification.from_config(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        idx = torch.randint(0, len(texts), (16,)).tolist()
        enc = tok([texts[i] for i in idx], padding=True, return_tensors="pt")
        loss = model(**enc, labels=torch.tensor([labels[i] for i in idx])).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.base_model.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def contenders(tmp_path_factory) -> Path:
    """A model folder with two random-init tiny BERTs and one trained briefly on the task."""
    root = tmp_path_factory.mktemp("bakeoff-models")
    data = write_text_data(root / "pretrain.csv", n_per_class=40, seed=7)
    build_tiny_bert(root / "models" / "bert-a")
    shutil.copytree(root / "models" / "bert-a", root / "models" / "bert-b")
    _trained_bert(root / "models" / "bert-c", data)
    return root / "models"


def _config(tmp: Path, **train) -> Path:
    write_text_data(tmp / "d.csv", n_per_class=40)
    opts = {
        "bakeoff": 3,
        "bakeoff_share": 0.9,  # rounds of 14 and 10 steps: a race (fewer than 10 steps: compared on evidence)
        "epochs": 4,
        "batch_size": 4,
        "learning_rate": 0.003,
        "strategy": "full",
        "max_length": 32,
        **train,
    }
    body = "".join(f"{k} = {json.dumps(v)}\n" for k, v in opts.items())
    p = tmp / "c.toml"
    p.write_text(
        f'[task]\ntrain = "d.csv"\n[constraints]\ndevice = "cpu"\noffline = true\nmax_params_m = 1\n[train]\n{body}'
    )
    return p


def _env(models: Path) -> dict[str, str]:
    return {"MODELWIZ_MODEL_PATH": str(models)}


def test_bakeoff_picks_the_trained_model_and_trains_it_on(tmp_path, contenders):
    cfg = _config(tmp_path)
    proc = run_cli("--batch", str(cfg), "--json", "--runs-dir", str(tmp_path / "runs"), env=_env(contenders))
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.strip()]
    for obj in events:
        parse_event(obj, strict=True)
    summary = events[-1]
    assert summary["status"] == "completed"
    run_dir = Path(summary["run_dir"])

    started = [e for e in events if e["event"] == "bakeoff_started"]
    assert len(started) == 1
    order = [c["model"] for c in started[0]["contenders"]]
    # the ranking put the trained model last (same prior, more parameters): the race must find it
    assert [Path(m).name for m in order] == ["bert-a", "bert-b", "bert-c"]
    assert [r["contenders"] for r in started[0]["rounds"]] == [3, 2]
    trained = order[2]

    rounds = [e for e in events if e["event"] == "bakeoff_round"]
    assert [(e["round"], e["index"]) for e in rounds][:3] == [(1, 0), (1, 1), (1, 2)]
    assert len(rounds) == 5  # 3 in round 1, the 2 kept in round 2
    assert all(e["losses"] and e["metric"] == "macro_f1" for e in rounds)
    first, second = rounds[0]["total_steps"], started[0]["rounds"][1]["steps"]
    assert rounds[-1]["total_steps"] == first + second  # round 2 goes on from round 1's state
    cuts = [e for e in events if e["event"] == "bakeoff_cut"]
    assert [len(c["dropped"]) for c in cuts] == [1, 1]
    result = [e for e in events if e["event"] == "bakeoff_result"][0]
    assert result["winner"] == trained
    assert result["table"][0]["model"] == trained and result["table"][0]["winner"]
    assert {r["model"] for r in result["table"]} == set(order)
    c_round1 = next(e for e in rounds if e["round"] == 1 and e["model"] == trained)
    assert c_round1["macro_f1"] > max(e["macro_f1"] for e in rounds if e["round"] == 1 and e["model"] != trained)

    # the winner's run is a normal run from the step its bake-off reached: plan, steps, evals, export
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["model_id"] == trained and plan["bakeoff"]["winner"] == trained
    assert [e["plan"] for e in events if e["event"] == "plan"] == [plan]
    steps = [e for e in events if e["event"] == "step"]
    assert min(e["step"] for e in steps) > result["steps"]
    assert len([e for e in events if e["event"] == "eval"]) == 4
    # every contender stayed in memory: loaded once, never written or read back, the winner handed over
    logs = [e["message"] for e in events if e["event"] == "log"]
    assert sum("(loaded)" in m for m in logs) == 3 and sum("(kept in memory)" in m for m in logs) == 2 + 1, logs
    assert not any("read from disk" in m for m in logs)
    assert summary["model"] == trained
    assert summary["bakeoff"]["winner"] == trained and len(summary["bakeoff"]["table"]) == 3

    report = json.loads((run_dir / "report.json").read_text())
    bo = report["bakeoff"]
    assert bo["winner"] == trained and len(bo["contenders"]) == 3
    assert all(c["curve"] and c["results"] for c in bo["contenders"])
    assert [c["eliminated_in"] for c in bo["contenders"] if c["model"] != trained] in ([1, 2], [2, 1])
    config = (run_dir / "config.toml").read_text()
    assert 'id = ""' in config and "bakeoff = 3" in config
    assert not list((run_dir / "bakeoff").glob("*.pt"))  # the contenders' states are gone

    # the reducer: dashboard, runs --json
    state = fold(read_events(run_dir / "events.jsonl")[0])
    assert state.bakeoff["winner"] == trained
    assert all(c["curve"] for c in state.bakeoff["contenders"])
    runs = json.loads(run_cli("runs", "--runs-dir", str(run_dir.parent), "--json").stdout)["runs"]
    assert runs[0]["bakeoff"]["winner"] == trained

    # the export loads without modelwiz
    from transformers import pipeline

    clf = pipeline("text-classification", model=summary["model_path"])
    assert clf("the striker scored a goal in the league match")[0]["label"] == "sports"


def test_cancel_during_the_bakeoff_then_resume_restarts_the_round(tmp_path, contenders):
    import subprocess
    import sys

    cfg = _config(tmp_path, bakeoff=2, epochs=60, bakeoff_share=0.5)
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelwiz.cli", "--batch", str(cfg), "--json", "--runs-dir", str(tmp_path / "runs")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**__import__("os").environ, **_env(contenders)},
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines = []
    for line in proc.stdout:
        lines.append(json.loads(line))
        if lines[-1]["event"] == "bakeoff_step":
            run_dir = Path(next(e for e in lines if e["event"] == "run_created")["run_dir"])
            c = run_cli("cancel", run_dir.name, "--runs-dir", str(run_dir.parent))
            assert c.returncode == 0, c.stderr
            break
    rest, err = proc.stdout.read(), proc.stderr.read()
    proc.wait(timeout=120)
    lines += [json.loads(ln) for ln in rest.splitlines() if ln.strip()]
    assert proc.returncode == 130, err
    assert lines[-1]["status"] == "cancelled"
    assert not any(e["event"] == "bakeoff_result" for e in lines)
    logs = [e["message"] for e in lines if e["event"] == "log"]
    assert any("cancelled during bake-off round 1" in m for m in logs), logs

    # resume: the round restarts from its start, then the run completes
    res = run_cli("resume", run_dir.name, "--runs-dir", str(run_dir.parent), "--json", "--detach")
    assert res.returncode == 0, res.stderr
    from modelwiz.engine.runs import request_cancel, wait_for_final

    events_path = run_dir / "events.jsonl"
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(e["event"] == "bakeoff_result" for e in read_events(events_path)[0]):
        time.sleep(0.1)
    request_cancel(run_dir)  # 60 epochs: stop once the race is decided
    assert wait_for_final(run_dir, timeout_s=120) == "cancelled"
    events = read_events(events_path)[0]
    started = [e for e in events if e["event"] == "bakeoff_started"]
    assert [e["resumed_round"] for e in started] == [0, 1]
    assert any("round 1 of 1 restarts from its start" in e["message"] for e in events if e["event"] == "log")
    assert any(e["event"] == "bakeoff_result" for e in events)
    state = fold(events)
    assert state.bakeoff["winner"] and all(len(c["results"]) == 1 for c in state.bakeoff["contenders"])


def test_schedule_halves_and_stays_within_the_share():
    from types import SimpleNamespace

    assert bakeoff_rounds(2) == [2]
    assert bakeoff_rounds(3) == [3, 2]
    assert bakeoff_rounds(5) == [5, 3, 2]
    assert bakeoff_rounds(8) == [8, 4, 2]

    def plan(i: int, seconds: float) -> SimpleNamespace:
        d = {"model_id": f"m{i}"}
        return SimpleNamespace(
            effective_batch=10, train_size=1000, epochs=4, total_seconds=seconds, metric="macro_f1", to_dict=lambda: d
        )

    plans = [plan(i, 400.0) for i in range(4)]  # 100 steps an epoch, 400 a run, 1 s a step
    s = bakeoff_schedule(plans, share=0.25)  # type: ignore[arg-type]
    assert [r["contenders"] for r in s["rounds"]] == [4, 2]
    assert [r["steps"] for r in s["rounds"]] == [12, 25]  # 100 steps a round, split evenly
    spent = sum(r["contenders"] * r["steps"] for r in s["rounds"])
    assert spent <= 0.25 * 400 and s["predicted_seconds"] == pytest.approx(spent * 1.0)
    # never past a contender's first epoch
    s = bakeoff_schedule(plans[:2], share=0.9)  # type: ignore[arg-type]
    assert s["rounds"][0]["steps"] <= 100
    assert s["warning"] == ""
    # a short run: 2.5 s would buy one step each, no race: the contenders are compared on evidence
    # (LogME of frozen features), a forward pass over the sample each: the whole training split here
    # (100 examples, fewer than the least sample), a third of 0.1 s each: 3.3 s a contender, over
    # the budget even for the 2 best-ranked (the least compared), and the plan says so
    short = [SimpleNamespace(**{**vars(p), "train_size": 100, "epochs": 1, "total_seconds": 10.0}) for p in plans]
    s = bakeoff_schedule(short, share=0.25)  # type: ignore[arg-type]
    assert s["evidence"] == "logme" and s["evidence_examples"] == 100
    assert s["rounds"] == [{"round": 1, "contenders": 2, "steps": 0}]
    assert [c["model_id"] for c in s["contenders"]] == ["m0", "m1"] and s["asked"] == 4
    assert s["predicted_seconds"] == pytest.approx(2 * 100 * 0.1 / 3, abs=0.1)
    assert "give each contender 1 training step(s), too few to tell models apart" in s["warning"]
    assert "the 2 best-ranked of the 4 asked" in s["warning"]
    assert (
        "takes about 6.7 s, more than the 25% share's 2.5 s: the least sample is the whole training split (100"
        in s["warning"]
    )
    # an evaluation predicted at 1 s for 100 validation examples: 0.01 s an example (forward only, as
    # the plan predicts it) instead of the step's third: 1 s a contender, 2 of them within 2.5 s
    timed_eval = [SimpleNamespace(**{**vars(p), "eval_seconds": 1.0, "val_size": 100}) for p in short]
    s = bakeoff_schedule(timed_eval, share=0.25)  # type: ignore[arg-type]
    assert s["rounds"][0]["contenders"] == 2 and s["predicted_seconds"] == pytest.approx(2.0)
    assert "more than the" not in s["warning"]  # within its share
    # more data, same short run: the sample is what the budget pays for (at least 200 examples)
    # 313 steps of 32 in 31.3 s (0.1 s a step); 5% is 1.565 s: 7 steps each for 2, no race
    big = [
        SimpleNamespace(**{**vars(p), "train_size": 10_000, "effective_batch": 32, "total_seconds": 31.3})
        for p in short
    ]
    s = bakeoff_schedule(big, share=0.05)  # type: ignore[arg-type]
    # 1.565 s over four contenders' 0.1 / 32 / 3 s an example: 375 examples each, all 4 compared
    assert s["rounds"][0]["contenders"] == 4 and s["evidence_examples"] == 375
    assert s["predicted_seconds"] == pytest.approx(1.6) and "best-ranked" not in s["warning"]  # 1.5625, rounded


def test_schedule_pays_for_evaluations_first_and_leaves_out_the_lowest_ranked():
    from types import SimpleNamespace

    def plan(i: int) -> SimpleNamespace:
        d = {"model_id": f"m{i}"}
        # 100 steps an epoch, 4 epochs, 1 s a step, and 10 s an evaluation: a 440-s run
        return SimpleNamespace(
            effective_batch=10,
            train_size=1000,
            epochs=4,
            total_seconds=440.0,
            train_epoch_seconds=100.0,
            eval_seconds=10.0,
            metric="macro_f1",
            to_dict=lambda: d,
        )

    # 4 contenders: budget 110 s, evaluations 4 + 2 = 60 s, 25 s a round: 6 steps each in round 1
    # (< 10); 3 contenders: evaluations 50 s, 30 s a round: 10 steps each in round 1
    s = bakeoff_schedule([plan(i) for i in range(4)], share=0.25)  # type: ignore[arg-type]
    assert [c["model_id"] for c in s["contenders"]] == ["m0", "m1", "m2"]
    assert [(r["contenders"], r["steps"]) for r in s["rounds"]] == [(3, 10), (2, 15)]
    assert s["budget_seconds"] == 110.0
    assert s["predicted_seconds"] == pytest.approx(3 * 10 + 2 * 15 + 50) and s["predicted_seconds"] <= 110
    assert "the 3 best-ranked of the 4 contenders asked race" in s["warning"]


def test_race_ends_early_when_the_rest_of_its_budget_buys_no_round():
    from modelwiz.engine.bakeoff import affordable_steps

    def result(seconds: float, train_seconds: float, steps: int) -> dict:
        return {"seconds": seconds, "train_seconds": train_seconds, "steps": steps}

    record = {
        "survivors": [2, 0],
        "contenders": [
            {"results": [result(12.0, 10.0, 10)]},  # 2 s beside its steps, 1 s a step
            {"results": [result(30.0, 5.0, 10)]},  # cut: not counted
            {"results": [result(7.0, 5.0, 10)]},  # 2 s beside, 0.5 s a step
        ],
    }
    assert affordable_steps(record, 34.0) == 20  # (34 - 4) / 1.5
    assert affordable_steps(record, 5.0) == 0  # less than the survivors' fixed costs
    record["contenders"][0]["results"] = []
    assert affordable_steps(record, 100.0) == 0  # nothing measured: no guess


def test_a_lead_within_the_noise_keeps_the_ranking_order():
    from modelwiz.engine.bakeoff import _order, tie_margin

    margin = tie_margin("macro_f1", 100)  # two of 100 validation examples
    assert margin == pytest.approx(0.02)
    rows = [{"index": 0, "macro_f1": 0.30}, {"index": 1, "macro_f1": 0.315}, {"index": 2, "macro_f1": 0.36}]
    assert [r["index"] for r in _order(rows, "macro_f1", margin)] == [2, 0, 1]
    assert [r["index"] for r in _order(rows, "macro_f1")] == [2, 1, 0]  # no margin: strict
    loss = [{"index": 0, "val_loss": 1.0}, {"index": 1, "val_loss": 0.999}]
    assert tie_margin("val_loss", 100) == 0.0
    assert [r["index"] for r in _order(loss, "val_loss", tie_margin("val_loss", 100))] == [1, 0]


def test_stopping_early_crowns_the_leader_and_cuts_the_rest(tmp_path):
    from types import SimpleNamespace

    from modelwiz.engine import bakeoff as bk

    class Reporter:
        def __init__(self) -> None:
            self.events, self.lines = [], []

        def emit(self, e) -> None:
            self.events.append(e)

        def log(self, line: str) -> None:
            self.lines.append(line)

    plans = [SimpleNamespace(model_id=f"m{i}", model_name=f"model {i}") for i in range(3)]
    for i in (1, 2):  # the survivors' states after round 1
        p = bk._state_path(tmp_path, i, 1)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"state")
    record = {
        "done": 1,
        "survivors": [2, 1],  # best first
        "cuts": [[0]],
        "contenders": [{"eliminated_in": 1}, {"eliminated_in": None}, {"eliminated_in": None}],
    }
    rep = Reporter()
    bk._stop_early(tmp_path, plans, record, rep, spent=40.0, budget_s=30.0)  # type: ignore[arg-type]
    assert record["survivors"] == [2] and record["cuts"] == [[0], [1]]
    assert record["contenders"][1]["eliminated_in"] == 1
    assert bk._state_path(tmp_path, 2, 1).exists() and not bk._state_path(tmp_path, 1, 1).exists()
    assert json.loads((tmp_path / bk.STATE_FILE).read_text())["survivors"] == [2]
    assert rep.events[0].kept == ["m2"] and rep.events[0].dropped == ["m1"]
    assert "40 s of its 30 s spent" in rep.lines[0] and "model 2 leads" in rep.lines[0]
    assert [r["place"] for r in bk._table({**record, "contenders": _rows(3)}, 2)] == [1, 2, 3]


def _rows(n: int) -> list[dict]:
    return [
        {"model": f"m{i}", "name": f"model {i}", "results": [{"total_steps": 4, "seconds": 1.0}], "eliminated_in": None}
        for i in range(n)
    ]


def test_a_bakeoff_too_short_to_race_compares_evidence_and_a_lost_winner_trains_from_step_0(tmp_path, contenders):
    """1% of a run buys no race: the contenders are scored by LogME of their frozen features (no
    training), the best (the model trained on the task) goes on, kept in memory; its run fails at
    its first step, before any checkpoint; the resume trains it from step 0 and completes."""
    cfg = _config(tmp_path, bakeoff_share=0.01, epochs=2)
    env = {**_env(contenders), "MODELWIZ_CACHE": str(tmp_path / "cache")}  # no features cached by other tests
    proc = run_cli(
        "--batch", str(cfg), "--json", "--runs-dir", str(tmp_path / "runs"), env={**env, "MODELWIZ_FAULT_AT_STEP": "0"}
    )
    events = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.strip()]
    for obj in events:
        parse_event(obj, strict=True)
    assert proc.returncode != 0 and events[-1]["status"] == "failed", proc.stderr
    run_dir = Path(events[-1]["run_dir"])
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["bakeoff"]["evidence"] == "logme" and plan["bakeoff"]["rounds"] == [
        {"round": 1, "contenders": 3, "steps": 0}
    ]
    assert any("too short to race" in e.get("message", "") for e in events)
    rounds = [e for e in events if e["event"] == "bakeoff_round"]
    assert [(e["steps"], e["metric"], e["accuracy"]) for e in rounds] == [(0, "logme", None)] * 3
    assert not any(e["event"] == "bakeoff_step" for e in events)  # no training in the race
    trained = next(e["model"] for e in rounds if Path(e["model"]).name == "bert-c")
    by_model = {e["model"]: e["logme"] for e in rounds}
    assert by_model[trained] > max(v for m, v in by_model.items() if m != trained)
    result = next(e for e in events if e["event"] == "bakeoff_result")
    assert result["winner"] == trained and result["metric"] == "logme" and result["steps"] == 0
    logs = [e["message"] for e in events if e["event"] == "log"]
    assert any("goes on from its bake-off state (kept in memory): step 0" in m for m in logs), logs
    assert not list((run_dir / "bakeoff").glob("*.pt")) and not list(run_dir.glob("checkpoints/*"))

    res = run_cli("resume", run_dir.name, "--runs-dir", str(run_dir.parent), "--json", env=env)
    assert res.returncode == 0, res.stderr
    after = read_events(run_dir / "events.jsonl")[0]
    resumed = after[[i for i, e in enumerate(after) if e["event"] == "run_started"][-1] :]
    assert any("trains from its first step again" in e.get("message", "") for e in resumed)
    assert not any(e["event"].startswith("bakeoff_") for e in resumed)  # decided: no second bake-off
    assert min(e["step"] for e in resumed if e["event"] == "step") == 1
    assert resumed[-1]["event"] == "run_finished" and resumed[-1]["status"] == "completed"
    assert json.loads((run_dir / "report.json").read_text())["model"] == trained


def test_an_evidence_bakeoff_after_a_probe_reads_its_features_instead_of_computing_them(tmp_path, contenders):
    """`recommend --probe` cached every contender's features on this sample: the bake-off on
    evidence reads them (no contender is loaded for it), scores as the probe did, and the winner
    is loaded once for its run; report.json says how many were read."""
    cfg = _config(tmp_path, bakeoff_share=0.01, epochs=1)
    env = {**_env(contenders), "MODELWIZ_CACHE": str(tmp_path / "cache")}
    probe = run_cli("recommend", str(cfg), "--probe", "3", "--json", env=env)
    assert probe.returncode == 0, probe.stderr
    probed = {
        e["model"]: e["logme"]
        for e in (json.loads(ln) for ln in probe.stdout.splitlines() if ln.startswith("{"))
        if e.get("event") == "probe_result"
    }
    assert len(probed) == 3
    proc = run_cli("--batch", str(cfg), "--json", "--runs-dir", str(tmp_path / "runs"), env=env)
    events = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.strip()]
    assert proc.returncode == 0 and events[-1]["status"] == "completed", proc.stderr
    logs = [e["message"] for e in events if e["event"] == "log"]
    assert any("(3 of 3 read from an earlier probe's cache)" in m for m in logs), logs
    rounds = [e for e in events if e["event"] == "bakeoff_round"]
    assert {e["model"]: e["logme"] for e in rounds} == pytest.approx(probed, abs=1e-4)
    assert not any("goes on from its bake-off state" in m for m in logs)  # nobody was loaded for the race
    winner = next(e for e in events if e["event"] == "bakeoff_result")["winner"]
    assert Path(winner).name == "bert-c"
    report = json.loads((Path(events[-1]["run_dir"]) / "report.json").read_text())
    assert report["bakeoff"]["features_cached"] == 3 and report["model"] == winner


def test_a_resume_that_lacks_a_state_kept_in_memory_races_again_from_round_one(tmp_path):
    from modelwiz.engine import bakeoff as bk

    record = {"done": 1, "survivors": [2, 0]}
    assert bk.missing_states(tmp_path, record) == [2, 0]
    p = bk._state_path(tmp_path, 2, 1)
    p.parent.mkdir(parents=True)
    p.write_bytes(b"state")
    assert bk.missing_states(tmp_path, record) == [0]
    bk._state_path(tmp_path, 0, 1).write_bytes(b"state")
    assert bk.missing_states(tmp_path, record) == []
    assert bk.missing_states(tmp_path, {"done": 0, "survivors": [0, 1]}) == []  # round 1 starts from the models


def test_parked_contenders_go_to_disk_largest_first_until_the_next_one_fits(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from modelwiz.engine import bakeoff as bk
    from modelwiz.engine.memory import GB

    free = {"bytes": 2 * GB}
    saved, freed, lines = [], [], []

    class Held(bk.Parked):
        def bytes(self) -> int:
            return self.size

        def save(self, path: Path) -> None:
            saved.append(path.name)

        def free(self) -> None:
            freed.append(self.run.plan.model_name)
            free["bytes"] += self.size

    def held(name: str, size_gb: float, round_no: int) -> Held:
        h = Held(SimpleNamespace(plan=SimpleNamespace(model_name=name)), round_no)  # type: ignore[arg-type]
        h.size = int(size_gb * GB)
        return h

    monkeypatch.setattr(bk, "free_bytes", lambda device: free["bytes"])
    parked = {0: held("small", 0.5, 1), 1: held("large", 3.0, 1), 2: held("medium", 1.0, 1)}
    nxt = SimpleNamespace(
        model_name="next", device="cpu", memory=SimpleNamespace(peak_gb=4.0, total_gb=5.0, overhead_gb=1.0)
    )
    rep = SimpleNamespace(log=lines.append)
    bk._make_room(tmp_path, parked, nxt, rep)  # type: ignore[arg-type]
    # 2 GB free, 4 GB needed at 80%: the 3-GB one goes (5 GB free, 4 <= 4.0), the others stay
    assert freed == ["large"] and saved == ["contender-1-round-1.pt"] and sorted(parked) == [0, 2]
    assert "large's state written to disk and freed, to make room for next" in lines[0]

    # keeping: the largest peak among the others, less what a parked one already holds
    run = SimpleNamespace(plan=SimpleNamespace(device="cpu"))
    other = SimpleNamespace(memory=SimpleNamespace(peak_gb=4.5, total_gb=0.0, overhead_gb=0.0))
    assert not bk._room_to_keep(run, {3: other}, parked)  # type: ignore[arg-type]  # 4.5 > 0.8 * 5
    assert bk._room_to_keep(run, {0: other}, parked)  # type: ignore[arg-type]  # 4.0 held already: 0.5 more
    monkeypatch.setattr(bk, "free_bytes", lambda device: None)
    assert not bk._room_to_keep(run, {}, parked)  # type: ignore[arg-type]  # free memory unknown: to disk
