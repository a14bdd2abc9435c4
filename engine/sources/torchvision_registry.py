"""torchvision's classification weights registry, read offline: every weights entry of every
model, each a candidate with its own accuracy and file, on disk when that file is in torch.hub's
cache.

Importing torchvision costs seconds, so the registry is dumped once by a subprocess into a JSON
cache keyed by the installed torchvision version; later reads are a file read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from modelwiz.engine.fsutil import atomic_write_json, read_json
from modelwiz.engine.paths import cache_dir
from modelwiz.engine.sources.base import Candidate

PREFIX = "torchvision:"


def dump_registry() -> list[dict[str, Any]]:
    """Runs in the subprocess: every weights entry of every classification model (a model may
    have several, e.g. MobileNet_V2's IMAGENET1K_V1 and IMAGENET1K_V2), each with its own
    accuracy and file; `default` marks the one torchvision's DEFAULT names."""
    import torchvision
    from torchvision import models

    out = []
    for name in models.list_models(module=models):
        try:
            enum = models.get_model_weights(name)
            default = enum.DEFAULT
        except (ValueError, AttributeError, KeyError):
            continue
        for weights in enum:
            meta = weights.meta
            metrics = meta.get("_metrics", {}).get("ImageNet-1K", {})
            crop = getattr(weights.transforms, "keywords", {}).get("crop_size", 224)
            out.append(
                {
                    "name": name,
                    "weights": weights.name,
                    "default": weights is default,
                    "params": meta.get("num_params", 0),
                    "acc1": metrics.get("acc@1"),
                    "gflops": meta.get("_ops"),
                    "file_size_mb": meta.get("_file_size"),
                    "url": weights.url,
                    "recipe": meta.get("recipe", ""),
                    "min_size": list(meta.get("min_size", (1, 1))),
                    "image_size": int(crop) if isinstance(crop, int) else 224,
                    "categories": len(meta.get("categories") or []),
                }
            )
    return [dict(o, torchvision=torchvision.__version__) for o in out]


def model_id(entry: dict[str, Any]) -> str:
    """`torchvision:NAME` for a model's DEFAULT weights, `torchvision:NAME.WEIGHTS` for another
    entry (what [model] id accepts)."""
    return PREFIX + entry["name"] + ("" if entry.get("default", True) else "." + str(entry["weights"]))


def _cache_file() -> Path | None:
    try:
        version = metadata.version("torchvision")
    except metadata.PackageNotFoundError:
        return None
    return cache_dir() / f"torchvision-registry-v2-{version}.json"  # v2: every weights entry


def registry() -> list[dict[str, Any]]:
    path = _cache_file()
    if path is None:
        return []
    cached = read_json(path)
    if isinstance(cached, list):
        return cached
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "modelwiz.engine.sources.torchvision_registry"],
            capture_output=True,
            text=True,
            timeout=180,
        )
        data = json.loads(proc.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    if isinstance(data, list) and data:
        atomic_write_json(path, data)
        return data
    return []


def weights_file(url: str) -> Path:
    """Where torch.hub keeps a downloaded checkpoint."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "torch"
    )
    return Path(torch_home) / "hub" / "checkpoints" / os.path.basename(url)


def load() -> list[Candidate]:
    out = []
    for m in registry():
        acc = m.get("acc1")
        quality = None if acc is None else round(min(1.0, max(0.0, (float(acc) - 55.0) / 35.0)), 3)
        on_disk = weights_file(m["url"]).is_file()
        out.append(
            Candidate(
                id=model_id(m),
                name=m["name"] if m.get("default", True) else f"{m['name']} ({m.get('weights')})",
                source="torchvision",
                modality="image",
                arch=m["name"],
                params=int(m.get("params") or 0),
                license="bsd-3-clause",
                languages=[],
                on_disk=on_disk,
                path=str(weights_file(m["url"])) if on_disk else None,
                quality=quality,
                quality_note=f"ImageNet-1k top-1 {acc} ({m.get('weights', 'DEFAULT')} weights)"
                if acc is not None
                else "",
                gflops=m.get("gflops"),
                download_mb=float(m["file_size_mb"]) if m.get("file_size_mb") else None,
                image_size=int(m.get("image_size") or 224),
                refs=[m.get("recipe", "")] if m.get("recipe") else [],
            )
        )
    return out


if __name__ == "__main__":
    json.dump(dump_registry(), sys.stdout)
