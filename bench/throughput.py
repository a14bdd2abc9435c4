"""Trainer throughput against a bare PyTorch loop on the same model, data and batch size.

Prints samples/s for both and their ratio (modelwiz / bare). Both runs happen in this
invocation on this machine, so the ratio is what matters, not the absolute figures.

    .venv/bin/python bench/throughput.py [--model FOLDER] [--batch 32] [--length 64] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def bare_loop(model_dir: str, texts: list[str], labels: list[int], batch: int, length: int, seed: int) -> float:
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging

    logging.set_verbosity_error()
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=max(labels) + 1)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    order = torch.randperm(len(texts)).tolist()
    start = time.perf_counter()
    for b in range(0, len(texts), batch):
        idx = order[b : b + batch]
        enc = tok([texts[i] for i in idx], truncation=True, max_length=length, padding=True, return_tensors="pt")
        y = torch.tensor([labels[i] for i in idx])
        loss = F.cross_entropy(model(**enc).logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return len(texts) / (time.perf_counter() - start)


def modelwiz_run(model_dir: str, data_csv: Path, work: Path, batch: int, length: int) -> float:
    from modelwiz.engine import workflow
    from modelwiz.engine.config import load_config
    from modelwiz.engine.runs import wait_for_final

    cfg_path = work / "bench.toml"
    cfg_path.write_text(
        f'[task]\ntrain = "{data_csv}"\nvalidation = 0.2\n[model]\nid = "{model_dir}"\n'
        f"[train]\nepochs = 1\nbatch_size = {batch}\nmax_length = {length}\nlearning_rate = 5e-5\n"
        'strategy = "full"\nprecision = "fp32"\n[constraints]\ndevice = "cpu"\n'
    )
    cfg = load_config(cfg_path)
    cfg.model.id = str(model_dir)
    run = workflow.start_run(cfg, workflow.choose(cfg, workflow.recommend(cfg)), runs_dir=work / "runs")
    state = wait_for_final(run, timeout_s=3600)
    if state != "completed":
        raise SystemExit(f"modelwiz run ended {state}; see {run / 'trainer.log'}")
    report = json.loads((run / "report.json").read_text())
    return report["train"]["samples_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(Path(sys.prefix) / "share/modelwiz/models/all-MiniLM-L6-v2"))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=2, help="alternate the two this many times; best of each")
    args = ap.parse_args()
    from modelwiz.engine.config import config_from_dict
    from modelwiz.engine.data import load_task_data
    from modelwiz.engine.demo import DEMO_DIR

    # the shipped demo data (452 support tickets), split as the trainer will split it
    data = DEMO_DIR / "demo_tickets.csv"
    td = load_task_data(config_from_dict({"task": {"train": str(data)}}).task)
    texts, labels = td.train.items, td.train.labels
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mws, bares = [], []
        for _ in range(args.repeat):
            bares.append(bare_loop(args.model, texts, labels, args.batch, args.length, seed=42))
            mws.append(modelwiz_run(args.model, data, work, args.batch, args.length))
        mw, bare = max(mws), max(bares)
    print(f"model {Path(args.model).name}, {len(texts)} samples, batch {args.batch}, length {args.length}, CPU")
    print(f"bare PyTorch loop : {bare:8.2f} samples/s (best of {' '.join(f'{x:.2f}' for x in bares)})")
    print(f"modelwiz trainer  : {mw:8.2f} samples/s (best of {' '.join(f'{x:.2f}' for x in mws)})")
    print(f"ratio modelwiz/bare: {mw / bare:.3f}")


if __name__ == "__main__":
    main()
