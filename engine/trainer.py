"""The training process: `python -m modelwiz.engine.trainer RUN_DIR [--resume]`.

Started detached by `engine.runs.launch_trainer`. It obeys `RUN_DIR/plan.json` (every setting
resolved by `engine.plan.make_plan`; nothing is re-resolved here), reads the data named in
`RUN_DIR/config.toml`, reports through a `Reporter` (events.jsonl and status.json), checkpoints
(engine/checkpoints.py) every epoch, every `checkpoint_every` steps and on cancel, keeps the best
epoch's weights, stops early when the metric stops improving, and exports the best weights to
`model/` with a model card and `report.json`. The recipes (which parameters train, at which
learning rate) are in engine/recipes.py; an out-of-memory step halves the micro-batch and goes on.

Exit status: 0 completed, 1 training failure, 2 bad input, 130 cancelled.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import random
import shutil
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelwiz.engine import allocator, batching, checkpoints, recipes
from modelwiz.engine import events as ev
from modelwiz.engine.config import load_config
from modelwiz.engine.distributed import Distributed
from modelwiz.engine.errors import TrainingError, UserError
from modelwiz.engine.fsutil import atomic_write_json
from modelwiz.engine.plan import Plan, read_plan, write_plan
from modelwiz.engine.redact import redact
from modelwiz.engine.runs import CANCEL_FILE, TRAINER, write_status

GB = 1024**3
STEP_EVENTS_PER_EPOCH = 50
EVAL_BATCH_MULTIPLIER = 2


class Cancelled(Exception):
    pass


@dataclass
class Progress:
    """Everything a checkpoint needs beyond module/optimizer state to continue the same run."""

    epoch: int = 0  # epoch in progress (0-based)
    step_in_epoch: int = 0  # optimizer steps of this epoch already done
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    train_seconds: float = 0.0
    stopped_early: int | None = None  # the epoch early stopping ended the run after


# --------------------------------------------------------------------------- reporting


class Reporter:
    """Callbacks at the points of the loop where something is worth telling (in the manner of
    HF `TrainerCallback`). The trainer's one reporter writes events and status.json."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.writer = ev.EventWriter(run_dir / "events.jsonl")

    def emit(self, event: ev.Event) -> None:
        self.writer.emit(event)

    def status(self, **updates: Any) -> None:
        write_status(self.run_dir, by=TRAINER, **updates)

    def log(self, message: str, level: str = "info") -> None:
        self.emit(ev.Log(level=level, message=redact(message)))

    def on_start(self, resume: bool) -> None:
        self.status(state="running", pid=os.getpid(), started=time.time(), error=None)
        self.emit(ev.RunStarted(run_id=self.run_dir.name, pid=os.getpid(), resumed=resume))

    def on_data(self, data: Any) -> None:
        s = data.summary
        self.emit(
            ev.DataLoaded(
                train_size=s.train_size,
                val_size=s.val_size,
                num_classes=s.num_classes,
                labels=data.label_names,
                class_counts=s.class_counts,
                warnings=s.warnings,
            )
        )

    def on_model(self, plan: Plan, params: int, trainable: int, seconds: float) -> None:
        self.emit(
            ev.ModelLoaded(
                model=plan.model_id,
                params=params,
                trainable_params=trainable,
                strategy=plan.strategy,
                device=plan.device,
                precision=plan.precision,
                load_seconds=round(seconds, 2),
            )
        )

    def on_plan(self, run: Run) -> None:
        plan = run.plan
        self.emit(
            ev.PlanStarted(
                plan=plan.to_dict(),
                epochs=plan.epochs,
                batch_size=plan.batch_size,
                learning_rate=plan.learning_rate,
                total_steps=run.total_steps,
                steps_per_epoch=run.steps_per_epoch,
                metric=plan.metric,
            )
        )

    def on_resumed(self, run: Run) -> None:
        self.emit(ev.Resumed(epoch=run.progress.epoch + 1, step=run.progress.global_step))

    def on_epoch(self, run: Run, epoch: int) -> None:
        self.status(epoch=epoch + 1, epochs=run.plan.epochs)
        self.emit(ev.EpochStarted(epoch=epoch + 1))

    def on_step(self, run: Run, loss: float, samples_per_s: float) -> None:
        p = run.progress
        remaining = (run.total_steps - p.global_step) * run.plan.effective_batch
        self.emit(
            ev.Step(
                epoch=p.epoch + 1,
                step=p.global_step,
                total_steps=run.total_steps,
                loss=round(loss, 5),
                lr=run.scheduler.get_last_lr()[0],
                samples_per_s=round(samples_per_s, 2),
                eta_s=round(remaining / samples_per_s, 1) if samples_per_s else None,
                **memory_now(run.plan.device),
            )
        )

    def on_memory_measured(
        self, run: Run, peak_bytes: int, reserved_bytes: int | None, length: int | None = None
    ) -> None:
        predicted = getattr(run.plan.memory, "peak_gb", None)
        self.emit(
            ev.MemoryMeasured(
                step=run.progress.global_step + 1,
                measured_peak_gb=round(peak_bytes / GB, 6),
                predicted_peak_gb=predicted or None,  # as the plan has it: runs --json shows the same
                method="cuda" if run.plan.device.startswith("cuda") else "cpu-profiler",
                reserved_gb=round(reserved_bytes / GB, 4) if reserved_bytes is not None else None,
                batch_size=run.plan.batch_size,
                length=length,
            )
        )

    def on_evaluate(self, run: Run, record: dict[str, Any], metrics: dict[str, Any]) -> None:
        self.emit(ev.Evaluated(**record, confusion_matrix=metrics["confusion_matrix"], per_class=metrics["per_class"]))

    def on_plan_changed(self, run: Run, reason: str) -> None:
        self.emit(ev.PlanChanged(plan=run.plan.to_dict(), reason=reason, step=run.progress.global_step))

    def on_save(self, run: Run, path: Path, best: bool) -> None:
        self.emit(
            ev.CheckpointSaved(epoch=run.progress.epoch, step=run.progress.global_step, path=str(path), best=best)
        )

    def on_finish(
        self,
        status: str,
        *,
        metrics: dict[str, Any],
        exit_code: int,
        error: str | None = None,
        model_path: str | None = None,
        checkpoint: str | None = None,
    ) -> None:
        error = redact(error) if error else error
        self.status(state=status, error=error, model_path=model_path, finished=time.time())
        self.emit(
            ev.RunFinished(
                status=status,
                metrics=metrics,
                model_path=model_path,
                checkpoint=checkpoint,
                error=error,
                exit_code=exit_code,
            )
        )

    def close(self) -> None:
        self.writer.close()


