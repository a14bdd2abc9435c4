"""The built-in catalog (engine/data/catalog.json): Hub models with cited metadata."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from modelwiz.engine.sources.base import Candidate

CATALOG_PATH = Path(__file__).resolve().parent.parent / "data" / "catalog.json"


def quality_from_benchmark(bench: dict | None) -> float | None:
    """Map a headline benchmark onto [0, 1] so text and image models share one scale."""
    if not bench or not isinstance(bench.get("value"), (int, float)):
        return None
    name = str(bench.get("name", "")).lower()
    v = float(bench["value"])
    if v <= 1.0:
        v *= 100
    if "imagenet" in name:
        lo, hi = 55.0, 90.0
    elif "glue" in name:
        lo, hi = 60.0, 92.0
    elif "xnli" in name:
        lo, hi = 60.0, 85.0
    elif "sst" in name:
        lo, hi = 80.0, 97.0
    else:
        lo, hi = 50.0, 100.0
    return round(min(1.0, max(0.0, (v - lo) / (hi - lo))), 3)


@lru_cache(maxsize=1)
def _raw() -> tuple[dict, ...]:
    try:
        data = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    return tuple(m for m in data.get("models", []) if isinstance(m, dict) and m.get("id"))


def load() -> list[Candidate]:
    out = []
    for m in _raw():
        bench = m.get("benchmark") or {}
        note = ""
        if bench.get("name") and bench.get("value") is not None:
            note = f"{bench['name']} {bench['value']}"
        refs = [bench["source"]] if bench.get("source") else []
        out.append(
            Candidate(
                id=m["id"],
                name=m["id"].split("/")[-1],
                source="catalog",
                modality=m.get("modality", "text"),
                arch=m.get("arch", ""),
                params=int(m.get("params") or 0),
                license=str(m.get("license") or "unknown").lower(),
                languages=list(m.get("languages") or []),
                quality=quality_from_benchmark(bench),
                quality_note=note,
                hidden_size=int(m.get("hidden_size") or 0),
                num_layers=int(m.get("num_layers") or 0),
                num_heads=int(m.get("num_heads") or 0),
                intermediate_size=int(m.get("intermediate_size") or 0),
                vocab_size=int(m.get("vocab_size") or 0),
                max_length=int(m.get("max_length") or 512),
                image_size=int(m.get("image_size") or 224),
                gflops=m.get("gflops"),
                refs=refs,
            )
        )
    return out
