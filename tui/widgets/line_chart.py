"""A small braille line chart: several series on shared axes, coloured by theme variables.

Why not textual-plotext: a chart of a few hundred points redraws here in well under a millisecond,
needs no dependency pinned below its next major version, and its colours are theme variables like
the rest of the app (`$mw-loss-curve` ...), so a theme switch recolours it with no code. Each series
is downsampled to two points per cell column (braille has two dot columns per cell) before drawing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual.content import Content, Span
from textual.widget import Widget

# braille dot bits by (column 0-1, row 0-3) inside one cell
_DOTS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
AXIS_WIDTH = 7  # "0.8312 " at the left: the top and bottom of the y range


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]  # (x, y), x increasing
    style: str  # a theme variable such as "$mw-loss-curve"


def downsample_points(points: Sequence[tuple[float, float]], target: int) -> list[tuple[float, float]]:
    """At most `target` points: the mean of equal consecutive buckets (first and last kept)."""
    n = len(points)
    if target <= 1 or n <= target:
        return list(points)
    out = []
    for i in range(target):
        lo = i * n // target
        hi = max(lo + 1, (i + 1) * n // target)
        chunk = points[lo:hi]
        out.append((sum(p[0] for p in chunk) / len(chunk), sum(p[1] for p in chunk) / len(chunk)))
    out[0], out[-1] = points[0], points[-1]
    return out


def _line(x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int]]:
    """The dots from (x0, y0) to (x1, y1) (Bresenham)."""
    dots = []
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    err = dx + dy
    while True:
        dots.append((x0, y0))
        if x0 == x1 and y0 == y1:
            return dots
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            x0 += sx
        if e2 <= dx:
            err += dx
            y0 += sy


def plot(
    series: Sequence[Series],
    width: int,
    height: int,
    *,
    y_range: tuple[float, float] | None = None,
    x_range: tuple[float, float] | None = None,
) -> Content:
    """`series` drawn in a `width` x `height` cell area (the y range written at the left)."""
    plot_w = max(1, width - AXIS_WIDTH)
    height = max(1, height)
    drawn = [s for s in series if s.points]
    if not drawn:
        return Content("\n".join([""] * (height // 2) + ["waiting for the first figures …".center(width)]))
    xs = [p[0] for s in drawn for p in s.points]
    ys = [p[1] for s in drawn for p in s.points]
    x_lo, x_hi = x_range if x_range else (min(xs), max(xs))
    y_lo, y_hi = y_range if y_range else (min(ys), max(ys))
    if y_hi - y_lo < 1e-9:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    if x_hi - x_lo < 1e-9:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    cols, rows = 2 * plot_w, 4 * height
    bits = [[0] * plot_w for _ in range(height)]
    owner = [[-1] * plot_w for _ in range(height)]

    def to_dot(x: float, y: float) -> tuple[int, int]:
        cx = round((x - x_lo) / (x_hi - x_lo) * (cols - 1))
        cy = round((y_hi - y) / (y_hi - y_lo) * (rows - 1))
        return min(cols - 1, max(0, cx)), min(rows - 1, max(0, cy))

    for index, s in enumerate(drawn):
        points = [to_dot(x, y) for x, y in downsample_points(s.points, cols)]
        dots = [points[0]]
        for a, b in zip(points, points[1:], strict=False):
            dots.extend(_line(*a, *b)[1:])
        for dx, dy in dots:
            cell_y, cell_x = dy // 4, dx // 2
            bits[cell_y][cell_x] |= _DOTS[dx % 2][dy % 4]
            owner[cell_y][cell_x] = index
    top, bottom = f"{y_hi:.4g}", f"{y_lo:.4g}"
    lines: list[Content] = []
    for row in range(height):
        label = top if row == 0 else bottom if row == height - 1 else ""
        text = label[: AXIS_WIDTH - 1].rjust(AXIS_WIDTH - 1) + "┤"
        spans: list[Span] = []
        chars = []
        for col in range(plot_w):
            b = bits[row][col]
            chars.append(chr(0x2800 + b) if b else " ")
            if b:
                start = AXIS_WIDTH + col
                spans.append(Span(start, start + 1, drawn[owner[row][col]].style))
        lines.append(Content(text + "".join(chars), spans=[Span(0, AXIS_WIDTH, "$text-muted"), *spans]))
    return Content("\n").join(lines)


class LineChart(Widget):
    """Set `series` (and optionally fixed ranges) with `set_series`; drawn at the widget's size."""

    DEFAULT_CSS = """
    LineChart { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.series: list[Series] = []
        self.y_range: tuple[float, float] | None = None
        self.x_range: tuple[float, float] | None = None

    def set_series(
        self,
        series: Sequence[Series],
        *,
        y_range: tuple[float, float] | None = None,
        x_range: tuple[float, float] | None = None,
    ) -> None:
        new = (list(series), y_range, x_range)
        if new != (self.series, self.y_range, self.x_range):
            self.series, self.y_range, self.x_range = new
            self.refresh()

    def render(self) -> Content:
        return plot(self.series, self.size.width, self.size.height, y_range=self.y_range, x_range=self.x_range)