class SilentReporter(Reporter):
    """The reporter of DDP ranks other than 0: rank 0 alone speaks for the run."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def emit(self, event: ev.Event) -> None:
        pass

    def status(self, **updates: Any) -> None:
        pass

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- small named pieces


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast_for(device: str, precision: str) -> Any:
    import contextlib

    import torch

    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device_type=device.split(":")[0], dtype=dtype)
    return contextlib.nullcontext()


def check_device(device: str) -> None:
    """The plan's device must exist now (a resumed run may be on another machine)."""
    import torch

    if device.startswith("cuda"):
        idx = int(device.split(":")[1]) if ":" in device else 0
        if not torch.cuda.is_available() or idx >= torch.cuda.device_count():
            raise UserError(
                f"the plan says device {device} but no such CUDA GPU is available here; start a new run "
                'with [constraints] device = "auto"'
            )
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("the plan says device mps but Apple MPS is not available here")


def memory_now(device: str) -> dict[str, float]:
    import psutil
    import torch

    if device.startswith("cuda"):
        idx = torch.device(device).index or 0
        free, total = torch.cuda.mem_get_info(idx)
        return {
            "mem_allocated_gb": round(torch.cuda.memory_allocated(idx) / GB, 3),
            "mem_peak_gb": round(torch.cuda.max_memory_allocated(idx) / GB, 3),
            "mem_device_gb": round((total - free) / GB, 3),
            "mem_total_gb": round(total / GB, 3),
        }
    vm = psutil.virtual_memory()
    rss = psutil.Process().memory_info().rss
    return {
        "mem_allocated_gb": round(rss / GB, 3),
        "mem_device_gb": round((vm.total - vm.available) / GB, 3),
        "mem_total_gb": round(vm.total / GB, 3),
    }


def training_state(run: Run) -> dict[str, Any]:
    """What resuming needs: weights, optimizer, schedule, scaler and the RNGs (a checkpoint adds
    its progress, a bake-off contender its step)."""
    return {
        "model": run.module.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler else None,
        "rng": checkpoints.rng_state(),
    }


def restore_training_state(run: Run, state: dict[str, Any]) -> None:
    """The inverse of `training_state`."""
    run.module.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    if run.scaler is not None and state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    checkpoints.set_rng_state(state["rng"])


