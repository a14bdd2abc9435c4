"""The plan: every setting of a run resolved, the one thing the trainer obeys.

`make_plan` is the only place where "auto" becomes a concrete value. The recommender calls it
for each candidate (predicted memory and time), the wizard's training-setup screen calls it as
values change, and `workflow.start_run` writes the chosen plan into the run directory as
`plan.json`, which the trainer, `resume` and `predict` read back with `read_plan`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from modelwiz.engine import memory
from modelwiz.engine.adapters import kind_for
from modelwiz.engine.errors import UserError
from modelwiz.engine.events import DEFAULT_METRIC
from modelwiz.engine.fsutil import atomic_write_json, read_json
from modelwiz.engine.sources.base import Candidate

PLAN_FILE = "plan.json"
PLAN_VERSION = 1
BATCH_LADDER = (64, 32, 16, 8, 4, 2, 1)
CPU_MAX_BATCH = 32
MEMORY_HEADROOM = 0.9  # plan to use at most 90% of what is available
PROBE_EXAMPLES_PER_CLASS = 20  # below this, a frozen backbone generalises better


@dataclass
class Plan:
    model_id: str
    model_name: str
    adapter: str  # hf-text | hf-image | torchvision: which adapter loads and runs it
    modality: str
    device: str
    strategy: str
    batch_size: int  # examples per forward/backward (micro-batch)
    grad_accum: int  # micro-batches per optimizer step
    learning_rate: float
    precision: str
    epochs: int
    seed: int
    max_length: int  # text: tokens per example, within the model's positions
    image_size: int  # image: side in pixels
    metric: str  # what "best" means for this run
    max_train_samples: int  # 0: all
    offline: bool
    memory: memory.MemoryEstimate
    budget_gb: float
    fits: bool
    epoch_seconds: float
    total_seconds: float
    notes: list[str] = field(default_factory=list)  # why "auto" resolved as it did
    version: int = PLAN_VERSION

    @property
    def effective_batch(self) -> int:
        return self.batch_size * self.grad_accum

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["memory"] = self.memory.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        names = {f.name for f in fields(cls)}
        missing = names - set(d) - {"notes", "version"}
        if missing:
            raise UserError(f"plan.json lacks {', '.join(sorted(missing))}; it was not written by this modelwiz")
        mem = memory.MemoryEstimate(**d["memory"])
        return cls(**{**{k: v for k, v in d.items() if k in names}, "memory": mem})


def write_plan(run_dir: Path, plan: Plan) -> Path:
    path = Path(run_dir) / PLAN_FILE
    atomic_write_json(path, plan.to_dict())
    return path


def read_plan(run_dir: Path) -> Plan:
    path = Path(run_dir) / PLAN_FILE
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise UserError(f"{path} is missing or unreadable; the run directory is incomplete")
    if raw.get("version") != PLAN_VERSION:
        raise UserError(f"{path}: plan version {raw.get('version')!r} is not one this modelwiz reads ({PLAN_VERSION})")
    return Plan.from_dict(raw)


def resolve_precision(requested: str, device: str, hardware: Any) -> tuple[str, str]:
    """(precision, note): bf16 where the GPU has it, else fp16 on CUDA; fp32 elsewhere."""
    if requested == "auto":
        if device.startswith("cuda"):
            if hardware is not None and hardware.bf16_on(device):
                return "bf16", ""
            return "fp16", "this GPU has no bf16: fp16 with a gradient scaler"
        return "fp32", ""
    if requested == "fp16" and not device.startswith("cuda"):
        return "fp32", f"fp16 autocast is not useful on {device}: fp32"
    if requested == "bf16" and device.startswith("cuda") and hardware is not None and not hardware.bf16_on(device):
        return "fp16", "this GPU has no bf16: fp16 with a gradient scaler"
    return requested, ""


def resolve_strategy(requested: str, train_size: int, num_classes: int) -> tuple[str, str]:
    if requested != "auto":
        return requested, ""
    per_class = train_size // max(num_classes, 1)
    if per_class < PROBE_EXAMPLES_PER_CLASS:
        return "linear-probe", (
            f"{per_class} examples per class (< {PROBE_EXAMPLES_PER_CLASS}): linear probe, "
            "a frozen backbone generalises better on little data"
        )
    return "full", f"{per_class} examples per class: full fine-tuning"


def default_learning_rate(strategy: str, params: int) -> float:
    if strategy == "linear-probe":
        return 1e-3
    if strategy == "partial":
        return 1e-4
    return 3e-5 if params >= 200e6 else 5e-5 if params >= 60e6 else 1e-4


def memory_budget(hardware: Any, constraints: Any) -> tuple[str, float, float]:
    """(device, memory available on it, budget): the budget is the user's limit when lower.
    Raises UserError when the requested device does not exist here."""
    device = hardware.device_for(constraints.device) if hardware is not None else "cpu"
    available = hardware.memory_gb(device) if hardware is not None else 8.0
    budget = min(available, constraints.max_memory_gb) if constraints.max_memory_gb else available
    return device, available, budget


def text_length(requested: int, cand: Candidate) -> tuple[int, str]:
    limit = int(cand.max_length or 512)
    if requested > limit:
        return limit, f"max_length {requested} is more than {cand.name} has positions for: {limit}"
    return int(requested), ""


def make_plan(
    cand: Candidate, train_cfg: Any, constraints: Any, hardware: Any, *, train_size: int, num_classes: int
) -> Plan:
    device, _, budget = memory_budget(hardware, constraints)
    notes: list[str] = []
    if train_cfg.max_train_samples:
        train_size = min(train_size, int(train_cfg.max_train_samples))
    strategy, why = resolve_strategy(train_cfg.strategy, train_size, num_classes)
    precision, why_precision = resolve_precision(train_cfg.precision, device, hardware)
    max_length, why_length = text_length(int(train_cfg.max_length), cand)
    notes += [n for n in (why, why_precision, why_length if cand.modality == "text" else "") if n]
    image_size = cand.image_size if train_cfg.image_size == "auto" else int(train_cfg.image_size)
    grad_accum = int(train_cfg.grad_accum)

    def est(bs: int) -> memory.MemoryEstimate:
        return memory.estimate(
            cand,
            strategy=strategy,
            batch_size=bs,
            seq_len=max_length,
            image_size=image_size,
            precision=precision,
            device=device,
            num_labels=num_classes,
        )

    if train_cfg.batch_size == "auto":
        cap = CPU_MAX_BATCH if not device.startswith("cuda") else BATCH_LADDER[0]
        cap = min(cap, max(1, train_size))
        ladder = [b for b in BATCH_LADDER if b <= cap] or [1]
        batch = ladder[-1]
        for b in ladder:
            if est(b).total_gb <= budget * MEMORY_HEADROOM:
                batch = b
                break
        notes.append(f"batch {batch}: the largest up to {cap} predicted to fit in {budget * MEMORY_HEADROOM:.1f} GB")
    else:
        batch = int(train_cfg.batch_size)
    mem = est(batch)
    lr = (
        default_learning_rate(strategy, cand.params)
        if train_cfg.learning_rate == "auto"
        else float(train_cfg.learning_rate)
    )
    flops = memory.flops_per_sample(cand, strategy=strategy, seq_len=max_length, image_size=image_size)
    rate = memory.device_flops(device, hardware)
    epoch_s = train_size * flops / rate if rate else 0.0
    return Plan(
        model_id=cand.id,
        model_name=cand.name,
        adapter=kind_for(cand.id, cand.modality),
        modality=cand.modality,
        device=device,
        strategy=strategy,
        batch_size=batch,
        grad_accum=grad_accum,
        learning_rate=lr,
        precision=precision,
        epochs=int(train_cfg.epochs),
        seed=int(train_cfg.seed),
        max_length=max_length,
        image_size=int(image_size),
        metric=getattr(train_cfg, "metric", DEFAULT_METRIC) or DEFAULT_METRIC,
        max_train_samples=int(train_cfg.max_train_samples),
        offline=bool(constraints.offline),
        memory=mem,
        budget_gb=round(budget, 2),
        fits=mem.total_gb <= budget,
        epoch_seconds=round(epoch_s, 1),
        total_seconds=round(epoch_s * int(train_cfg.epochs), 1),
        notes=notes,
    )
