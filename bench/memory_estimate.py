"""Predicted training peak memory (modelwiz.engine.memory) against the measured peak.

For each case a fresh subprocess builds the model, runs a few optimizer steps and reports its
peak: on CUDA `torch.cuda.max_memory_allocated` (+ the CUDA context the predictor adds), on the
CPU the process's peak resident set size (ru_maxrss), which includes the Python/torch runtime the
predictor counts as overhead. Prints predicted / measured per case.

    .venv/bin/python bench/memory_estimate.py [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# (name, transformers config kwargs or local folder, strategy, batch, length, precision)
CASES = [
    ("bert-base (random init)", {"model_type": "bert"}, "full", 8, 128, "fp32"),
    ("bert-base (random init)", {"model_type": "bert"}, "full", 16, 128, "fp32"),
    ("bert-base (random init)", {"model_type": "bert"}, "linear-probe", 16, 128, "fp32"),
    ("all-MiniLM-L6-v2", "minilm", "full", 32, 64, "fp32"),
]

CHILD = r"""
import json, resource, sys, time
import torch, torch.nn.functional as F
from transformers import AutoConfig, AutoModelForSequenceClassification, BertConfig
spec, strategy, batch, length, precision, device = json.loads(sys.argv[1])
if isinstance(spec, dict):
    model = AutoModelForSequenceClassification.from_config(BertConfig(num_labels=4))
else:
    model = AutoModelForSequenceClassification.from_pretrained(spec, num_labels=4)
model.to(device).train()
if strategy == "linear-probe":
    for n, p in model.named_parameters():
        p.requires_grad_(n.startswith("classifier"))
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
ids = torch.randint(1000, 2000, (batch, length), device=device)
y = torch.randint(0, 4, (batch,), device=device)
dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
for _ in range(3):
    with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype is not None):
        loss = F.cross_entropy(model(input_ids=ids).logits.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
if device.startswith("cuda"):
    peak = torch.cuda.max_memory_allocated() / 1024**3
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1024**3
params = sum(p.numel() for p in model.parameters())
print(json.dumps({"peak_gb": peak, "params": params}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    from modelwiz.engine.memory import CUDA_CONTEXT_GB, estimate
    from modelwiz.engine.sources.base import Candidate
    from modelwiz.engine.sources.local import candidate_from_folder

    minilm = Path(sys.prefix) / "share/modelwiz/models/all-MiniLM-L6-v2"
    print(f"{'case':<28}{'strategy':<14}{'batch':>6}{'len':>5}  {'predicted':>9}  {'measured':>9}  ratio")
    ratios = []
    for name, spec, strategy, batch, length, precision in CASES:
        if spec == "minilm":
            if not minilm.is_dir():
                continue
            cand = candidate_from_folder(minilm)
            child_spec: object = str(minilm)
        else:
            cand = Candidate(
                id=name,
                name=name,
                source="bench",
                modality="text",
                arch="bert",
                params=0,
                hidden_size=768,
                num_layers=12,
                num_heads=12,
                vocab_size=30522,
            )
            child_spec = spec
        out = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps([child_spec, strategy, batch, length, precision, args.device])],
            capture_output=True,
            text=True,
            check=True,
        )
        measured = json.loads(out.stdout.strip().splitlines()[-1])
        cand.params = cand.params or measured["params"]
        est = estimate(
            cand,
            strategy=strategy,
            batch_size=batch,
            seq_len=length,
            precision=precision,
            device=args.device,
            num_labels=4,
        )
        peak = measured["peak_gb"] + (CUDA_CONTEXT_GB if args.device.startswith("cuda") else 0.0)
        ratios.append(est.total_gb / peak)
        print(f"{name:<28}{strategy:<14}{batch:>6}{length:>5}  {est.total_gb:>8.2f}G  {peak:>8.2f}G  {ratios[-1]:.2f}")
    if ratios:
        worst = max(ratios, key=lambda r: abs(r - 1))
        print(
            f"mean |error| {sum(abs(r - 1) for r in ratios) / len(ratios):.0%}, worst ratio {worst:.2f} ({args.device})"
        )


if __name__ == "__main__":
    main()
