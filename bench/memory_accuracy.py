"""Predicted training memory (modelwiz.engine.memory) against the measured peak, per configuration.

Each configuration is measured in a fresh subprocess that builds the model as the trainer would
(Hugging Face configs built here with random weights, torchvision builders with weights=None,
the real all-MiniLM-L6-v2 folder), freezes it with the trainer's recipes, and runs the trainer's
own `train_step` (AdamW with its parameter groups, gradient clipping, autocast, accumulation).
Two steps run first (AdamW creates its state lazily at the first), then the third is measured:

- CPU: the live-tensor peak. The step runs under `torch.profiler.profile(profile_memory=True)`,
  whose allocation records come from the CPU allocator itself (every allocation and free,
  including a kernel's scratch memory). Their running sum is what the step allocates beyond what
  was alive when it started; what was alive (parameters, buffers, AdamW state; gradients are
  freed first) is counted from the distinct storages of those tensors. Peak = alive at the start
  + the maximum of the running sum. (`engine/memmeasure.py`, which the trainer can use too.)
- CUDA (when a GPU is there and `--device cuda`): `torch.cuda.max_memory_allocated` after
  `reset_peak_memory_stats`, and `torch.cuda.max_memory_reserved`, reported as separate errors.

The prediction is `memory.estimate` for the same candidate and settings: from the shipped trace
table (catalog and torchvision models), or from a trace made on demand into a temporary cache
(the configurations built here are local folders holding only a config.json). No constant of the
predictor is fitted to any of these configurations (the trace has no free constants; the scratch
memory of opaque CPU kernels is measured per call at trace time), so every row is a held-out
configuration.

    .venv/bin/python bench/memory_accuracy.py [--device cpu|cuda] [--only SUBSTR] [--json]
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
MINILM = Path(sys.prefix) / "share" / "modelwiz" / "models" / "all-MiniLM-L6-v2"
GB = 1024**3


def _text(model_type: str, hidden: int, layers: int, heads: int, **extra: Any) -> dict[str, Any]:
    return {
        "model_type": model_type,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": 4 * hidden,
        **extra,
    }


DEBERTA = {
    "relative_attention": True,
    "position_buckets": 256,
    "norm_rel_ebd": "layer_norm",
    "share_att_key": True,
    "pos_att_type": ["p2c", "c2p"],
    "max_relative_positions": -1,
    "position_biased_input": False,
    "type_vocab_size": 0,
}
# Hugging Face configurations built here (random weights; traced on demand as local folders)
BERT = _text("bert", 256, 4, 4)
DISTILBERT = {"model_type": "distilbert", "dim": 384, "n_layers": 3, "n_heads": 6, "hidden_dim": 1536}
ROBERTA = _text("roberta", 256, 4, 4, vocab_size=50265)
DEBERTA_V2 = _text("deberta-v2", 256, 2, 4, vocab_size=32000, **DEBERTA)
ALBERT = _text("albert", 256, 4, 4, embedding_size=128)
VIT = {**_text("vit", 192, 4, 3), "image_size": 224}
CONVNEXT = {"model_type": "convnext", "depths": [2, 2, 2, 2], "hidden_sizes": [32, 64, 128, 256], "image_size": 224}
RESNET = {"model_type": "resnet", "layer_type": "basic", "depths": [1, 1, 1, 1], "hidden_sizes": [64, 128, 256, 512]}
SWIN = {"model_type": "swin", "embed_dim": 32, "depths": [1, 1, 2, 1], "num_heads": [1, 2, 4, 8], "image_size": 224}
# decoder-only and other families the predictor was never looked at with (added after the table
# above was settled; GPT-2 and Llama classify from the last token, and ship no padding token)
GPT2 = {"model_type": "gpt2", "n_embd": 256, "n_layer": 4, "n_head": 4}
LLAMA = {**_text("llama", 256, 4, 4), "num_key_value_heads": 2, "intermediate_size": 688, "vocab_size": 32000}
QWEN2 = {**_text("qwen2", 256, 4, 4), "num_key_value_heads": 2, "intermediate_size": 688, "vocab_size": 32000}
MODERNBERT = {**_text("modernbert", 256, 4, 4), "intermediate_size": 512, "vocab_size": 50368}
MOBILEVIT = {"model_type": "mobilevit", "image_size": 256}
SEGFORMER = {"model_type": "segformer", "hidden_sizes": [32, 64, 160, 256], "depths": [1, 1, 1, 1]}
POOLFORMER = {"model_type": "poolformer", "hidden_sizes": [32, 64, 160, 256], "depths": [1, 1, 2, 1]}
DINOV2 = {**_text("dinov2", 192, 4, 3), "image_size": 224, "patch_size": 14}
CONVNEXTV2 = {"model_type": "convnextv2", "depths": [1, 1, 2, 1], "hidden_sizes": [32, 64, 128, 256]}

# name, model (a config above, a catalog or torchvision id, or "minilm": the real folder),
# modality, strategy, precision, batch, length or image side, gradient accumulation
CASES: list[tuple[str, Any, str, str, str, int, int, int]] = [
    ("bert 4L-256", BERT, "text", "full", "fp32", 16, 128, 1),
    ("bert 4L-256", BERT, "text", "linear-probe", "fp32", 32, 128, 1),
    ("bert 4L-256", BERT, "text", "full", "bf16", 4, 512, 1),
    ("distilbert 3L-384", DISTILBERT, "text", "partial", "fp32", 8, 256, 1),
    ("roberta 4L-256", ROBERTA, "text", "full", "bf16", 8, 128, 1),
    ("deberta-v2 2L-256", DEBERTA_V2, "text", "full", "fp32", 4, 192, 1),
    ("albert 4L-256", ALBERT, "text", "full", "fp32", 8, 64, 2),
    ("all-MiniLM-L6-v2 (real)", "minilm", "text", "full", "fp32", 32, 64, 1),
    ("all-MiniLM-L6-v2 (real)", "minilm", "text", "partial", "bf16", 16, 96, 1),
    ("prajjwal1/bert-mini", "prajjwal1/bert-mini", "text", "full", "fp32", 16, 160, 1),
    ("electra-small", "google/electra-small-discriminator", "text", "partial", "fp32", 8, 128, 1),
    ("torchvision resnet18", "torchvision:resnet18", "image", "full", "fp32", 8, 160, 1),
    ("torchvision resnet18", "torchvision:resnet18", "image", "full", "bf16", 16, 224, 1),
    ("torchvision mobilenet_v2", "torchvision:mobilenet_v2", "image", "partial", "fp32", 16, 224, 1),
    ("torchvision mobilenet_v2", "torchvision:mobilenet_v2", "image", "full", "fp32", 4, 320, 2),
    ("torchvision efficientnet_b0", "torchvision:efficientnet_b0", "image", "linear-probe", "fp32", 16, 224, 1),
    ("torchvision googlenet", "torchvision:googlenet", "image", "partial", "fp32", 8, 224, 1),
    ("torchvision squeezenet1_1", "torchvision:squeezenet1_1", "image", "full", "fp32", 16, 224, 1),
    ("torchvision vgg11", "torchvision:vgg11", "image", "linear-probe", "fp32", 8, 224, 1),
    ("vit 4L-192", VIT, "image", "full", "fp32", 8, 224, 1),
    ("deit-tiny", "facebook/deit-tiny-patch16-224", "image", "partial", "fp32", 4, 224, 1),
    ("convnext 2-2-2-2", CONVNEXT, "image", "full", "fp32", 8, 224, 1),
    ("resnet (HF) basic", RESNET, "image", "partial", "bf16", 8, 192, 1),
    ("swin 1-1-2-1", SWIN, "image", "full", "fp32", 4, 224, 1),
    ("efficientnet-b0 (HF)", "google/efficientnet-b0", "image", "full", "bf16", 4, 224, 1),
    ("gpt2 4L-256", GPT2, "text", "full", "fp32", 8, 128, 1),
    ("llama 4L-256", LLAMA, "text", "full", "fp32", 8, 128, 1),
    ("qwen2 4L-256", QWEN2, "text", "partial", "bf16", 8, 128, 1),
    ("modernbert 4L-256", MODERNBERT, "text", "full", "fp32", 8, 256, 1),
    ("mobilevit-small", MOBILEVIT, "image", "full", "fp32", 4, 256, 1),
    ("segformer 1-1-1-1", SEGFORMER, "image", "full", "fp32", 4, 224, 1),
    ("poolformer 1-1-2-1", POOLFORMER, "image", "linear-probe", "fp32", 8, 224, 1),
    ("dinov2 4L-192", DINOV2, "image", "full", "fp32", 4, 224, 1),
    ("convnextv2 1-1-2-1", CONVNEXTV2, "image", "partial", "bf16", 8, 224, 1),
]

# ------------------------------------------------------------------------------------ child


def child(args: dict[str, Any]) -> dict[str, Any]:
    """Runs in a fresh process: build, three trainer steps, measure the third."""
    import types

    import torch

    from modelwiz.engine import memmeasure, memtrace, recipes, trainer

    torch.manual_seed(0)
    spec, device = args["spec"], args["device"]
    kind = spec["kind"]
    if "folder" in spec:
        from transformers import AutoModelForSequenceClassification

        from modelwiz.engine.adapters.base import hf_load

        model, fresh = hf_load(AutoModelForSequenceClassification, Path(spec["folder"]), ["a", "b"])
    else:
        model, fresh, _ = memtrace.build_model(spec)
        with torch.no_grad():  # the builder skips initialisation; values must be finite
            for p in model.parameters():
                p.normal_(0, 0.02)
    blocks_n = int(args["blocks"])
    plan = memtrace.plan_for_trace(args["strategy"], args["precision"], int(args["batch"]), blocks_n)
    plan.device = device
    plan.grad_accum = int(args["accum"])
    blocks = recipes.find_blocks([n for n, _ in model.named_parameters()], fresh)
    recipes.apply_freeze(model, blocks, args["strategy"], blocks_n)
    model.to(device).train()
    x = int(args["x"])

    def collate(items: list[int], train: bool) -> dict[str, Any]:
        b = len(items)
        if kind == "hf-text":
            ids = torch.randint(5, min(1000, int(getattr(model.config, "vocab_size", 1000))), (b, x))
            mask = torch.ones(b, x, dtype=torch.long)
            mask[: b // 2, x // 2 :] = 0  # padded rows, as a real batch has
            return {"input_ids": ids, "attention_mask": mask}
        return {"pixel_values": torch.randn(b, 3, x, x)}

    def logits(inputs: dict[str, Any]) -> Any:
        return model(inputs["pixel_values"]) if kind == "torchvision" else model(**inputs).logits

    adapter = types.SimpleNamespace(model=model, collate=collate, logits=logits, new_params=fresh)
    optimizer = recipes.make_optimizer(model, blocks, plan)  # the trainer's own
    n = int(args["batch"]) * int(args["accum"])
    data = types.SimpleNamespace(train=types.SimpleNamespace(items=list(range(n)), labels=[i % 2 for i in range(n)]))
    run = memtrace.trainer_run(
        plan=plan,
        data=data,
        adapter=adapter,
        module=model,
        optimizer=optimizer,
        scheduler=recipes.make_scheduler(optimizer, plan, 100),
        scaler=None,
        blocks=blocks,
    )
    idx = list(range(n))
    t0 = time.perf_counter()
    trainer.train_step(run, idx)
    trainer.train_step(run, idx)
    step_s = (time.perf_counter() - t0) / 2
    optimizer.zero_grad(set_to_none=True)
    out: dict[str, Any] = {"step_s": round(step_s, 3)}
    alive = [*model.parameters(), *model.buffers(), *memmeasure.optimizer_tensors(optimizer)]
    with memmeasure.StepPeak(device, alive) as m:
        del alive
        trainer.train_step(run, idx)
    if device.startswith("cuda"):
        out["cuda_allocated"] = m.peak_bytes
        out["cuda_reserved"] = m.reserved_bytes
    else:
        out["cpu_live_peak"] = m.peak_bytes
    return out


# ------------------------------------------------------------------------------------ parent


def candidate_for_case(model: Any, modality: str, tmp: Path, name: str) -> tuple[Any, dict[str, Any]]:
    """(Candidate the predictor sees, spec the child builds)."""
    from modelwiz.engine import memtrace
    from modelwiz.engine.recommend import candidate_for_id
    from modelwiz.engine.sources.base import Candidate

    if model == "minilm":
        cand = candidate_for_id(str(MINILM), "text")
        return cand, {"kind": "hf-text", "folder": str(MINILM)}
    if isinstance(model, str):
        cand = candidate_for_id(model, modality)
        spec = memtrace.spec_for_candidate(cand)
        assert spec is not None, model
        return cand, spec
    folder = tmp / name.replace(" ", "_")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(model), encoding="utf-8")
    cfg = dict(model)
    cand = Candidate(
        id=str(folder),
        name=name,
        source="local",
        modality=modality,
        arch=cfg["model_type"],
        path=str(folder),
        hidden_size=int(cfg.get("hidden_size") or cfg.get("dim") or 0),
        num_layers=int(cfg.get("num_hidden_layers") or cfg.get("n_layers") or 0),
        num_heads=int(cfg.get("num_attention_heads") or cfg.get("n_heads") or 0),
        image_size=int(cfg.get("image_size") or 224),
    )
    return cand, {"kind": "hf-text" if modality == "text" else "hf-image", "config": model}


def run_case(case: tuple[Any, ...], device: str, tmp: Path) -> dict[str, Any]:
    from modelwiz.engine import memory, memtrace
    from modelwiz.engine.errors import UserError

    name, model, modality, strategy, precision, batch, x, accum = case
    cand, spec = candidate_for_case(model, modality, tmp, name)
    entry, where = memory.find_trace(cand)
    t0 = time.perf_counter()
    prec = "fp32" if precision == "fp32" else "bf16"
    if entry is None or prec not in entry.get("strategies", {}).get(strategy, {}):
        try:
            memory.trace_model(cand, strategies=(strategy,), precisions=(precision,))
        except UserError as exc:  # as `recommend` does: the formula stands in, and the row says so
            print(f"  {name}: {exc}", file=sys.stderr)
        entry, where = memory.find_trace(cand)
    trace_s = time.perf_counter() - t0
    est = memory.estimate(
        cand,
        strategy=strategy,
        batch_size=batch,
        seq_len=x,
        image_size=x,
        precision=precision,
        device=device,
        num_labels=2,
        grad_accum=accum,
    )
    blocks = memtrace.default_unfreeze_blocks(int(cand.num_layers or 0))
    payload = {
        "spec": spec,
        "strategy": strategy,
        "precision": precision,
        "batch": batch,
        "x": x,
        "accum": accum,
        "device": device,
        "blocks": blocks,
    }
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(payload)], capture_output=True, text=True, cwd=REPO
    )
    if proc.returncode != 0:
        raise SystemExit(f"{name}: the measuring process failed:\n{proc.stderr[-2000:]}")
    measured = json.loads(proc.stdout.strip().splitlines()[-1])
    row = {
        "name": name,
        "modality": modality,
        "strategy": strategy,
        "precision": precision,
        "batch": batch,
        "x": x,
        "accum": accum,
        "method": est.method,
        "trace": where,
        "trace_s": round(trace_s, 1),
        "predicted_gb": est.peak_gb,
        "peak_phase": est.peak_phase,
        "step_s": measured["step_s"],
    }
    if "cpu_live_peak" in measured:
        row["measured_gb"] = round(measured["cpu_live_peak"] / GB, 4)
        row["rel_error"] = round(est.peak_gb / row["measured_gb"] - 1, 4)
    if "cuda_allocated" in measured:
        row["measured_gb"] = round(measured["cuda_allocated"] / GB, 4)
        row["rel_error"] = round(est.peak_gb / row["measured_gb"] - 1, 4)
        row["reserved_gb"] = round(measured["cuda_reserved"] / GB, 4)
        row["reserved_rel_error"] = round(est.peak_gb / row["reserved_gb"] - 1, 4)
    return row


def speed() -> dict[str, Any]:
    """The recommender's cost of the predictor: ranking the whole catalog (and torchvision's
    registry) for a task, no probe, after imports, against the same ranking with the formula
    (the baseline, measured in the same run). Budget: 0.5 s."""
    from modelwiz.engine import memory
    from modelwiz.engine.config import config_from_dict
    from modelwiz.engine.hardware import HardwareReport
    from modelwiz.engine.recommend import rank
    from modelwiz.engine.sources import catalog, torchvision_registry

    hw = HardwareReport("bench CPU", 2, 2, 16.0, 16.0, "/tmp", 100.0, gpus=[])
    out: dict[str, Any] = {}
    for modality, cands in (("text", catalog.load()), ("image", [*catalog.load(), *torchvision_registry.load()])):
        cands = [c for c in cands if c.modality == modality]
        cfg = config_from_dict({"task": {"train": "x.csv", "modality": modality}, "train": {"max_length": 128}})
        t0 = time.perf_counter()
        memory._table.cache_clear()
        memory._signatures.cache_clear()
        memory._FOUND.clear()
        ranked = rank(cfg, hw, train_size=2000, num_classes=4, candidates=cands)
        traced_s = time.perf_counter() - t0
        traced = sum(r.plan.memory.method == "traced" for r in ranked)
        real_find = memory.find_trace
        memory.find_trace = lambda c: (None, "bench: formula baseline")  # type: ignore[assignment]
        try:
            t0 = time.perf_counter()
            rank(cfg, hw, train_size=2000, num_classes=4, candidates=cands)
            formula_s = time.perf_counter() - t0
        finally:
            memory.find_trace = real_find  # type: ignore[assignment]
        t0 = time.perf_counter()
        rank(cfg, hw, train_size=2000, num_classes=4, candidates=cands)
        warm_s = time.perf_counter() - t0
        out[modality] = {
            "candidates": len(cands),
            "traced": traced,
            "rank_s": round(traced_s, 3),
            "warm_rank_s": round(warm_s, 3),
            "formula_rank_s": round(formula_s, 3),
            "ratio": round(traced_s / formula_s, 2) if formula_s else None,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", help="run the configurations whose name contains one of these (comma-separated)")
    ap.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    ap.add_argument("--speed-only", action="store_true", help="only the recommender-speed figures")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    fast = speed()
    for modality, f in fast.items():
        print(
            f"ranking {f['candidates']} {modality} candidates ({f['traced']} traced): {f['rank_s'] * 1000:.0f} ms, "
            f"{f['ratio']}x the formula-only ranking ({f['formula_rank_s'] * 1000:.0f} ms; again, tables "
            f"loaded: {f['warm_rank_s'] * 1000:.0f} ms); budget 500 ms"
        )
    if args.speed_only:
        if args.json:
            print(json.dumps({"speed": fast}))
        return
    wanted = [w for w in (args.only or "").split(",") if w]
    cases = [c for c in CASES if not wanted or any(w in c[0] for w in wanted)]
    if not MINILM.is_dir():
        cases = [c for c in cases if c[1] != "minilm"]
    rows = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="modelwiz-memacc-") as tmp:
        os.environ["MODELWIZ_CACHE"] = str(Path(tmp) / "cache")  # traces made here stay here
        print(
            f"{'configuration':<28}{'strategy':<13}{'prec':<5}{'batch':>5}{'x':>5}{'acc':>4}  "
            f"{'method':<7}{'predicted':>10}{'measured':>10}{'error':>8}  phase"
        )
        for case in cases:
            row = run_case(case, args.device, Path(tmp))
            rows.append(row)
            print(
                f"{row['name']:<28}{row['strategy']:<13}{row['precision']:<5}{row['batch']:>5}{row['x']:>5}"
                f"{row['accum']:>4}  {row['method']:<7}{row['predicted_gb'] * 1024:>8.1f}MB{row['measured_gb'] * 1024:>8.1f}MB"
                f"{row['rel_error']:>+8.1%}  {row['peak_phase']}",
                flush=True,
            )
    errors = [abs(r["rel_error"]) for r in rows]
    summary: dict[str, Any] = {
        "device": args.device,
        "configurations": len(rows),
        "calibration_configurations": [],
        "max_rel_error": round(max(errors), 4) if errors else None,
        "median_rel_error": round(statistics.median(errors), 4) if errors else None,
        "worst_under_prediction": round(min((r["rel_error"] for r in rows), default=0.0), 4),
        "seconds": round(time.perf_counter() - t_all, 1),
    }
    if args.device.startswith("cuda") and rows:
        reserved = [abs(r["reserved_rel_error"]) for r in rows if "reserved_rel_error" in r]
        summary["reserved_max_rel_error"] = round(max(reserved), 4) if reserved else None
        summary["reserved_median_rel_error"] = round(statistics.median(reserved), 4) if reserved else None
    for fam in ("text", "image"):
        errs = [abs(r["rel_error"]) for r in rows if r["modality"] == fam]
        if errs:
            summary[f"{fam}_max_rel_error"] = round(max(errs), 4)
    print(
        f"{len(rows)} configurations, none used for calibration: max |error| {summary['max_rel_error']:.1%}, "
        f"median {summary['median_rel_error']:.1%}, worst under-prediction {summary['worst_under_prediction']:+.1%} "
        f"({args.device}, {summary['seconds']:.0f} s)"
    )
    if args.json:
        print(json.dumps({**summary, "speed": fast, "rows": rows}))


if __name__ == "__main__":
    main()
