"""Several trainer processes (torchrun, DistributedDataParallel): who this process is, its share
of each step, agreement to stop, and the DDP wrapper. One process is rank 0 of 1 and every
method is then a no-op, so the trainer reads the same either way."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass
class Distributed:
    """This process's place among the DDP processes torchrun started (one process: rank 0 of 1).
    Rank 0 alone writes events, status, checkpoints and the export."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Distributed:
        return cls(
            int(os.environ.get("RANK", "0")),
            int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("LOCAL_RANK", "0")),
        )

    def start(self, plan: Any) -> None:
        """Join the process group (gloo on the CPU, nccl on CUDA), each process on its own GPU."""
        if self.world <= 1:
            return
        import torch
        import torch.distributed as dist

        if plan.device.startswith("cuda"):
            plan.device = f"cuda:{self.local_rank}"
            torch.cuda.set_device(self.local_rank)
        else:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.world))
        dist.init_process_group("nccl" if plan.device.startswith("cuda") else "gloo")

    def stop(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()

    def any(self, flag: bool, device: str) -> bool:
        if self.world <= 1:
            return flag
        import torch
        import torch.distributed as dist

        t = torch.tensor([int(flag)], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def shard(self, idx: list[int]) -> list[int]:
        """This process's share of an optimizer step's examples; the step is first padded by
        repeating its start so every process has as many (and as many micro-batches)."""
        if self.world <= 1:
            return idx
        padded = idx + (idx * self.world)[: (-len(idx)) % self.world]
        return padded[self.rank :: self.world]

    def wrap(self, model: Any, device: str) -> Any:
        if self.world <= 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if device.startswith("cuda") else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
