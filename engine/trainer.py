"""The training process: `python -m modelwiz.engine.trainer RUN_DIR [--resume]`.

Started detached by modelwiz.engine.runs.launch_trainer. Reads RUN_DIR/config.toml, appends events to
RUN_DIR/events.jsonl, keeps RUN_DIR/status.json current, checkpoints atomically to
RUN_DIR/checkpoints/last.pt at the end of every epoch and on cancel, and exports the model to
RUN_DIR/model/ with a model card and RUN_DIR/report.json.

Exit status: 0 completed, 1 training failure, 2 bad input, 130 cancelled.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelwiz.engine.config import load_config
from modelwiz.engine.errors import TrainingError, UserError
from modelwiz.engine.events import EventWriter
from modelwiz.engine.fsutil import atomic_write_json
from modelwiz.engine.runs import CANCEL_FILE, write_status

GB = 1024 ** 3
WARMUP_FRACTION = 0.06
WEIGHT_DECAY = 0.01
STEP_EVENTS_PER_EPOCH = 50
EVAL_BATCH_MULTIPLIER = 2


class Cancelled(Exception):
    pass


@dataclass
class Progress:
    """Everything a checkpoint needs beyond module/optimizer state to continue the same run."""
    epoch: int = 0              # epoch in progress (0-based)
    batch_in_epoch: int = 0     # batches of this epoch already trained
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    train_seconds: float = 0.0


# --------------------------------------------------------------------------- small named pieces

def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The shuffled example order of an epoch: a function of (seed, epoch) only, so a resumed
    run sees exactly the batches the original would have."""
    import torch

    g = torch.Generator().manual_seed(seed * 1000 + epoch)
    return torch.randperm(n, generator=g).tolist()


