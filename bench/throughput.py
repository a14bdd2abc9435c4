"""Training throughput: modelwiz's trainer against a bare PyTorch loop and transformers' Trainer.

All three train the same model folder on the same data (the shipped demo tickets, split the way
`load_task_data` splits them, in modelwiz's own epoch order so every step sees the same batch),
with the same batch, max length, precision (fp32, CPU), optimizer (AdamW, weight decay off on
biases and norm weights: fused, one kernel for all parameters, in modelwiz's trainer and in the
Trainer, whose default it is since torch 2.8; torch's default implementation, a loop over the
parameters on the CPU, in the bare loop, as anyone writing one gets it), linear schedule with warm-up, gradient clipping, seed and
thread count, each in a fresh process in a session of its own (as modelwiz's trainer is
started; the kernel's autogroup scheduling shares the CPUs between sessions), one epoch,
tokenizing per batch with dynamic padding. The runs alternate (the order rotates each
round) and repeat, so the noise of a shared machine shows in the table.

What is timed, the same way in all three: the training steps only (no model load, no
evaluation, no export). A step's time runs from the end of the previous step (or the start of
the epoch) to the end of its optimizer and scheduler step, so it includes fetching and
tokenizing its batch, forward, backward, clipping, optimizer and schedule; each trainer's own
reporting (modelwiz's Step event, the Trainer's log line) falls between steps and is left out,
as modelwiz's `Progress.train_seconds` leaves it out. modelwiz's step times come from its
events (each Step event carries its window's samples/s), the bare loop's from perf_counter
around each step, the Trainer's from a TrainerCallback (on_epoch_begin, on_step_end, on_log).
The headline figures start at step 2 (the first step of a fresh process is warm-up); figures
over all steps, the first included, are printed too. On a shared machine wall time swings with
the others' load, so the CPU time (user + system, all threads) of each process over the same
steps is printed too, as samples per CPU-second: in-process `time.process_time` for the bare
loop and the Trainer, and for modelwiz's trainer its process's CPU time read (psutil) as each
Step event appears in events.jsonl (polled every 10 ms).

The event stream's cost is timed apart, in a fresh process: `EventWriter.emit` of a typical Step
record, and the trainer's whole `Reporter.on_step` (memory reading + record + emit), in
microseconds per event and as a fraction of a training step.

    .venv/bin/python bench/throughput.py [--repeat 3] [--json] [--threads N] [--dry-run]

The transformers Trainer needs `accelerate` (`pip install -e '.[bench]'`). Only ratios measured
in one invocation mean anything; absolute samples/s depend on the machine and its load. On a
machine busy with other work, torch's threads wait on each other: `--threads 1` (the same for
all three) gives the steadiest samples per CPU-second, the default (torch's own count) what a
user gets.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TRAINERS = ("bare", "hf", "hf-default", "hf-grouped", "modelwiz")
TITLES = {
    "bare": "bare PyTorch loop",
    "hf": "HF Trainer",
    "hf-default": "HF, its default",
    "hf-grouped": "HF group_by_length",
    "modelwiz": "modelwiz trainer",
}
# what each ratio compares modelwiz's trainer (its defaults) against: the same batches (same work),
# or the Trainer left to choose its own (a plain shuffle by default; its length grouping when asked)
COMPARED = (
    ("ratio_vs_bare_loop", "bare"),
    ("ratio_vs_hf_trainer", "hf"),
    ("ratio_vs_hf_trainer_default", "hf-default"),
    ("ratio_vs_hf_trainer_grouped", "hf-grouped"),
)
TARGETS = {name: 0.97 if other == "bare" else 1.0 for name, other in COMPARED}
RESULT = "BENCH-RESULT "  # a worker's last stdout line: this prefix, then its JSON result


@dataclass
class Spec:
    """What all three train with; taken from the plan modelwiz resolves for the bench config."""

    model: str
    data: str
    validation: float
    batch: int
    length: int
    learning_rate: float
    weight_decay: float
    warmup: float
    max_grad_norm: float
    seed: int
    log_every: int  # optimizer steps per modelwiz Step event (the Trainer logs as often)
    grouped: bool = False  # modelwiz's plan groups its batches by length (engine/batching.py)


# --------------------------------------------------------------------------- in every worker


def load_split(spec: Spec) -> tuple[list[str], list[int], list[str]]:
    """(texts, labels, label names) of the training split, as the trainer splits it."""
    from modelwiz.engine.config import config_from_dict
    from modelwiz.engine.data import load_task_data

    task = config_from_dict({"task": {"train": spec.data, "validation": spec.validation}}).task
    td = load_task_data(task, seed=spec.seed)
    return list(td.train.items), list(td.train.labels), list(td.label_names)


def seed_and_load(spec: Spec, names: list[str]) -> tuple[Any, Any]:
    """(tokenizer, model) seeded as modelwiz's trainer seeds before it loads (same head init)."""
    import random

    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging

    logging.set_verbosity_error()
    random.seed(spec.seed)
    np.random.seed(spec.seed % 2**32)
    torch.manual_seed(spec.seed)
    tok = AutoTokenizer.from_pretrained(spec.model)
    model = AutoModelForSequenceClassification.from_pretrained(
        spec.model,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        ignore_mismatched_sizes=True,
        use_safetensors=True,
    )
    model.train()
    return tok, model


