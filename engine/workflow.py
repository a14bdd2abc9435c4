"""The steps every front-end runs, in order: check the data, read the hardware, rank models,
start a detached training run. `--batch`, `recommend` and the wizard all call these."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelwiz.engine.config import Config
from modelwiz.engine.data import DataSummary, TaskData, load_task_data
from modelwiz.engine.hardware import HardwareReport, detect
from modelwiz.engine.plan import bakeoff_schedule, write_plan
from modelwiz.engine.preflight import check_model
from modelwiz.engine.recommend import Ranked, candidate_for_id, gather_candidates, rank, resolve_model_choice
from modelwiz.engine.runs import create_run, launch_trainer, runs_dir_for
from modelwiz.engine.sources.base import Candidate


@dataclass
class Recommendation:
    data: TaskData
    hardware: HardwareReport
    ranked: list[Ranked]
    notes: list[str] = field(default_factory=list)  # one line each, e.g. what the Hub said

    @property
    def summary(self) -> DataSummary:
        return self.data.summary


def check_data(config: Config) -> TaskData:
    return load_task_data(config.task, seed=config.train.seed)


def read_hardware(config: Config, runs_dir: str | Path | None = None) -> HardwareReport:
    return detect(runs_dir or runs_dir_for(config))


def recommend(
    config: Config,
    *,
    data: TaskData | None = None,
    hardware: HardwareReport | Callable[[], HardwareReport] | None = None,
) -> Recommendation:
    """The data checked, then the model named (if any), then the hardware read (`hardware`: the
    report, or what reads it): bad data or a bad model is refused before the hardware probe
    (seconds: it imports torch) or a first run's speed benchmark is waited for."""
    data = data or check_data(config)
    cand = candidate_for_id(config.model.id, config.task.modality) if config.model.id else None
    notes = check_model(cand, config) if cand is not None else []  # refused here, before ranking shows it
    if hardware is None:
        hardware = read_hardware(config)
    elif callable(hardware):
        hardware = hardware()
    if cand is not None:
        found = rerank(config, data, hardware, cand)
        if found:
            found.reasons += notes
        return Recommendation(data, hardware, [found] if found else [])
    s = data.summary
    said: list[str] = []  # what the sources said (the Hub: fetched, cached, unreachable)
    cands = gather_candidates(config.task.modality, offline=config.constraints.offline, notes=said)
    ranked = rank(
        config,
        hardware,
        train_size=s.train_size,
        num_classes=s.num_classes,
        language=s.language,
        candidates=cands,
        val_size=s.val_size,
        text_lengths=s.length_words or None,
    )
    return Recommendation(data, hardware, ranked, said)


MEASURE_TIMEOUT_S = 300  # each of the trace and the count; past it the plan keeps the formula's figures


def needs_measuring(ranked: Ranked) -> bool:
    """Whether the plan's memory or time came from the formula because the model's architecture
    has no memory trace or step-cost count (a local folder or Hub model of an architecture the
    shipped tables lack), while its config can be rebuilt to make them. MODELWIZ_MEASURE=0 turns
    this off (the formula's figures stand)."""
    import os

    if os.environ.get("MODELWIZ_MEASURE", "1") == "0":
        return False
    from modelwiz.engine import speed
    from modelwiz.engine.memtrace import spec_for_candidate

    plan = ranked.plan
    no_time = plan.time_method != "measured" and speed.find_costs(ranked.candidate)[0] is None
    if plan.memory.method == "traced" and not no_time:
        return False
    try:
        return spec_for_candidate(ranked.candidate) is not None
    except (OSError, ValueError):
        return False


def measure_architecture(
    config: Config,
    data: TaskData,
    hardware: HardwareReport,
    ranked: Ranked,
    log: Callable[[str], None] = lambda _line: None,
) -> Ranked:
    """The chosen model planned from measurements rather than the formula: when its architecture
    lacks a memory trace (for the plan's strategy and precision) or a step-cost count, make them
    now, once per architecture (two subprocesses side by side, on fake tensors: nothing is
    downloaded; cached on disk for every later plan), then plan it again. What cannot be traced
    or counted keeps the formula, and the plan's notes say why."""
    failed: list[str] = []
    for _ in range(2):  # a measured plan may choose another strategy or precision: measure that too
        if not needs_measuring(ranked) or failed:
            break
        again = _measure_once(config, data, hardware, ranked, log, failed)
        if again is None:
            break
        again.reasons += [r for r in ranked.reasons if r not in again.reasons]
        ranked = again
    for line in failed:
        ranked.plan.notes = [*ranked.plan.notes, f"{line}; the formula instead"]
        log(f"{line}; the formula instead")
    return ranked


