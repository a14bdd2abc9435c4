"""The bake-off: the top K ranked models race briefly, the winner is trained to the full plan.

A bake-off run's plan.json carries the contenders' own resolved plans and the optimizer steps of
each round (`engine.plan.bakeoff_schedule`). The trainer runs the race itself, in its one process
and its one event stream, before the winner's run (`before_training`):

- successive halving: in each round every surviving contender trains that round's steps on the
  same training batches (the first batches of its first epoch, in the run's seeded order), with
  its own plan's optimizer and learning-rate schedule (the schedule of its full run), and is
  evaluated on the validation split; the better half (ceil(n / 2), by the plan's metric through
  `engine.events.is_better`, the higher-ranked on a tie, and a lead of fewer than TIE_EXAMPLES
  validation examples' worth counts as a tie) goes on, until one is left;
- a contender stays in memory after its round (`Parked`: weights, optimizer, schedule and RNG as
  they are, its gradients freed) while the device has room for it beside the next contender's
  predicted peak; else its state goes to `bakeoff/` and its memory is freed before the next one
  is loaded (the largest parked ones go first when a contender needs the room). A kept contender's
  next round goes on with no loading and no saving: on a short race, loading, saving and reading
  back a 110M-parameter model's state (1.3 GB with AdamW's moments) cost more than its steps;
- the winner goes on from the state it reached, not from scratch: its bake-off steps are the
  first steps of its full run (same batches, same schedule), so a run with a bake-off trains the
  winner exactly as long as a run without one would, and costs only the losers' steps on top. A
  winner kept in memory is handed to the training loop as it is (`adopt_winner`); one on disk is
  loaded again and restored (`continue_winner`). plan.json becomes the winner's plan (the
  schedule kept, `winner` set); the winner's steps and evaluations from there on are the normal
  `step` and `eval` events, and its export is a normal run's.

Resume: the record of finished rounds is `bakeoff/state.json`; a bake-off interrupted mid-round
(cancelled, killed) restarts that round from its start, each of its contenders from the state it
had before the round, when those states are on disk. A state held in memory is written at its
round's end once it holds PERSIST_AFTER_S of racing (so a kill loses at most about that much of
a contender's racing); a resume that finds a state missing starts the race again from round 1,
and a decided winner whose state was lost trains again from step 0 (the same steps: same seed,
batches and schedule). Events: `bakeoff_started`, `bakeoff_step`, `bakeoff_round`, `bakeoff_cut`,
`bakeoff_result` (engine/events.py), and a log line for each, which the batch progress display and
the dashboard's log show. report.json's `bakeoff` section is `report`.
"""

from __future__ import annotations

import gc
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelwiz.engine import checkpoints, memory
from modelwiz.engine import events as ev
from modelwiz.engine import trainer as tr
from modelwiz.engine.distributed import Distributed
from modelwiz.engine.fsutil import atomic_write_json, read_json
from modelwiz.engine.plan import Plan, read_plan, write_plan

BAKEOFF_DIR = "bakeoff"
STATE_FILE = "bakeoff/state.json"
STATE_VERSION = 1
LOSS_POINTS_PER_ROUND = 20  # training-loss points a contender reports per round (window means)
# A lead smaller than this many validation examples' worth of accuracy / macro-F1 is noise, not
# evidence: the higher-ranked contender stays ahead (after a few steps every contender is near
# chance, and a coin flip between them would throw away what the ranking knew). val_loss: strict.
TIE_EXAMPLES = 2
# Parked contenders and the next contender's predicted peak may use this share of the memory free
# on the device (the rest: the allocator's slack, the prediction's error, everything else).
KEEP_SHARE = 0.8
# A state held in memory is also written to disk at its round's end once it holds this many seconds
# of racing and another round follows: a kill then loses at most about this much of a contender's
# racing, and a short race (the one that costs most to write out) writes nothing.
PERSIST_AFTER_S = 120.0
EVIDENCE_METRIC = "logme"  # what a bake-off too short to race compares (engine.plan.EVIDENCE_EXAMPLES)


def _state_path(run_dir: Path, index: int, round_no: int) -> Path:
    """The saved state of contender `index` at the end of round `round_no` (1-based)."""
    return Path(run_dir) / BAKEOFF_DIR / f"contender-{index}-round-{round_no}.pt"


def describe(index: int, plan: Plan) -> dict[str, Any]:
    return {
        "index": index,
        "model": plan.model_id,
        "name": plan.model_name,
        "strategy": plan.strategy,
        "batch_size": plan.batch_size,
        "grad_accum": plan.grad_accum,
        "learning_rate": plan.learning_rate,
        "precision": plan.precision,
        "max_length": plan.max_length,
        "image_size": plan.image_size,
        "epochs": plan.epochs,
    }