def token_ids(spec: Spec, texts: list[str], tok: Any) -> list[list[int]]:
    """Each text's token ids, truncated as every trainer here truncates them."""
    return list(tok(texts, truncation=True, max_length=spec.length)["input_ids"])


def epoch_batches(spec: Spec, lengths: list[int], *, grouped: bool) -> list[list[int]]:
    """Epoch 0's batches as modelwiz's trainer makes them (engine/batching.py, a function of seed
    and epoch): grouped by token length, or a plain shuffle (what the Trainer's default random
    sampler draws)."""
    from modelwiz.engine.batching import step_batches

    return step_batches(len(lengths), spec.batch, spec.seed, 0, lengths if grouped else None)


def linear_factor(step: int, total: int, warmup: float) -> float:
    """Linear warm-up, then linear decay to zero (modelwiz's `linear` schedule, written out)."""
    warm = int(total * warmup)
    if step < warm:
        return (step + 1) / warm
    return max(0.0, 1.0 - (step - warm) / max(1, total - warm))


def worker_bare(spec: Spec) -> dict[str, Any]:
    """The loop anyone would write: tokenize, forward, backward, clip, AdamW, schedule."""
    import torch
    import torch.nn.functional as F

    texts, labels, names = load_split(spec)
    tok, model = seed_and_load(spec, names)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=spec.learning_rate,
    )
    batches = epoch_batches(spec, [len(ids) for ids in token_ids(spec, texts, tok)], grouped=spec.grouped)
    total = len(batches)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: linear_factor(s, total, spec.warmup))
    seconds, samples, losses, cpu = [], [], [], []
    mark = time.perf_counter()
    for idx in batches:
        enc = tok([texts[i] for i in idx], truncation=True, max_length=spec.length, padding=True, return_tensors="pt")
        y = torch.tensor([labels[i] for i in idx], dtype=torch.long)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(**enc).logits, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.max_grad_norm)
        opt.step()
        sched.step()
        losses.append(loss.item())
        now = time.perf_counter()
        cpu.append(time.process_time())
        seconds.append(now - mark)
        samples.append(len(idx))
        mark = now
    return {
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()),
        "step_seconds": seconds,
        "step_samples": samples,
        "cpu_at_step_end": cpu,
        "mean_loss": sum(x * n for x, n in zip(losses, samples, strict=True)) / sum(samples),
    }


