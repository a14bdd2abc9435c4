"""Predicted seconds per epoch (modelwiz.engine.speed) against the measured, per configuration.

First the device micro-benchmark runs in a fresh process (`python -m modelwiz.engine.speed bench`,
into a temporary cache), at the thread count given. Then for each configuration:

- the step's costs are counted on fake tensors in a fresh process (`speed.count_model`, the one
  strategy and precision of the row) and the prediction made from them and the benchmark, as
  `make_plan` makes it (`speed.predict_epoch`);
- the step is measured in another fresh process that builds the model as the trainer would (Hugging
  Face configs with random weights, torchvision builders with weights=None, the real
  all-MiniLM-L6-v2 folder), freezes it with the trainer's recipes and runs the trainer's own
  `train_step` (fused AdamW, clipping, autocast, accumulation): two steps first (warm-up, AdamW's
  lazy state), then steady-state steps until `--seconds` have passed (at least three); the median
  seconds per step, times the optimizer steps of an epoch of `--train-size` examples, is the measured
  epoch (evaluation left out on both sides: the table compares training).

No constant of the predictor is fitted to these configurations (the rates come from the
micro-benchmark, the costs from the count), so every row is held out. On a shared machine, run
with `--threads 1` and read the load printed at the start.

    .venv/bin/python bench/time_accuracy.py [--threads 1] [--only SUBSTR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from memory_accuracy import BERT, CONVNEXT, DISTILBERT, MINILM, VIT, candidate_for_case  # noqa: E402

# name, model, modality, strategy, precision, batch, length or image side, accumulation
CASES: list[tuple[str, Any, str, str, str, int, int, int]] = [
    ("bert 4L-256", BERT, "text", "full", "fp32", 16, 128, 1),
    ("bert 4L-256", BERT, "text", "linear-probe", "fp32", 32, 128, 1),
    ("bert 4L-256", BERT, "text", "full", "bf16", 8, 256, 1),
    ("distilbert 3L-384", DISTILBERT, "text", "partial", "fp32", 8, 128, 1),
    ("all-MiniLM-L6-v2 (real)", "minilm", "text", "full", "fp32", 32, 64, 1),
    ("all-MiniLM-L6-v2 (real)", "minilm", "text", "partial", "bf16", 16, 96, 1),
    ("prajjwal1/bert-mini", "prajjwal1/bert-mini", "text", "full", "fp32", 16, 160, 2),
    ("torchvision resnet18", "torchvision:resnet18", "image", "full", "fp32", 8, 160, 1),
    ("torchvision resnet18", "torchvision:resnet18", "image", "full", "bf16", 8, 224, 1),
    ("torchvision mobilenet_v2", "torchvision:mobilenet_v2", "image", "partial", "fp32", 8, 224, 1),
    ("torchvision efficientnet_b0", "torchvision:efficientnet_b0", "image", "linear-probe", "fp32", 16, 224, 1),
    ("vit 4L-192", VIT, "image", "full", "fp32", 8, 224, 1),
    ("convnext 2-2-2-2", CONVNEXT, "image", "full", "bf16", 4, 224, 1),
    ("torchvision mobilenet_v2", "torchvision:mobilenet_v2", "image", "full", "fp32", 32, 224, 1),
    ("torchvision mobilenet_v3_small", "torchvision:mobilenet_v3_small", "image", "full", "fp32", 16, 160, 1),
    ("torchvision efficientnet_b0", "torchvision:efficientnet_b0", "image", "full", "fp32", 8, 224, 1),
    ("torchvision convnext_tiny", "torchvision:convnext_tiny", "image", "partial", "fp32", 4, 224, 1),
    ("torchvision regnet_y_400mf", "torchvision:regnet_y_400mf", "image", "full", "fp32", 8, 224, 1),
    ("torchvision densenet121", "torchvision:densenet121", "image", "linear-probe", "bf16", 8, 224, 1),
]


def measure_child(args: dict[str, Any]) -> dict[str, Any]:
    """Fresh process: the trainer's train_step, steady-state seconds per step."""
    import types

    import torch

    from modelwiz.engine import memtrace, recipes, trainer
    from modelwiz.engine.allocator import keep_freed_memory

    keep_freed_memory()  # as the trainer's main does
    if args["threads"]:
        torch.set_num_threads(int(args["threads"]))
    torch.manual_seed(0)
    spec = args["spec"]
    kind = spec["kind"]
    if "folder" in spec:
        from transformers import AutoModelForSequenceClassification

        from modelwiz.engine.adapters.base import hf_load

        model, fresh = hf_load(AutoModelForSequenceClassification, Path(spec["folder"]), ["a", "b"])
    else:
        model, fresh, _ = memtrace.build_model(spec)
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.02)
    plan = memtrace.plan_for_trace(args["strategy"], args["precision"], int(args["batch"]), int(args["blocks"]))
    plan.grad_accum = int(args["accum"])
    blocks = recipes.find_blocks([n for n, _ in model.named_parameters()], fresh)
    recipes.apply_freeze(model, blocks, args["strategy"], int(args["blocks"]))
    model.train()
    x = int(args["x"])
    vocab = min(1000, int(getattr(getattr(model, "config", None), "vocab_size", 1000) or 1000))

    def collate(items: list[int], train: bool) -> dict[str, Any]:
        b = len(items)
        if kind == "hf-text":
            return {"input_ids": torch.randint(5, vocab, (b, x)), "attention_mask": torch.ones(b, x, dtype=torch.long)}
        return {"pixel_values": torch.randn(b, 3, x, x)}

    def logits(inputs: dict[str, Any]) -> Any:
        return model(inputs["pixel_values"]) if kind == "torchvision" else model(**inputs).logits

    adapter = types.SimpleNamespace(model=model, collate=collate, logits=logits, new_params=fresh)
    optimizer = recipes.make_optimizer(model, blocks, plan)
    n = int(args["batch"]) * int(args["accum"])
    data = types.SimpleNamespace(train=types.SimpleNamespace(items=list(range(n)), labels=[i % 2 for i in range(n)]))
    run = memtrace.trainer_run(
        plan=plan,
        data=data,
        adapter=adapter,
        module=model,
        optimizer=optimizer,
        scheduler=recipes.make_scheduler(optimizer, plan, 10_000),
        scaler=None,
        blocks=blocks,
    )
    idx = list(range(n))
    for _ in range(2):
        trainer.train_step(run, idx)
    # one thread: this process's CPU time per step (what the step costs, however loaded the machine
    # is; wall-clock time beside it); more threads: wall-clock time
    times: list[float] = []
    walls: list[float] = []
    t_end = time.perf_counter() + float(args["seconds"])
    while len(times) < 3 or time.perf_counter() < t_end:
        c0, t0 = time.process_time(), time.perf_counter()
        trainer.train_step(run, idx)
        walls.append(time.perf_counter() - t0)
        times.append(time.process_time() - c0)
        if len(times) >= 50:
            break
    one = torch.get_num_threads() == 1
    import resource

    return {
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "step_s": statistics.median(times if one else walls),
        "wall_step_s": statistics.median(walls),
        "clock": "cpu" if one else "wall",
        "steps": len(times),
        "cpu_per_wall": sum(times) / sum(walls),
    }