def _fresh_record(plans: list[Plan]) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "done": 0,  # rounds finished
        "survivors": list(range(len(plans))),
        "plans": {str(i): p.to_dict() for i, p in enumerate(plans)},  # amended after an out-of-memory step
        "contenders": [
            {**describe(i, p), "curve": [], "results": [], "eliminated_in": None} for i, p in enumerate(plans)
        ],
        "cuts": [],  # per round: the dropped, best first
        "seconds": 0.0,
        "winner": None,
        "table": [],
    }


def before_training(run_dir: Path, reporter: tr.Reporter, resume: bool) -> tuple[Any, Path | tr.Run | None, bool]:
    """Run the bake-off of a run whose plan has one (or what is left of it). Returns the (config,
    data) read for it (None when it had been decided before), what the winner goes on from (its
    run, kept in memory; its saved state; None: nothing to go on from) and whether the run is
    then to resume from a checkpoint."""
    plan = read_plan(run_dir)
    if plan.bakeoff.get("winner"):
        # decided before: resume from the winner's checkpoint, or from its bake-off state when
        # the run stopped between the decision and that first checkpoint, or (that state was
        # only in memory) from its first step: the same steps again
        if not resume or checkpoints.checkpoint_paths(run_dir):
            return None, None, resume
        record = read_json(run_dir / STATE_FILE, default={}) or {}
        w, done = record.get("winner"), int(record.get("done") or 0)
        saved = _state_path(run_dir, int(w), done) if w is not None else None
        if saved is not None and saved.is_file():
            return None, saved, False
        reporter.log(
            f"{plan.model_name} won the bake-off; its state there is not on disk (it was kept in memory): it "
            "trains from its first step again (the same steps: same seed, batches and schedule)"
        )
        return None, None, False
    loaded = tr.load_data(run_dir, plan, reporter)
    return loaded, race(run_dir, plan, loaded, reporter, resume), False


