"""Measuring the peak of live tensor memory of one training step (what `engine.memory` predicts).

- CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats` (and the reserved
  peak, which includes the caching allocator's slack).
- CPU: there is no allocator counter, so the step runs under
  `torch.profiler.profile(profile_memory=True)`, whose allocation records come from the CPU
  allocator itself (every allocation and free, a kernel's scratch memory included). Their running
  sum is what the step allocates beyond what was alive when it started; what was alive is counted
  from the distinct storages of the tensors the caller names (parameters, buffers, optimizer
  state). Peak = alive + the maximum of the running sum. Gradients should be freed before the
  step starts (`zero_grad(set_to_none=True)`), as the trainer's step does first: blocks allocated
  before the profiler started are not in its records, so their frees would go unseen.

    with StepPeak("cpu", alive=[*model.parameters(), *model.buffers(), *state_tensors]) as m:
        train_step(...)
    m.peak_bytes

The profiler costs a few percent of one step; measure one steady-state step (the third: AdamW
makes its state at the first), not every step.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def live_bytes(tensors: Iterable[Any]) -> int:
    """Bytes of the distinct storages behind `tensors` (views and shared weights count once)."""
    seen: set[int] = set()
    total = 0
    for t in tensors:
        s = t.untyped_storage()
        if s._cdata not in seen:
            seen.add(s._cdata)
            total += int(s.nbytes())
    return total


def optimizer_tensors(optimizer: Any) -> list[Any]:
    import torch

    return [v for st in optimizer.state.values() for v in st.values() if isinstance(v, torch.Tensor)]


class StepPeak:
    """Context manager: the live-tensor peak of what runs inside it (see the module docstring)."""

    def __init__(self, device: str, alive: Iterable[Any] = ()) -> None:
        self.device = device
        self.alive = list(alive)
        self.peak_bytes = 0
        self.reserved_bytes: int | None = None
        self._prof: Any = None

    def __enter__(self) -> StepPeak:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return self
        from torch.profiler import ProfilerActivity, profile

        self._base = live_bytes(self.alive)
        self.alive = []  # hold no references during the step
        self._prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        self._prof.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.peak_bytes = int(torch.cuda.max_memory_allocated())
            self.reserved_bytes = int(torch.cuda.max_memory_reserved())
            return
        self._prof.__exit__(*exc)
        events = sorted(
            (e for e in self._prof.profiler.kineto_results.events() if e.name() == "[memory]"),
            key=lambda e: e.start_ns(),
        )
        running = peak = 0
        for e in events:
            running += e.nbytes()
            peak = max(peak, running)
        self.peak_bytes = self._base + peak
        self._prof = None
