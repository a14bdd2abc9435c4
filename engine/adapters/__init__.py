"""Model families: one module per family, each with an `Adapter` subclass (see base.py).

`kind_for` names the family of a model id (the plan records it); `adapter_class` returns the
class for a recorded kind. Families are found by scanning this package, so adding one is adding
one module.
"""

from __future__ import annotations

import importlib
import pkgutil

from modelwiz.engine.adapters.base import Adapter
from modelwiz.engine.errors import UserError

_FAMILIES: list[type[Adapter]] = []


def families() -> list[type[Adapter]]:
    """Every adapter class in this package, highest priority first."""
    if not _FAMILIES:
        for info in pkgutil.iter_modules(__path__):
            if info.name != "base":
                importlib.import_module(f"{__name__}.{info.name}")

        found: dict[str, type[Adapter]] = {}
        pending = list(Adapter.__subclasses__())
        while pending:
            cls = pending.pop()
            pending += cls.__subclasses__()
            if cls.kind:
                found[cls.kind] = cls
        _FAMILIES.extend(sorted(found.values(), key=lambda c: -c.priority))
    return _FAMILIES


def kind_for(model_id: str, modality: str) -> str:
    for cls in families():
        if cls.claims(model_id, modality):
            return cls.kind
    raise UserError(f"no model family loads '{model_id}' for {modality} data")


def adapter_class(kind: str) -> type[Adapter]:
    for cls in families():
        if cls.kind == kind:
            return cls
    raise UserError(f"unknown model family '{kind}' (known: {', '.join(c.kind for c in families())})")