def worker_hf(spec: Spec, optim: str, mode: str = "same") -> dict[str, Any]:
    """transformers' Trainer, configured as modelwiz's plan, tokenized per batch. `mode` "same":
    modelwiz's batches in its order (a sequential sampler over them; only the last may be short);
    "default": a plain shuffle, what its default sampler draws (modelwiz's order without grouping,
    so reproducible); "grouped": `group_by_length`, its own length-grouped sampler."""
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    texts, labels, names = load_split(spec)
    tok, model = seed_and_load(spec, names)
    ids = token_ids(spec, texts, tok)
    if mode == "grouped":
        order = list(range(len(texts)))
    else:
        lengths = [len(x) for x in ids]
        order = [i for b in epoch_batches(spec, lengths, grouped=spec.grouped and mode == "same") for i in b]
    # "input_ids": what group_by_length's sampler reads the lengths from (the collate tokenizes the text)
    rows = [{"text": texts[i], "label": labels[i], "input_ids": ids[i]} for i in order]
    total = math.ceil(len(rows) / spec.batch)

    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        enc = tok(
            [f["text"] for f in features], truncation=True, max_length=spec.length, padding=True, return_tensors="pt"
        )
        return {**enc, "labels": torch.tensor([f["label"] for f in features], dtype=torch.long)}

    class InOrder(Trainer):
        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            if mode == "grouped":
                return super()._get_train_sampler(train_dataset)
            return torch.utils.data.SequentialSampler(
                train_dataset if train_dataset is not None else self.train_dataset
            )

    class StepTimer(TrainerCallback):
        """Step windows as modelwiz times them: from the end of the previous step (after its log
        line) or the epoch's start, to the end of this one. The Trainer fetches and tokenizes a
        batch before on_step_begin, so on_step_begin..on_step_end alone ("inner") misses that."""

        def __init__(self) -> None:
            self.mark = self.begin = 0.0
            self.seconds: list[float] = []
            self.inner: list[float] = []
            self.cpu: list[float] = []
            self.losses: list[float] = []

        def on_epoch_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.mark = time.perf_counter()

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.begin = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            now = time.perf_counter()
            self.cpu.append(time.process_time())
            self.seconds.append(now - self.mark)
            self.inner.append(now - self.begin)
            self.mark = now

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs:  # the step's log line is the Trainer's reporting: not timed
                self.losses.append(float(logs["loss"]))
                self.mark = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=spec.batch,
            num_train_epochs=1,
            learning_rate=spec.learning_rate,
            weight_decay=spec.weight_decay,
            # modelwiz's warm-up steps, int(total * warmup); a float < 1 would be ceil(total * ratio)
            warmup_steps=int(total * spec.warmup),
            lr_scheduler_type="linear",
            max_grad_norm=spec.max_grad_norm,
            optim=optim,
            logging_steps=spec.log_every,
            save_strategy="no",
            eval_strategy="no",
            report_to=[],
            dataloader_num_workers=0,
            dataloader_pin_memory=False,
            remove_unused_columns=False,
            use_cpu=True,
            disable_tqdm=True,
            seed=spec.seed,
            **({"train_sampling_strategy": "group_by_length"} if mode == "grouped" else {}),
        )
        timer = StepTimer()
        trainer = InOrder(model=model, args=args, train_dataset=rows, data_collator=collate, callbacks=[timer])
        trainer.train()
    samples = [min(spec.batch, len(rows) - s * spec.batch) for s in range(len(timer.seconds))]
    # each log line: the mean loss of the log_every steps since the previous one
    logged = [sum(samples[i : i + spec.log_every]) for i in range(0, len(samples), spec.log_every)]
    return {
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()),
        "step_seconds": timer.seconds,
        "step_samples": samples,
        "inner_step_seconds": timer.inner,
        "cpu_at_step_end": timer.cpu,
        "mean_loss": (
            sum(x * n for x, n in zip(timer.losses, logged, strict=True)) / sum(logged)
            if len(timer.losses) == len(logged)
            else None
        ),
        "optim": optim,
        "mode": mode,
    }


def worker_events(calls: int, rounds: int) -> dict[str, Any]:
    """microseconds per event: `EventWriter.emit(Step)`, and the trainer's `Reporter.on_step`."""
    from types import SimpleNamespace

    from modelwiz.engine import events as ev
    from modelwiz.engine.trainer import Reporter, memory_now

    with tempfile.TemporaryDirectory() as tmp:
        step = ev.Step(
            epoch=1,
            step=7,
            total_steps=12,
            loss=1.23456,
            lr=4.3e-05,
            samples_per_s=31.27,
            eta_s=12.3,
            **memory_now("cpu"),
        )
        emit_us, on_step_us = [], []
        with ev.EventWriter(Path(tmp) / "emit" / "events.jsonl") as writer:
            for _ in range(rounds):
                t = time.perf_counter()
                for _ in range(calls):
                    writer.emit(step)
                emit_us.append((time.perf_counter() - t) / calls * 1e6)
        # the trainer's own call, on a stand-in run with what on_step reads
        run = SimpleNamespace(
            progress=SimpleNamespace(epoch=0, global_step=7),
            total_steps=12,
            plan=SimpleNamespace(effective_batch=32, device="cpu"),
            scheduler=SimpleNamespace(get_last_lr=lambda: [4.3e-05]),
        )
        (Path(tmp) / "run").mkdir()
        reporter = Reporter(Path(tmp) / "run")
        try:
            for _ in range(rounds):
                t = time.perf_counter()
                for _ in range(calls):
                    reporter.on_step(run, 1.23456, 31.27)  # type: ignore[arg-type]
                on_step_us.append((time.perf_counter() - t) / calls * 1e6)
        finally:
            reporter.close()
        line_bytes = len(json.dumps(step.to_json(), separators=(",", ":"))) + 1
    return {"emit_us": emit_us, "on_step_us": on_step_us, "calls": calls, "line_bytes": line_bytes}


