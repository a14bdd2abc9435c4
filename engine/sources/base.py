"""The record every model source produces."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Candidate:
    id: str  # what [model].id accepts: Hub id, "torchvision:<name>" or a folder path
    name: str  # short display name
    source: str  # catalog | torchvision | local | hf-cache | hub
    modality: str  # text | image
    arch: str = ""  # model_type (bert, vit, resnet, ...)
    params: int = 0  # parameter count of the backbone
    license: str = "unknown"
    languages: list[str] = field(default_factory=list)  # ["en"], ["multilingual"], [] = unknown
    on_disk: bool = False  # weights present locally right now
    path: str | None = None  # local folder, when on disk
    quality: float | None = None  # prior quality in [0, 1] from a published benchmark
    quality_note: str = ""  # e.g. "GLUE 77.0 (paper)"
    hidden_size: int = 0
    num_layers: int = 0
    num_heads: int = 0
    intermediate_size: int = 0
    vocab_size: int = 0
    max_length: int = 512  # text: max positions
    image_size: int = 224  # image: native input size
    gflops: float | None = None  # image: forward GFLOPs at image_size
    download_mb: float | None = None  # size of the weights file(s) when the source knows it
    refs: list[str] = field(default_factory=list)

    @property
    def available_offline(self) -> bool:
        return self.on_disk

    @property
    def multilingual(self) -> bool:
        return any(lang in ("multilingual", "mul", "xx") for lang in self.languages) or len(self.languages) > 3

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["available_offline"] = self.available_offline
        return d