def save_checkpoint(run: Run) -> Path | None:
    """The run's full state as a step checkpoint; a failed write (a full disk) is said in the log
    and training goes on, the previous checkpoint intact. Only rank 0 writes."""
    p = run.progress
    if not run.dist.main:
        return None
    state = {**training_state(run), "progress": dataclasses.asdict(p)}
    try:
        path = checkpoints.save(run.run_dir, p.global_step, state, run.plan.keep_checkpoints)
    except OSError as exc:
        previous = checkpoints.checkpoint_paths(run.run_dir)
        kept = f"the previous one ({previous[0].name}) is intact" if previous else "there is no earlier one"
        run.reporter.log(
            f"checkpoint at step {p.global_step} not written ({exc.strerror or exc}); {kept}; "
            "free disk space to keep the next one",
            "warning",
        )
        return None
    run.reporter.on_save(run, path, best=bool(p.best) and p.best.get("step") == p.global_step)
    return path


def load_checkpoint(run: Run) -> Progress:
    try:
        state, path = checkpoints.load_latest(run.run_dir, lambda m: run.reporter.log(m, "warning"))
    except FileNotFoundError:
        raise UserError(f"run {run.run_dir.name} has no readable checkpoint to resume from; start a new run") from None
    restore_training_state(run, state)
    return Progress(**state["progress"])


def unfreeze_for(run: Run, epoch: int) -> None:
    """Gradual unfreezing: open this epoch's blocks (the other recipes keep the first epoch's)."""
    if run.plan.strategy == "gradual" or epoch == run.progress.epoch:
        unfrozen = recipes.unfrozen_blocks(run.plan, epoch)
        trainable = recipes.apply_freeze(run.module, run.blocks, run.plan.strategy, unfrozen)
        # DDP syncs the parameters that train when it is built: build it again when they change
        run.adapter.model = run.dist.wrap(run.module, run.plan.device)
        if trainable != run.trainable_params or epoch == run.progress.epoch:
            run.trainable_params = trainable
            run.reporter.log(
                f"epoch {epoch + 1}: {recipes.describe(run.blocks, run.plan, epoch)} ({trainable:,} parameters)"
            )


def _inject_oom(micro_batch: int) -> None:
    """Fault tests set MODELWIZ_FAULT_OOM_ABOVE=N: a micro-batch above N fails as the CPU allocator does."""
    above = os.environ.get("MODELWIZ_FAULT_OOM_ABOVE")
    if above and above.isdigit() and micro_batch > int(above):
        raise RuntimeError(f"DefaultCPUAllocator: can't allocate memory (injected for micro-batch {micro_batch})")


def _inject_fault(step: int) -> None:
    """Fault tests set MODELWIZ_FAULT_AT_STEP=N to make step N fail like a crashing kernel would."""
    at = os.environ.get("MODELWIZ_FAULT_AT_STEP")
    if at and at.isdigit() and step == int(at):
        raise RuntimeError(f"injected fault at step {step}")


# --------------------------------------------------------------------------- the run


@dataclass
class Run:
    """Everything the loop touches, built once by `setup`."""

    run_dir: Path
    plan: Plan
    config: Any
    data: Any  # engine.data.TaskData
    adapter: Any  # engine.adapters.base.Adapter
    optimizer: Any
    scheduler: Any
    scaler: Any
    progress: Progress
    reporter: Reporter
    params: int
    trainable_params: int
    blocks: recipes.Blocks
    module: Any = None  # the model itself (adapter.model is its DDP wrapper when training with several processes)
    dist: Distributed = field(default_factory=lambda: Distributed())
    cancel_signalled: bool = False
    steps_here: int = 0  # optimizer steps taken by this process (a resumed run counts from 0)
    memory_measured: bool = False
    load_seconds: float = 0.0  # loading the model (a bake-off contender's, for its `model` event)
    train_lengths: list[int] | None = None  # text: tokens per training example, when grouping by length
    val_lengths: list[int] | None = None  # text: tokens per validation example (evaluation reads longest first)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data.train.items) / self.plan.effective_batch)

    def epoch_steps(self, epoch: int) -> list[list[int]]:
        """Each optimizer step's examples in `epoch` (engine/batching.py: grouped by length when
        the plan says so)."""
        n = len(self.data.train.items)
        return batching.step_batches(n, self.plan.effective_batch, self.plan.seed, epoch, self.train_lengths)

    @property
    def stop_early(self) -> bool:
        """No better metric for `patience` epochs (engine.events.is_better defines "better")."""
        p, patience = self.progress, self.plan.patience
        return bool(patience and p.best and len(p.history) - int(p.best["epoch"]) >= patience)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.plan.epochs

    def cancel_requested(self) -> bool:
        """Whether to stop now; with several processes, all agree (any one asked stops them all)."""
        return self.dist.any(self.cancel_signalled or (self.run_dir / CANCEL_FILE).exists(), self.plan.device)


