"""torchvision classifiers ("torchvision:NAME"): the model's DEFAULT weights, its last Linear
layer replaced by a new head; exported as a safetensors state dict for
`torchvision.models.get_model(NAME, num_classes=N)`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelwiz.engine.adapters.base import IMAGENET_MEAN, IMAGENET_STD, ImageAdapter, Progress, first_line
from modelwiz.engine.errors import UserError

PREFIX = "torchvision:"


class TorchvisionAdapter(ImageAdapter):
    kind = "torchvision"
    library = "torchvision"
    pipeline_tag = "image-classification"
    priority = 10  # before the generic Hugging Face image family

    @classmethod
    def claims(cls, model_id: str, modality: str) -> bool:
        return model_id.startswith(PREFIX)

    @classmethod
    def for_training(cls, plan: Any, labels: list[str], progress: Progress | None = None) -> TorchvisionAdapter:
        from torchvision import models as tvm

        from modelwiz.engine.sources.torchvision_registry import weights_file

        # "torchvision:NAME" is the DEFAULT weights, "torchvision:NAME.WEIGHTS" another entry
        name, _, entry = plan.model_id[len(PREFIX) :].partition(".")
        try:
            enum = tvm.get_model_weights(name)
            weights = enum[entry] if entry else enum.DEFAULT
        except (ValueError, KeyError, AttributeError):
            raise UserError(
                f"unknown torchvision model '{plan.model_id[len(PREFIX) :]}'; `modelwiz recommend` lists them"
            ) from None
        if plan.offline and not weights_file(weights.url).is_file():
            raise UserError(
                f"torchvision weights for {name} are not on disk ({weights_file(weights.url)}) and "
                "offline mode is on; download them once with network or set [constraints] offline = false"
            )
        try:
            model = tvm.get_model(name, weights=weights)
        except (OSError, RuntimeError) as exc:
            raise UserError(
                f"cannot load torchvision weights for {name}: {first_line(exc)}; check the network or "
                f"place the file at {weights_file(weights.url)}"
            ) from None
        drop_aux_heads(model)
        head = replace_head(model, len(labels))
        fresh = {n for n, _ in model.named_parameters() if n.startswith(head + ".")}
        return cls(
            model, labels, source=name, arch=name, image_size=plan.image_size, new_params=fresh, augment=plan.augment
        )

    @classmethod
    def from_export(cls, model_dir: Path, meta: dict[str, Any]) -> TorchvisionAdapter:
        from safetensors.torch import load_file
        from torchvision import models as tvm

        extra = {"aux_logits": False, "init_weights": False} if meta["arch"] in AUX_HEAD_MODELS else {}
        model = tvm.get_model(meta["arch"], weights=None, num_classes=len(meta["labels"]), **extra)
        model.load_state_dict(load_file(str(model_dir / "model.safetensors")))
        return cls(
            model.eval(),
            meta["labels"],
            source=str(model_dir),
            arch=meta["arch"],
            image_size=int(meta.get("image_size") or 224),
            mean=tuple(meta.get("mean") or IMAGENET_MEAN),
            std=tuple(meta.get("std") or IMAGENET_STD),
        )

    def logits(self, inputs: dict[str, Any]) -> Any:
        return self.model(inputs["pixel_values"])

    def save_model(self, out_dir: Path) -> None:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(out_dir / "model.safetensors"))

    def usage(self, model_dir_name: str) -> str:
        return (
            "```python\nimport torchvision, safetensors.torch\n"
            f'model = torchvision.models.get_model("{self.arch}", weights=None, num_classes={len(self.labels)})\n'
            f'model.load_state_dict(safetensors.torch.load_file("{model_dir_name}/model.safetensors"))\n```\n'
            f"Inputs: RGB images resized to {self.image_size}px, normalised with mean {list(self.mean)} "
            f"and std {list(self.std)}. Class order: {', '.join(self.labels)}.\n"
        )


AUX_HEAD_MODELS = ("googlenet", "inception_v3")


def drop_aux_heads(model: Any) -> None:
    """GoogLeNet and Inception v3 carry auxiliary classifiers that, in training mode, make the
    forward return a tuple; modelwiz fine-tunes the main head only, so they are removed (their
    1000-class layers would be trained by nothing, and the export loads with aux_logits=False)."""
    if getattr(model, "aux_logits", False):
        model.aux_logits = False
        for attr in ("aux1", "aux2", "AuxLogits"):
            if getattr(model, attr, None) is not None:
                setattr(model, attr, None)


def replace_head(model: Any, num_labels: int) -> str:
    """Swap the classifier for a new one with `num_labels` outputs; returns its name. The
    classifier is the last Linear layer or, in networks without one (SqueezeNet), the last 1x1
    convolution of the `classifier` block."""
    import torch.nn as nn

    name = ""
    for n, module in model.named_modules():
        if isinstance(module, nn.Linear):
            name = n
    if not name:
        for n, module in model.named_modules():
            if n.startswith("classifier.") and isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1):
                name = n
    if not name:
        raise UserError("this torchvision model has no Linear classifier layer to replace")
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, attr) if not attr.isdigit() else parent[int(attr)]
    new = (
        nn.Conv2d(old.in_channels, num_labels, kernel_size=1)
        if isinstance(old, nn.Conv2d)
        else nn.Linear(old.in_features, num_labels)
    )
    if attr.isdigit():
        parent[int(attr)] = new
    else:
        setattr(parent, attr, new)
    return name