def _measure_once(
    config: Config,
    data: TaskData,
    hardware: HardwareReport,
    ranked: Ranked,
    log: Callable[[str], None],
    failed: list[str],
) -> Ranked | None:
    """Trace and count what `ranked`'s plan lacks, side by side; the model planned again (None:
    nothing to do). Failures are added to `failed`."""
    import threading

    from modelwiz.engine import memory, speed
    from modelwiz.engine.errors import UserError

    plan, cand = ranked.plan, ranked.candidate
    jobs: list[tuple[str, Callable[[], object]]] = []
    if plan.memory.method != "traced":
        jobs.append(
            (
                "memory",
                lambda: memory.trace_model(
                    cand, strategies=(plan.strategy,), precisions=(plan.precision,), timeout_s=MEASURE_TIMEOUT_S
                ),
            )
        )
    if plan.time_method != "measured" and speed.find_costs(cand)[0] is None:
        jobs.append(("time", lambda: speed.count_candidate(cand, timeout_s=MEASURE_TIMEOUT_S)))
    if not jobs:
        return None
    what = " and ".join("its training step's memory" if k == "memory" else "its step's costs" for k, _ in jobs)
    log(f"{cand.name}: an architecture not measured before: tracing {what} once (cached for next time) …")

    def run(job: Callable[[], object]) -> None:
        try:
            job()
        except UserError as exc:
            failed.append(str(exc))

    threads = [threading.Thread(target=run, args=(job,), daemon=True) for _, job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return rerank(config, data, hardware, cand)


def rerank(config: Config, data: TaskData, hardware: HardwareReport, candidate: Candidate) -> Ranked | None:
    """`candidate` ranked afresh under `config` (score, plan, reasons), or None when the
    constraints exclude it. A model the user named in `[model] id` is never excluded: for it the
    constraints inform, they do not veto."""
    s = data.summary

    def one(cfg: Config) -> list[Ranked]:
        return rank(
            cfg,
            hardware,
            train_size=s.train_size,
            num_classes=s.num_classes,
            language=s.language,
            candidates=[candidate],
            val_size=s.val_size,
            text_lengths=s.length_words or None,
        )

    ranked = one(config)
    if not ranked and config.model.id == candidate.id:
        relaxed = copy.deepcopy(config)
        relaxed.constraints.licenses, relaxed.constraints.max_params_m = [], None
        relaxed.constraints.offline = False
        ranked = one(relaxed)
    return ranked[0] if ranked else None


def choose(config: Config, rec: Recommendation) -> Ranked:
    return resolve_model_choice(config, rec.ranked)


def start_run(
    config: Config, choice: Ranked, *, runs_dir: str | Path | None = None, ranked: list[Ranked] | None = None
) -> Path:
    """`prepare_run`, then launch the detached trainer."""
    run_dir = prepare_run(config, choice, runs_dir=runs_dir, ranked=ranked)
    launch_trainer(run_dir)
    return run_dir


def prepare_run(
    config: Config, choice: Ranked, *, runs_dir: str | Path | None = None, ranked: list[Ranked] | None = None
) -> Path:
    """Create the run directory (the user's config with the model fixed, and the chosen plan as
    plan.json: the trainer's only source of settings), ready for a trainer. The model is checked
    first (`engine.preflight`), whether the user named it or the ranking chose it, so a model
    that cannot run is refused before the run directory exists. With `[train] bakeoff = K` the
    plan also carries the contenders, the top K of `ranked` that fit (`bakeoff_contenders`)."""
    plan = choice.plan
    contenders = bakeoff_contenders(config, choice, ranked) if config.train.bakeoff else [choice]
    for c in contenders:
        check_model(c.candidate, config)
    if len(contenders) > 1:
        plan = copy.deepcopy(plan)
        plan.bakeoff = bakeoff_schedule([c.plan for c in contenders], share=config.train.bakeoff_share)
        if plan.bakeoff.get("warning"):
            plan.notes = [*plan.notes, plan.bakeoff["warning"]]
    cfg = copy.deepcopy(config)
    run_dir = create_run(
        cfg,
        model_id=choice.candidate.id,
        runs_dir=Path(runs_dir) if runs_dir else runs_dir_for(cfg),
        extra={
            "predicted": {"memory_gb": plan.memory.total_gb, "epoch_seconds": plan.epoch_seconds},
            "model_name": choice.candidate.name,
        },
        fix_model=len(contenders) == 1,
    )
    write_plan(run_dir, plan)
    return run_dir


def bakeoff_contenders(config: Config, choice: Ranked, ranked: list[Ranked] | None) -> list[Ranked]:
    """The bake-off's contenders: `choice` and the next best-ranked models that fit, K in all
    (fewer when fewer fit). Raises UserError when fewer than 2 fit, or when the run's settings
    contradict a bake-off (`config.check_bakeoff`)."""
    from modelwiz.engine.config import check_bakeoff
    from modelwiz.engine.errors import UserError

    check_bakeoff(config)
    k = config.train.bakeoff
    fitting = [choice] + [r for r in ranked or [] if r.fits and r.candidate.id != choice.candidate.id]
    if len(fitting) < 2:
        raise UserError(
            f"[train] bakeoff = {k} needs at least 2 candidate models that fit; only {choice.candidate.name} "
            "does: relax [constraints], add model folders to MODELWIZ_MODEL_PATH, or set bakeoff = 0"
        )
    return fitting[:k]