def worker_main(kind: str, payload: dict[str, Any]) -> None:
    if kind == "events":
        out = worker_events(payload["calls"], payload["rounds"])
    else:
        spec = Spec(**payload["spec"])
        modes = {"hf": "same", "hf-default": "default", "hf-grouped": "grouped"}
        out = worker_bare(spec) if kind == "bare" else worker_hf(spec, payload["optim"], modes[kind])
    sys.stdout.flush()
    print(RESULT + json.dumps(out), flush=True)


# --------------------------------------------------------------------------- the parent


def run_worker(kind: str, payload: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--payload", json.dumps(payload)]
    # in a session of its own, as `launch_trainer` starts modelwiz's trainer: with the kernel's
    # autogroup scheduling a session is what gets a fair share of the CPUs
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, start_new_session=True
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise SystemExit(f"bench worker {kind!r} failed (exit {proc.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT) :])
    return result


def bench_config(spec: Spec, group_by_length: str = "auto") -> Any:
    from modelwiz.engine.config import config_from_dict

    return config_from_dict(
        {
            "task": {"train": spec.data, "validation": spec.validation},
            "model": {"id": spec.model},
            "train": {
                "epochs": 1,
                "batch_size": spec.batch,
                "max_length": spec.length,
                "learning_rate": spec.learning_rate,
                "strategy": "full",
                "precision": "fp32",
                "weight_decay": spec.weight_decay,
                "warmup": spec.warmup,
                "max_grad_norm": spec.max_grad_norm,
                "schedule": "linear",
                "layer_decay": 1.0,
                "seed": spec.seed,
                "grad_accum": 1,
                "nproc": 1,
                "group_by_length": {"auto": "auto", "true": True, "false": False}[group_by_length],
            },
            "constraints": {"device": "cpu"},
        }
    )


def resolve(args: argparse.Namespace) -> tuple[Spec, Any, Any, dict[str, Any]]:
    """(spec, config, modelwiz's choice, facts): the plan modelwiz resolves for the bench config,
    checked to be what the other two are configured with."""
    from modelwiz.engine import workflow
    from modelwiz.engine.demo import DEMO_DIR
    from modelwiz.engine.trainer import STEP_EVENTS_PER_EPOCH

    spec = Spec(
        model=str(Path(args.model).absolute()),
        data=str(DEMO_DIR / "demo_tickets.csv"),
        validation=0.2,
        batch=args.batch,
        length=args.length,
        learning_rate=5e-5,
        weight_decay=0.01,
        warmup=0.06,
        max_grad_norm=1.0,
        seed=42,
        log_every=1,
    )
    cfg = bench_config(spec, args.group_by_length)
    rec = workflow.recommend(cfg)
    choice = workflow.choose(cfg, rec)
    p = choice.plan
    want = {
        "batch_size": spec.batch,
        "grad_accum": 1,
        "nproc": 1,
        "max_length": spec.length,
        "learning_rate": spec.learning_rate,
        "weight_decay": spec.weight_decay,
        "warmup": spec.warmup,
        "max_grad_norm": spec.max_grad_norm,
        "schedule": "linear",
        "layer_decay": 1.0,
        "strategy": "full",
        "precision": "fp32",
        "device": "cpu",
        "epochs": 1,
        "seed": spec.seed,
        "max_train_samples": 0,
    }
    off = {k: (getattr(p, k), v) for k, v in want.items() if getattr(p, k) != v}
    if off:
        raise SystemExit(f"modelwiz resolved a different plan than the bench compares against: {off}")
    spec.grouped = bool(p.group_by_length)
    n = len(rec.data.train.items)
    steps = math.ceil(n / spec.batch)
    # how much of each kind of batch is padding: padded tokens over real tokens
    from transformers import AutoTokenizer

    from modelwiz.engine.batching import padded_fraction

    texts = [str(t) for t in rec.data.train.items]
    lengths = [len(ids) for ids in token_ids(spec, texts, AutoTokenizer.from_pretrained(spec.model))]
    padding = {
        f"padding_{kind}": round(padded_fraction(epoch_batches(spec, lengths, grouped=grouped), lengths, spec.batch), 3)
        for kind, grouped in (("grouped", True), ("plain", False))
    }
    spec.log_every = max(1, steps // STEP_EVENTS_PER_EPOCH)
    facts = {
        "model_name": Path(spec.model).name,
        "train_samples": n,
        "steps": steps,
        "last_batch": n - (steps - 1) * spec.batch,
        "step_events": steps // spec.log_every + (steps % spec.log_every != 0),
        "step_events_per_epoch_cap": STEP_EVENTS_PER_EPOCH,
        **padding,
    }
    return spec, cfg, choice, facts


def watch_cpu(run: Path, step_events: int, poll_s: float = 0.01) -> list[float]:
    """The trainer process's CPU seconds (user + system, all threads) read as each Step event
    appears in its events.jsonl (within `poll_s` of it): the CPU time of its step windows, which
    a loaded machine disturbs much less than their wall time."""
    import psutil

    from modelwiz.engine.events import read_events
    from modelwiz.engine.runs import FINAL_STATES, effective_state, read_status

    path, offset, size = run / "events.jsonl", 0, -1
    cpu: list[float] = []
    try:
        proc = psutil.Process(int(read_status(run)["pid"]))
    except (KeyError, TypeError, ValueError, psutil.Error):
        return []
    deadline = time.monotonic() + 3600
    while len(cpu) < step_events and time.monotonic() < deadline:
        time.sleep(poll_s)
        try:
            now = path.stat().st_size
        except FileNotFoundError:
            continue
        if now == size:
            if effective_state(read_status(run), run) in FINAL_STATES:
                break
            continue
        try:
            t = proc.cpu_times()
        except psutil.Error:
            break
        size = now
        new, offset = read_events(path, offset)
        cpu += [t.user + t.system for e in new if e["event"] == "step"]
    return cpu


def modelwiz_run(cfg: Any, choice: Any, spec: Spec, runs_dir: Path, step_events: int) -> dict[str, Any]:
    """A real run through the engine's workflow; step windows read back from its events."""
    from modelwiz.engine import workflow
    from modelwiz.engine.events import read_events
    from modelwiz.engine.runs import CANCEL_FILE, wait_for_final

    run = workflow.start_run(cfg, choice, runs_dir=runs_dir)
    try:
        cpu = watch_cpu(run, step_events)
        state = wait_for_final(run, timeout_s=3600)
    except KeyboardInterrupt:  # the trainer is detached: ask it to stop too
        (run / CANCEL_FILE).touch()
        raise
    if state != "completed":
        raise SystemExit(f"modelwiz run ended {state}; see {run / 'trainer.log'}")
    report = json.loads((run / "report.json").read_text())
    n = report["data"]["train_size"]
    events, _ = read_events(run / "events.jsonl")
    steps = [e for e in events if e["event"] == "step"]
    size = [min(spec.batch, n - s * spec.batch) for s in range(math.ceil(n / spec.batch))]
    seconds, samples, steps_in, loss_sum, prev = [], [], [], 0.0, 0
    for e in steps:  # each Step event: its window's mean loss and samples/s
        window = sum(size[prev : e["step"]])
        seconds.append(window / e["samples_per_s"])
        samples.append(window)
        steps_in.append(e["step"] - prev)
        loss_sum += e["loss"] * window
        prev = e["step"]
    return {
        "threads": None,  # the trainer's process: same environment; it sets no thread count with one process
        "params": report["train"]["params"],
        "step_seconds": seconds,
        "step_samples": samples,
        "window_steps": steps_in,
        "cpu_at_step_end": cpu if len(cpu) == len(steps) else None,
        "mean_loss": loss_sum / max(1, sum(samples)),
        "report_samples_per_s": report["train"]["samples_per_s"],
        "report_train_seconds": report["train"]["train_seconds"],
    }


def figures(result: dict[str, Any], skip: int) -> tuple[float, float, float | None]:
    """(samples/s from step skip+1 on, samples/s over all steps, samples per CPU-second from
    step skip+1 on). modelwiz's windows may hold several steps; `skip` is the steps of its first
    window, which the others skip too."""
    secs, samples, cpu = result["step_seconds"], result["step_samples"], result.get("cpu_at_step_end")
    drop = 1 if "window_steps" in result else skip
    per_cpu = sum(samples[drop:]) / (cpu[-1] - cpu[drop - 1]) if cpu and cpu[-1] > cpu[drop - 1] else None
    return sum(samples[drop:]) / sum(secs[drop:]), sum(samples) / sum(secs), per_cpu


def summarize(runs: list[dict[str, Any]], skip: int, kinds: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in kinds:
        mine = [r for r in runs if r["trainer"] == k]
        steady = [r["samples_per_s"] for r in mine]
        every = [r["samples_per_s_all_steps"] for r in mine]
        out[k] = {
            "runs": steady,
            "best": max(steady),
            "median": statistics.median(steady),
            "runs_all_steps": every,
            "best_all_steps": max(every),
            "median_all_steps": statistics.median(every),
            "spread": (max(steady) - min(steady)) / statistics.median(steady),
            "mean_loss": [r["mean_loss"] for r in mine],
        }
        per_cpu = [r["samples_per_cpu_s"] for r in mine]
        if all(x is not None for x in per_cpu):
            out[k].update(
                cpu_runs=per_cpu,
                cpu_best=max(per_cpu),
                cpu_median=statistics.median(per_cpu),
                cpu_spread=(max(per_cpu) - min(per_cpu)) / statistics.median(per_cpu),
            )
    return out


def ratio(s: dict[str, Any], a: str, b: str, key: str) -> float | None:
    return s[a][key] / s[b][key] if a in s and b in s else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="samples/s of modelwiz's trainer against a bare PyTorch loop and transformers' Trainer, "
        "and the cost of its event stream"
    )
    ap.add_argument("--model", default=str(Path(sys.prefix) / "share/modelwiz/models/all-MiniLM-L6-v2"))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3, help="rounds; each runs all three, in an order that rotates")
    ap.add_argument("--threads", type=int, default=0, help="OMP/MKL threads for all three (default: torch's own)")
    ap.add_argument("--trainers", default=",".join(TRAINERS), help="comma-separated subset of " + ",".join(TRAINERS))
    ap.add_argument(
        "--hf-optim",
        default="adamw_torch_fused",
        help="TrainingArguments.optim (adamw_torch_fused: the Trainer's default and modelwiz's fused AdamW)",
    )
    ap.add_argument(
        "--group-by-length",
        choices=("auto", "true", "false"),
        default="auto",
        help="modelwiz's [train] group_by_length (auto: its default; the bare loop and 'HF Trainer' get its batches)",
    )
    ap.add_argument("--event-calls", type=int, default=2000, help="events per timing round of the event cost")
    ap.add_argument("--json", action="store_true", help="also print one JSON object, last")
    ap.add_argument("--dry-run", action="store_true", help="resolve and print the setup; train nothing")
    ap.add_argument("--worker", choices=(*TRAINERS[:-1], "events"), help=argparse.SUPPRESS)
    ap.add_argument("--payload", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker_main(args.worker, json.loads(args.payload or "{}"))
        return 0
    kinds = [k.strip() for k in args.trainers.split(",") if k.strip()]
    bad = [k for k in kinds if k not in TRAINERS]
    if bad or not kinds:
        ap.error(f"--trainers: unknown {', '.join(bad) or '(none given)'}; choose from {', '.join(TRAINERS)}")
    if args.repeat < 1 or args.batch < 1 or args.length < 1 or args.event_calls < 1 or args.threads < 0:
        ap.error("--repeat, --batch, --length and --event-calls must be at least 1, --threads at least 0")
    if not (Path(args.model) / "config.json").is_file():
        ap.error(f"--model {args.model}: not a model folder (no config.json)")
    if any(k.startswith("hf") for k in kinds) and not args.dry_run and importlib.util.find_spec("accelerate") is None:
        ap.error("transformers' Trainer needs accelerate: pip install -e '.[bench]' (or --trainers bare,modelwiz)")

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if args.threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = env[var] = str(args.threads)  # os.environ: the trainer's launcher copies it
    spec, cfg, choice, facts = resolve(args)
    if not spec.grouped and "hf-default" in kinds and args.trainers == ",".join(TRAINERS):
        kinds.remove("hf-default")  # modelwiz's batches are a plain shuffle: "HF Trainer" is its default already
    skip = spec.log_every
    rounds = [kinds[r % len(kinds) :] + kinds[: r % len(kinds)] for r in range(args.repeat)]
    if args.dry_run:
        print(
            f"{facts['model_name']}: {facts['train_samples']} training samples = {facts['steps']} steps of batch "
            f"{spec.batch} (last {facts['last_batch']}), length {spec.length}, fp32, CPU, full fine-tuning, 1 epoch"
        )
        dry = {"dry_run": True, "spec": asdict(spec), **facts, "rounds": rounds}
        dry.update(
            dict.fromkeys((*(name for name, _ in COMPARED), "event_us_per_step_event", "event_fraction_of_step"))
        )
        print(f"would run {args.repeat} round(s): " + "; ".join(" -> ".join(r) for r in rounds))
        if args.json:
            print(json.dumps(dry))
        return 0

    payload = {"spec": asdict(spec), "optim": args.hf_optim}
    runs: list[dict[str, Any]] = []
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for r, order in enumerate(rounds, 1):
            for k in order:
                t = time.time()
                res = (
                    modelwiz_run(cfg, choice, spec, Path(tmp) / "runs", facts["step_events"])
                    if k == "modelwiz"
                    else run_worker(k, payload, env)
                )
                res["samples_per_s"], res["samples_per_s_all_steps"], res["samples_per_cpu_s"] = figures(res, skip)
                res.update(trainer=k, round=r, wall_s=round(time.time() - t, 1))
                runs.append(res)
                print(
                    f"  round {r}: {TITLES[k]:<18} {res['samples_per_s']:7.2f} samples/s from step 2 "
                    f"({res['samples_per_s_all_steps']:.2f} all steps), {res['wall_s']:.0f} s wall",
                    file=sys.stderr,
                )
    events = run_worker("events", {"calls": args.event_calls, "rounds": 5}, env)
    s = summarize(runs, skip, kinds)

    # the event stream per training step: events per step here x cost per event / step time
    events_per_step = facts["step_events"] / facts["steps"]
    emit_us, on_step_us = statistics.median(events["emit_us"]), statistics.median(events["on_step_us"])
    ref = "modelwiz" if "modelwiz" in s else kinds[0]
    step_s = spec.batch / s[ref]["median"]
    threads = sorted({r["threads"] for r in runs if r["threads"] is not None})

    p = print
    p("")
    p(
        f"{facts['model_name']} ({runs[0]['params'] / 1e6:.1f}M params), {facts['train_samples']} samples = "
        f"{facts['steps']} steps of {spec.batch} (last {facts['last_batch']}), length {spec.length}, fp32 CPU, "
        f"{'/'.join(map(str, threads)) or '?'} torch threads, {args.repeat} round(s), order rotating "
        f"({'; '.join(' > '.join(r) for r in rounds)})"
    )
    p(
        f"all: AdamW lr {spec.learning_rate:g} wd {spec.weight_decay:g} (0 on biases/norms), linear schedule "
        f"(warm-up {spec.warmup:g} = {int(facts['steps'] * spec.warmup)} steps), grad clip {spec.max_grad_norm:g}, "
        f"seed {spec.seed}, tokenized per batch; HF optim {args.hf_optim}"
    )
    p(
        f"batches: modelwiz {'grouped by length' if spec.grouped else 'a plain shuffle'} (group_by_length "
        f"{args.group_by_length}); bare loop and HF Trainer the same batches; "
        "'HF, its default' a plain shuffle (its default sampler); 'HF group_by_length' its own grouped sampler. "
        f"Padded tokens / real tokens: grouped {facts['padding_grouped']:.2f}, plain shuffle {facts['padding_plain']:.2f}"
    )
    p("samples/s over training steps (fetch+tokenize+forward+backward+clip+AdamW+schedule), from step 2:")
    head = "".join(f"{'run ' + str(i + 1):>9}" for i in range(args.repeat))
    p(f"{'':<19}{head}{'best':>9}{'median':>9}   {'spread':>6}   all steps: best  median")
    for k in kinds:
        f = s[k]
        cells = "".join(f"{x:9.2f}" for x in f["runs"])
        p(
            f"{TITLES[k]:<19}{cells}{f['best']:9.2f}{f['median']:9.2f}   {f['spread']:6.1%}   "
            f"{f['best_all_steps']:15.2f}{f['median_all_steps']:8.2f}"
        )
    out: dict[str, Any] = {}
    for name, other in COMPARED:
        best, med = ratio(s, "modelwiz", other, "best"), ratio(s, "modelwiz", other, "median")
        every = ratio(s, "modelwiz", other, "best_all_steps")
        out[name], out[name + "_median"], out[name + "_all_steps"] = best, med, every
        if best is None or med is None or every is None:
            continue
        per_round = [
            m["samples_per_s"] / o["samples_per_s"]
            for m in runs
            if m["trainer"] == "modelwiz"
            for o in runs
            if o["trainer"] == other and o["round"] == m["round"]
        ]
        out[name + "_per_round"] = per_round
        verdict = "meets" if best >= TARGETS[name] else "BELOW"
        p(
            f"modelwiz / {TITLES[other]:<17}: {best:.3f} best/best, {med:.3f} median/median, per round "
            f"{' '.join(f'{x:.3f}' for x in per_round)}; all steps {every:.3f}  ({verdict} target >= {TARGETS[name]:g})"
        )
    if all("cpu_runs" in s[k] for k in kinds):
        p("samples per CPU-second (each process's user+sys time, all threads, over the same steps; from step 2):")
        for k in kinds:
            f = s[k]
            cells = "".join(f"{x:9.2f}" for x in f["cpu_runs"])
            p(f"{TITLES[k]:<19}{cells}{f['cpu_best']:9.2f}{f['cpu_median']:9.2f}   {f['cpu_spread']:6.1%}")
        for name, other in COMPARED:
            med, best = ratio(s, "modelwiz", other, "cpu_median"), ratio(s, "modelwiz", other, "cpu_best")
            out[name + "_cpu"], out[name + "_cpu_best"] = med, best
            if med is not None and best is not None:
                p(f"modelwiz / {TITLES[other]:<17}: {med:.3f} median/median, {best:.3f} best/best (per CPU-second)")
    if "hf" in s:
        inner = [
            sum(r["step_samples"][skip:]) / sum(r["inner_step_seconds"][skip:]) for r in runs if r["trainer"] == "hf"
        ]
        p(
            f"HF Trainer on_step_begin..on_step_end only (no batch fetch/tokenize, not comparable): best "
            f"{max(inner):.2f} samples/s"
        )
    p(
        "mean training loss (same work?): "
        + ", ".join(f"{TITLES[k]} {' '.join(f'{x:.4f}' for x in s[k]['mean_loss'] if x is not None)}" for k in kinds)
    )
    p(
        f"event stream: EventWriter.emit(Step) {emit_us:.1f} us/event, Reporter.on_step (memory + record + emit) "
        f"{on_step_us:.1f} us; {facts['step_events']} Step events in {facts['steps']} steps here (at most "
        f"{facts['step_events_per_epoch_cap']} per epoch) = {events_per_step * emit_us / 1e6 / step_s:.4%} of a {step_s:.3f} s "
        f"step (on_step {events_per_step * on_step_us / 1e6 / step_s:.4%}); outside the timed steps"
    )
    p(f"({time.time() - started:.0f} s in all)")
    if args.json:
        out.update(
            event_us_per_step_event=emit_us,
            event_fraction_of_step=events_per_step * emit_us / 1e6 / step_s,
            on_step_us_per_step_event=on_step_us,
            on_step_fraction_of_step=events_per_step * on_step_us / 1e6 / step_s,
            events_per_step=events_per_step,
            step_seconds=step_s,
            targets=TARGETS,
            basis="samples/s from step 2; ratio = best/best (also _median: median/median, _all_steps: best over all steps)",
            spec=asdict(spec),
            facts=facts,
            hf_optim=args.hf_optim,
            summary=s,
            events=events,
            runs=runs,
        )
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
