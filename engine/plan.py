"""The plan: every setting of a run resolved, the one thing the trainer obeys.

`make_plan` is the only place where "auto" becomes a concrete value. The recommender calls it
for each candidate (predicted memory and time), the wizard's training-setup screen calls it as
values change, and `workflow.start_run` writes the chosen plan into the run directory as
`plan.json`, which the trainer, `resume` and `predict` read back with `read_plan`.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from modelwiz.engine import batching, memory, speed
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
PROBE_EXAMPLES_PER_CLASS = 20  # below this many examples per class: linear probe
FULL_EXAMPLES_PER_CLASS = 100  # below this: partial fine-tuning; from here: full
AUGMENT_EXAMPLES_PER_CLASS = 100  # images: augmentation on by default below this
STRATEGY_COST = {"linear-probe": 0, "partial": 1, "gradual": 2, "full": 2}
STRATEGY_WORDS = {
    "linear-probe": "linear probe",
    "partial": "partial fine-tuning",
    "gradual": "gradual unfreezing",
    "full": "full fine-tuning",
}
# image architectures that are transformers: no channels-last for them
TRANSFORMER_IMAGE_ARCHS = {"vit", "deit", "beit", "dinov2", "swin", "swinv2"}


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
    epoch_seconds: float  # predicted: training plus the evaluation after each epoch
    total_seconds: float
    # recipes (engine/recipes.py)
    unfreeze_blocks: int = 0  # partial: top blocks trained; gradual: blocks unfrozen at the start
    unfreeze_every: int = 1  # gradual: epochs between unfreezing one more block
    layer_decay: float = 1.0  # block k from the top trains at learning_rate * layer_decay**k
    schedule: str = "linear"  # linear | cosine | constant, after a linear warmup
    warmup: float = 0.06  # fraction of optimizer steps
    weight_decay: float = 0.01  # never on biases and norm weights
    max_grad_norm: float = 1.0  # 0: no clipping
    augment: bool = False  # images: augmentation in training
    group_by_length: bool = False  # text: each step's examples of similar length (engine/batching.py)
    tf32: bool = False  # CUDA: TF32 matmuls and convolutions
    channels_last: bool = False  # CUDA CNNs: channels-last memory format
    checkpoint_every: int = 0  # optimizer steps between step checkpoints (0: each epoch only)
    keep_checkpoints: int = 2  # step checkpoints kept
    patience: int = 0  # early stopping after this many epochs without a better metric (0: off)
    nproc: int = 1  # processes (torchrun, DistributedDataParallel); batch_size is per process
    trust_remote_code: bool = False  # run code the model ships; only when [model] trust_remote_code asks
    train_size: int = 0  # training examples the plan was made for (after max_train_samples)
    val_size: int = 0  # validation examples each evaluation reads (eval_seconds is for them)
    notes: list[str] = field(default_factory=list)  # why "auto" resolved as it did
    time_method: str = "formula"  # measured (device benchmark + counted step costs) | formula
    train_epoch_seconds: float = 0.0  # predicted training part of epoch_seconds
    eval_seconds: float = 0.0  # predicted evaluation part of epoch_seconds (0: left out)
    time_length: float = 0.0  # text: the padded length the time was predicted at
    # a bake-off run (engine/bakeoff.py): the contenders' own plans and the rounds' step budgets
    # (`bakeoff_schedule`); empty: none. Once the race is decided plan.json is the winner's plan
    # and this keeps the schedule with `winner` set.
    bakeoff: dict[str, Any] = field(default_factory=dict)
    version: int = PLAN_VERSION

    @property
    def effective_batch(self) -> int:
        """Examples per optimizer step: micro-batch x accumulation x processes."""
        return self.batch_size * self.grad_accum * self.nproc

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["memory"] = self.memory.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing = required - set(d)
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


def resolve_strategy(requested: str, per_class: int) -> tuple[str, str]:
    """The recipe for this much data: a frozen backbone on little data, the top blocks on some,
    everything on plenty (the practitioners' advice, as thresholds stated here)."""
    if requested != "auto":
        return requested, ""
    if per_class < PROBE_EXAMPLES_PER_CLASS:
        return (
            "linear-probe",
            f"linear probe (fewer than {PROBE_EXAMPLES_PER_CLASS} per class: a frozen backbone generalises better)",
        )
    if per_class < FULL_EXAMPLES_PER_CLASS:
        return "partial", f"partial fine-tuning of the top blocks (fewer than {FULL_EXAMPLES_PER_CLASS} per class)"
    return "full", "full fine-tuning"


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
    cand: Candidate,
    train_cfg: Any,
    constraints: Any,
    hardware: Any,
    *,
    train_size: int,
    num_classes: int,
    trust_remote_code: bool = False,
    val_size: int | None = None,
    text_lengths: dict[str, float] | None = None,
) -> Plan:
    device, _, budget = memory_budget(hardware, constraints)
    notes: list[str] = []
    if train_cfg.max_train_samples:
        train_size = min(train_size, int(train_cfg.max_train_samples))
    per_class = train_size // max(num_classes, 1)
    strategy, why_strategy = resolve_strategy(train_cfg.strategy, per_class)
    precision, why_precision = resolve_precision(train_cfg.precision, device, hardware)
    max_length, why_length = text_length(int(train_cfg.max_length), cand)
    notes += [n for n in (why_precision, why_length if cand.modality == "text" else "") if n]
    image_size = cand.image_size if train_cfg.image_size == "auto" else int(train_cfg.image_size)

    def est(bs: int, recipe: str) -> memory.MemoryEstimate:
        return memory.estimate(
            cand,
            strategy="full" if recipe == "gradual" else recipe,  # gradual ends with the most unfrozen
            batch_size=bs,
            seq_len=max_length,
            image_size=image_size,
            precision=precision,
            device=device,
            num_labels=num_classes,
            grad_accum=int(train_cfg.grad_accum),
            unfreeze_blocks=None if train_cfg.unfreeze_blocks == "auto" else int(train_cfg.unfreeze_blocks),
        )

    usable = budget * MEMORY_HEADROOM
    if train_cfg.strategy == "auto":
        # a recipe that cannot fit even one example gives way to a cheaper one
        for cheaper in ("partial", "linear-probe"):
            if est(1, strategy).total_gb <= usable or strategy == "linear-probe":
                break
            if STRATEGY_COST[cheaper] < STRATEGY_COST[strategy]:
                why_strategy = f"{STRATEGY_WORDS[cheaper]} ({STRATEGY_WORDS[strategy]} does not fit even at batch 1)"
                strategy = cheaper
    if train_cfg.batch_size == "auto":
        cap = CPU_MAX_BATCH if not device.startswith("cuda") else BATCH_LADDER[0]
        cap = min(cap, max(1, train_size))
        ladder = [b for b in BATCH_LADDER if b <= cap] or [1]
        batch = next((b for b in ladder if est(b, strategy).total_gb <= usable), ladder[-1])
    else:
        batch = int(train_cfg.batch_size)
    if train_cfg.strategy == "auto" or train_cfg.batch_size == "auto":
        # the one line that says why: data per class and memory, then the choice
        notes.insert(
            0,
            f"{per_class} examples per class and {budget:.1f} GB free: "
            f"{why_strategy or STRATEGY_WORDS[strategy]}, batch {batch}",
        )
    augment, why_augment = resolve_augment(train_cfg.augment, cand.modality, per_class)
    notes += [why_augment] if why_augment else []
    mem = est(batch, strategy)
    lr = (
        default_learning_rate(strategy, cand.params)
        if train_cfg.learning_rate == "auto"
        else float(train_cfg.learning_rate)
    )
    blocks = train_cfg.unfreeze_blocks
    if blocks == "auto":
        blocks = 1 if strategy == "gradual" else max(1, (cand.num_layers or 3) // 3)
    nproc = processes(int(train_cfg.nproc), device, hardware)
    steps = math.ceil(train_size / (batch * int(train_cfg.grad_accum) * nproc))
    grouped, why_grouped = resolve_grouping(getattr(train_cfg, "group_by_length", "auto"), cand.modality, steps)
    notes += [why_grouped] if why_grouped else []
    timing = predict_time(
        cand,
        strategy=strategy,
        batch=batch,
        grad_accum=int(train_cfg.grad_accum),
        precision=precision,
        device=device,
        hardware=hardware,
        train_size=math.ceil(train_size / nproc),  # each process trains its share of the epoch
        val_size=val_size,  # and each evaluates the whole split (engine/trainer.py evaluate)
        max_length=max_length,
        image_size=int(image_size),
        text_lengths=text_lengths,
        unfreeze_blocks=int(blocks) if strategy == "partial" else None,
        grouped=grouped,
    )
    epoch_s = timing["train"] + timing["eval"]
    notes += timing["notes"]
    cuda = device.startswith("cuda")
    return Plan(
        model_id=cand.id,
        model_name=cand.name,
        adapter=kind_for(cand.id, cand.modality),
        modality=cand.modality,
        device=device,
        strategy=strategy,
        batch_size=batch,
        grad_accum=int(train_cfg.grad_accum),
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
        unfreeze_blocks=int(blocks) if strategy in ("partial", "gradual") else 0,
        unfreeze_every=int(train_cfg.unfreeze_every),
        layer_decay=float(train_cfg.layer_decay),
        schedule=str(train_cfg.schedule),
        warmup=float(train_cfg.warmup),
        weight_decay=float(train_cfg.weight_decay),
        max_grad_norm=float(train_cfg.max_grad_norm),
        augment=augment,
        group_by_length=grouped,
        tf32=cuda,
        channels_last=cuda and cand.modality == "image" and cand.arch.split("_")[0] not in TRANSFORMER_IMAGE_ARCHS,
        checkpoint_every=int(train_cfg.checkpoint_every),
        keep_checkpoints=int(train_cfg.keep_checkpoints),
        patience=int(train_cfg.patience),
        nproc=nproc,
        trust_remote_code=trust_remote_code,
        train_size=int(train_size),
        val_size=int(val_size or 0),
        notes=notes,
        time_method=timing["method"],
        train_epoch_seconds=round(timing["train"], 1),
        eval_seconds=round(timing["eval"], 1),
        time_length=round(timing["length"], 1),
    )


def predict_time(
    cand: Candidate,
    *,
    strategy: str,
    batch: int,
    grad_accum: int,
    precision: str,
    device: str,
    hardware: Any,
    train_size: int,
    val_size: int | None,
    max_length: int,
    image_size: int,
    text_lengths: dict[str, float] | None,
    unfreeze_blocks: int | None,
    grouped: bool = False,
) -> dict[str, Any]:
    """Seconds of an epoch's training and of its evaluation, the method and the notes saying how:
    from the device's micro-benchmark and the model's counted step costs (engine/speed.py) where
    both exist, else the FLOPs formula (memory.flops_per_sample / memory.device_flops)."""
    x: float = float(image_size)
    eval_x: float = x
    length_note = ""
    if cand.modality == "text":
        # training: windows of GROUP_WINDOW_STEPS steps sorted by length when grouped; evaluation
        # reads the whole split sorted (engine/batching.py)
        window = min(train_size, batch * grad_accum * batching.GROUP_WINDOW_STEPS) if grouped else 0
        padded = speed.expected_padded_length(text_lengths, batch, max_length, sorted_window=window)
        eval_padded = speed.expected_padded_length(
            text_lengths, batch * speed.EVAL_BATCH_MULTIPLIER, max_length, sorted_window=int(val_size or 0)
        )
        if padded is None:
            x = eval_x = float(max_length)
            length_note = f"at max_length {max_length} (the data's text lengths are not known)"
        else:
            x, eval_x = padded, eval_padded or padded
            how = "grouped by length" if grouped else "dynamic padding"
            length_note = f"at ~{x:.0f} tokens, a batch's expected longest text ({how})"
    got = speed.predict_epoch(
        cand,
        strategy=strategy,
        batch_size=batch,
        grad_accum=grad_accum,
        precision=precision,
        device=device,
        hardware=hardware,
        train_size=train_size,
        val_size=int(val_size or 0),
        x=x,
        eval_x=eval_x,
        unfreeze_blocks=unfreeze_blocks,
    )
    if got is not None:
        train_s, eval_s, how = got
        left_out = "; evaluation left out (validation size not known)" if val_size is None else ""
        note = f"{how}{', ' + length_note if length_note else ''}{left_out}"
        warning = speed.bench_warning(device, hardware)
        notes = [note, warning] if warning else [note]
        return {"train": train_s, "eval": eval_s, "method": "measured", "length": x, "notes": notes}
    # the fallback is the older estimate as it was: training FLOPs at max_length over an assumed rate
    flops = memory.flops_per_sample(cand, strategy=strategy, seq_len=max_length, image_size=image_size)
    rate = memory.device_flops(device, hardware)
    train_s = train_size * flops / rate if rate else 0.0
    if speed.find_benchmark(device, hardware) is None:
        why = f"no benchmark of this {device} yet"
    else:
        why = "no step-cost count of this model"
    notes = [f"time from the FLOPs formula, a rough assumption ({why}); evaluation left out"]
    length = float(max_length) if cand.modality == "text" else float(image_size)
    return {"train": train_s, "eval": 0.0, "method": "formula", "length": length, "notes": notes}


def processes(nproc: int, device: str, hardware: Any) -> int:
    """DDP processes: on CUDA one per GPU at most; on the CPU any number (gloo)."""
    if nproc > 1 and device.startswith("cuda") and hardware is not None and nproc > len(hardware.gpus):
        raise UserError(
            f"[train] nproc = {nproc} but this machine has {len(hardware.gpus)} GPU(s); one process "
            "per GPU: lower nproc"
        )
    if nproc > 1 and device == "mps":
        raise UserError("[train] nproc > 1 is not available on Apple MPS; set nproc = 1")
    return nproc


# Successive halving's share of the time budget: the bake-off's seconds (its optimizer steps and
# evaluations, all contenders and rounds together) add up to this share of one full run. 25%
# is the issue's bound for "the bake-off picks the best model using at most 25% of the full
# training time"; since the winner then continues from the state it reached, only the losers'
# steps (at most half of the share with two contenders) are spent on top of the run.
BAKEOFF_SHARE = 0.25
# Round 1 steps per contender below which the plan warns: on bench/ranking_quality.py's tasks (25
# steps a run, so 1 step a contender) the race picked the best model on 3 of 6.
BAKEOFF_MIN_STEPS = 10
# When round 1 cannot give each contender BAKEOFF_MIN_STEPS steps, the race would be a coin flip
# (on bench/ranking_quality.py's 25-step runs: 1 step each, the best model picked on 5 of 7 tasks
# by its lead after one step or by the ranking's order on a tie). The bake-off then compares the
# contenders on the evidence of their frozen features instead, LogME on a stratified sample of the
# training data (engine/transfer.py, as `recommend --probe`: on that bench LogME put the model that
# fine-tuned best first on 7 of 7 tasks), with no training steps; the best goes on to its full run.
EVIDENCE_EXAMPLES = 2000  # the sample's size at most (engine/transfer.py MAX_PROBE_EXAMPLES)
EVIDENCE_MIN_EXAMPLES = 200  # and at least (or the whole training split): fewer make LogME noisy
# A forward pass without gradients costs about a third of a training step's (forward + backward,
# the usual 1 : 2 split of their FLOPs): what the evidence costs is predicted from the step's time.
FORWARD_SHARE = 1 / 3


def bakeoff_rounds(k: int) -> list[int]:
    """Contenders in each round of successive halving: ceil(n / 2) of n go on, until one is left."""
    counts = [k]
    while counts[-1] > 1:
        counts.append(math.ceil(counts[-1] / 2))
    return counts[:-1]


def bakeoff_schedule(plans: list[Plan], *, share: float = BAKEOFF_SHARE) -> dict[str, Any]:
    """The bake-off section of a run's plan: each contender's own resolved plan and the optimizer
    steps each survivor trains in each round.

    The budget is time: `share` of a full run's predicted seconds (the mean over the contenders).
    A race also costs what no step shows, an evaluation of every contender in every round (the
    plans predict it); that comes out of the budget first, and what is left buys optimizer steps:
    every round an equal part, split so that each contender of a round trains the same number of
    steps (the same batches), never past a contender's first epoch. When the budget cannot give
    every contender BAKEOFF_MIN_STEPS steps in round 1, the lowest-ranked contenders are left out
    (`plans` come best-ranked first; at least 2 race) and the plan says so. The trainer keeps to
    the same seconds as it goes (engine/bakeoff.py measures what each round really cost and ends
    the race early when the rest of the budget cannot pay for another). Without time predictions
    the budget is `share` of a full run's steps."""
    if len(plans) < 2:
        raise UserError("a bake-off needs at least 2 contenders")
    asked, asked_plans = len(plans), list(plans)
    per_epoch_all = [max(1, math.ceil(p.train_size / p.effective_batch)) for p in plans]
    full_all = [n * p.epochs for n, p in zip(per_epoch_all, plans, strict=True)]
    timed = all(p.total_seconds > 0 for p in plans)
    # training seconds per optimizer step, and the seconds of one evaluation, per contender
    step_all = [
        (float(getattr(p, "train_epoch_seconds", 0.0) or 0.0) / n) or (p.total_seconds / f if f else 0.0)
        for p, n, f in zip(plans, per_epoch_all, full_all, strict=True)
    ]
    eval_all = [float(getattr(p, "eval_seconds", 0.0) or 0.0) for p in plans]
    budget_s = share * sum(p.total_seconds for p in plans) / len(plans) if timed else 0.0

    def evaluations(k: int) -> float:
        """Seconds of the race's evaluations with the top k racing (survivors: the best-ranked)."""
        return sum(sum(eval_all[:n]) for n in bakeoff_rounds(k))

    k = asked
    if timed:
        while k > 2:
            counts = bakeoff_rounds(k)
            round1 = (budget_s - evaluations(k)) / len(counts)
            if round1 >= BAKEOFF_MIN_STEPS * sum(step_all[:k]):
                break
            k -= 1
    plans, per_epoch, full = plans[:k], per_epoch_all[:k], full_all[:k]
    step_s = step_all[:k]
    counts = bakeoff_rounds(k)
    cap = min(per_epoch)
    # what a step costs of the budget: its predicted seconds, or one unit without time predictions
    unit = step_s if timed else [1.0] * k
    full_steps = sum(u * f for u, f in zip(unit, full, strict=True)) / sum(unit)
    budget = budget_s / (sum(unit) / k) if timed else share * full_steps  # in (mean) steps
    left = max(0.0, budget_s - evaluations(k)) if timed else budget  # for steps, after the evaluations
    rounds, done = [], 0
    for r, n in enumerate(counts):
        steps = max(1, min(int(left / len(counts) / sum(unit[:n])), cap - done))
        done += steps
        rounds.append({"round": r + 1, "contenders": n, "steps": steps})
    first = rounds[0]["steps"]
    if first < BAKEOFF_MIN_STEPS:
        return _evidence_schedule(asked_plans, share, budget_s if timed else 0.0, step_all, eval_all, first)
    warnings = []
    if k < asked:
        warnings.append(
            f"bake-off: the {k} best-ranked of the {asked} contenders asked race: its {budget_s:.0f} s "
            f"({share:.0%} of a {budget_s / share:.0f}-s run), less {evaluations(k):.0f} s of evaluations, "
            f"would give more contenders fewer than {BAKEOFF_MIN_STEPS} steps each in round 1"
        )
    spent = sum(sum(step_s[:n]) * r["steps"] for n, r in zip(counts, rounds, strict=True)) + evaluations(k)
    return {
        "warning": "; ".join(warnings),
        "share": share,
        "metric": plans[0].metric,
        "contenders": [p.to_dict() for p in plans],
        "asked": asked,
        "rounds": rounds,
        "budget_steps": round(budget, 1),
        "full_run_steps": round(full_steps, 1),
        "budget_seconds": round(budget_s, 1) if timed else None,
        "predicted_seconds": round(spent, 1) if timed else None,
        "full_run_seconds": round(sum(p.total_seconds for p in plans) / len(plans), 1) if timed else None,
        "winner": "",
    }


def _evidence_schedule(
    plans: list[Plan], share: float, budget_s: float, step_all: list[float], eval_all: list[float], first: int
) -> dict[str, Any]:
    """The bake-off when its share is too short for a race (`first` steps each in round 1): the
    contenders are compared on LogME of their frozen features (see EVIDENCE_EXAMPLES), each
    costing a forward pass over the sample. The sample is what the budget's seconds pay for (at
    most EVIDENCE_EXAMPLES, at least EVIDENCE_MIN_EXAMPLES or the whole training split when
    smaller) for as many of the best-ranked (at least 2) as can have it; past the budget only
    when 2 cannot have the least."""
    n_train = max(1, min(p.train_size for p in plans))
    floor = min(EVIDENCE_MIN_EXAMPLES, n_train)
    # seconds per example of each contender's forward pass: its predicted evaluation's, else a share
    # of its training step's
    per_example = [
        (e / n if e > 0 and n > 0 else 0.0) or s / max(1, p.effective_batch) * FORWARD_SHARE
        for p, s, e, n in zip(
            plans, step_all, eval_all, [int(getattr(p, "val_size", 0) or 0) for p in plans], strict=True
        )
    ]
    timed = budget_s > 0 and all(c > 0 for c in per_example)
    k, examples = len(plans), min(EVIDENCE_EXAMPLES, n_train)
    if timed:
        k = 2
        for n in range(len(plans), 1, -1):
            if budget_s / sum(per_example[:n]) >= floor:
                k = n
                break
        examples = max(floor, min(examples, int(budget_s / sum(per_example[:k]))))
    predicted = examples * sum(per_example[:k])
    left_out = f"; the {k} best-ranked of the {len(plans)} asked (what its seconds pay for)" if k < len(plans) else ""
    # the least sample costs more than the share: said, with both figures (a 25-step run's share is
    # a second or two, and fewer examples would make the comparison a coin flip)
    least = (
        f"fewer than {floor:,} examples would make LogME noisy"
        if floor >= EVIDENCE_MIN_EXAMPLES
        else f"the least sample is the whole training split ({n_train:,} examples)"
    )
    over = (
        f"; that takes about {predicted:.1f} s, more than the {share:.0%} share's {budget_s:.1f} s: {least}"
        if timed and predicted > budget_s * 1.05
        else ""
    )
    warning = (
        f"bake-off: {share:.0%} of a run would give each contender {first} training step(s), too few to tell "
        f"models apart: they are compared on LogME of their frozen features on {examples:,} of your "
        f"examples instead (as `recommend --probe`), and the best trains on{left_out}{over}; more epochs or "
        "data, a larger bakeoff_share or fewer contenders make it a race"
    )
    return {
        "warning": warning,
        "share": share,
        "metric": plans[0].metric,
        "evidence": "logme",
        "evidence_examples": examples,
        "contenders": [p.to_dict() for p in plans[:k]],
        "asked": len(plans),
        "rounds": [{"round": 1, "contenders": k, "steps": 0}],
        "budget_steps": 0.0,
        "full_run_steps": 0.0,
        "budget_seconds": round(budget_s, 1) if budget_s > 0 else None,
        "predicted_seconds": round(predicted, 1) if timed else None,
        "full_run_seconds": round(sum(p.total_seconds for p in plans) / len(plans), 1) if budget_s > 0 else None,
        "winner": "",
    }


# Text batches grouped by length (engine/batching.py) pad far less (the demo: 1.07 padded tokens per
# real one against 2.44 shuffled; a whole demo run took 29-35 s against 51-53 s), but on small data
# they may cost accuracy: on the demo (12 steps an epoch, 3 epochs) macro-F1 moved by -0.034, -0.033,
# -0.023, 0.000 and +0.024 over five seeds (mean -0.013). `auto` groups only once an epoch has this
# many optimizer steps (four of batching's 50-step windows: each epoch's batches then differ), where
# the time saved is large and one step is a small part of the training.
GROUP_MIN_STEPS = 200


def resolve_grouping(requested: bool | str, modality: str, steps_per_epoch: int) -> tuple[bool, str]:
    if modality != "text":
        return False, ""
    if requested != "auto":
        return bool(requested), ""
    if steps_per_epoch >= GROUP_MIN_STEPS:
        return True, (
            f"{steps_per_epoch} steps per epoch (>= {GROUP_MIN_STEPS}): each step's texts of similar length "
            "(less padding, faster); group_by_length = false for a plain shuffle"
        )
    return False, ""


def resolve_augment(requested: bool | str, modality: str, per_class: int) -> tuple[bool, str]:
    if modality != "image":
        return False, ""
    if requested != "auto":
        return bool(requested), ""
    if per_class < AUGMENT_EXAMPLES_PER_CLASS:
        return True, (
            f"{per_class} images per class (< {AUGMENT_EXAMPLES_PER_CLASS}): augmentation on in training "
            "(random resized crop, flip, TrivialAugment); evaluation never augmented"
        )
    return False, ""