def race(
    run_dir: Path, plan: Plan, loaded: tuple[Any, Any], reporter: tr.Reporter, resume: bool
) -> Path | tr.Run | None:
    """The rounds of successive halving; writes the winner's plan to plan.json and returns the
    winner's run, when it was kept in memory, else the path of its saved state (None: a bake-off
    decided on evidence, whose winner starts from its first step)."""
    bo = plan.bakeoff
    plans = [Plan.from_dict(d) for d in bo["contenders"]]
    rounds, metric = bo["rounds"], bo.get("metric") or plan.metric
    if bo.get("evidence"):
        metric = EVIDENCE_METRIC
    tr.check_device(plans[0].device)
    record = read_json(run_dir / STATE_FILE, default=None) if resume else None
    if not isinstance(record, dict) or record.get("version") != STATE_VERSION or record.get("winner") is not None:
        record = _fresh_record(plans)
    elif missing_states(run_dir, record):
        reporter.log(
            f"bake-off resumed: the states of round {record['done']} were kept in memory (not yet written to "
            "disk) and are gone; the race starts again from round 1"
        )
        record = _fresh_record(plans)
    again = record["done"] + 1 if resume else 0
    if resume:
        reporter.log(
            f"bake-off resumed: round {again} of {len(rounds)} restarts from its start "
            f"({record['done']} round(s) finished are kept)"
        )
    reporter.emit(
        ev.BakeoffStarted(
            contenders=[describe(i, p) for i, p in enumerate(plans)],
            share=float(bo.get("share", 0.0)),
            metric=metric,
            rounds=list(rounds),
            predicted_seconds=bo.get("predicted_seconds"),
            resumed_round=again,
        )
    )
    warm_up(plans)
    if bo.get("evidence"):
        return evidence_race(run_dir, plan, plans, loaded, reporter, record)
    if not resume:
        names = ", ".join(p.model_name for p in plans)
        budgets = " / ".join(str(r["steps"]) for r in rounds)
        reporter.log(
            f"bake-off of {len(plans)}: {names}; {len(rounds)} round(s) of {budgets} step(s) each, "
            f"{bo.get('share', 0):.0%} of a full run's time, best {metric} goes on"
        )
    margin = tie_margin(metric, len(loaded[1].val.items))
    t0 = time.perf_counter() - float(record["seconds"])
    budget_s = float(bo.get("budget_seconds") or 0.0)
    parked: dict[int, Parked] = {}
    for r in range(int(record["done"]), len(rounds)):
        round_no, steps = r + 1, int(rounds[r]["steps"])
        if r > 0 and budget_s > 0:
            spent = time.perf_counter() - t0
            affordable = affordable_steps(record, budget_s - spent)
            if affordable < 1:
                _stop_early(run_dir, plans, record, reporter, spent, budget_s, parked)
                break
            if affordable < steps:
                reporter.log(
                    f"bake-off round {round_no}: {affordable} step(s) each instead of {steps}, what is left of "
                    f"its {budget_s:.0f} s ({spent:.0f} s spent, at the rates measured in round {r})"
                )
                steps = affordable
        results: dict[int, dict[str, Any]] = {}
        for i in record["survivors"]:
            cplan = Plan.from_dict(record["plans"][str(i)])
            others = {j: Plan.from_dict(record["plans"][str(j)]) for j in record["survivors"] if j != i}
            results[i] = train_contender(run_dir, cplan, i, round_no, steps, loaded, reporter, record, parked, others)
            record["plans"][str(i)] = cplan.to_dict()
        ordered = _order([results[i] for i in sorted(record["survivors"])], metric, margin)  # ranking order
        keep = math.ceil(len(ordered) / 2)
        kept, dropped = [row["index"] for row in ordered[:keep]], [row["index"] for row in ordered[keep:]]
        for i, row in results.items():
            c = record["contenders"][i]
            c["curve"] += row.pop("losses")
            c["results"].append(row)
            if i in dropped:
                c["eliminated_in"] = round_no
        ids = [plans[i].model_id for i in kept], [plans[i].model_id for i in dropped]
        reporter.emit(ev.BakeoffCut(round=round_no, kept=ids[0], dropped=ids[1]))
        reporter.log(
            f"bake-off round {round_no}: "
            + ", ".join(f"{plans[row['index']].model_name} {_fig(row['value'])}" for row in ordered)
            + f" ({metric}); "
            + ("dropped " + ", ".join(plans[i].model_name for i in dropped) if dropped else "")
        )
        record.update(done=round_no, survivors=kept, seconds=time.perf_counter() - t0)
        record["cuts"].append(dropped)
        for i in dropped:
            if i in parked:
                parked.pop(i).free()
        if round_no < len(rounds):
            for i in (i for i in kept if i in parked):
                raced = sum(float(x.get("seconds") or 0.0) for x in record["contenders"][i]["results"])
                if raced >= PERSIST_AFTER_S:
                    parked[i].save(_state_path(run_dir, i, round_no))
        atomic_write_json(run_dir / STATE_FILE, record)
        # what no later round or resume needs: every state before this round, the dropped ones'
        for i in range(len(plans)):
            if round_no > 1:
                _state_path(run_dir, i, round_no - 1).unlink(missing_ok=True)
            if i in dropped:
                _state_path(run_dir, i, round_no).unlink(missing_ok=True)
    path = _decide(run_dir, plan, plans, record, metric, reporter, time.perf_counter() - t0)
    w = int(record["winner"])
    for i in [i for i in parked if i != w]:
        parked.pop(i).free()
    return parked.pop(w).resume() if w in parked else path


def warm_up(plans: list[Plan]) -> None:
    """Import the contenders' model libraries before the race's clock starts: a run pays for
    them (seconds: torchvision about 6 here) whether it races or not, and the first contender's
    measured costs (which size the later rounds, `affordable_steps`) should be its own."""
    kinds = {p.adapter for p in plans}
    if "torchvision" in kinds:
        import torchvision.models  # noqa: F401
    if kinds & {"hf-text", "hf-image"}:
        # the Auto classes, and the modelling base every architecture's module imports (about
        # 2 s here, which the first contender's load paid before)
        import transformers.modeling_utils  # noqa: F401
        from transformers import AutoModelForImageClassification, AutoModelForSequenceClassification  # noqa: F401


def _candidate(plan: Plan) -> Any:
    """The plan's model as the recommender knows it (what the feature cache is keyed by), or None."""
    from modelwiz.engine.recommend import candidate_for_id

    try:
        return candidate_for_id(plan.model_id, plan.modality)
    except Exception:  # noqa: BLE001 - no candidate only means no cached features
        return None


def _device_type(plan: Plan) -> str:
    """Where a contender's features are computed (its run's device): the feature cache's key."""
    return str(plan.device).split(":", 1)[0] or "cpu"


def _evidence_sample(plan: Plan, plans: list[Plan], train: Any, cands: list[Any]) -> tuple[list[int], list[Any]]:
    """(the sample's indices, each contender's cached features or None). The sample is the plan's
    (what the budget pays for), unless every contender has features of the larger sample a probe
    of the same data reads (`recommend --probe`, the wizard's `p`): then those, at no cost."""
    from modelwiz.engine import transfer

    def cached(picked: list[int]) -> list[Any]:
        items, labels = [train.items[i] for i in picked], [int(train.labels[i]) for i in picked]
        return [
            transfer.read_features(transfer.feature_path(c, p, items, labels, _device_type(p)), len(items))
            if c is not None
            else None
            for c, p in zip(cands, plans, strict=True)
        ]

    picked = transfer.stratified_sample(train.labels, int(plan.bakeoff.get("evidence_examples") or 0), plan.seed)
    probed = transfer.stratified_sample(train.labels, transfer.MAX_PROBE_EXAMPLES, plan.seed)
    if len(probed) > len(picked):
        got = cached(probed)
        if all(f is not None for f in got):
            return probed, got
    return picked, cached(picked)


