"""What the screens tell the app. The app owns `WizardState` and navigation: a screen never
assigns to the state or switches screens itself; it posts one of these (they bubble from the
screen to the app, whose `@on` handlers update the state and navigate)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:  # annotations only: the engine's ranking is not imported before the first screen
    from modelwiz.engine.config import ConstraintsConfig, TaskConfig, TrainConfig
    from modelwiz.engine.data import TaskData
    from modelwiz.engine.hardware import HardwareReport
    from modelwiz.engine.recommend import Ranked
    from modelwiz.engine.workflow import Recommendation


class StepRequested(Message):
    """Show wizard step `step` (back, next, or a jump)."""

    def __init__(self, step: str) -> None:
        super().__init__()
        self.step = step


class TaskChecked(Message):
    """The data of `task` was checked: `data`, or None when the check failed."""

    def __init__(self, task: TaskConfig, data: TaskData | None) -> None:
        super().__init__()
        self.task = task
        self.data = data


class HardwareRead(Message):
    def __init__(self, report: HardwareReport) -> None:
        super().__init__()
        self.report = report


class ConstraintsChanged(Message):
    def __init__(self, constraints: ConstraintsConfig, time_budget_s: float | None = None) -> None:
        super().__init__()
        self.constraints = constraints
        self.time_budget_s = time_budget_s


class RecommendationMade(Message):
    """Models ranked for the settings whose `WizardState.ranking_key()` was `key`."""

    def __init__(self, recommendation: Recommendation, key: str) -> None:
        super().__init__()
        self.recommendation = recommendation
        self.key = key


class BakeoffChanged(Message):
    """`[train] bakeoff = k` (0: off); `models`: the contenders marked (ids), or empty for the
    next best-ranked models that fit."""

    def __init__(self, k: int, models: list[str]) -> None:
        super().__init__()
        self.k = k
        self.models = models


class ModelChosen(Message):
    def __init__(self, ranked: Ranked) -> None:
        super().__init__()
        self.ranked = ranked


class TrainingChanged(Message):
    """New training settings, and the chosen model re-ranked and re-planned under them."""

    def __init__(self, train: TrainConfig, ranked: Ranked) -> None:
        super().__init__()
        self.train = train
        self.ranked = ranked


class RunStarted(Message):
    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = run_dir


class RunOpened(Message):
    """Show the dashboard of the run in `run_dir` (picked in the runs list)."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = run_dir
