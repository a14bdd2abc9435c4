"""The built-in demo task, shipped as package data (`modelwiz --demo`, `modelwiz --batch --demo`)."""

from __future__ import annotations

from pathlib import Path

from modelwiz.engine.config import Config, load_config
from modelwiz.engine.errors import UserError

DEMO_DIR = Path(__file__).resolve().parent / "data" / "demo"
DEMO_CONFIG = DEMO_DIR / "demo.toml"


def demo_config() -> Config:
    """The demo config (support tickets, 4 classes, all-MiniLM-L6-v2 when it is on disk).
    Raises UserError when the package data is missing."""
    if not DEMO_CONFIG.is_file():
        raise UserError(f"the demo config {DEMO_CONFIG} is missing; reinstall modelwiz or pass a config file")
    return load_config(DEMO_CONFIG)