def evidence_race(
    run_dir: Path, plan: Plan, plans: list[Plan], loaded: tuple[Any, Any], reporter: tr.Reporter, record: dict[str, Any]
) -> tr.Run | None:
    """The bake-off whose share is too short for a race (engine.plan.EVIDENCE_EXAMPLES): each
    contender is loaded as its run would load it and scored by LogME on the frozen features of a
    stratified sample of the training data (engine/transfer.py, the probe's pooling), with no
    training; the best goes on from its first step. Features a probe (or an earlier bake-off) of
    the same sample cached are read, not computed, and that contender is not loaded; features
    computed here are cached for the next probe. The best so far stays in memory while there is
    room (then it is handed over as it is), the others are freed. Returns the winner's run when
    kept, else None (the winner is loaded again, as any run)."""
    from modelwiz.engine import transfer

    config, data = loaded
    train = data.train
    cands = [_candidate(p) for p in plans]
    picked, cached = _evidence_sample(plan, plans, train, cands)
    items, labels = [train.items[i] for i in picked], [int(train.labels[i]) for i in picked]
    names = ", ".join(p.model_name for p in plans)
    reused = sum(f is not None for f in cached)
    reporter.log(
        f"bake-off of {len(plans)}: {names}; too short to race ({plan.bakeoff.get('share', 0):.0%} of a run), so "
        f"compared on LogME of their frozen features on {len(items):,} of your examples"
        + (f" ({reused} of {len(plans)} read from an earlier probe's cache)" if reused else "")
        + "; the best trains on"
    )
    t_all = time.perf_counter()
    parked: dict[int, Parked] = {}
    best: int | None = None
    best_logme = float("-inf")
    memo = transfer.InputMemo()  # the sample's images decoded once for the contenders that preprocess alike

    def scored(i: int, score: float, t0: float, load_s: float) -> None:
        row: dict[str, Any] = {
            "round": 1,
            "index": i,
            "steps": 0,
            "total_steps": 0,
            "value": round(score, 5),
            "logme": round(score, 5),
            "accuracy": None,
            "macro_f1": None,
            "val_loss": None,
            "seconds": round(time.perf_counter() - t0, 2),
            "load_seconds": round(load_s, 2),
            "train_seconds": 0.0,
        }
        record["contenders"][i]["results"].append(row)
        fields = {k: v for k, v in row.items() if k not in ("index", "train_seconds", "load_seconds")}
        cplan = plans[i]
        reporter.emit(
            ev.BakeoffRound(
                index=i, model=cplan.model_id, losses=[], metric=EVIDENCE_METRIC, batch_size=cplan.batch_size, **fields
            )
        )
        how = "features from the cache" if cached[i] is not None else "loading included"
        reporter.log(f"bake-off: {cplan.model_name}: LogME {score:.3f} ({row['seconds']:.1f} s, {how})")

    # the cached first: their scores are the bar a loaded contender must clear to be kept in memory
    scores: dict[int, float] = {}
    for i in [i for i in range(len(plans)) if cached[i] is not None]:
        t0 = time.perf_counter()
        scores[i] = transfer.logme(cached[i], labels)
        scored(i, scores[i], t0, 0.0)
        if best is None or scores[i] > best_logme or (scores[i] == best_logme and i < best):
            best, best_logme = i, scores[i]
    for i in [i for i in range(len(plans)) if cached[i] is None]:
        cplan = plans[i]
        t0 = time.perf_counter()
        if parked:
            _make_room(run_dir, parked, cplan, reporter)
        run = tr.build_run(run_dir, cplan, config, data, reporter, Distributed(), announce=False)
        run.load_seconds = time.perf_counter() - t0
        rng = checkpoints.rng_state()  # as build_run seeded it: the winner's run starts from it
        try:
            feats = transfer.extract_features(run.adapter, items, should_stop=run.cancel_requested, memo=memo)
        except InterruptedError:
            _free(run)
            reporter.log("cancelled during the bake-off; `modelwiz resume` compares the contenders again")
            raise tr.Cancelled() from None
        run.adapter.model.train()
        if cands[i] is not None:
            transfer.write_features(transfer.feature_path(cands[i], cplan, items, labels, _device_type(cplan)), feats)
        scores[i] = transfer.logme(feats, labels)
        scored(i, scores[i], t0, run.load_seconds)
        # a tie keeps the higher-ranked
        if best is None or scores[i] > best_logme or (scores[i] == best_logme and i < best):
            best_logme = scores[i]
            if best is not None and best in parked:
                parked.pop(best).free()
            best = i
            later = {j: plans[j] for j in range(len(plans)) if j not in scores}
            run.optimizer.zero_grad(set_to_none=True)
            if _room_to_keep(run, later, parked):
                parked[i] = Parked(run, 1, rng)
                continue
        _free(run)
    assert best is not None
    dropped = [i for i in sorted(scores, key=lambda j: (-scores[j], j)) if i != best]
    for i in dropped:
        record["contenders"][i]["eliminated_in"] = 1
    record.update(
        done=1,
        survivors=[best],
        seconds=time.perf_counter() - t_all,
        evidence_examples=len(items),
        features_cached=reused,
    )
    record["cuts"].append(dropped)
    atomic_write_json(run_dir / STATE_FILE, record)
    reporter.emit(ev.BakeoffCut(round=1, kept=[plans[best].model_id], dropped=[plans[i].model_id for i in dropped]))
    _decide(run_dir, plan, plans, record, EVIDENCE_METRIC, reporter, time.perf_counter() - t_all)
    return parked.pop(best).resume() if best in parked else None


