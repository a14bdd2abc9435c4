"""What the wizard accumulates, and the engine calls it makes (injectable for tests).

`WizardState` holds the same `modelwiz.engine.config.Config` that `--batch` builds from a TOML file, plus
the results of each step. The app owns it: screens read it and report changes as messages
(`modelwiz.tui.messages`). `Services` are the engine entry points the screens call; tests replace
them with fakes (fixed hardware, fixed candidates, a start_run that copies a recorded run).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelwiz.engine.config import Config
from modelwiz.engine.errors import UserError
from modelwiz.tui.nvml import NvmlReader
from modelwiz.tui.probe import run_probe

if TYPE_CHECKING:
    from modelwiz.engine.data import TaskData
    from modelwiz.engine.hardware import HardwareReport
    from modelwiz.engine.recommend import Ranked
    from modelwiz.engine.sources.base import Candidate
    from modelwiz.engine.workflow import Recommendation

# The engine's ranking, planning and runs modules are imported by the calls below when first made,
# not with this module: the first screen (the task) needs none of them (bench/startup.py).

STEPS: tuple[str, ...] = ("task", "hardware", "recommend", "setup", "dashboard")
STEP_TITLES: dict[str, str] = {
    "task": "Task",
    "hardware": "Hardware",
    "recommend": "Models",
    "setup": "Training setup",
    "dashboard": "Dashboard",
}


def step_label(step: str) -> str:
    return f"Step {STEPS.index(step) + 1}/{len(STEPS)} · {STEP_TITLES[step]}"


def task_key(config: Config) -> str:
    """The settings a data check depends on: equal keys, same checked data."""
    t = config.task
    return repr((t.modality, t.train, t.validation, t.text_column, t.label_column, config.train.seed))


def _check_data(config: Config) -> TaskData:
    """As `modelwiz.engine.workflow.check_data`, importing only the data module."""
    from modelwiz.engine.data import load_task_data

    return load_task_data(config.task, seed=config.train.seed)


def _read_hardware(config: Config) -> HardwareReport:
    from modelwiz.engine import workflow

    return workflow.read_hardware(config)


def _default_recommend(config: Config, data: TaskData, hardware: HardwareReport) -> Recommendation:
    from modelwiz.engine import workflow

    return workflow.recommend(config, data=data, hardware=hardware)


def _cancel_run(run_dir: Path) -> Any:
    from modelwiz.engine.runs import request_cancel

    return request_cancel(run_dir)


def _resume_run(run_dir: Path) -> Any:
    from modelwiz.engine.batch import resume_run

    return resume_run(run_dir)


def _candidates(modality: str) -> list[Candidate]:
    from modelwiz.engine.recommend import gather_candidates

    return gather_candidates(modality)


def rank_one(config: Config, data: TaskData, hardware: HardwareReport, candidate: Candidate) -> Ranked:
    """`candidate` ranked afresh under `config`: its score, plan (fit, memory, time) and reasons."""
    from modelwiz.engine import workflow

    ranked = workflow.rerank(config, data, hardware, candidate)
    if ranked is None:
        raise UserError(
            f"{candidate.name} no longer meets the constraints (size, license or offline); "
            "go back to the models (ctrl+b) and choose again"
        )
    return ranked


@dataclass
class ModelCount:
    """How many models the constraints leave: the hardware step's live line."""

    total: int  # candidates of the task's modality
    qualify: int  # within the size, license and offline limits
    fit: int  # of those, predicted to fit the memory budget
    in_time: int | None  # of those, predicted to finish within the time budget (None: no budget)
    budget_gb: float

    def text(self, time_budget: str = "") -> str:
        line = f"{self.qualify} of {self.total} models qualify, {self.fit} fit in {self.budget_gb:.1f} GB"
        if self.in_time is not None:
            line += f", {self.in_time} finish within {time_budget}"
        return line


def count_models(
    config: Config,
    data: TaskData,
    hardware: HardwareReport,
    candidates: list[Candidate],
    time_budget_s: float | None = None,
) -> ModelCount:
    """`candidates` ranked under `config` (the same filters and plans as the models step), counted."""
    from modelwiz.engine.plan import memory_budget
    from modelwiz.engine.recommend import rank

    s = data.summary
    ranked = rank(
        config,
        hardware,
        train_size=s.train_size,
        num_classes=s.num_classes,
        language=s.language,
        candidates=copy.deepcopy(candidates),
    )
    fitting = [r for r in ranked if r.fits]
    in_time = None if not time_budget_s else sum(r.plan.total_seconds <= time_budget_s for r in fitting)
    budget = ranked[0].plan.budget_gb if ranked else memory_budget(hardware, config.constraints)[2]
    total = sum(c.modality == config.task.modality for c in candidates)
    return ModelCount(total, len(ranked), len(fitting), in_time, budget)