def count_child(args: dict[str, Any]) -> dict[str, Any]:
    """Fresh process: the step's costs counted on fake tensors into the cache."""
    from modelwiz.engine import speed
    from modelwiz.engine.fsutil import atomic_write_json
    from modelwiz.engine.memtrace import spec_key

    spec = args["spec"]
    entry = speed.count_model(
        spec, strategies=(args["strategy"],), precisions=(args["precision"],), num_layers=int(args["layers"])
    )
    entry["spec"] = spec
    key = spec_key(spec)
    path = speed.cache_path(key)
    old = speed._cached_entry(spec)
    if old:  # merge strategies counted before
        for s, v in entry["strategies"].items():
            old["strategies"].setdefault(s, {}).update(v)
        entry = old
    atomic_write_json(path, {"version": speed.TABLE_VERSION, "key": key, "entry": entry})
    return {"seconds": entry.get("seconds")}


def _child(mode: str, payload: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, f"--{mode}", json.dumps(payload)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        raise SystemExit(f"the {mode} process failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(
    case: tuple[Any, ...],
    spec: dict[str, Any],
    blocks: int,
    threads: int,
    seconds: float,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A fresh process's steady-state seconds per step of `case` (measure_child)."""
    _, _, _, strategy, precision, batch, x, accum = case
    payload = {
        "spec": spec,
        "strategy": strategy,
        "precision": precision,
        "batch": batch,
        "x": x,
        "accum": accum,
        "blocks": blocks,
        "threads": threads,
        "seconds": seconds,
    }
    return _child("measure", payload, env)


def run_case(
    case: tuple[Any, ...], hw: Any, tmp: Path, threads: int, seconds: float, train_size: int
) -> dict[str, Any]:
    from modelwiz.engine import memtrace, speed

    name, model, modality, strategy, precision, batch, x, accum = case
    cand, spec = candidate_for_case(model, modality, tmp, name)
    layers = int(cand.num_layers or 0)
    blocks = memtrace.default_unfreeze_blocks(layers)
    entry, where = speed.find_costs(cand)
    prec = "fp32" if precision == "fp32" else "bf16"
    t0 = time.perf_counter()
    if where != "cache" or prec not in (entry or {}).get("strategies", {}).get(strategy, {}):
        count_spec = memtrace.spec_for_candidate(cand) or spec  # the spec the lookup keys the cache by
        _child("count", {"spec": count_spec, "strategy": strategy, "precision": precision, "layers": layers})
    count_s = time.perf_counter() - t0
    speed._table.cache_clear()
    got = speed.predict_epoch(
        cand,
        strategy=strategy,
        batch_size=batch,
        grad_accum=accum,
        precision=precision,
        device="cpu",
        hardware=hw,
        train_size=train_size,
        val_size=0,
        x=float(x),
        unfreeze_blocks=blocks,
    )
    if got is None:
        raise SystemExit(f"{name}: no prediction (benchmark or count missing)")
    predicted = got[0]
    m = measure(case, spec, blocks, threads, seconds)
    steps = -(-train_size // (batch * accum))
    measured = m["step_s"] * steps
    return {
        "name": name,
        "family": family(name, modality),
        "modality": modality,
        "strategy": strategy,
        "precision": precision,
        "batch": batch,
        "x": x,
        "accum": accum,
        "count_s": round(count_s, 1),
        "predicted_s": round(predicted, 2),
        "measured_s": round(measured, 2),
        "step_s": round(m["step_s"], 4),
        "steps_timed": m["steps"],
        "cpu_per_wall": round(m["cpu_per_wall"], 2),
        "rel_error": round(predicted / measured - 1, 4),
    }


def family(name: str, modality: str) -> str:
    if modality == "text":
        return "text transformer"
    if "vit" in name or "swin" in name or "deit" in name:
        return "vision transformer"
    return "CNN"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads in every process (0: torch's default)")
    ap.add_argument("--seconds", type=float, default=2.0, help="steady-state seconds measured per configuration")
    ap.add_argument("--train-size", type=int, default=1000, help="examples per epoch")
    ap.add_argument("--only", help="run the configurations whose name contains this")
    ap.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--count", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure_child(json.loads(args.measure))))
        return
    if args.count:
        print(json.dumps(count_child(json.loads(args.count))))
        return
    from modelwiz.engine.hardware import detect

    cases = [c for c in CASES if not args.only or args.only in c[0]]
    if not MINILM.is_dir():
        cases = [c for c in cases if c[1] != "minilm"]
    rows: list[dict[str, Any]] = []
    t_all = time.perf_counter()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="modelwiz-timeacc-") as tmp:
        os.environ["MODELWIZ_CACHE"] = str(Path(tmp) / "cache")
        if args.threads:
            os.environ["OMP_NUM_THREADS"] = str(args.threads)  # what speed.default_threads reads
        os.environ["MODELWIZ_SPEED_BENCH"] = "0"  # the probe starts none: the one below is measured alone
        hw = detect(tmp)
        cmd = [sys.executable, "-m", "modelwiz.engine.speed", "bench"]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        bench = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
        print(
            f"{hw.cpu_model}, {bench['threads']} thread(s), load average {load:.2f} at the start; micro-benchmark "
            f"{bench['seconds']:.1f} s, dispatch overhead {bench['overhead_s_per_op'] * 1e6:.1f} us/op"
        )
        print(
            f"{'configuration':<28}{'strategy':<13}{'prec':<5}{'batch':>5}{'x':>5}{'acc':>4}"
            f"{'predicted':>11}{'measured':>10}{'error':>8}  s/epoch of {args.train_size}"
        )
        for case in cases:
            row = run_case(case, hw, Path(tmp), args.threads, args.seconds, args.train_size)
            rows.append(row)
            print(
                f"{row['name']:<28}{row['strategy']:<13}{row['precision']:<5}{row['batch']:>5}{row['x']:>5}"
                f"{row['accum']:>4}{row['predicted_s']:>10.1f}s{row['measured_s']:>9.1f}s{row['rel_error']:>+8.1%}",
                flush=True,
            )
    errors = [abs(r["rel_error"]) for r in rows]
    summary: dict[str, Any] = {
        "device": "cpu",
        "threads": bench["threads"],
        "load_at_start": round(load, 2),
        "configurations": len(rows),
        "calibration_configurations": [],
        "max_rel_error": round(max(errors), 4) if errors else None,
        "median_rel_error": round(statistics.median(errors), 4) if errors else None,
        "seconds": round(time.perf_counter() - t_all, 1),
        "by_family": {},
    }
    for fam in sorted({r["family"] for r in rows}):
        errs = [r["rel_error"] for r in rows if r["family"] == fam]
        summary["by_family"][fam] = {
            "n": len(errs),
            "median_rel_error": round(statistics.median(errs), 4),
            "max_abs_rel_error": round(max(abs(e) for e in errs), 4),
        }
    if rows:
        print(
            f"{len(rows)} configurations, none used for calibration: max |error| {summary['max_rel_error']:.1%}, "
            f"median {summary['median_rel_error']:.1%} ({summary['seconds']:.0f} s)"
        )
        for fam, f in summary["by_family"].items():
            print(
                f"  {fam}: {f['n']} rows, median error {f['median_rel_error']:+.1%}, max |error| {f['max_abs_rel_error']:.1%}"
            )
    if args.json:
        print(json.dumps({**summary, "bench": bench, "rows": rows}))


if __name__ == "__main__":
    main()
