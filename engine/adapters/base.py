"""What every model family provides to the trainer, `predict` and the model card.

One adapter per family (Hugging Face text, Hugging Face image, torchvision): loading a backbone
with a new head, turning examples into model inputs, logits, exporting in the family's own format
and the usage snippet of the model card. Adding a family is adding one module to this package
with an `Adapter` subclass; `modelwiz.engine.adapters` finds it.

Adapter modules import torch and friends only inside their methods, so that importing the
package (as the planner does, to name a model's adapter) stays cheap.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from modelwiz.engine.errors import UserError

META_FILE = "modelwiz.json"  # beside an exported model: family, labels, preprocessing
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Progress = Callable[[str], None]


class Adapter(ABC):
    kind: ClassVar[str] = ""  # the name plans and exported models record
    library: ClassVar[str] = ""  # model card: library_name
    pipeline_tag: ClassVar[str] = ""  # model card: pipeline_tag
    priority: ClassVar[int] = 0  # higher claims first

    def __init__(
        self, model: Any, labels: list[str], *, source: str, arch: str, new_params: set[str] | None = None
    ) -> None:
        self.model = model  # a torch.nn.Module
        self.labels = list(labels)
        self.source = source  # where the weights came from
        self.arch = arch
        self.new_params = set(new_params or ())  # parameter names initialised fresh (the head)

    # ---------------------------------------------------------------- which models

    @classmethod
    @abstractmethod
    def claims(cls, model_id: str, modality: str) -> bool:
        """Whether this family loads `model_id` for `modality` (pure: no I/O, no torch)."""

    # ---------------------------------------------------------------- loading

    @classmethod
    @abstractmethod
    def for_training(cls, plan: Any, labels: list[str], progress: Progress | None = None) -> Adapter:
        """The plan's model with a fresh head for `labels`, preprocessing as the plan says."""

    @classmethod
    @abstractmethod
    def from_export(cls, model_dir: Path, meta: dict[str, Any]) -> Adapter:
        """What `export` wrote, ready for inference."""

    # ---------------------------------------------------------------- running

    @abstractmethod
    def collate(self, items: list[Any], *, train: bool) -> dict[str, Any]:
        """Model inputs (CPU tensors) for a list of examples; `train` turns augmentation on."""

    def logits(self, inputs: dict[str, Any]) -> Any:
        return self.model(**inputs).logits

    def check_inputs(self, items: list[str]) -> list[Any]:
        """`predict`'s raw inputs as examples; raises UserError on unusable ones."""
        return list(items)

    def lengths(self, items: list[Any]) -> list[int] | None:
        """The length of each example as `collate` pads it (tokens for text), for grouping and
        ordering batches (engine/batching.py); None where every example is the same size."""
        return None

    # ---------------------------------------------------------------- export

    @abstractmethod
    def save_model(self, out_dir: Path) -> None:
        """Write the weights (and tokenizer/processor) in the family's own format."""

    def preprocessing(self) -> dict[str, Any]:
        """What inference needs to prepare inputs as training did (written to modelwiz.json)."""
        return {}

    @abstractmethod
    def usage(self, model_dir_name: str) -> str:
        """The model card's "How to use" snippet (markdown)."""

    def export(self, out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.save_model(out_dir)
        meta = {
            "format": self.kind,
            "arch": self.arch,
            "labels": self.labels,
            "num_classes": len(self.labels),
            **self.preprocessing(),
        }
        (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return out_dir


def read_meta(model_dir: Path) -> dict[str, Any]:
    try:
        meta = json.loads((model_dir / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UserError(f"{model_dir} holds no exported model ({META_FILE} missing); did the run finish?") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("labels"), list):
        raise UserError(f"{model_dir / META_FILE} is not a modelwiz export description")
    return meta


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def resolve_hf_path(model_id: str, *, offline: bool, progress: Progress | None = None) -> Path:
    """A local folder for a model id: the folder itself, the HF cache, or a download."""
    import os

    p = Path(os.path.expanduser(model_id))
    if p.is_dir():
        return p
    from modelwiz.engine.hub import cached_model_path, download_model

    cached = cached_model_path(model_id)
    if cached is not None:
        return cached
    return download_model(model_id, offline=offline, progress=progress)


def hf_load(auto_cls: Any, path: Path, labels: list[str], *, trust_remote_code: bool = False) -> tuple[Any, set[str]]:
    """A Hugging Face model with a new classification head: (model, names of fresh parameters).
    Safetensors only; code the model ships runs only when the plan says the user trusted it."""
    if not (path / "model.safetensors").is_file() and not (path / "model.safetensors.index.json").is_file():
        raise UserError(
            f"{path} has no model.safetensors; modelwiz loads safetensors weights only "
            "(convert with save_pretrained(..., safe_serialization=True))"
        )
    quiet_transformers()
    try:
        model, info = auto_cls.from_pretrained(
            str(path),
            output_loading_info=True,
            ignore_mismatched_sizes=True,
            use_safetensors=True,
            trust_remote_code=trust_remote_code,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={n: i for i, n in enumerate(labels)},
        )
    except ValueError as exc:
        raise UserError(f"cannot build a classifier from {path}: {first_line(exc)}") from None
    except OSError as exc:
        raise UserError(f"cannot load model from {path}: {first_line(exc)}") from None
    fresh = set(info["missing_keys"])
    for item in info.get("mismatched_keys", ()):
        fresh.add(item[0] if isinstance(item, (tuple, list)) else item)
    return model, fresh | head_parameters(model)


def head_parameters(model: Any) -> set[str]:
    """The classification head's parameters: everything outside the backbone (`base_model_prefix`).
    A folder that is already a classifier with as many labels loads its head too, so what the
    checkpoint lacked is not the head; a linear probe of such a folder trained nothing and failed at
    its first step ("element 0 of tensors does not require grad")."""
    prefix = str(getattr(model, "base_model_prefix", "") or "")
    if not prefix:
        return set()
    return {n for n, _ in model.named_parameters() if not n.startswith(prefix + ".")}


class ImageAdapter(Adapter):
    """Shared by the image families: resize/crop/normalise; when the plan says `augment`, the
    standard augmentation in training (random resized crop, horizontal flip, TrivialAugment).
    Evaluation and prediction are never augmented."""

    def __init__(
        self,
        model: Any,
        labels: list[str],
        *,
        source: str,
        arch: str,
        image_size: int,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        new_params: set[str] | None = None,
        augment: bool = False,
    ) -> None:
        super().__init__(model, labels, source=source, arch=arch, new_params=new_params)
        self.image_size, self.mean, self.std = int(image_size), tuple(mean), tuple(std)
        self.augment = augment
        self._transforms: dict[Any, Any] = {}

    def transform(self, *, train: bool) -> Any:
        augmented = train and self.augment
        if augmented not in self._transforms:
            import torch
            from torchvision.transforms import v2

            size = self.image_size
            tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.mean, self.std)]
            if augmented:
                head = [
                    v2.RandomResizedCrop(size, scale=(0.7, 1.0), antialias=True),
                    v2.RandomHorizontalFlip(),
                    v2.TrivialAugmentWide(),
                ]
            else:
                head = [v2.Resize(int(size * 1.14), antialias=True), v2.CenterCrop(size)]
            self._transforms[augmented] = v2.Compose(head + tail)
        return self._transforms[augmented]

    def collate(self, items: list[Any], *, train: bool) -> dict[str, Any]:
        import torch

        if train and self.augment:
            tf = self.transform(train=True)
            return {"pixel_values": torch.stack([tf(load_image(p)) for p in items])}
        return {"pixel_values": self.normalize(self.eval_pixels(items))}

    def eval_pixels(self, items: list[Any]) -> Any:
        """The images decoded, resized and centre-cropped as evaluation (and unaugmented training)
        reads them, before normalisation: a uint8 batch that every model of this side can share
        (engine/transfer.py InputMemo), whatever its mean and std."""
        import torch
        from torchvision.transforms import v2

        if "geometry" not in self._transforms:
            size = self.image_size
            self._transforms["geometry"] = v2.Compose(
                [v2.Resize(int(size * 1.14), antialias=True), v2.CenterCrop(size), v2.ToImage()]
            )
        geometry = self._transforms["geometry"]
        return torch.stack([geometry(load_image(p)) for p in items])

    def normalize(self, pixels: Any) -> Any:
        """A uint8 batch from `eval_pixels` as the model reads it: scaled to [0, 1], then this
        model's mean and std (the same values `transform` gives one image at a time)."""
        import torch
        from torchvision.transforms.v2 import functional as tf

        return tf.normalize(tf.to_dtype(pixels, torch.float32, scale=True), list(self.mean), list(self.std))

    def check_inputs(self, items: list[str]) -> list[Any]:
        missing = [p for p in items if not Path(p).is_file()]
        if missing:
            raise UserError(f"image {missing[0]} does not exist; pass paths of image files")
        for p in items:
            try:
                load_image(p)
            except OSError as exc:
                raise UserError(f"cannot read image {p}: {first_line(exc)}") from None
        return list(items)

    def preprocessing(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "mean": list(self.mean), "std": list(self.std)}


def load_image(path: str) -> Any:
    """An RGB image; one declaring more pixels than the data check allows (a decompression bomb
    among `predict`'s inputs) is refused before it is decoded."""
    import warnings

    from PIL import Image

    from modelwiz.engine.data import check_image_size, image_too_large

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # check_image_size decides
        try:
            im = Image.open(path)
        except Image.DecompressionBombError:
            raise image_too_large(path) from None
    with im:
        check_image_size(path, im.size)
        return im.convert("RGB")
