"""Keeping freed tensor memory in the training process, so that a step does not pay the kernel to map
and zero it again.

PyTorch's CPU tensors come from the C library's `malloc`. glibc serves a block larger than its mmap
threshold (dynamic, at most 32 MiB on 64-bit) with a fresh `mmap` and gives it back with `munmap`
when the tensor is freed, and it returns the free top of its heap to the kernel past a trim
threshold. A training step frees its activations and asks for them again in the next step, so every
large activation is a fresh mapping whose every page faults on first write. Measured on this
project's 2-core CPU machine, one thread, MobileNetV2 at batch 8 and 224 px (partial fine-tuning):
the step took 297 ms with glibc's defaults and 209 ms with both thresholds raised; a 1x1 convolution
from 16 to 96 channels at 112 px took 15.0 ms against 2.75 ms, the stem convolution 8.9 ms against
2.1 ms (the convolutions themselves are unchanged: the difference is page faults).

`keep_freed_memory()` raises both thresholds (`mallopt`), so that freed blocks stay in the heap and
are reused. The speed micro-benchmark (engine/speed.py, whose rates must be the trainer's) and the
benchmarks that stand in for the trainer call it first; the trainer calls it through `for_training`,
the probe (engine/transfer.py `probe`: MobileNetV2's features of 100 images, the probe's seconds
for the model 4.6 s with glibc's defaults against 2.9 s) before its first model.
The cost: the process keeps the memory of its largest step until it exits, and the heap fragments
(PyTorch asks for 64-byte-aligned blocks): measured here, MobileNetV2 fully fine-tuned at batch 32
on the CPU, 2.42 s a step against 3.7-4.9 s with glibc's defaults, peak resident memory 4.29 GB
against 3.54 GB (+21%). So a CPU run whose predicted peak is more than HEADROOM of the memory
available keeps glibc's defaults. Blocks of 1 GiB and more are still mapped and unmapped each time.
Elsewhere than glibc it does nothing. Set `MODELWIZ_GLIBC_DEFAULTS=1` to keep glibc's own behaviour
(to measure the difference).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 1 << 30
OPT_OUT_ENV = "MODELWIZ_GLIBC_DEFAULTS"
HEADROOM = 0.5  # a CPU run keeps freed memory only when its predicted peak is at most this share of what is free

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True when they were set (once)."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if not sys.platform.startswith("linux") or os.environ.get(OPT_OUT_ENV, "") not in ("", "0"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _done = bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, THRESHOLD_BYTES))
    return _done


def for_training(device: str, peak_gb: float, available_gb: float) -> tuple[bool, str]:
    """Keep freed memory for a training run unless it trains on the CPU with little room to spare;
    (kept, a line for the run's log)."""
    if device == "cpu" and peak_gb > HEADROOM * available_gb:
        return False, (
            f"memory: glibc's allocator defaults kept (the predicted peak, {peak_gb:.1f} GB, is over "
            f"{HEADROOM:.0%} of the {available_gb:.1f} GB available): large tensors are mapped afresh each step"
        )
    if keep_freed_memory():
        return True, "memory: freed tensor memory is kept for reuse (no page faults on every step's activations)"
    return False, ""
