"""engine/allocator.py: with glibc's thresholds raised, a large tensor freed and asked for again
reuses the heap instead of a fresh mapping whose pages all fault again (the trainer's every step)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from modelwiz.engine import allocator

CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from modelwiz.engine.allocator import keep_freed_memory
    import torch
    kept = keep_freed_memory()
    for _ in range(10):  # 64 MiB, above glibc's largest default mmap threshold (32 MiB); the heap
        torch.ones(16 << 20)  # grows for the first few (PyTorch's aligned blocks fragment it), then holds
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        torch.ones(16 << 20)  # made, written and freed, as a step's activations are
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    print(json.dumps({"kept": kept, "faults": faults}))
    """
)


def _child(env_extra: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k != allocator.OPT_OUT_ENV} | env_extra
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc tunables")
def test_a_freed_large_tensor_is_reused_without_page_faults():
    tuned = _child({})
    default = _child({allocator.OPT_OUT_ENV: "1"})
    assert tuned["kept"] is True and default["kept"] is False
    pages = (64 << 20) // 4096
    # glibc's default maps and unmaps each 64 MiB block: every page faults again, ten times over
    assert default["faults"] > 5 * pages
    assert tuned["faults"] < pages


def test_the_trainer_and_the_speed_benchmark_keep_freed_memory():
    # the rates the benchmark measures are the trainer's only if both run with the same allocator
    import inspect

    from modelwiz.engine import speed, trainer

    assert "tune_allocator(" in inspect.getsource(trainer.train)
    assert "keep_freed_memory()" in inspect.getsource(speed.run_benchmark)


def test_a_cpu_run_tight_on_memory_keeps_the_defaults():
    kept, line = allocator.for_training("cpu", peak_gb=9.0, available_gb=12.0)
    assert not kept and "9.0 GB" in line and "12.0 GB" in line
    kept, line = allocator.for_training("cuda:0", peak_gb=30.0, available_gb=12.0)  # host memory is not the GPU's
    assert kept == (allocator.keep_freed_memory()) and ("kept for reuse" in line or not kept)