def select_trainable(bundle: Any, strategy: str) -> int:
    """Freeze per strategy; returns the number of trainable parameters. New (head) parameters are
    always trained; `partial` also trains the top third of the backbone's parameter tensors."""
    params = list(bundle.model.named_parameters())
    if strategy == "full":
        for _, p in params:
            p.requires_grad_(True)
    else:
        backbone = [(n, p) for n, p in params if n not in bundle.new_params]
        keep = set()
        if strategy == "partial":
            keep = {n for n, _ in backbone[len(backbone) - max(1, len(backbone) // 3):]}
        for n, p in params:
            p.requires_grad_(n in bundle.new_params or n in keep)
    return sum(p.numel() for _, p in params if p.requires_grad)


def make_scheduler(optimizer: Any, total_steps: int) -> Any:
    import torch

    warmup = max(1, int(total_steps * WARMUP_FRACTION))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def autocast_for(device: str, precision: str) -> Any:
    import contextlib

    import torch

    if precision in ("bf16", "fp16") and device.split(":")[0] in ("cuda", "cpu", "mps"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device_type=device.split(":")[0], dtype=dtype)
    return contextlib.nullcontext()


def memory_now(device: str) -> dict[str, float]:
    import psutil
    import torch

    if device.startswith("cuda"):
        idx = torch.device(device).index or 0
        free, total = torch.cuda.mem_get_info(idx)
        return {"mem_allocated_gb": round(torch.cuda.memory_allocated(idx) / GB, 3),
                "mem_peak_gb": round(torch.cuda.max_memory_allocated(idx) / GB, 3),
                "mem_device_gb": round((total - free) / GB, 3), "mem_total_gb": round(total / GB, 3)}
    vm = psutil.virtual_memory()
    rss = psutil.Process().memory_info().rss
    return {"mem_allocated_gb": round(rss / GB, 3), "mem_device_gb": round((vm.total - vm.available) / GB, 3),
            "mem_total_gb": round(vm.total / GB, 3)}


def save_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any, scaler: Any, progress: Progress) -> None:
    """Atomic: written to a temporary file, then renamed over the previous checkpoint."""
    import dataclasses

    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    state = {
        "model": {k: v for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_state(), "progress": dataclasses.asdict(progress), "format": 1,
    }
    torch.save(state, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any, scaler: Any) -> Progress:
    import torch

    # weights_only=False is needed for the RNG states (numpy arrays, tuples); the file is one this
    # trainer wrote into the run directory, never a downloaded artefact.
    state = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return Progress(**state["progress"])


# --------------------------------------------------------------------------- batches

class Batches:
    """Turns example indices into model inputs for text or images."""

    def __init__(self, bundle: Any, items: list[Any], labels: list[int], *, max_length: int, train: bool):
        from modelwiz.engine import models

        self.bundle, self.items, self.labels = bundle, items, labels
        self.kind = bundle.kind
        if self.kind == "hf-text":
            self.encode = models.text_encoder(bundle, max_length)
        else:
            self.transform = models.image_transform(bundle, train=train)

    def make(self, idx: list[int], device: str) -> tuple[dict[str, Any], Any]:
        import torch

        from modelwiz.engine import models

        y = torch.tensor([self.labels[i] for i in idx], dtype=torch.long)
        if self.kind == "hf-text":
            inputs = self.encode([self.items[i] for i in idx])
        else:
            inputs = {"pixel_values": torch.stack([self.transform(models.load_image(self.items[i])) for i in idx])}
        return {k: v.to(device) for k, v in inputs.items()}, y.to(device)


def evaluate(bundle: Any, batches: Batches, batch_size: int, device: str, precision: str, num_classes: int) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    from modelwiz.engine.metrics import classification_metrics

    bundle.model.eval()
    preds: list[int] = []
    loss_sum = 0.0
    n = len(batches.items)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            idx = list(range(start, min(n, start + batch_size)))
            inputs, y = batches.make(idx, device)
            with autocast_for(device, precision):
                logits = bundle.logits(inputs)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
            preds.extend(logits.argmax(-1).tolist())
    bundle.model.train()
    m = classification_metrics(batches.labels, preds, num_classes)
    m["val_loss"] = loss_sum / max(n, 1)
    return m


# --------------------------------------------------------------------------- the run

class Trainer:
    def __init__(self, run_dir: Path, resume: bool):
        self.run_dir = run_dir
        self.resume = resume
        self.events = EventWriter(run_dir / "events.jsonl")
        self.cancel_requested = False
        self.ckpt_path = run_dir / "checkpoints" / "last.pt"
        self.last_record: dict[str, Any] = {}    # metrics of the latest evaluation, for cancel/finish
        self.last_eval: dict[str, Any] = {}      # full metrics (confusion matrix, per class)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.cancel_requested = True

    def check_cancel(self) -> bool:
        return self.cancel_requested or (self.run_dir / CANCEL_FILE).exists()

    def log(self, message: str, level: str = "info") -> None:
        self.events.emit("log", level=level, message=message)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        run_id = self.run_dir.name
        write_status(self.run_dir, state="running", pid=os.getpid(), started=time.time(), error=None)
        self.events.emit("run_started", run_id=run_id, pid=os.getpid(), resumed=self.resume)
        try:
            result = self._train()
        except Cancelled:
            write_status(self.run_dir, state="cancelled")
            self.events.emit("run_finished", status="cancelled", metrics=self.last_record,
                             checkpoint=str(self.ckpt_path) if self.ckpt_path.exists() else None)
            return 130
        except UserError as exc:
            write_status(self.run_dir, state="failed", error=str(exc))
            self.log(str(exc), "error")
            self.events.emit("run_finished", status="failed", metrics={}, error=str(exc), exit_code=2)
            return 2
        except Exception as exc:  # noqa: BLE001 - the process boundary: report, never die silently
            traceback.print_exc()
            message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            write_status(self.run_dir, state="failed", error=message)
            self.log(message, "error")
            self.events.emit("run_finished", status="failed", metrics={}, error=message, exit_code=1)
            return 1
        finally:
            self.events.close()
        return result

    def _train(self) -> int:
        cfg = load_config(self.run_dir / "config.toml")
        tr = cfg.train
        from modelwiz.engine.data import load_task_data

        data = load_task_data(cfg.task, seed=tr.seed)
        s = data.summary
        self.events.emit("data", train_size=s.train_size, val_size=s.val_size, num_classes=s.num_classes,
                         labels=data.label_names, class_counts=s.class_counts, warnings=s.warnings)
        if tr.max_train_samples and tr.max_train_samples < len(data.train.items):
            data.train.items = data.train.items[: tr.max_train_samples]
            data.train.labels = data.train.labels[: tr.max_train_samples]

        import torch
        import torch.nn.functional as F

        from modelwiz.engine import models

        seed_everything(tr.seed)
        device = self._device(cfg.constraints.device)
        precision = tr.precision if tr.precision != "auto" else "fp32"
        if precision == "bf16" and device.startswith("cuda") and not torch.cuda.is_bf16_supported():
            self.log("bf16 is not supported on this GPU; using fp16", "warning")
            precision = "fp16"
        if precision in ("fp16",) and device == "cpu":
            self.log("fp16 autocast is not useful on the CPU; using fp32", "warning")
            precision = "fp32"

        t0 = time.time()
        image_size = None if tr.image_size == "auto" else int(tr.image_size)
        bundle = models.load_for_training(cfg.model.id, cfg.task.modality, data.label_names, image_size=image_size,
                                          offline=cfg.constraints.offline, progress=self.log)
        strategy = tr.strategy if tr.strategy != "auto" else "full"
        trainable = select_trainable(bundle, strategy)
        total_params = sum(p.numel() for p in bundle.model.parameters())
        bundle.model.to(device)
        bundle.model.train()
        self.events.emit("model", model=cfg.model.id, params=total_params, trainable_params=trainable,
                         strategy=strategy, device=device, precision=precision, load_seconds=round(time.time() - t0, 2))

        batch_size = int(tr.batch_size) if tr.batch_size != "auto" else 16
        lr = float(tr.learning_rate) if tr.learning_rate != "auto" else 5e-5
        n_train = len(data.train.items)
        steps_per_epoch = math.ceil(n_train / batch_size)
        total_steps = steps_per_epoch * tr.epochs
        self.events.emit("plan", epochs=tr.epochs, batch_size=batch_size, learning_rate=lr, total_steps=total_steps,
                         steps_per_epoch=steps_per_epoch)

        optimizer = torch.optim.AdamW([p for p in bundle.model.parameters() if p.requires_grad], lr=lr,
                                      weight_decay=WEIGHT_DECAY)
        scheduler = make_scheduler(optimizer, total_steps)
        scaler = torch.amp.GradScaler("cuda") if precision == "fp16" and device.startswith("cuda") else None
        progress = Progress()
        if self.resume:
            if not self.ckpt_path.exists():
                raise UserError(f"run {self.run_dir.name} has no checkpoint to resume from; start a new run")
            progress = load_checkpoint(self.ckpt_path, bundle.model, optimizer, scheduler, scaler)
            self.log(f"resumed from epoch {progress.epoch + 1}, batch {progress.batch_in_epoch}, "
                     f"step {progress.global_step}")
        self.last_record = dict(progress.best)

        train_b = Batches(bundle, data.train.items, data.train.labels, max_length=tr.max_length, train=True)
        val_b = Batches(bundle, data.val.items, data.val.labels, max_length=tr.max_length, train=False)
        log_every = max(1, steps_per_epoch // STEP_EVENTS_PER_EPOCH)
        num_classes = len(data.label_names)

        for epoch in range(progress.epoch, tr.epochs):
            write_status(self.run_dir, epoch=epoch + 1, epochs=tr.epochs)
            self.events.emit("epoch_started", epoch=epoch + 1)
            order = epoch_order(n_train, tr.seed, epoch)
            window_loss, window_n, window_t = 0.0, 0, time.perf_counter()
            for b in range(progress.batch_in_epoch, steps_per_epoch):
                if self.check_cancel():
                    save_checkpoint(self.ckpt_path, bundle.model, optimizer, scheduler, scaler, progress)
                    self.log(f"cancelled at epoch {epoch + 1}, step {progress.global_step}; checkpoint kept")
                    raise Cancelled()
                _inject_fault(progress.global_step)
                idx = order[b * batch_size:(b + 1) * batch_size]
                inputs, y = train_b.make(idx, device)
                with autocast_for(device, precision):
                    logits = bundle.logits(inputs)
                loss = F.cross_entropy(logits.float(), y)
                if not torch.isfinite(loss):
                    raise TrainingError(f"loss became {loss.item()} at step {progress.global_step}; "
                                        "lower the learning rate")
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                scheduler.step()
                progress.global_step += 1
                progress.batch_in_epoch = b + 1
                window_loss += loss.item() * len(idx)
                window_n += len(idx)
                if progress.global_step % log_every == 0 or b == steps_per_epoch - 1:
                    elapsed = time.perf_counter() - window_t
                    progress.train_seconds += elapsed
                    rate = window_n / elapsed if elapsed > 0 else 0.0
                    remaining = (total_steps - progress.global_step) * batch_size
                    self.events.emit("step", epoch=epoch + 1, step=progress.global_step, total_steps=total_steps,
                                     loss=round(window_loss / max(window_n, 1), 5), lr=scheduler.get_last_lr()[0],
                                     samples_per_s=round(rate, 2), eta_s=round(remaining / rate, 1) if rate else None,
                                     **memory_now(device))
                    window_loss, window_n, window_t = 0.0, 0, time.perf_counter()
            metrics = evaluate(bundle, val_b, batch_size * EVAL_BATCH_MULTIPLIER, device, precision, num_classes)
            record = {"epoch": epoch + 1, "step": progress.global_step, "val_loss": round(metrics["val_loss"], 5),
                      "accuracy": round(metrics["accuracy"], 5), "macro_f1": round(metrics["macro_f1"], 5),
                      "precision": round(metrics["macro_precision"], 5), "recall": round(metrics["macro_recall"], 5)}
            self.events.emit("eval", **record, confusion_matrix=metrics["confusion_matrix"])
            progress.history.append(record)
            if not progress.best or record["macro_f1"] >= progress.best.get("macro_f1", -1):
                progress.best = dict(record)
            self.last_record = record
            progress.epoch, progress.batch_in_epoch = epoch + 1, 0
            save_checkpoint(self.ckpt_path, bundle.model, optimizer, scheduler, scaler, progress)
            self.events.emit("checkpoint", epoch=epoch + 1, step=progress.global_step, path=str(self.ckpt_path))
            write_status(self.run_dir, best_metrics={k: record[k] for k in ("accuracy", "macro_f1")},
                         last_metrics=record)
            self.last_eval = metrics

        return self._finish(cfg, bundle, data, progress, device, precision, strategy, batch_size, lr, trainable,
                            total_params)

    def _device(self, requested: str) -> str:
        import torch

        if requested in ("auto", ""):
            return "cuda:0" if torch.cuda.is_available() else "cpu"
        if requested.startswith("cuda"):
            if not torch.cuda.is_available():
                raise UserError(f"[constraints] device = \"{requested}\" but no CUDA GPU is available; use \"auto\" or \"cpu\"")
            idx = torch.device(requested).index or 0
            if idx >= torch.cuda.device_count():
                raise UserError(f"[constraints] device = \"{requested}\" but only {torch.cuda.device_count()} GPU(s) exist")
        if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UserError("[constraints] device = \"mps\" but Apple MPS is not available; use \"auto\" or \"cpu\"")
        return requested

    def _finish(self, cfg: Any, bundle: Any, data: Any, progress: Progress, device: str, precision: str,
                strategy: str, batch_size: int, lr: float, trainable: int, total_params: int) -> int:
        from modelwiz.engine import models

        bundle.model.to("cpu")
        model_dir = self.run_dir / "model"
        tmp_dir = self.run_dir / "model.partial"
        import shutil

        shutil.rmtree(tmp_dir, ignore_errors=True)
        models.export(bundle, tmp_dir, data.label_names)
        final = progress.history[-1] if progress.history else {}
        last_eval = self.last_eval
        write_model_card(tmp_dir, cfg, bundle, data, final, strategy)
        shutil.rmtree(model_dir, ignore_errors=True)
        os.replace(tmp_dir, model_dir)
        self.events.emit("exported", model_path=str(model_dir))
        report = {
            "run_id": self.run_dir.name, "model": cfg.model.id, "status": "completed",
            "metrics": {k: final.get(k) for k in ("accuracy", "macro_f1", "precision", "recall", "val_loss")},
            "best": progress.best, "history": progress.history, "labels": data.label_names,
            "confusion_matrix": last_eval.get("confusion_matrix"), "per_class": last_eval.get("per_class"),
            "data": data.summary.to_dict(), "model_path": str(model_dir),
            "train": {"strategy": strategy, "epochs": cfg.train.epochs, "batch_size": batch_size, "learning_rate": lr,
                      "precision": precision, "device": device, "params": total_params, "trainable_params": trainable,
                      "train_seconds": round(progress.train_seconds, 2),
                      "samples_per_s": round(len(data.train.items) * cfg.train.epochs / progress.train_seconds, 2)
                      if progress.train_seconds else None},
        }
        atomic_write_json(self.run_dir / "report.json", report)
        write_status(self.run_dir, state="completed", model_path=str(model_dir), finished=time.time())
        self.events.emit("run_finished", status="completed", metrics=report["metrics"], model_path=str(model_dir))
        return 0


def _inject_fault(step: int) -> None:
    """Fault tests set MODELWIZ_FAULT_AT_STEP=N to make step N fail like a crashing kernel would."""
    at = os.environ.get("MODELWIZ_FAULT_AT_STEP")
    if at and at.isdigit() and step == int(at):
        raise RuntimeError(f"injected fault at step {step}")


def write_model_card(out_dir: Path, cfg: Any, bundle: Any, data: Any, metrics: dict[str, Any], strategy: str) -> None:
    labels = ", ".join(data.label_names)
    if bundle.kind == "torchvision":
        usage = (f"```python\nimport torchvision, safetensors.torch\n"
                 f"model = torchvision.models.get_model(\"{bundle.arch}\", weights=None, num_classes={len(data.label_names)})\n"
                 f"model.load_state_dict(safetensors.torch.load_file(\"{out_dir.name}/model.safetensors\"))\n```\n"
                 f"Inputs: RGB images resized to {bundle.image_size}px, normalised with mean {list(bundle.mean)} "
                 f"and std {list(bundle.std)}. Class order: {labels}.\n")
    else:
        task = "text-classification" if bundle.kind == "hf-text" else "image-classification"
        example = '"an example"' if bundle.kind == "hf-text" else '"image.jpg"'
        usage = (f"```python\nfrom transformers import pipeline\nclf = pipeline(\"{task}\", model=\"PATH/TO/model\")\n"
                 f"print(clf({example}))\n```\n")
    text = f"""---
library_name: {"torchvision" if bundle.kind == "torchvision" else "transformers"}
pipeline_tag: {"text-classification" if bundle.kind == "hf-text" else "image-classification"}
base_model: {cfg.model.id}
tags: [modelwiz]
---
# Fine-tuned {Path(cfg.model.id).name}

Fine-tuned with modelwiz from `{cfg.model.id}` ({strategy} fine-tuning, {cfg.train.epochs} epochs) on
`{Path(cfg.task.train).name}`: {data.summary.train_size} training and {data.summary.val_size} validation examples,
{len(data.label_names)} classes ({labels}).

## Validation results
| metric | value |
|---|---|
| accuracy | {metrics.get('accuracy', float('nan')):.4f} |
| macro F1 | {metrics.get('macro_f1', float('nan')):.4f} |
| macro precision | {metrics.get('precision', float('nan')):.4f} |
| macro recall | {metrics.get('recall', float('nan')):.4f} |

## How to use
{usage}
With modelwiz: `modelwiz predict RUN_ID "some input"`.
"""
    (out_dir / "README.md").write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m modelwiz.engine.trainer")
    ap.add_argument("run_dir")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    run_dir = Path(args.run_dir).resolve()
    if not (run_dir / "config.toml").is_file():
        print(f"error: {run_dir} is not a run directory (no config.toml)", file=sys.stderr)
        return 2
    return Trainer(run_dir, args.resume).run()


if __name__ == "__main__":
    sys.exit(main())
