"""Themes are data: `themes/*.toml` files validated into `textual.theme.Theme` objects.

A theme file holds the fields of `textual.theme.Theme` (name, primary, secondary, accent,
background, surface, panel, foreground, success, warning, error, boost, dark, ...) and an optional
`[variables]` table. modelwiz's own colours are theme variables (`mw-loss-curve`, `mw-val-curve`,
`mw-metric`, `mw-f1-curve`, `mw-bar`); `VARIABLE_DEFAULTS` supplies them for themes that do not set them, so any built-in
Textual theme works too.

Loading never raises: each bad file becomes one line in the returned problem list, which the app
shows as a single notification.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

DEFAULT_THEME = "modelwiz-dark"
FALLBACK_THEME = "textual-dark"  # built into Textual

# modelwiz's app colours; a theme's [variables] table may override them.
VARIABLE_DEFAULTS: dict[str, str] = {
    "mw-loss-curve": "#ffa62b",
    "mw-val-curve": "#E06C75",
    "mw-metric": "#4EBF71",
    "mw-f1-curve": "#61AFEF",
    "mw-bar": "#0178D4",
}

COLOR_KEYS = (
    "primary",
    "secondary",
    "accent",
    "background",
    "surface",
    "panel",
    "foreground",
    "success",
    "warning",
    "error",
    "boost",
)
FLOAT_KEYS = ("luminosity_spread", "text_alpha")
ALLOWED_KEYS = {"name", "dark", "variables", "ansi", *COLOR_KEYS, *FLOAT_KEYS}
_VARIABLE_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_THEME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ThemeFileError(ValueError):
    """A theme file that cannot be used; the message names the key and the problem."""


def theme_from_dict(raw: dict[str, Any]) -> Theme:
    """Validate a parsed theme table into a Theme. Raises ThemeFileError."""
    unknown = sorted(set(raw) - ALLOWED_KEYS)
    if unknown:
        raise ThemeFileError(f"unknown key '{unknown[0]}'")
    name = raw.get("name")
    if not isinstance(name, str) or not _THEME_NAME.match(name):
        raise ThemeFileError("'name' must be a word like \"modelwiz-dark\"")
    if "primary" not in raw:
        raise ThemeFileError("'primary' colour is missing")
    kwargs: dict[str, Any] = {"name": name}
    for key in COLOR_KEYS:
        if key in raw:
            kwargs[key] = _color(key, raw[key])
    if "dark" in raw:
        if not isinstance(raw["dark"], bool):
            raise ThemeFileError("'dark' must be true or false")
        kwargs["dark"] = raw["dark"]
    if "ansi" in raw:
        if not isinstance(raw["ansi"], bool):
            raise ThemeFileError("'ansi' must be true or false")
        kwargs["ansi"] = raw["ansi"]
    for key in FLOAT_KEYS:
        if key in raw:
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ThemeFileError(f"'{key}' must be a number between 0 and 1")
            kwargs[key] = float(value)
    variables = raw.get("variables", {})
    if not isinstance(variables, dict):
        raise ThemeFileError('[variables] must be a table of name = "colour"')
    checked: dict[str, str] = {}
    for key, value in variables.items():
        if not _VARIABLE_NAME.match(key):
            raise ThemeFileError(f"variable name '{key}' must be lower-case words joined by '-'")
        if not isinstance(value, str) or not value.strip():
            raise ThemeFileError(f"variable '{key}' must be a string such as \"#ff8800\"")
        if key in VARIABLE_DEFAULTS:
            _color(f"variables.{key}", value)
        checked[key] = value.strip()
    kwargs["variables"] = checked
    return Theme(**kwargs)


def _color(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ThemeFileError(f"'{key}' must be a colour string such as \"#4FB3BF\"")
    try:
        Color.parse(value)
    except ColorParseError:
        raise ThemeFileError(f"'{key}' = {value!r} is not a colour") from None
    return value


def load_theme_file(path: Path) -> Theme:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ThemeFileError("not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ThemeFileError(f"invalid TOML ({exc})") from None
    except OSError as exc:
        raise ThemeFileError(f"cannot read ({exc.strerror})") from None
    return theme_from_dict(raw)


def theme_dirs() -> list[Path]:
    """The themes shipped with modelwiz (package data of `modelwiz.themes`), then the user's own
    (`$MODELWIZ_HOME/themes`), which override shipped ones of the same name."""
    from modelwiz.engine.paths import modelwiz_home

    return [shipped_themes_dir(), modelwiz_home() / "themes"]


def shipped_themes_dir() -> Path:
    import modelwiz.themes

    return Path(modelwiz.themes.__file__).resolve().parent


def load_themes(folders: Iterable[Path]) -> tuple[list[Theme], list[str]]:
    """Every `*.toml` theme in `folders` (later folders override earlier names) and one line per
    file that could not be used."""
    themes: dict[str, Theme] = {}
    problems: list[str] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                theme = load_theme_file(path)
            except ThemeFileError as exc:
                problems.append(f"{path.name}: {exc}")
                continue
            themes[theme.name] = theme
    return list(themes.values()), problems
