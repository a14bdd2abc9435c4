"""Where modelwiz keeps its files."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def modelwiz_home() -> Path:
    """`$MODELWIZ_HOME`, else the platform's per-user data directory."""
    env = os.environ.get("MODELWIZ_HOME")
    if env:
        return Path(env).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "modelwiz"
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "modelwiz"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "modelwiz"


def default_runs_dir() -> Path:
    return modelwiz_home() / "runs"


def cache_dir() -> Path:
    """Small derived caches (e.g. the torchvision registry read once)."""
    env = os.environ.get("MODELWIZ_CACHE")
    if env:
        return Path(env).expanduser()
    return modelwiz_home() / "cache"


def env_models_dir() -> Path:
    """Model folders installed into this Python environment (`<prefix>/share/modelwiz/models`)."""
    return Path(sys.prefix) / "share" / "modelwiz" / "models"


def model_search_paths() -> list[Path]:
    """Folders scanned for local models: `$MODELWIZ_MODEL_PATH` (colon-separated) first, then
    `$MODELWIZ_HOME/models`, then the models installed into this Python environment."""
    paths: list[Path] = []
    for part in os.environ.get("MODELWIZ_MODEL_PATH", "").split(os.pathsep):
        if part.strip():
            paths.append(Path(part.strip()).expanduser())
    paths.append(modelwiz_home() / "models")
    paths.append(env_models_dir())
    return paths