def load_data(run_dir: Path, plan: Plan, reporter: Reporter) -> tuple[Any, Any]:
    """(config, data): the task named in the run's config, split with the plan's seed."""
    from modelwiz.engine.data import load_task_data

    config = load_config(run_dir / "config.toml")
    data = load_task_data(config.task, seed=plan.seed)
    reporter.on_data(data)
    if plan.max_train_samples and plan.max_train_samples < len(data.train.items):
        data.train.items = data.train.items[: plan.max_train_samples]
        data.train.labels = data.train.labels[: plan.max_train_samples]
    return config, data


def load_model(
    plan: Plan, labels: list[str], reporter: Reporter, *, announce: bool = True
) -> tuple[Any, recipes.Blocks, int, int]:
    """(adapter, its blocks, parameters, trainable parameters): the plan's model on its device,
    frozen per its recipe for the first epoch; `announce` reports it (a `model` event)."""
    import torch

    from modelwiz.engine.adapters import adapter_class

    t0 = time.time()
    adapter = adapter_class(plan.adapter).for_training(plan, labels, progress=reporter.log)
    names = [n for n, _ in adapter.model.named_parameters()]
    blocks = recipes.find_blocks(names, adapter.new_params)
    trainable = recipes.apply_freeze(adapter.model, blocks, plan.strategy, recipes.unfrozen_blocks(plan, 0))
    params = sum(p.numel() for p in adapter.model.parameters())
    if plan.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    adapter.model.to(plan.device)
    if plan.channels_last:
        adapter.model.to(memory_format=torch.channels_last)
    adapter.model.train()
    if announce:
        reporter.on_model(plan, params, trainable, time.time() - t0)
    return adapter, blocks, params, trainable


def setup(run_dir: Path, resume: bool, reporter: Reporter, loaded: tuple[Any, Any] | None = None) -> Run:
    """Data, model and optimizer as the plan says; on resume, the checkpoint's state. `loaded`:
    the (config, data) already read (after a bake-off)."""
    plan = read_plan(run_dir)
    dist = Distributed.from_env()
    dist.start(plan)
    config, data = loaded or load_data(run_dir, plan, reporter)
    for note in plan.notes:
        reporter.log(f"plan: {note}")
    check_device(plan.device)
    run = build_run(run_dir, plan, config, data, reporter, dist)
    reporter.on_plan(run)
    if resume:
        run.progress = load_checkpoint(run)
        reporter.on_resumed(run)
    return run


def build_run(
    run_dir: Path, plan: Plan, config: Any, data: Any, reporter: Reporter, dist: Distributed, *, announce: bool = True
) -> Run:
    """The model of `plan`, seeded, with its optimizer and schedule over the plan's steps: a run
    at its first step (the trainer's, or a bake-off contender's)."""
    import torch

    seed_everything(plan.seed)
    adapter, blocks, params, trainable = load_model(plan, data.label_names, reporter, announce=announce)
    optimizer = recipes.make_optimizer(adapter.model, blocks, plan)
    run = Run(
        run_dir=run_dir,
        plan=plan,
        config=config,
        data=data,
        adapter=adapter,
        optimizer=optimizer,
        scheduler=None,
        scaler=None,
        progress=Progress(),
        reporter=reporter,
        params=params,
        trainable_params=trainable,
        blocks=blocks,
        module=adapter.model,
        dist=dist,
    )
    run.scheduler = recipes.make_scheduler(optimizer, plan, run.total_steps)
    if plan.group_by_length:
        run.train_lengths = adapter.lengths(data.train.items)
    run.val_lengths = adapter.lengths(data.val.items)
    if plan.precision == "fp16" and plan.device.startswith("cuda"):
        run.scaler = torch.amp.GradScaler("cuda")
    return run


def to_device(run: Run, inputs: dict[str, Any]) -> dict[str, Any]:
    import torch

    out = {k: v.to(run.plan.device) for k, v in inputs.items()}
    if run.plan.channels_last and "pixel_values" in out and out["pixel_values"].ndim == 4:
        out["pixel_values"] = out["pixel_values"].contiguous(memory_format=torch.channels_last)
    return out


