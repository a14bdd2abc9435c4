"""Predictions from a run's exported model, prepared exactly as in training (the export's
modelwiz.json records the family, labels, max length / image size and normalisation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelwiz.engine import batching
from modelwiz.engine.errors import UserError

PREDICT_BATCH = 64  # inputs per forward pass


def predict(run_dir: Path, inputs: list[str], *, top_k: int = 3) -> list[dict[str, Any]]:
    model_dir = Path(run_dir) / "model"
    if not model_dir.is_dir():
        raise UserError(f"run {Path(run_dir).name} has no exported model yet; wait for it to complete or resume it")
    from modelwiz.engine.adapters import adapter_class
    from modelwiz.engine.adapters.base import read_meta

    meta = read_meta(model_dir)
    cls = adapter_class(str(meta.get("format")))
    adapter = cls.from_export(model_dir, meta)
    items = adapter.check_inputs(inputs)
    import torch

    # in batches of neighbours by length, longest first (engine/batching.py), put back in order:
    # memory stays bounded however many inputs there are, and a batch pads little
    by_length = batching.eval_order(adapter.lengths(items), len(items))
    rows: list[list[float]] = [[] for _ in items]
    with torch.no_grad():
        for start in range(0, len(items), PREDICT_BATCH):
            part = by_length[start : start + PREDICT_BATCH]
            logits = adapter.logits(adapter.collate([items[i] for i in part], train=False))
            for i, row in zip(part, torch.softmax(logits.float(), dim=-1).tolist(), strict=True):
                rows[i] = row
    labels = adapter.labels
    out = []
    for text, row in zip(inputs, rows, strict=True):
        order = sorted(range(len(row)), key=lambda i: -row[i])[:top_k]
        out.append(
            {
                "input": text,
                "label": labels[order[0]],
                "score": round(row[order[0]], 4),
                "top": [{"label": labels[i], "score": round(row[i], 4)} for i in order],
            }
        )
    return out
