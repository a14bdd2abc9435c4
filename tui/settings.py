"""What the wizard remembers between sessions (the theme), in `$MODELWIZ_HOME/settings.json`.

Reading never raises (a missing or broken file is no settings); writing is atomic (a temporary
file, then `os.replace`) and a failure to write is reported, not raised.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def settings_path() -> Path:
    from modelwiz.engine.paths import modelwiz_home

    return modelwiz_home() / "settings.json"


def load_settings(path: Path | None = None) -> dict[str, Any]:
    path = path or settings_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_settings(updates: dict[str, Any], path: Path | None = None) -> str:
    """Merge `updates` into the settings file; '' on success, else one line saying why not."""
    path = path or settings_path()
    data = load_settings(path) | updates
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".settings-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        return f"cannot write {path}: {exc.strerror or exc}"
    return ""