def missing_states(run_dir: Path, record: dict[str, Any]) -> list[int]:
    """The survivors of the last finished round whose state at its end is not on disk (it was
    held in memory by the process that stopped): a resume cannot go on from that round."""
    done = int(record.get("done") or 0)
    if not done:
        return []
    return [int(i) for i in record.get("survivors") or [] if not _state_path(run_dir, int(i), done).is_file()]


def affordable_steps(record: dict[str, Any], left_s: float) -> int:
    """Optimizer steps each survivor can still train with `left_s` seconds of the race's budget:
    what its last round cost beside its steps (loading, evaluating, saving) comes first, then its
    measured seconds per step."""
    fixed = per_step = 0.0
    for i in record["survivors"]:
        results = record["contenders"][i]["results"]
        if not results:
            return 0
        last = results[-1]
        train_s = float(last.get("train_seconds", 0.0))
        fixed += max(0.0, float(last["seconds"]) - train_s)
        per_step += train_s / max(1, int(last["steps"]))
    if per_step <= 0:
        return 0
    return max(0, int((left_s - fixed) / per_step))


def _stop_early(
    run_dir: Path,
    plans: list[Plan],
    record: dict[str, Any],
    reporter: tr.Reporter,
    spent: float,
    budget_s: float,
    parked: dict[int, Parked] | None = None,
) -> None:
    """The race's share of the time is spent: the leader of the last round wins (the survivors come
    best first), the other survivors are cut."""
    done = int(record["done"])
    winner, dropped = record["survivors"][0], list(record["survivors"][1:])
    for i in dropped:
        record["contenders"][i]["eliminated_in"] = done
        _state_path(run_dir, i, done).unlink(missing_ok=True)
        if parked and i in parked:
            parked.pop(i).free()
    record["cuts"].append(dropped)
    record["survivors"] = [winner]
    atomic_write_json(run_dir / STATE_FILE, record)
    reporter.emit(
        ev.BakeoffCut(round=done, kept=[plans[winner].model_id], dropped=[plans[i].model_id for i in dropped])
    )
    reporter.log(
        f"bake-off stopped after round {done}: {spent:.0f} s of its {budget_s:.0f} s spent, too little left for "
        f"another round; {plans[winner].model_name} leads"
        + (", dropped " + ", ".join(plans[i].model_name for i in dropped) if dropped else "")
    )


def _decide(
    run_dir: Path,
    plan: Plan,
    plans: list[Plan],
    record: dict[str, Any],
    metric: str,
    reporter: tr.Reporter,
    seconds: float,
) -> Path:
    w = int(record["survivors"][0])
    table = _table(record, w)
    record.update(winner=w, table=table, seconds=round(seconds, 2))
    atomic_write_json(run_dir / STATE_FILE, record)
    winner = Plan.from_dict(record["plans"][str(w)])
    winner.bakeoff = {**plan.bakeoff, "winner": winner.model_id, "winner_index": w}
    winner.notes = [f"bake-off winner of {len(plans)} (best {metric})", *winner.notes]
    write_plan(run_dir, winner)
    reporter.status(model=winner.model_id, model_name=winner.model_name)
    steps = int(record["contenders"][w]["results"][-1]["total_steps"])
    reporter.emit(
        ev.BakeoffResult(
            winner=winner.model_id,
            winner_index=w,
            metric=metric,
            table=table,
            seconds=round(seconds, 2),
            steps=steps,
        )
    )
    reporter.log(
        f"bake-off winner: {winner.model_name} ({metric} {_fig(table[0]['value'])}) after {seconds:.1f} s; "
        f"it goes on from step {steps} to its full plan"
    )
    return _state_path(run_dir, w, int(record["done"]))


