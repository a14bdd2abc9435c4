"""A loss sparkline that keeps the full history and draws about two points per cell."""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import Sparkline


def downsample(values: Sequence[float], target: int) -> list[float]:
    """At most `target` points: the mean of equal consecutive buckets (order preserved)."""
    n = len(values)
    if target <= 0 or n <= target:
        return list(values)
    out: list[float] = []
    for i in range(target):
        lo = i * n // target
        hi = max(lo + 1, (i + 1) * n // target)
        chunk = values[lo:hi]
        out.append(sum(chunk) / len(chunk))
    return out


class LossSparkline(Sparkline):
    """`set_values` stores the whole series; the drawn data is downsampled to ~2x the width."""

    DEFAULT_CSS = """
    LossSparkline { height: 3; }
    LossSparkline > .sparkline--max-color { color: $mw-loss-curve; }
    LossSparkline > .sparkline--min-color { color: $mw-loss-curve 40%; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__([], id=id, classes=classes)
        self._values: list[float] = []

    @property
    def values(self) -> list[float]:
        return self._values

    def set_values(self, values: Sequence[float]) -> None:
        self._values = list(values)
        self._resample()

    def on_resize(self) -> None:
        self._resample()

    def _resample(self) -> None:
        width = self.size.width or 40
        self.data = downsample(self._values, 2 * width)
