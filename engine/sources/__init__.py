"""Where candidate models come from: the built-in catalog, torchvision's weights registry, local
model folders, the local Hugging Face cache and (online) the Hub. Each source yields `Candidate`s."""

from modelwiz.engine.sources.base import Candidate

__all__ = ["Candidate"]