def train_step(run: Run, idx: list[int]) -> float:
    """One optimizer step over `idx`, in micro-batches of the plan's batch size (accumulating
    gradients), clipped to the plan's norm; returns the mean training loss."""
    import contextlib

    import torch
    import torch.nn.functional as F

    plan = run.plan
    items, labels = run.data.train.items, run.data.train.labels
    idx = run.dist.shard(idx)
    run.optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for start in range(0, len(idx), plan.batch_size):
        micro = idx[start : start + plan.batch_size]
        last = start + plan.batch_size >= len(idx)
        sync = contextlib.nullcontext() if last or run.dist.world == 1 else run.adapter.model.no_sync()
        _inject_oom(len(micro))
        inputs = to_device(run, run.adapter.collate([items[i] for i in micro], train=True))
        y = torch.tensor([labels[i] for i in micro], dtype=torch.long, device=plan.device)
        with sync:
            with autocast_for(plan.device, plan.precision):
                logits = run.adapter.logits(inputs)
            loss = F.cross_entropy(logits.float(), y)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"loss became {loss.item()} at step {run.progress.global_step}; lower the learning rate"
                )
            scaled = loss * (len(micro) / len(idx))
            (run.scaler.scale(scaled) if run.scaler else scaled).backward()
        total += loss.item() * len(micro)
    if run.scaler is not None:
        run.scaler.unscale_(run.optimizer)
    if plan.max_grad_norm > 0:
        trained = [p for p in run.module.parameters() if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(trained, plan.max_grad_norm)
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    run.scheduler.step()
    return total / len(idx)


MEASURED_STEP = 2  # the third step of the process: AdamW made its state at the first


def measured_step(run: Run, idx: list[int]) -> float:
    """`train_step` with its live-tensor peak measured (engine/memmeasure.py: on the CPU from the
    allocator's records under torch.profiler, a few percent of this one step; on CUDA
    max_memory_allocated) and reported next to the plan's prediction."""
    from modelwiz.engine.memmeasure import StepPeak, optimizer_tensors

    model = run.module
    run.optimizer.zero_grad(set_to_none=True)  # freed before the measurement starts
    alive = [*model.parameters(), *model.buffers(), *optimizer_tensors(run.optimizer)]
    with StepPeak(run.plan.device, alive) as m:
        loss = train_step(run, idx)
    run.memory_measured = True
    length = max(run.train_lengths[i] for i in idx) if run.train_lengths else None
    run.reporter.on_memory_measured(run, m.peak_bytes, m.reserved_bytes, length)
    return loss


def is_out_of_memory(exc: BaseException) -> bool:
    """A CUDA out-of-memory error, or the CPU allocator failing."""
    import torch

    text = str(exc).lower()
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
    )


