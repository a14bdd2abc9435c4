"""What this machine has: CPU, RAM, GPUs, Apple MPS and free disk.

CPU, RAM and disk come from psutil in-process (cheap). Accelerators need torch, whose import
costs seconds, so they are read by a small probe subprocess (`python -m modelwiz.engine.hardware --probe`)
and the caller's process never imports torch.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelwiz.engine.errors import UserError

GB = 1024**3


@dataclass
class GPUInfo:
    index: int
    name: str
    total_gb: float
    free_gb: float
    compute_capability: str
    bf16: bool


@dataclass
class HardwareReport:
    cpu_model: str
    cpu_cores_physical: int
    cpu_cores_logical: int
    ram_total_gb: float
    ram_available_gb: float
    disk_path: str
    disk_free_gb: float
    gpus: list[GPUInfo] = field(default_factory=list)
    mps: bool = False
    torch_version: str = ""
    cuda_version: str = ""
    probe_error: str = ""
    torch_threads: int = 0  # threads torch uses for CPU ops by default (the probe's torch.get_num_threads)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HardwareReport:
        d = dict(d)
        d["gpus"] = [GPUInfo(**g) for g in d.get("gpus", [])]
        return cls(**d)

    def device_for(self, requested: str = "auto") -> str:
        """The device a run would use: auto picks the first GPU, then MPS, then the CPU. A device
        asked for by name that this machine lacks is a UserError naming what exists."""
        if requested.startswith("cuda"):
            idx = int(requested.split(":")[1]) if ":" in requested else 0
            if not self.gpus:
                why = f" ({self.probe_error})" if self.probe_error else ""
                raise UserError(
                    f'[constraints] device = "{requested}" but no CUDA GPU was detected{why}; use "auto" or "cpu"'
                )
            if idx not in {g.index for g in self.gpus}:
                raise UserError(
                    f'[constraints] device = "{requested}" but this machine has GPU(s) '
                    f"{', '.join(f'cuda:{g.index}' for g in self.gpus)}"
                )
            return f"cuda:{idx}"
        if requested == "mps" and not self.mps:
            raise UserError('[constraints] device = "mps" but Apple MPS is not available; use "auto" or "cpu"')
        if requested != "auto":
            return requested
        if self.gpus:
            return "cuda:0"
        if self.mps:
            return "mps"
        return "cpu"

    def memory_gb(self, device: str) -> float:
        """Memory available for training on `device` (GPU: free now; CPU/MPS: RAM available)."""
        if device.startswith("cuda"):
            idx = int(device.split(":")[1]) if ":" in device else 0
            for g in self.gpus:
                if g.index == idx:
                    return g.free_gb
            return 0.0
        return self.ram_available_gb

    def bf16_on(self, device: str) -> bool:
        if device.startswith("cuda"):
            idx = int(device.split(":")[1]) if ":" in device else 0
            return any(g.bf16 for g in self.gpus if g.index == idx)
        return False


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
            )
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _existing_parent(path: Path) -> Path:
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def probe_accelerators() -> dict[str, Any]:
    """Run inside the probe subprocess: import torch and describe GPUs and MPS."""
    import torch

    out: dict[str, Any] = {
        "gpus": [],
        "mps": False,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda or "",
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            try:
                free, total = torch.cuda.mem_get_info(i)
            except RuntimeError:
                free, total = props.total_memory, props.total_memory
            out["gpus"].append(
                {
                    "index": i,
                    "name": props.name,
                    "total_gb": round(total / GB, 2),
                    "free_gb": round(free / GB, 2),
                    "compute_capability": f"{props.major}.{props.minor}",
                    "bf16": props.major >= 8,
                }
            )
    mps = getattr(torch.backends, "mps", None)
    out["mps"] = bool(mps is not None and mps.is_available())
    return out


def run_probe(timeout_s: float = 60.0) -> dict[str, Any]:
    """Accelerator facts from a subprocess; on failure a dict with `probe_error`."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "modelwiz.engine.hardware", "--probe"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return {"probe_error": f"accelerator probe timed out after {timeout_s:.0f}s"}
    except OSError as exc:
        return {"probe_error": f"accelerator probe could not start: {exc}"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"probe_error": f"accelerator probe failed: {last}"}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"probe_error": "accelerator probe printed no result"}


def detect(disk_path: str | Path | None = None, *, accelerators: bool = True) -> HardwareReport:
    import psutil

    from modelwiz.engine.paths import default_runs_dir

    vm = psutil.virtual_memory()
    target = _existing_parent(Path(disk_path) if disk_path else default_runs_dir())
    try:
        free = shutil.disk_usage(target).free / GB
    except OSError:
        free = 0.0
    report = HardwareReport(
        cpu_model=cpu_model_name(),
        cpu_cores_physical=psutil.cpu_count(logical=False) or os.cpu_count() or 1,
        cpu_cores_logical=psutil.cpu_count(logical=True) or os.cpu_count() or 1,
        ram_total_gb=round(vm.total / GB, 2),
        ram_available_gb=round(vm.available / GB, 2),
        disk_path=str(target),
        disk_free_gb=round(free, 2),
    )
    if accelerators:
        acc = run_probe()
        report.gpus = [GPUInfo(**g) for g in acc.get("gpus", [])]
        report.mps = bool(acc.get("mps", False))
        report.torch_version = acc.get("torch_version", "")
        report.cuda_version = acc.get("cuda_version", "")
        report.torch_threads = int(acc.get("torch_threads", 0) or 0)
        report.probe_error = acc.get("probe_error", "")
    return report


if __name__ == "__main__":
    if sys.argv[1:] == ["--probe"]:
        facts = probe_accelerators()
        print(json.dumps(facts), flush=True)
        # the speed micro-benchmark of each device, started detached where this machine, torch
        # version and thread count have none yet (engine/speed.py); the probe never waits for it
        from modelwiz.engine.speed import start_missing_benchmarks

        start_missing_benchmarks(["cpu", *(f"cuda:{g['index']}" for g in facts["gpus"][:1])])
    else:
        print(json.dumps(detect().to_dict(), indent=2))
