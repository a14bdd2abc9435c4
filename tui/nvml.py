"""Device-wide GPU memory for the dashboard, read by the UI process itself through NVML
(nvidia-ml-py's `pynvml`): what every process on the device holds, shown beside the trainer's own
figures from the event stream. NVML is a C library over the driver, not torch: reading it costs
microseconds and no CUDA context.

Where `pynvml` is not importable or NVML does not start (no driver, no GPU) the reader is a no-op:
it answers None, once and for all, and the dashboard shows the trainer's figures alone."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

GB = 1024**3


def _import_pynvml() -> Any:
    import pynvml  # type: ignore[import-not-found]

    return pynvml


def cuda_index(device: str) -> int | None:
    """'cuda' -> 0, 'cuda:1' -> 1; anything else (cpu, mps, '') -> None."""
    if device == "cuda":
        return 0
    if device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    return None


class NvmlReader:
    """`read(index)` -> (used GB, total GB) of the CUDA device the trainer calls cuda:`index`, or
    None. `load` returns the pynvml module (tests pass a fake). Thread-safe: the dashboard calls
    it from a worker thread."""

    def __init__(self, load: Callable[[], Any] | None = None, visible: str | None = None) -> None:
        self._load = load or _import_pynvml
        self._visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
        self._nvml: Any = None
        self._off = False
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return not self._off

    def _handle(self, nvml: Any, index: int) -> Any:
        """CUDA numbers the visible devices; NVML numbers them all (or names them by UUID)."""
        visible = [v.strip() for v in (self._visible or "").split(",") if v.strip()]
        if not visible:
            return nvml.nvmlDeviceGetHandleByIndex(index)
        target = visible[index]
        if target.isdigit():
            return nvml.nvmlDeviceGetHandleByIndex(int(target))
        return nvml.nvmlDeviceGetHandleByUUID(target)

    def read(self, index: int) -> tuple[float, float] | None:
        with self._lock:
            if self._off:
                return None
            try:
                if self._nvml is None:
                    nvml = self._load()
                    nvml.nvmlInit()
                    self._nvml = nvml
                info = self._nvml.nvmlDeviceGetMemoryInfo(self._handle(self._nvml, index))
                return float(info.used) / GB, float(info.total) / GB
            except Exception:  # noqa: BLE001 - not importable, no driver, no such device: no figure
                self._off = True
                return None
