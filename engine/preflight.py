"""The pre-flight check of the chosen model: everything about a model that can be refused is
refused here, before a run directory exists or a trainer starts (the data was checked just
before, by `engine.data`).

- a folder (local, or a Hugging Face cache snapshot): `sources.local.check_model_folder` — a
  config.json naming a model_type, safetensors weights with sound headers (pickle weights are
  never loaded), no custom code (`auto_map`) unless `[model] trust_remote_code = true`,
  tokenizer files for a text model;
- a Hub id not on disk: a well-formed id; offline (`[constraints] offline` or `HF_HUB_OFFLINE`)
  it is refused, online the Hub is asked whether it exists, may be read and has safetensors
  weights, and its config.json is checked like a folder's (no weights are downloaded here);
- a torchvision model: offline, its weights must already be on disk.

`check_model` returns notes worth showing (custom code trusted); it raises `UserError` (one line).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from modelwiz.engine.errors import UserError
from modelwiz.engine.sources import local
from modelwiz.engine.sources.base import Candidate

# org/name (or a bare legacy name): letters, digits, '-', '_', '.'; no '--' or '..'; at most 96
# characters; neither part starts or ends with '-' or '.' (huggingface_hub's validate_repo_id).
_HUB_PART = r"[A-Za-z0-9_](?:[\w.-]*[A-Za-z0-9_])?"
HUB_ID = re.compile(rf"^(?:{_HUB_PART}/)?{_HUB_PART}$", re.ASCII)
HUB_ID_MAX = 96

# Hub answers already checked in this process (the wizard and --batch may ask twice).
_REMOTE_OK: dict[tuple[str, bool], list[str]] = {}


def check_hub_id(model_id: str) -> None:
    """Refuse a string that cannot be a Hugging Face model id, naming what is wrong."""
    where = f"[model] id: '{model_id}'"
    if "://" in model_id or model_id.startswith(("huggingface.co/", "hf.co/")):
        tail = "/".join(model_id.split("://")[-1].split("/")[1:3])
        raise UserError(f"{where} is a URL; give the Hub id itself (org/name{f', e.g. {tail}' if tail else ''})")
    if model_id.count("/") > 1:
        raise UserError(f"{where} has more than one '/'; a Hub id is org/name, a folder starts with ./ or /")
    if len(model_id) > HUB_ID_MAX or not HUB_ID.match(model_id) or "--" in model_id or ".." in model_id:
        raise UserError(
            f"{where} is not a folder and not a valid Hugging Face model id (org/name: letters, digits, "
            "'-', '_' and '.'; no spaces, '--' or '..'; at most 96 characters)"
        )


def offline_mode(config: Any) -> bool:
    if config.constraints.offline:
        return True
    from modelwiz.engine.hub import hub_offline

    return hub_offline()


def check_model(candidate: Candidate, config: Any) -> list[str]:
    """Refuse `candidate` for `config` when a run of it would fail or be unsafe; notes to show."""
    trust = bool(getattr(config.model, "trust_remote_code", False))
    if candidate.source == "torchvision" or candidate.id.startswith("torchvision:"):
        if offline_mode(config) and not candidate.on_disk:
            raise UserError(
                f"torchvision weights for {candidate.name} are not on disk and offline mode is on; "
                "download them once with network or set [constraints] offline = false"
            )
        return []
    if candidate.path and Path(candidate.path).is_dir():
        return local.check_model_folder(Path(candidate.path), modality=candidate.modality, trust_remote_code=trust)
    if candidate.source == "local":
        raise UserError(f"model folder {candidate.path or candidate.id} no longer exists; check the path")
    check_hub_id(candidate.id)
    from modelwiz.engine import hub

    cached = hub.cached_model_path(candidate.id)
    if cached is not None:
        return local.check_model_folder(cached, modality=candidate.modality, trust_remote_code=trust)
    if offline_mode(config):
        why = "[constraints] offline = true" if config.constraints.offline else "HF_HUB_OFFLINE is set"
        raise UserError(
            f"model '{candidate.id}' is not a local folder and not in the Hugging Face cache, and {why}; "
            "run once with network, or use a local model folder (./path)"
        )
    key = (candidate.id, trust)
    if key not in _REMOTE_OK:
        cfg = hub.remote_config(candidate.id)
        _REMOTE_OK[key] = local.check_model_config(
            cfg, f"config.json of '{candidate.id}' on the Hub", trust_remote_code=trust
        )
    return list(_REMOTE_OK[key])
