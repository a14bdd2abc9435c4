"""Loading a backbone with a new classification head, preparing inputs, and exporting.

Three kinds of model are handled:
- Hugging Face text models (AutoModelForSequenceClassification + tokenizer),
- Hugging Face image models (AutoModelForImageClassification + image processor),
- torchvision classifiers ("torchvision:NAME", DEFAULT weights, last Linear replaced).
Weights load from safetensors (Hugging Face) or torchvision's own checkpoints with
`weights_only=True`; remote code is never trusted.

Imports torch lazily: only the trainer and `predict` call into this module.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from modelwiz.engine.errors import UserError

TV_PREFIX = "torchvision:"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Bundle:
    kind: str                       # hf-text | hf-image | torchvision
    model: Any                      # torch.nn.Module
    source_path: str                # folder or torchvision name the weights came from
    new_params: set[str] = field(default_factory=set)    # parameter names initialised fresh (the head)
    tokenizer: Any = None
    processor: Any = None
    image_size: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    arch: str = ""

    def logits(self, batch: dict[str, Any]) -> Any:
        if self.kind == "torchvision":
            return self.model(batch["pixel_values"])
        return self.model(**batch).logits


def resolve_hf_path(model_id: str, *, offline: bool, progress: Callable[[str], None] | None = None) -> Path:
    """A local folder for a model id: the folder itself, the HF cache, or a download."""
    p = Path(os.path.expanduser(model_id))
    if p.is_dir():
        return p
    from modelwiz.engine.hub import cached_model_path, download_model

    cached = cached_model_path(model_id)
    if cached is not None:
        return cached
    return download_model(model_id, offline=offline, progress=progress)


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_for_training(model_id: str, modality: str, label_names: list[str], *, image_size: int | None = None,
                      offline: bool = False, progress: Callable[[str], None] | None = None) -> Bundle:
    num_labels = len(label_names)
    id2label = {i: n for i, n in enumerate(label_names)}
    label2id = {n: i for i, n in enumerate(label_names)}
    if model_id.startswith(TV_PREFIX):
        return _load_torchvision(model_id[len(TV_PREFIX):], num_labels, offline=offline, image_size=image_size)
    path = resolve_hf_path(model_id, offline=offline, progress=progress)
    _quiet_transformers()
    if modality == "text":
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot load a tokenizer from {path} ({_first_line(exc)}); the folder needs "
                            "tokenizer files (tokenizer.json or vocab.txt)") from None
        model, info = _hf_load(AutoModelForSequenceClassification, path, num_labels=num_labels, id2label=id2label,
                               label2id=label2id)
        return Bundle("hf-text", model, str(path), set(info["missing_keys"]) | _mismatched(info), tokenizer=tokenizer,
                      arch=model.config.model_type)
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    try:
        processor = AutoImageProcessor.from_pretrained(str(path))
    except (OSError, ValueError):
        processor = None
    model, info = _hf_load(AutoModelForImageClassification, path, num_labels=num_labels, id2label=id2label,
                           label2id=label2id)
    size = image_size or _processor_size(processor) or int(getattr(model.config, "image_size", 224) or 224)
    mean = tuple(getattr(processor, "image_mean", None) or IMAGENET_MEAN)
    std = tuple(getattr(processor, "image_std", None) or IMAGENET_STD)
    return Bundle("hf-image", model, str(path), set(info["missing_keys"]) | _mismatched(info), processor=processor,
                  image_size=int(size), mean=mean, std=std, arch=model.config.model_type)


def _mismatched(info: dict[str, Any]) -> set[str]:
    out = set()
    for item in info.get("mismatched_keys", ()):
        out.add(item[0] if isinstance(item, (tuple, list)) else item)
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _hf_load(auto_cls: Any, path: Path, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    if not (path / "model.safetensors").is_file() and not (path / "model.safetensors.index.json").is_file():
        raise UserError(f"{path} has no model.safetensors; modelwiz loads safetensors weights only "
                        "(convert with save_pretrained(..., safe_serialization=True))")
    try:
        model, info = auto_cls.from_pretrained(str(path), output_loading_info=True, ignore_mismatched_sizes=True,
                                               use_safetensors=True, trust_remote_code=False, **kwargs)
    except ValueError as exc:
        raise UserError(f"cannot build a classifier from {path}: {_first_line(exc)}") from None
    except OSError as exc:
        raise UserError(f"cannot load model from {path}: {_first_line(exc)}") from None
    return model, info


def _processor_size(processor: Any) -> int | None:
    size = getattr(processor, "crop_size", None) or getattr(processor, "size", None)
    if isinstance(size, dict):
        for key in ("height", "shortest_edge", "width"):
            if size.get(key):
                return int(size[key])
        return None
    if isinstance(size, int):
        return size
    return None


def _last_linear(model: Any) -> tuple[Any, str, Any]:
    import torch.nn as nn

    parent_name, attr, layer = None, None, None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            parent_name, _, attr = name.rpartition(".")
            layer = module
    if layer is None:
        raise UserError("this torchvision model has no Linear classifier layer to replace")
    parent = model.get_submodule(parent_name) if parent_name else model
    return parent, attr, layer


def replace_head(model: Any, num_labels: int) -> str:
    import torch.nn as nn

    parent, attr, layer = _last_linear(model)
    new = nn.Linear(layer.in_features, num_labels)
    if attr.isdigit():
        parent[int(attr)] = new
    else:
        setattr(parent, attr, new)
    prefix = ""
    for name, module in model.named_modules():
        if module is new:
            prefix = name
    return prefix


def _load_torchvision(name: str, num_labels: int, *, offline: bool, image_size: int | None) -> Bundle:
    from torchvision import models as tvm

    from modelwiz.engine.sources.torchvision_registry import weights_file

    try:
        weights = tvm.get_model_weights(name).DEFAULT
    except (ValueError, KeyError, AttributeError):
        raise UserError(f"unknown torchvision model '{name}'; `modelwiz recommend` lists them") from None
    if offline and not weights_file(weights.url).is_file():
        raise UserError(f"torchvision weights for {name} are not on disk ({weights_file(weights.url)}) and offline "
                        "mode is on; download them once with network or set [constraints] offline = false")
    try:
        model = tvm.get_model(name, weights=weights)
    except (OSError, RuntimeError) as exc:
        raise UserError(f"cannot load torchvision weights for {name}: {_first_line(exc)}; check the network or "
                        f"place the file at {weights_file(weights.url)}") from None
    head = replace_head(model, num_labels)
    new = {n for n, _ in model.named_parameters() if n.startswith(head + ".")}
    crop = getattr(weights.transforms, "keywords", {}).get("crop_size", 224)
    return Bundle("torchvision", model, name, new, image_size=int(image_size or crop), arch=name)


# ------------------------------------------------------------------------------------ inputs

def text_encoder(bundle: Bundle, max_length: int) -> Callable[[list[str]], dict[str, Any]]:
    tok = bundle.tokenizer

    def encode(texts: list[str]) -> dict[str, Any]:
        return dict(tok(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt"))

    return encode


def image_transform(bundle: Bundle, *, train: bool) -> Callable[[Any], Any]:
    from torchvision import transforms as T

    size = bundle.image_size
    norm = T.Normalize(bundle.mean, bundle.std)
    if train:
        return T.Compose([T.RandomResizedCrop(size, scale=(0.7, 1.0), antialias=True), T.RandomHorizontalFlip(),
                          T.ToTensor(), norm])
    return T.Compose([T.Resize(int(size * 1.14), antialias=True), T.CenterCrop(size), T.ToTensor(), norm])


def load_image(path: str) -> Any:
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")


# ------------------------------------------------------------------------------------ export

def export(bundle: Bundle, out_dir: Path, label_names: list[str]) -> Path:
    """Write the fine-tuned model in its ecosystem's own format (loadable without modelwiz)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if bundle.kind == "torchvision":
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in bundle.model.state_dict().items()}
        save_file(state, str(out_dir / "model.safetensors"))
        meta = {"format": "torchvision", "arch": bundle.arch, "num_classes": len(label_names), "labels": label_names,
                "image_size": bundle.image_size, "mean": list(bundle.mean), "std": list(bundle.std)}
        (out_dir / "modelwiz.json").write_text(json.dumps(meta, indent=2) + "\n")
        return out_dir
    bundle.model.save_pretrained(str(out_dir))
    if bundle.tokenizer is not None:
        bundle.tokenizer.save_pretrained(str(out_dir))
    if bundle.processor is not None:
        bundle.processor.save_pretrained(str(out_dir))
    meta = {"format": bundle.kind, "arch": bundle.arch, "labels": label_names, "image_size": bundle.image_size}
    (out_dir / "modelwiz.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out_dir


def load_exported(model_dir: Path) -> Bundle:
    """Load what `export` wrote, for `predict`."""
    meta_path = model_dir / "modelwiz.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        raise UserError(f"{model_dir} holds no exported model (modelwiz.json missing); did the run finish?") from None
    if meta["format"] == "torchvision":
        from safetensors.torch import load_file
        from torchvision import models as tvm

        model = tvm.get_model(meta["arch"], weights=None, num_classes=meta["num_classes"])
        model.load_state_dict(load_file(str(model_dir / "model.safetensors")))
        return Bundle("torchvision", model.eval(), str(model_dir), image_size=meta["image_size"],
                      mean=tuple(meta["mean"]), std=tuple(meta["std"]), arch=meta["arch"])
    _quiet_transformers()
    if meta["format"] == "hf-text":
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), use_safetensors=True)
        return Bundle("hf-text", model.eval(), str(model_dir), tokenizer=AutoTokenizer.from_pretrained(str(model_dir)))
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(str(model_dir), use_safetensors=True)
    try:
        processor = AutoImageProcessor.from_pretrained(str(model_dir))
    except (OSError, ValueError):
        processor = None
    return Bundle("hf-image", model.eval(), str(model_dir), processor=processor, image_size=meta.get("image_size", 224),
                  mean=tuple(getattr(processor, "image_mean", None) or IMAGENET_MEAN),
                  std=tuple(getattr(processor, "image_std", None) or IMAGENET_STD))
