"""Predictions from a run's exported model, prepared exactly as in training (the export's
modelwiz.json records the family, labels, max length / image size and normalisation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelwiz.engine.errors import UserError


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

    with torch.no_grad():
        probs = torch.softmax(adapter.logits(adapter.collate(items, train=False)).float(), dim=-1)
    labels = adapter.labels
    out = []
    for text, row in zip(inputs, probs.tolist(), strict=True):
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
