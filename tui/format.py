"""Formatting shared by the screens: sizes, durations, metrics, model names, one-line errors.

Durations use the engine's own formatter (`modelwiz.engine.recommend.format_seconds`), so the
wizard, `modelwiz recommend` and the ranking reasons say "12 min" the same way.
"""

from __future__ import annotations

from typing import Any

from modelwiz.engine.errors import UserError

__all__ = [
    "DASH",
    "display_model",
    "error_text",
    "fmt_elapsed",
    "fmt_limit",
    "fmt_metric",
    "fmt_params",
    "fmt_seconds",
    "metric_name",
    "number",
]

DASH = "—"  # a figure not known (yet)


def fmt_seconds(seconds: float) -> str:
    """The engine's duration wording; its module (the ranking) is imported on first use, not
    before the first screen (start-up)."""
    from modelwiz.engine.recommend import format_seconds

    return format_seconds(seconds)


METRIC_NAMES = {
    "accuracy": "accuracy",
    "macro_f1": "macro-F1",
    "precision": "precision",
    "recall": "recall",
    "val_loss": "val loss",
    "logme": "LogME",  # a bake-off too short to race compares the contenders' frozen features
}


def number(value: Any) -> float | None:
    """`value` as a float when it is a number (not a bool), else None."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def fmt_params(params: int) -> str:
    """Parameters in millions: '22.7', '125' ('?' when unknown)."""
    if not params:
        return "?"
    m = params / 1e6
    return f"{m:.0f}" if m >= 100 else f"{m:.1f}"


def fmt_elapsed(seconds: float) -> str:
    """A clock reading: '00:12', '1:02:03'."""
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def fmt_limit(value: float | None) -> str:
    """An optional limit for an input field: '' for none."""
    return "" if value is None else f"{value:g}"


def fmt_metric(value: Any) -> str:
    """A metric to four places, or a dash when there is none."""
    v = number(value)
    return DASH if v is None else f"{v:.4f}"


def metric_name(key: str) -> str:
    """How people write a metric: 'macro_f1' -> 'macro-F1'."""
    return METRIC_NAMES.get(key, key)


def display_model(model: str) -> str:
    """A short name for a model id: Hub ids stay, a local folder becomes its last meaningful part."""
    if model.startswith(("/", "~", ".")):
        parts = [x for x in model.rstrip("/").split("/") if x and x not in ("model", "models", "snapshots")]
        return parts[-1] if parts else model
    return model


def error_text(exc: BaseException) -> str:
    """One line for the user: a UserError's own message, anything else named but never a traceback."""
    if isinstance(exc, UserError):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"unexpected error: {type(exc).__name__}" + (f": {text}" if text else "")
