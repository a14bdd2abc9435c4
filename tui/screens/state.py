"""What the wizard accumulates, and the engine calls it makes (injectable for tests).

`WizardState` holds the same `modelwiz.engine.config.Config` that `--batch` builds from a TOML file, plus
the results of each step. `Services` are the engine entry points the screens call; tests replace
them with fakes (fixed hardware, fixed candidates, a start_run that copies a recorded run).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from modelwiz.engine import workflow
from modelwiz.engine.config import Config
from modelwiz.engine.data import TaskData
from modelwiz.engine.hardware import HardwareReport
from modelwiz.engine.plan import Plan, make_plan
from modelwiz.engine.recommend import Ranked
from modelwiz.engine.runs import request_cancel
from modelwiz.engine.workflow import Recommendation

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


def _default_recommend(config: Config, data: TaskData, hardware: HardwareReport) -> Recommendation:
    return workflow.recommend(config, data=data, hardware=hardware)


@dataclass
class Services:
    """Engine calls made by the screens. Every callable runs in a thread worker."""

    check_data: Callable[[Config], TaskData] = workflow.check_data
    read_hardware: Callable[[Config], HardwareReport] = workflow.read_hardware
    recommend: Callable[[Config, TaskData, HardwareReport], Recommendation] = _default_recommend
    start_run: Callable[[Config, Ranked], Path] | None = None
    cancel_run: Callable[[Path], Any] = request_cancel

    def with_runs_dir(self, runs_dir: Path | None) -> "Services":
        """Fill in the default `start_run` (modelwiz.engine.workflow.start_run into `runs_dir`)."""
        if self.start_run is not None:
            return self
        out = copy.copy(self)

        def start_run(config: Config, ranked: Ranked) -> Path:
            return workflow.start_run(config, ranked, runs_dir=runs_dir)

        out.start_run = start_run
        return out


@dataclass
class WizardState:
    config: Config = field(default_factory=Config)
    data: TaskData | None = None
    data_key: str = ""              # the task settings `data` was checked with
    hardware: HardwareReport | None = None
    recommendation: Recommendation | None = None
    recommendation_key: str = ""    # the settings `recommendation` was computed with
    chosen: Ranked | None = None
    run_dir: Path | None = None

    def task_key(self) -> str:
        t = self.config.task
        return repr((t.modality, t.train, t.validation, t.text_column, t.label_column, self.config.train.seed))

    def ranking_key(self) -> str:
        return repr((self.task_key(), self.config.constraints, self.config.train, self.config.model.id,
                     id(self.data), id(self.hardware)))

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

    def plan_for(self, ranked: Ranked, train_cfg: Any | None = None) -> Plan:
        """The plan for `ranked` under the current (or given) training settings."""
        assert self.data is not None
        s = self.data.summary
        return make_plan(ranked.candidate, train_cfg or self.config.train, self.config.constraints, self.hardware,
                         train_size=s.train_size, num_classes=s.num_classes)

    def run_choice(self) -> tuple[Config, Ranked]:
        """A copy of the config and the chosen model re-planned with the current settings: what
        `start_run` receives."""
        assert self.chosen is not None
        cfg = copy.deepcopy(self.config)
        plan = self.plan_for(self.chosen, cfg.train)
        return cfg, Ranked(self.chosen.candidate, self.chosen.score, plan, list(self.chosen.reasons))

    def config_to_save(self) -> Config:
        """The config a `--batch` run would need to repeat this wizard session."""
        cfg = copy.deepcopy(self.config)
        if self.chosen is not None:
            cfg.model.id = self.chosen.candidate.id
        return cfg
