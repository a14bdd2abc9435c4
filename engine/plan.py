"""Turning "auto" settings into concrete ones for a model on this hardware.

The same function serves the recommender (predicted memory/time per candidate), the wizard's
training-setup screen (figures that update as values change) and the trainer (what it runs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from modelwiz.engine import memory
from modelwiz.engine.sources.base import Candidate

BATCH_LADDER = (64, 32, 16, 8, 4, 2, 1)
CPU_MAX_BATCH = 32
MEMORY_HEADROOM = 0.9       # plan to use at most 90% of what is available


@dataclass
class Plan:
    device: str
    strategy: str
    batch_size: int
    learning_rate: float
    precision: str
    epochs: int
    max_length: int
    image_size: int
    memory: memory.MemoryEstimate
    budget_gb: float
    fits: bool
    epoch_seconds: float
    total_seconds: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["memory"] = self.memory.to_dict()
        return d


def resolve_precision(requested: str, device: str, hardware: Any) -> str:
    if requested != "auto":
        return requested
    if device.startswith("cuda"):
        return "bf16" if hardware is not None and hardware.bf16_on(device) else "fp16"
    return "fp32"


def resolve_strategy(requested: str, train_size: int, num_classes: int) -> str:
    if requested != "auto":
        return requested
    # very little data per class: a frozen backbone generalises better and trains in seconds
    if train_size < 20 * max(num_classes, 1):
        return "linear-probe"
    return "full"


def default_learning_rate(strategy: str, params: int) -> float:
    if strategy == "linear-probe":
        return 1e-3
    if strategy == "partial":
        return 1e-4
    return 3e-5 if params >= 200e6 else 5e-5 if params >= 60e6 else 1e-4


def memory_budget(hardware: Any, constraints: Any) -> tuple[str, float, float]:
    """(device, memory available on it, budget): the budget is the user's limit when lower."""
    device = hardware.device_for(constraints.device) if hardware is not None else "cpu"
    available = hardware.memory_gb(device) if hardware is not None else 8.0
    budget = min(available, constraints.max_memory_gb) if constraints.max_memory_gb else available
    return device, available, budget


def make_plan(cand: Candidate, train_cfg: Any, constraints: Any, hardware: Any, *, train_size: int,
              num_classes: int) -> Plan:
    device, _, budget = memory_budget(hardware, constraints)
    strategy = resolve_strategy(train_cfg.strategy, train_size, num_classes)
    precision = resolve_precision(train_cfg.precision, device, hardware)
    max_length = min(int(train_cfg.max_length), int(cand.max_length or 512))
    image_size = cand.image_size if train_cfg.image_size == "auto" else int(train_cfg.image_size)

    def est(bs: int) -> memory.MemoryEstimate:
        return memory.estimate(cand, strategy=strategy, batch_size=bs, seq_len=max_length, image_size=image_size,
                               precision=precision, device=device, num_labels=num_classes)

    if train_cfg.batch_size == "auto":
        cap = CPU_MAX_BATCH if not device.startswith("cuda") else BATCH_LADDER[0]
        cap = min(cap, max(1, train_size))
        ladder = [b for b in BATCH_LADDER if b <= cap] or [1]
        batch = ladder[-1]
        for b in ladder:
            if est(b).total_gb <= budget * MEMORY_HEADROOM:
                batch = b
                break
    else:
        batch = int(train_cfg.batch_size)
    mem = est(batch)
    lr = default_learning_rate(strategy, cand.params) if train_cfg.learning_rate == "auto" else float(train_cfg.learning_rate)
    flops = memory.flops_per_sample(cand, strategy=strategy, seq_len=max_length, image_size=image_size)
    rate = memory.device_flops(device, hardware)
    epoch_s = train_size * flops / rate if rate else 0.0
    return Plan(device=device, strategy=strategy, batch_size=batch, learning_rate=lr, precision=precision,
                epochs=int(train_cfg.epochs), max_length=max_length, image_size=int(image_size), memory=mem,
                budget_gb=round(budget, 2), fits=mem.total_gb <= budget, epoch_seconds=round(epoch_s, 1),
                total_seconds=round(epoch_s * int(train_cfg.epochs), 1))
