"""Predictions from a run's exported model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelwiz.engine.errors import UserError


def predict(run_dir: Path, inputs: list[str], *, top_k: int = 3) -> list[dict[str, Any]]:
    model_dir = Path(run_dir) / "model"
    if not model_dir.is_dir():
        raise UserError(f"run {Path(run_dir).name} has no exported model yet; wait for it to complete or resume it")
    from modelwiz.engine import models

    bundle = models.load_exported(model_dir)
    import json

    meta = json.loads((model_dir / "modelwiz.json").read_text())
    labels: list[str] = meta["labels"]
    import torch

    if bundle.kind == "hf-text":
        enc = bundle.tokenizer(inputs, truncation=True, max_length=512, padding=True, return_tensors="pt")
        batch = dict(enc)
    else:
        missing = [p for p in inputs if not Path(p).is_file()]
        if missing:
            raise UserError(f"image {missing[0]} does not exist; pass paths of image files")
        tf = models.image_transform(bundle, train=False)
        try:
            batch = {"pixel_values": torch.stack([tf(models.load_image(p)) for p in inputs])}
        except OSError as exc:
            raise UserError(f"cannot read an input image: {exc}") from None
    with torch.no_grad():
        probs = torch.softmax(bundle.logits(batch).float(), dim=-1)
    out = []
    for text, row in zip(inputs, probs.tolist()):
        order = sorted(range(len(row)), key=lambda i: -row[i])[:top_k]
        out.append({"input": text, "label": labels[order[0]], "score": round(row[order[0]], 4),
                    "top": [{"label": labels[i], "score": round(row[i], 4)} for i in order]})
    return out