def back_off(run: Run, exc: BaseException, *, persist: bool = True) -> None:
    """After an out-of-memory step: a smaller micro-batch, the same examples per optimizer step
    (more accumulation), the same step again. The amended plan is written to plan.json (a resume
    continues with it) and said in an event; a bake-off contender's (`persist` false) is said in
    the log and kept with its state. Gives up with one line when batch 1 did not fit."""
    import gc

    import torch

    plan = run.plan
    if run.dist.world > 1:
        raise TrainingError(
            f"out of memory at step {run.progress.global_step} in one of {run.dist.world} processes; "
            "lower [train] batch_size (per process) and resume"
        )
    run.optimizer.zero_grad(set_to_none=True)
    gc.collect()
    if plan.device.startswith("cuda"):
        torch.cuda.empty_cache()
    if plan.batch_size == 1:
        raise TrainingError(
            f"out of memory at step {run.progress.global_step} even with a micro-batch of 1 on "
            f"{plan.device}; choose a smaller model, a shorter max_length / image_size, or "
            'strategy = "linear-probe"'
        )
    smaller = next(d for d in range(plan.batch_size // 2, 0, -1) if plan.batch_size % d == 0)
    old = (plan.batch_size, plan.grad_accum)
    plan.grad_accum *= plan.batch_size // smaller
    plan.batch_size = smaller
    plan.notes.append(
        f"out of memory at step {run.progress.global_step} with micro-batch {old[0]}: micro-batch "
        f"{plan.batch_size} x {plan.grad_accum} accumulated (same {plan.effective_batch} per step)"
    )
    if not persist:
        run.reporter.log(f"{plan.model_name}: {plan.notes[-1]}", "warning")
        return
    write_plan(run.run_dir, plan)
    run.reporter.on_plan_changed(run, plan.notes[-1])


def train_epoch(run: Run, epoch: int) -> None:
    """The optimizer steps of one epoch, from where a resumed run left off."""
    p = run.progress
    steps = run.epoch_steps(epoch)
    log_every = max(1, run.steps_per_epoch // STEP_EVENTS_PER_EPOCH)
    window_loss, window_n, window_t = 0.0, 0, time.perf_counter()
    for s in range(p.step_in_epoch, run.steps_per_epoch):
        if run.cancel_requested():
            save_checkpoint(run)
            run.reporter.log(f"cancelled at epoch {epoch + 1}, step {p.global_step}; checkpoint kept")
            raise Cancelled()
        _inject_fault(p.global_step)
        idx = steps[s]
        loss = None
        while loss is None:
            try:
                measure = run.steps_here == MEASURED_STEP and not run.memory_measured and run.dist.main
                loss = measured_step(run, idx) if measure else train_step(run, idx)
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled here
                if not is_out_of_memory(exc):
                    raise
                back_off(run, exc)
        p.global_step, p.step_in_epoch = p.global_step + 1, s + 1
        run.steps_here += 1
        window_loss, window_n = window_loss + loss * len(idx), window_n + len(idx)
        if p.global_step % log_every == 0 or s == run.steps_per_epoch - 1:
            elapsed = time.perf_counter() - window_t
            p.train_seconds += elapsed
            run.reporter.on_step(run, window_loss / window_n, window_n / elapsed if elapsed > 0 else 0.0)
            window_loss, window_n, window_t = 0.0, 0, time.perf_counter()
        if run.plan.checkpoint_every and p.global_step % run.plan.checkpoint_every == 0 and s < run.steps_per_epoch - 1:
            save_checkpoint(run)


def evaluate(run: Run) -> dict[str, Any]:
    """Metrics on the validation split (never augmented)."""
    import torch
    import torch.nn.functional as F

    from modelwiz.engine.metrics import classification_metrics

    plan, model = run.plan, run.module
    items, labels = run.data.val.items, run.data.val.labels
    size = plan.batch_size * EVAL_BATCH_MULTIPLIER
    order = batching.eval_order(run.val_lengths, len(items))
    preds = [0] * len(items)
    loss_sum = 0.0
    # every process evaluates the whole split on its own (identical) replica: no collectives, and
    # all reach the same early-stopping decision
    wrapped, run.adapter.model = run.adapter.model, model
    model.eval()
    with torch.no_grad():
        for start in range(0, len(items), size):
            part = order[start : start + size]
            inputs = to_device(run, run.adapter.collate([items[i] for i in part], train=False))
            y = torch.tensor([labels[i] for i in part], dtype=torch.long, device=plan.device)
            with autocast_for(plan.device, plan.precision):
                logits = run.adapter.logits(inputs)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
            for i, p in zip(part, logits.argmax(-1).tolist(), strict=True):
                preds[i] = p
    model.train()
    run.adapter.model = wrapped
    metrics = classification_metrics(labels, preds, len(run.data.label_names))
    metrics["val_loss"] = loss_sum / max(len(items), 1)
    return metrics


def time_epoch(run: Run, epoch: int) -> dict[str, Any]:
    """`train_epoch` then `evaluate`, the metrics with the measured seconds of each (so every run
    is a data point for the plan's predicted epoch_seconds)."""
    steps0, seconds0 = run.progress.step_in_epoch, run.progress.train_seconds
    train_epoch(run, epoch)
    train_s, steps = run.progress.train_seconds - seconds0, run.progress.step_in_epoch - steps0
    t0 = time.perf_counter()
    metrics = evaluate(run)
    metrics["timing"] = {
        "train_seconds": round(train_s, 3),
        "train_steps": steps,
        "eval_seconds": round(time.perf_counter() - t0, 3),
    }
    return metrics


def record_evaluation(run: Run, epoch: int, metrics: dict[str, Any]) -> bool:
    """Report an epoch's metrics and keep the best weights; returns whether it is the new best."""
    p = run.progress
    record = {
        "epoch": epoch + 1,
        "step": p.global_step,
        "val_loss": round(metrics["val_loss"], 5),
        "accuracy": round(metrics["accuracy"], 5),
        "macro_f1": round(metrics["macro_f1"], 5),
        "precision": round(metrics["macro_precision"], 5),
        "recall": round(metrics["macro_recall"], 5),
    }
    timing = {**metrics.get("timing", {})}
    run.reporter.on_evaluate(run, {**record, **timing}, metrics)
    p.history.append(record)
    best = ev.is_better(record, p.best, run.plan.metric)
    if best:
        p.best = {**record, "confusion_matrix": metrics["confusion_matrix"], "per_class": metrics["per_class"]}
        if run.dist.main:
            checkpoints.save_best_weights(run.run_dir, run.module)
    return best


def export(run: Run) -> Path:
    """The best epoch's weights in the family's own format, a model card and report.json."""
    checkpoints.load_best_weights(run.run_dir, run.module)
    run.adapter.model = run.module.to("cpu")
    model_dir, tmp_dir = run.run_dir / "model", run.run_dir / "model.partial"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    run.adapter.export(tmp_dir)
    write_model_card(tmp_dir, run)
    shutil.rmtree(model_dir, ignore_errors=True)
    os.replace(tmp_dir, model_dir)
    run.reporter.emit(ev.Exported(model_path=str(model_dir), epoch=run.progress.best.get("epoch", 0)))
    atomic_write_json(run.run_dir / "report.json", report(run, model_dir))
    return model_dir


def best_metrics(progress: Progress) -> dict[str, Any]:
    return {
        k: progress.best.get(k)
        for k in ("accuracy", "macro_f1", "precision", "recall", "val_loss")
        if k in progress.best
    }


def report(run: Run, model_dir: Path) -> dict[str, Any]:
    p, plan = run.progress, run.plan
    n = len(run.data.train.items)
    return {
        "run_id": run.run_dir.name,
        "model": plan.model_id,
        "status": "completed",
        "metric": plan.metric,
        "metrics": best_metrics(p),
        "best_epoch": p.best.get("epoch"),
        "stopped_early": p.stopped_early,
        "history": p.history,
        "labels": run.data.label_names,
        "confusion_matrix": p.best.get("confusion_matrix"),
        "per_class": p.best.get("per_class"),
        "data": run.data.summary.to_dict(),
        "model_path": str(model_dir),
        "plan": plan.to_dict(),
        "bakeoff": bakeoff_report(run.run_dir) if plan.bakeoff else None,
        "train": {
            "params": run.params,
            "trainable_params": run.trainable_params,
            "train_seconds": round(p.train_seconds, 2),
            "samples_per_s": round(n * plan.epochs / p.train_seconds, 2) if p.train_seconds else None,
        },
    }


def bakeoff_report(run_dir: Path) -> dict[str, Any] | None:
    from modelwiz.engine import bakeoff

    return bakeoff.report(run_dir)


def wait_for_benchmark(run_dir: Path, plan: Plan, reporter: Reporter) -> None:
    """Before training: let a speed benchmark of this device that is under way (the hardware probe
    starts one on a machine's first run) finish alone, so that neither slows the other."""
    from modelwiz.engine import speed

    if not speed.benchmark_running(plan.device):
        return
    reporter.log(
        f"waiting for the speed benchmark of {plan.device} to finish (once per machine; at most {speed.BENCH_WAIT_S} s)"
    )
    waited = speed.wait_for_benchmark(plan.device, stop=lambda: (run_dir / CANCEL_FILE).exists())
    still = speed.benchmark_running(plan.device)
    reporter.log(f"speed benchmark {'still running' if still else 'done'} after {waited:.0f} s; training starts")


def tune_allocator(plan: Plan, reporter: Reporter) -> None:
    """Before the model is loaded: keep freed memory for reuse unless the CPU run is tight on memory
    (engine/allocator.py)."""
    import psutil

    peak = plan.memory.peak_gb or plan.memory.total_gb
    _, line = allocator.for_training(plan.device, peak, psutil.virtual_memory().available / 1e9)
    if line:
        reporter.log(line)


def train(run_dir: Path, resume: bool) -> int:
    reporter = Reporter(run_dir) if Distributed.from_env().main else SilentReporter(run_dir)
    run: Run | None = None

    def on_signal(signum: int, _frame: Any) -> None:
        if run is not None:
            run.cancel_signalled = True
        else:  # still setting up: stop at the first check
            (run_dir / CANCEL_FILE).touch()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    reporter.on_start(resume)
    try:
        first = read_plan(run_dir)
        tune_allocator(first, reporter)
        wait_for_benchmark(run_dir, first, reporter)
        loaded, start = None, None
        if read_plan(run_dir).bakeoff:
            from modelwiz.engine import bakeoff

            # the race first (or what is left of it); the winner goes on from the state it reached
            loaded, start, resume = bakeoff.before_training(run_dir, reporter, resume)
        if isinstance(start, Run):  # the winner, kept in memory by the race
            run = bakeoff.adopt_winner(start)
        else:
            run = setup(run_dir, resume, reporter, loaded)
            if start is not None:
                bakeoff.continue_winner(run, start)
        for epoch in range(run.progress.epoch, run.plan.epochs):
            reporter.on_epoch(run, epoch)
            unfreeze_for(run, epoch)
            timed = time_epoch(run, epoch)
            record_evaluation(run, epoch, timed)
            run.progress.epoch, run.progress.step_in_epoch = epoch + 1, 0
            if run.stop_early:
                run.progress.stopped_early = epoch + 1
            save_checkpoint(run)
            if run.stop_early:
                reporter.log(
                    f"early stopping after epoch {epoch + 1}: no better {run.plan.metric} for "
                    f"{run.plan.patience} epoch(s); the best is epoch {run.progress.best['epoch']}"
                )
                break
        if not run.dist.main:
            return 0
        model_dir = export(run)
        reporter.on_finish("completed", metrics=best_metrics(run.progress), exit_code=0, model_path=str(model_dir))
        return 0
    except Cancelled:
        ckpts = checkpoints.checkpoint_paths(run_dir)
        reporter.on_finish(
            "cancelled",
            metrics=best_metrics(run.progress) if run else {},
            exit_code=130,
            checkpoint=str(ckpts[0]) if ckpts else None,
        )
        return 130
    except UserError as exc:
        reporter.log(str(exc), "error")
        reporter.on_finish("failed", metrics={}, error=str(exc), exit_code=2)
        return 2
    except Exception as exc:  # noqa: BLE001 - the process boundary: report, never die silently
        traceback.print_exc()
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        message = f"{type(exc).__name__}: {detail}"
        reporter.log(message, "error")
        reporter.on_finish("failed", metrics={}, error=message, exit_code=1)
        return 1
    finally:
        reporter.close()
        if run is not None:
            run.dist.stop()


def write_model_card(out_dir: Path, run: Run) -> None:
    plan, adapter, data, best = run.plan, run.adapter, run.data, run.progress.best
    labels = ", ".join(data.label_names)

    def fig(key: str) -> str:
        value = best.get(key)
        return f"{value:.4f}" if isinstance(value, (int, float)) else "n/a"

    text = f"""---
library_name: {adapter.library}
pipeline_tag: {adapter.pipeline_tag}
base_model: {plan.model_id}
tags: [modelwiz]
---
# Fine-tuned {Path(plan.model_id).name}

Fine-tuned with modelwiz from `{plan.model_id}` ({plan.strategy} fine-tuning, {plan.epochs} epochs, batch
{plan.effective_batch}, learning rate {plan.learning_rate:g}, {plan.precision}) on `{Path(run.config.task.train).name}`:
{data.summary.train_size} training and {data.summary.val_size} validation examples, {len(data.label_names)} classes
({labels}).

## Validation results
These are the weights of epoch {best.get("epoch", "?")} of {plan.epochs}, the best by {plan.metric}.

| metric | value |
|---|---|
| accuracy | {fig("accuracy")} |
| macro F1 | {fig("macro_f1")} |
| macro precision | {fig("precision")} |
| macro recall | {fig("recall")} |

## How to use
{adapter.usage(out_dir.name if out_dir.name != "model.partial" else "model")}
With modelwiz: `modelwiz predict RUN_ID "some input"`.
"""
    (out_dir / "README.md").write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m modelwiz.engine.trainer")
    ap.add_argument("run_dir")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    run_dir = Path(args.run_dir).resolve()
    if not (run_dir / "plan.json").is_file() or not (run_dir / "config.toml").is_file():
        print(f"error: {run_dir} is not a run directory (no plan.json / config.toml)", file=sys.stderr)
        return 2
    # refused before the run is touched: a trainer started by hand with the wrong process count
    try:
        nproc, world = read_plan(run_dir).nproc, Distributed.from_env().world
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if world != nproc:
        print(
            f"error: plan.json asks for {nproc} process(es) in all but {world} were started; start the trainer "
            f"with torchrun and {nproc} processes in all (nodes x --nproc-per-node)",
            file=sys.stderr,
        )
        return 2
    return train(run_dir, args.resume)


if __name__ == "__main__":
    # run as the one imported module, so that engine/bakeoff.py, which imports it, shares its classes
    # (trainer.Cancelled raised there is the one caught in `train`)
    from modelwiz.engine.trainer import main as _main

    sys.exit(_main())
