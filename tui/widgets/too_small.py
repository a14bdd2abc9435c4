"""What a screen shows instead of its content when the terminal is below the minimum size."""

from __future__ import annotations

from textual.widgets import Static

MIN_WIDTH = 60
MIN_HEIGHT = 20


class TooSmall(Static):
    """Hidden unless the screen carries the `-too-narrow` or `-too-short` breakpoint class (see
    modelwiz.tcss); the rest of the screen is hidden then."""

    DEFAULT_CLASSES = "too-small"

    def __init__(self) -> None:
        super().__init__(
            f"Terminal too small.\nmodelwiz needs at least {MIN_WIDTH}×{MIN_HEIGHT} characters.\n\n"
            "Enlarge the window, or press ctrl+q to quit."
        )
