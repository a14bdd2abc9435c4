"""Downsampling for the small charts (the memory sparkline): bucket means, order kept."""

from __future__ import annotations

from collections.abc import Sequence


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
