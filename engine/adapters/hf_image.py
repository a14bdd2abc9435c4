"""Hugging Face image classifiers: AutoModelForImageClassification with its image processor's
size and normalisation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelwiz.engine.adapters.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageAdapter,
    Progress,
    hf_load,
    quiet_transformers,
    resolve_hf_path,
)


class HFImageAdapter(ImageAdapter):
    kind = "hf-image"
    library = "transformers"
    pipeline_tag = "image-classification"

    def __init__(self, *args: Any, processor: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.processor = processor

    @classmethod
    def claims(cls, model_id: str, modality: str) -> bool:
        return modality == "image"

    @classmethod
    def for_training(cls, plan: Any, labels: list[str], progress: Progress | None = None) -> HFImageAdapter:
        from transformers import AutoModelForImageClassification

        path = resolve_hf_path(plan.model_id, offline=plan.offline, progress=progress)
        processor = _processor(path, trust_remote_code=plan.trust_remote_code)
        model, fresh = hf_load(AutoModelForImageClassification, path, labels, trust_remote_code=plan.trust_remote_code)
        return cls(
            model,
            labels,
            source=str(path),
            arch=model.config.model_type,
            image_size=plan.image_size,
            mean=_norm(processor, "image_mean", IMAGENET_MEAN),
            std=_norm(processor, "image_std", IMAGENET_STD),
            new_params=fresh,
            processor=processor,
            augment=plan.augment,
        )

    @classmethod
    def from_export(cls, model_dir: Path, meta: dict[str, Any]) -> HFImageAdapter:
        from transformers import AutoModelForImageClassification

        quiet_transformers()
        model = AutoModelForImageClassification.from_pretrained(str(model_dir), use_safetensors=True)
        return cls(
            model.eval(),
            meta["labels"],
            source=str(model_dir),
            arch=meta.get("arch", ""),
            image_size=int(meta.get("image_size") or 224),
            mean=tuple(meta.get("mean") or IMAGENET_MEAN),
            std=tuple(meta.get("std") or IMAGENET_STD),
            processor=_processor(model_dir),
        )

    def save_model(self, out_dir: Path) -> None:
        self.model.save_pretrained(str(out_dir))
        if self.processor is not None:
            self.processor.save_pretrained(str(out_dir))

    def usage(self, model_dir_name: str) -> str:
        return (
            "```python\nfrom transformers import pipeline\n"
            f'clf = pipeline("image-classification", model="PATH/TO/{model_dir_name}")\n'
            'print(clf("image.jpg"))\n```\n'
            f"Training used {self.image_size}px crops normalised with mean {list(self.mean)} and std "
            f"{list(self.std)}.\n"
        )


def _processor(path: Path, *, trust_remote_code: bool = False) -> Any:
    from transformers import AutoImageProcessor

    quiet_transformers()
    try:
        return AutoImageProcessor.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError):
        return None


def _norm(processor: Any, attr: str, default: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(getattr(processor, attr, None) or default)
