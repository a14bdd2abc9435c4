"""Class counts as a horizontal bar chart drawn with block characters."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

_EIGHTHS = " ▏▎▍▌▋▊▉"
MAX_ROWS = 12


def bar(fraction: float, width: int) -> str:
    """A bar `fraction` (0..1) of `width` cells, with eighth-cell resolution."""
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    full, rest = divmod(eighths, 8)
    out = "█" * full + (_EIGHTHS[rest] if rest else "")
    if fraction > 0 and not out:
        out = "▏"
    return out


class ClassBalance(Widget):
    """One row per class: name, bar proportional to the count, count."""

    DEFAULT_CSS = """
    ClassBalance { height: auto; }
    """

    counts: reactive[dict[str, int]] = reactive(dict, layout=True)

    def render(self) -> Content:
        counts = self.counts
        if not counts:
            return Content.styled("no data checked yet", "$text-muted")
        width = max(self.size.width, 10)
        items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = items[:MAX_ROWS]
        name_w = min(max(len(name) for name, _ in shown), max(6, width // 2))
        count_w = max(len(str(c)) for _, c in shown)
        bar_w = max(1, width - name_w - count_w - 2)
        biggest = max(c for _, c in shown) or 1
        lines: list[Content] = []
        for name, count in shown:
            label = name if len(name) <= name_w else name[: name_w - 1] + "…"
            lines.append(
                Content.assemble(
                    (label.ljust(name_w) + " ", ""),
                    (bar(count / biggest, bar_w).ljust(bar_w), "$mw-bar"),
                    (" " + str(count).rjust(count_w), ""),
                )
            )
        if len(items) > len(shown):
            lines.append(Content.styled(f"… {len(items) - len(shown)} more classes", "$text-muted"))
        return Content("\n").join(lines)

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[override]
        n = len(self.counts)
        return max(1, min(n, MAX_ROWS) + (1 if n > MAX_ROWS else 0))