def _measure(config: Config, data: TaskData, hardware: HardwareReport, ranked: Ranked) -> Ranked:
    from modelwiz.engine import workflow

    return workflow.measure_architecture(config, data, hardware, ranked)


@dataclass
class Services:
    """Engine calls made by the screens. All but `rerank` (pure Python, fast: it runs as values are
    typed) run in thread workers."""

    check_data: Callable[[Config], TaskData] = _check_data
    read_hardware: Callable[[Config], HardwareReport] = _read_hardware
    recommend: Callable[[Config, TaskData, HardwareReport], Recommendation] = _default_recommend
    rerank: Callable[[Config, TaskData, HardwareReport, Candidate], Ranked] = rank_one
    # the chosen model planned from a memory trace and step-cost count made now, when its
    # architecture has none yet (engine.workflow.measure_architecture: subprocesses, seconds)
    measure: Callable[[Config, TaskData, HardwareReport, Ranked], Ranked] = _measure
    # (config, the chosen model, the rows a bake-off's contenders come from or None) -> run dir
    start_run: Callable[[Config, Ranked, list[Ranked] | None], Path] | None = None
    cancel_run: Callable[[Path], Any] = _cancel_run
    resume_run: Callable[[Path], Any] = _resume_run
    candidates: Callable[[str], list[Candidate]] = _candidates  # every source, one modality
    # (config, model ids, k, on_event, should_stop) -> probe results; default: a process of its own
    probe: Callable[[Config, list[str], int, Callable[[dict[str, Any]], None], Callable[[], bool]], list[Any]] = (
        run_probe
    )
    # CUDA device index -> (used GB, total GB) across every process (NVML), or None where NVML is absent
    device_memory: Callable[[int], tuple[float, float] | None] = field(default_factory=lambda: NvmlReader().read)

    def with_runs_dir(self, runs_dir: Path | None) -> Services:
        """Fill in the default `start_run` (modelwiz.engine.workflow.start_run into `runs_dir`)."""
        if self.start_run is not None:
            return self
        out = copy.copy(self)

        def start_run(config: Config, ranked: Ranked, contenders: list[Ranked] | None = None) -> Path:
            from modelwiz.engine import workflow

            return workflow.start_run(config, ranked, runs_dir=runs_dir, ranked=contenders)

        out.start_run = start_run
        return out


@dataclass
class WizardState:
    config: Config = field(default_factory=Config)
    data: TaskData | None = None
    data_key: str = ""  # the task settings `data` was checked with
    hardware: HardwareReport | None = None
    recommendation: Recommendation | None = None
    recommendation_key: str = ""  # the settings `recommendation` was computed with
    chosen: Ranked | None = None  # re-ranked by the setup step as its values change
    run_dir: Path | None = None
    time_budget_s: float | None = None  # the hardware step's time budget (None: no limit)
    # a bake-off's contenders besides the chosen model: the models marked when it was set (ids);
    # empty: the next best-ranked that fit (`[train] bakeoff` says how many race in all)
    bakeoff_models: list[str] = field(default_factory=list)

    def bakeoff_contenders(self) -> list[Ranked] | None:
        """The rows `workflow.start_run(ranked=...)` picks the bake-off's contenders from."""
        if not self.config.train.bakeoff or self.recommendation is None:
            return None
        rows = self.recommendation.ranked
        if self.bakeoff_models:
            return [r for r in rows if r.candidate.id in self.bakeoff_models]
        return list(rows)

    def task_key(self) -> str:
        return task_key(self.config)

    def ranking_key(self) -> str:
        train = copy.copy(self.config.train)
        train.bakeoff = 0  # a bake-off races ranked models; it does not change the ranking
        return repr(
            (
                self.task_key(),
                self.config.constraints,
                train,
                self.config.model.id,
                id(self.data),
                id(self.hardware),
            )
        )

    @property
    def data_ok(self) -> bool:
        return self.data is not None and self.data_key == self.task_key()

    def reachable(self, step: str) -> bool:
        """Whether the wizard may show `step` now (its inputs exist)."""
        if step == "task":
            return True
        if step == "hardware":
            return self.data_ok
        if step == "recommend":
            return self.data_ok and self.hardware is not None
        if step == "setup":
            return self.data_ok and self.hardware is not None and self.chosen is not None
        if step == "dashboard":
            return self.run_dir is not None
        return False