def _fig(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "n/a"


def tie_margin(metric: str, val_size: int) -> float:
    """How much better than a higher-ranked contender a result must be to go ahead of it."""
    return 0.0 if metric == "val_loss" else TIE_EXAMPLES / max(1, val_size)


def _order(rows: list[dict[str, Any]], metric: str, margin: float = 0.0) -> list[dict[str, Any]]:
    """Best first by `metric` (engine.events.is_better); rows come in ranking order, and a row
    goes ahead of a higher-ranked one only when better by more than `margin` (else a tie)."""
    remaining, out = list(rows), []
    while remaining:
        best = remaining[0]
        for row in remaining[1:]:
            value, ahead = ev.metric_value(row, metric), ev.metric_value(best, metric)
            clear = margin <= 0 or value is None or ahead is None or abs(value - ahead) > margin
            if clear and ev.is_better(row, best, metric):
                best = row
        out.append(best)
        remaining.remove(best)
    return out


def _table(record: dict[str, Any], winner: int) -> list[dict[str, Any]]:
    """One row per contender, best first: the winner, then those dropped last."""
    order = [winner] + [i for cut in reversed(record["cuts"]) for i in cut]
    rows = []
    for place, i in enumerate(order, 1):
        c = record["contenders"][i]
        last = c["results"][-1] if c["results"] else {}
        rows.append(
            {
                "place": place,
                "index": i,
                "model": c["model"],
                "name": c["name"],
                "rounds": len(c["results"]),
                "steps": last.get("total_steps", 0),
                "value": last.get("value"),
                "accuracy": last.get("accuracy"),
                "macro_f1": last.get("macro_f1"),
                "val_loss": last.get("val_loss"),
                "seconds": round(sum(r.get("seconds", 0.0) for r in c["results"]), 2),
                "eliminated_in": c["eliminated_in"],
                "winner": i == winner,
            }
        )
    return rows


def train_contender(
    run_dir: Path,
    plan: Plan,
    index: int,
    round_no: int,
    steps: int,
    loaded: tuple[Any, Any],
    reporter: tr.Reporter,
    record: dict[str, Any],
    parked: dict[int, Parked] | None = None,
    others: dict[int, Plan] | None = None,
) -> dict[str, Any]:
    """One contender's round: take it from memory (`parked`) or load it (and the state its last
    round left on disk), train `steps` optimizer steps, evaluate, then keep it in memory when
    the device has room for it beside the next of `others` (the other survivors), else save
    its state and free it. `plan` is amended in place when an out-of-memory step makes its
    micro-batch smaller. Raises trainer.Cancelled on a cancel."""
    config, data = loaded
    t0 = time.perf_counter()
    load_seconds = 0.0
    previous = record["contenders"][index]["results"]
    start = int(previous[-1]["total_steps"]) if previous else 0
    held = parked.pop(index, None) if parked is not None else None
    where = "kept in memory" if held is not None else ("its state read from disk" if start else "loaded")
    reporter.log(f"bake-off round {round_no}: {plan.model_name} trains {steps} step(s) from step {start} ({where})")
    if held is not None:
        run = held.resume()
        run.plan = plan  # the same settings; an out-of-memory back-off now amends the record's copy
    else:
        if parked:
            _make_room(run_dir, parked, plan, reporter)
        run = tr.build_run(run_dir, plan, config, data, reporter, Distributed(), announce=False)
        run.load_seconds = time.perf_counter() - t0
        if start:
            state = _load_state(_state_path(run_dir, index, round_no - 1))
            tr.restore_training_state(run, state)
            run.progress.train_seconds = float(state.get("train_seconds", 0.0))
        load_seconds = time.perf_counter() - t0
    kept = False
    try:
        stop = min(start + steps, run.steps_per_epoch)
        losses, seconds = _train_steps(run, index, round_no, start, stop, reporter)
        metrics = tr.evaluate(run)
        run.progress = tr.Progress(
            epoch=0, step_in_epoch=stop, global_step=stop, train_seconds=run.progress.train_seconds + seconds
        )
        run.optimizer.zero_grad(set_to_none=True)  # a kept contender holds no gradients
        if parked is not None and _room_to_keep(run, others or {}, parked):
            parked[index] = Parked(run, round_no, checkpoints.rng_state())
            kept = True
        else:
            _save_state(run, _state_path(run_dir, index, round_no), stop, run.progress.train_seconds)
    finally:
        if not kept:
            _free(run)
    value = ev.metric_value(metrics, plan.metric)  # the row carries every metric: is_better reads it
    row = {
        "round": round_no,
        "index": index,
        "steps": stop - start,
        "total_steps": stop,
        "value": round(value, 5) if value is not None else None,
        "accuracy": round(metrics["accuracy"], 5),
        "macro_f1": round(metrics["macro_f1"], 5),
        "val_loss": round(metrics["val_loss"], 5),
        "seconds": round(time.perf_counter() - t0, 2),
        "load_seconds": round(load_seconds, 2),
        "train_seconds": round(seconds, 3),
    }
    reporter.emit(
        ev.BakeoffRound(
            round=round_no,
            index=index,
            model=plan.model_id,
            steps=row["steps"],
            total_steps=stop,
            losses=losses,
            metric=plan.metric,
            value=row["value"],
            accuracy=row["accuracy"],
            macro_f1=row["macro_f1"],
            val_loss=row["val_loss"],
            seconds=row["seconds"],
            batch_size=plan.batch_size,
        )
    )
    reporter.log(
        f"bake-off round {round_no}: {plan.model_name} at step {stop}: {plan.metric} {_fig(row['value'])}, "
        f"loss {losses[-1][1] if losses else float('nan'):.3f}, {row['seconds']:.1f} s"
    )
    return {**row, "losses": losses}


def _train_steps(
    run: tr.Run, index: int, round_no: int, start: int, stop: int, reporter: tr.Reporter
) -> tuple[list[list[float]], float]:
    """Optimizer steps `start`..`stop` of the contender's first epoch (the run's seeded order);
    returns the [step, loss] points (window means) and the seconds spent training."""
    batches = run.epoch_steps(0)
    every = max(1, (stop - start) // LOSS_POINTS_PER_ROUND)
    points: list[list[float]] = []
    window, n, seconds = 0.0, 0, 0.0
    for s in range(start, stop):
        if run.cancel_requested():
            reporter.log(
                f"cancelled during bake-off round {round_no} ({run.plan.model_name} at step {s}); "
                f"`modelwiz resume {run.run_dir.name}` restarts round {round_no} from its start"
            )
            raise tr.Cancelled()
        idx = batches[s]
        t = time.perf_counter()
        loss = None
        while loss is None:
            try:
                loss = tr.train_step(run, idx)
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled here
                if not tr.is_out_of_memory(exc):
                    raise
                tr.back_off(run, exc, persist=False)
        seconds += time.perf_counter() - t
        window, n = window + loss, n + 1
        if (s + 1 - start) % every == 0 or s == stop - 1:
            point = [s + 1, round(window / n, 5)]
            points.append(point)
            reporter.emit(
                ev.BakeoffStep(
                    round=round_no, index=index, model=run.plan.model_id, step=s + 1, steps=stop, loss=point[1]
                )
            )
            window, n = 0.0, 0
    return points, seconds


# --------------------------------------------------------------------------- contenders in memory


@dataclass
class Parked:
    """A contender kept in memory after round `round_no`: its run as its last step left it
    (weights, optimizer, schedule; no gradients) and its progress (step, training seconds)."""

    run: tr.Run
    round_no: int
    rng: dict[str, Any] | None = None  # the RNG states as its last step left them (others run in between)

    def bytes(self) -> int:
        from modelwiz.engine.memmeasure import live_bytes, optimizer_tensors

        m = self.run.module
        return live_bytes([*m.parameters(), *m.buffers(), *optimizer_tensors(self.run.optimizer)])

    def resume(self) -> tr.Run:
        """The run, to train on: the RNG states back as its last step left them."""
        if self.rng is not None:
            checkpoints.set_rng_state(self.rng)
        return self.run

    def save(self, path: Path) -> None:
        if not path.is_file():
            _save_state(self.run, path, self.run.progress.global_step, self.run.progress.train_seconds, self.rng)

    def free(self) -> None:
        _free(self.run)


def _need_bytes(plan: Plan) -> int:
    """What training `plan` takes of the device's memory at its peak (the plan's prediction)."""
    m = plan.memory
    return int((m.peak_gb or max(0.0, m.total_gb - m.overhead_gb)) * memory.GB)


def free_bytes(device: str) -> int | None:
    """Memory this process could still allocate on `device` (None: not known there)."""
    if device == "cpu":
        import psutil

        return int(psutil.virtual_memory().available)
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    return None


def _room_to_keep(run: tr.Run, others: dict[int, Plan], parked: dict[int, Parked]) -> bool:
    """Whether `run` can stay in memory: the device (with it and the parked ones in memory) has
    room for the largest predicted peak among `others` (a parked one's own state already in)."""
    free = free_bytes(run.plan.device)
    if free is None:
        return False
    need = max((_need_bytes(o) - (parked[j].bytes() if j in parked else 0) for j, o in others.items()), default=0)
    return need <= KEEP_SHARE * free


def _make_room(run_dir: Path, parked: dict[int, Parked], plan: Plan, reporter: tr.Reporter) -> None:
    """Before `plan`'s contender loads: write the largest parked contenders to disk and free them
    until its predicted peak fits in KEEP_SHARE of the free memory (or none is left)."""
    while parked:
        free = free_bytes(plan.device)
        if free is not None and _need_bytes(plan) <= KEEP_SHARE * free:
            return
        i = max(parked, key=lambda j: parked[j].bytes())
        held = parked.pop(i)
        held.save(_state_path(run_dir, i, held.round_no))
        held.free()
        reporter.log(
            f"bake-off: {held.run.plan.model_name}'s state written to disk and freed, to make room for "
            f"{plan.model_name}"
        )


def adopt_winner(run: tr.Run) -> tr.Run:
    """The winner kept in memory becomes the run: its plan is plan.json's (the winner's, as the
    race wrote it), announced as `setup` announces a loaded one; its first checkpoint comes at
    the loop's usual points unless its racing was long (PERSIST_AFTER_S)."""
    plan = read_plan(run.run_dir)
    run.plan = plan
    reporter = run.reporter
    for note in plan.notes:
        reporter.log(f"plan: {note}")
    reporter.on_model(plan, run.params, run.trainable_params, run.load_seconds)
    reporter.on_plan(run)
    reporter.log(
        f"{plan.model_name} goes on from its bake-off state (kept in memory): step {run.progress.global_step} "
        f"of {run.total_steps}"
    )
    if run.progress.train_seconds >= PERSIST_AFTER_S:
        tr.save_checkpoint(run)
    return run


def _save_state(run: tr.Run, path: Path, step: int, train_seconds: float, rng: dict[str, Any] | None = None) -> None:
    """The contender's state at `step`; `rng`: its RNG states when they are not the process's now
    (a parked contender's, saved while others ran)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {**tr.training_state(run), "step": step, "train_seconds": train_seconds}
    if rng is not None:
        state["rng"] = rng
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _load_state(path: Path) -> dict[str, Any]:
    import torch

    from modelwiz.engine.errors import UserError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise UserError(
            f"bake-off state {path.name} is unreadable ({type(exc).__name__}); start a new run with the same config"
        ) from None
    if not isinstance(state, dict):
        raise UserError(f"bake-off state {path.name} is not one this modelwiz wrote; start a new run")
    return state


def _free(run: tr.Run) -> None:
    """Drop a contender's model, gradients and optimizer state before the next one loads."""
    import torch

    device = run.plan.device
    run.optimizer, run.scheduler, run.scaler = None, None, None
    run.adapter.model, run.module, run.adapter = None, None, None
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def continue_winner(run: tr.Run, path: Path) -> None:
    """The winner's run goes on from the state its bake-off reached (its first steps are the
    bake-off's); a step checkpoint marks the point, and the contenders' states are removed."""
    state = _load_state(path)
    tr.restore_training_state(run, state)
    step = min(int(state["step"]), run.steps_per_epoch)
    run.progress = tr.Progress(
        epoch=0, step_in_epoch=step, global_step=step, train_seconds=float(state.get("train_seconds", 0.0))
    )
    run.reporter.log(f"{run.plan.model_name} goes on from its bake-off state: step {step} of {run.total_steps}")
    if tr.save_checkpoint(run) is not None:
        for p in (Path(run.run_dir) / BAKEOFF_DIR).glob("*.pt"):
            p.unlink(missing_ok=True)


def report(run_dir: Path) -> dict[str, Any] | None:
    """report.json's `bakeoff` section: the schedule, every contender's curve and results, the table."""
    plan_bo = read_plan(run_dir).bakeoff
    record = read_json(Path(run_dir) / STATE_FILE, default=None)
    if not plan_bo or not isinstance(record, dict):
        return None
    return {
        "winner": plan_bo.get("winner"),
        "metric": plan_bo.get("metric"),
        "share": plan_bo.get("share"),
        "rounds": plan_bo.get("rounds"),
        "predicted_seconds": plan_bo.get("predicted_seconds"),
        "seconds": record.get("seconds"),
        "contenders": record.get("contenders"),
        "table": record.get("table"),
        # a bake-off decided on evidence: the examples its features covered, and how many of the
        # contenders' features an earlier probe had cached
        **{k: record[k] for k in ("evidence_examples", "features_cached") if k in record},
    }
