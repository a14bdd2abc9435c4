"""Models already in the local Hugging Face cache."""

from __future__ import annotations

from pathlib import Path

from modelwiz.engine.sources.base import Candidate
from modelwiz.engine.sources.local import candidate_from_folder, is_model_folder


def load() -> list[Candidate]:
    try:
        from modelwiz.engine.hub import list_cached_models
    except ImportError:
        return []
    out = []
    for entry in list_cached_models():
        folder = Path(entry["path"])
        if not is_model_folder(folder):
            continue
        cand = candidate_from_folder(folder, source="hf-cache", model_id=entry["repo_id"])
        if cand is not None:
            out.append(cand)
    return out
