"""How long a training epoch takes: a device micro-benchmark and the costs of the model's own step.

Two parts, neither needing the model's weights:

- **The device.** `python -m modelwiz.engine.speed bench` (a second or two, in a subprocess) measures on
  this machine, for the thread count torch will use: GEMM throughput at a few shapes typical of the
  models (fp32 and bf16), SDPA forward+backward, convolution forward+backward (the input layer, dense
  3x3, 1x1 by channel count, depthwise by kernel and stride: `conv_kind`), pooling, the bandwidth of
  elementwise ops at several sizes, and the dispatch overhead per aten op
  (a tiny model's training step, whose time is all overhead, over the ops it runs). Each rate is a
  curve over the size of one op (FLOPs or bytes per op), since small GEMMs and small elementwise ops
  run far below the peak. Every figure is counted with the same `CostCounter` the model's step is
  counted with, so the two agree on what a FLOP or a byte is. The result is cached on disk per machine
  (CPU model or GPU name), torch version and thread count (`cache_dir()/speed/`). The hardware probe
  starts it in the background when it is missing (`start_benchmark`); until it exists the plan uses
  the old FLOPs formula and says so.
- **The step.** `CostCounter`, a `TorchDispatchMode`, runs over the fake-tensor training step that
  engine/memtrace.py builds (the trainer's `train_step`, its freezing recipe, fused AdamW, autocast)
  and sums, per phase (forward, backward, optimizer) and per op class: matmul FLOPs (mm, addmm, bmm,
  baddbmm; `torch.utils.flop_counter`'s formulas), SDPA FLOPs, convolution FLOPs (per `conv_kind`),
  the bytes read and written by every other op, and the number of ops. Like the memory
  trace it is counted at two batch sizes and three or four lengths / image sides and fitted as
  `P + b * (q0 + q1 x + q2 x^2 [+ q4 x^4])` per figure (the counts are exact polynomials in the batch
  and the length: the fit has no free constant).

Predicted seconds of one micro-batch = sum over classes of cost / rate(cost per op) + ops x dispatch
overhead. An epoch is ceil(train / effective batch) optimizer steps of `grad_accum` micro-batches each
plus the optimizer update, plus the evaluation the trainer runs after every epoch (forward only, on
the validation split, at twice the batch size). Text batches are padded to their longest member
(dynamic padding), so where the data's length statistics are known the length used is the expected
longest of a batch, not max_length.

The table `engine/data/stepcosts.json` (`python -m modelwiz.engine.speed build`) holds the counts of
the catalog and torchvision models and is read here in pure Python: this module imports torch only
inside functions that run in subprocesses.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from modelwiz.engine.errors import UserError
from modelwiz.engine.fsutil import atomic_write_json, read_json
from modelwiz.engine.paths import cache_dir

TABLE_PATH = Path(__file__).resolve().parent / "data" / "stepcosts.json"
TABLE_VERSION = 4  # 3: depthwise convolutions by kernel and stride, 1x1 by channels, the input convolution, pooling; 4: plain copies
# 3: says whether the machine was busy; 4: the trainer's allocator settings; 5: L2 evicted; 6: batch norm's
# backward; 7: plain copies
BENCH_VERSION = 7
PHASES = ("fwd", "bwd", "opt")
STRATEGIES = ("full", "partial", "linear-probe")
PRECISIONS = ("fp32", "bf16")
COUNT_TIMEOUT_S = 900
EVAL_BATCH_MULTIPLIER = 2  # engine/trainer.py evaluates at twice the batch size
# text: tokens per whitespace word of English text for WordPiece/BPE tokenizers, plus the two special
# tokens; used only to turn the data's word-length statistics into tokens
TOKENS_PER_WORD = 1.3
# the quantiles of the data's word lengths (engine/data.py `_stats`) the padded length is read from
LENGTH_QUANTILES = (
    ("min", 0.0),
    ("p10", 0.10),
    ("p25", 0.25),
    ("median", 0.5),
    ("p75", 0.75),
    ("p90", 0.90),
    ("p95", 0.95),
    ("p99", 0.99),
    ("max", 1.0),
)
SPECIAL_TOKENS = 2


# ----------------------------------------------------------------------------- the cost counter


def op_class(func: Any, args: Any, kwargs: Any, out: Any = None) -> tuple[str, float] | None:
    """(class, cost) of one aten op: FLOPs for matmul / sdpa / conv classes, bytes read and written
    (or elements, see mem_class) for the rest; None for ops that move no data (views, metadata)."""
    import torch
    import torch.utils.flop_counter as fc
    from torch.utils._pytree import tree_leaves

    name = func.__name__
    packet = func._overloadpacket
    leaves = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    if packet in (torch.ops.aten.mm, torch.ops.aten.addmm, torch.ops.aten.bmm, torch.ops.aten.baddbmm):
        dtype = str(leaves[-1].dtype).removeprefix("torch.")
        # a batch of small matrices (attention's QK^T and AV) runs far slower than one GEMM
        kind = "bmm" if packet in (torch.ops.aten.bmm, torch.ops.aten.baddbmm) else "mm"
        return f"{kind}.{dtype}", float(fc.flop_registry[packet](*args, **kwargs, out_val=out))
    if "scaled_dot_product" in name or "flash_attention" in name or "efficient_attention" in name:
        q = leaves[1] if "backward" in name else leaves[0]
        dtype = str(q.dtype).removeprefix("torch.")
        if "backward" in name:
            g, q, k, v = leaves[:4]
            flops = fc.sdpa_backward_flop_count(g.shape, q.shape, k.shape, v.shape)
        else:
            q, k, v = leaves[:3]
            flops = fc.sdpa_flop_count(q.shape, k.shape, v.shape)
        return f"sdpa.{dtype}", float(flops)
    if packet in (torch.ops.aten.convolution, torch.ops.aten.convolution_backward):
        backward = packet is torch.ops.aten.convolution_backward
        x, w = (leaves[1], leaves[2]) if backward else (leaves[0], leaves[1])
        y = leaves[0] if backward else out
        groups = int(args[9] if backward else args[8])
        stride = args[4] if backward else args[3]
        dtype = str(x.dtype).removeprefix("torch.")
        kind = conv_kind(
            groups=groups,
            in_channels=int(w.shape[1]) * groups,
            out_channels=int(w.shape[0]),
            kernel=[int(k) for k in w.shape[2:]],
            stride=[int(v) for v in (stride if isinstance(stride, (list, tuple)) else [stride])],
        )
        # 2 * output elements * (input channels per group x kernel); the backward computes the input's
        # and the weight's gradients, each as much as the forward (flop_counter's backward formula
        # ignores groups)
        fwd = 2.0 * y.numel() * math.prod(int(k) for k in w.shape[1:])
        if backward:
            mask = args[10] if len(args) > 10 else [True, True, False]
            fwd *= int(bool(mask[0])) + int(bool(mask[1]))
        return f"{kind}{'_bwd' if backward else ''}.{dtype}", fwd
    if func.is_view or name in _FREE_OPS:
        return None
    if packet is torch.ops.aten.embedding:  # reads the rows it gathers, not the whole table
        return "mem", float(leaves[1].numel() * leaves[1].element_size() + _nbytes(out))
    cls = mem_class(name)
    if cls == "mem.copy" and _plain_copy(name, args, out):  # bytes read and written once each
        src = args[1] if name.startswith("copy_") else args[0]
        return "mem.clone", float(src.numel() * src.element_size() + _nbytes(out))
    if cls in ("mem.rng", "mem.softmax"):
        # compute-bound per element (random draws; exp), whatever the bytes: elements made, by dtype
        outs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)] or leaves
        return f"{cls}.{str(outs[0].dtype).removeprefix('torch.')}", float(sum(t.numel() for t in outs))
    if cls == "mem.pool":  # bytes, but at a rate of its own per dtype (bf16 pooling is slow on CPUs)
        return f"{cls}.{str(leaves[0].dtype).removeprefix('torch.')}", float(
            sum(t.numel() * t.element_size() for t in leaves) + _nbytes(out)
        )
    return cls, float(sum(t.numel() * t.element_size() for t in leaves) + _nbytes(out))


# depthwise convolutions run at a rate set by their kernel and stride, not their size (measured here,
# one thread, fp32, over 12 shapes from 16 channels at 112 px to 960 at 7 px: forward 17 GFLOP/s at
# 3x3 stride 1, 7 at stride 2, 40 at 5x5, 62 at 7x7, each within about 15% whatever the shape;
# backward 13, 5, 4.6 and 4.8), so each (kernel, stride) is its own class; other kernels count as
# the nearest of these
DEPTHWISE_KERNELS = (3, 5, 7)
# a network's first convolution reads the image (3 channels, or 1 or 4): a slow path of its own
INPUT_CHANNELS_MAX = 4
# a 1x1 convolution is a GEMM whose rate is set by its channel counts more than its size (measured
# here, one thread, bf16: 58-61 GFLOP/s from 24 or 32 channels, 90 from 64, 167-260 from 96-128,
# 337 from 192; fp32 130-180 throughout), so it is classed by the smaller of its two channel counts
CONV1X1_CHANNELS = (32, 64, 128, 256)


def conv_kind(
    *, groups: int, in_channels: int, kernel: list[int], stride: list[int], out_channels: int | None = None
) -> str:
    """The class of a convolution: depthwise by kernel and stride, the input layer, 1x1 by channels,
    or dense."""
    if groups > 1 and groups == in_channels:
        k = min(DEPTHWISE_KERNELS, key=lambda d: (abs(d - max(kernel)), d))
        return f"convdw_k{k}s{1 if max(stride) == 1 else 2}"
    if groups == 1 and in_channels <= INPUT_CHANNELS_MAX:
        return "convin"
    if all(k == 1 for k in kernel):
        out_channels = in_channels if out_channels is None else out_channels
        c = min(
            CONV1X1_CHANNELS, key=lambda d: (abs(math.log(d) - math.log(max(1, min(in_channels, out_channels)))), d)
        )
        return f"conv1x1_c{c}"
    return "conv"


def _plain_copy(name: str, args: Any, out: Any) -> bool:
    """Whether a copy op (clone, copy_, _to_copy) is a plain memory copy: the same dtype and the same
    dense layout on both sides. Such a copy runs at memory bandwidth (EfficientNet-B0's forward makes
    50 of them: measured 17 ms in a step where a layout-changing copy's rate predicted 104 ms), far
    faster than a transpose or a cast (`mem.copy`)."""
    import torch

    if not isinstance(out, torch.Tensor) or not args:
        return False
    src = args[1] if name.startswith("copy_") and len(args) > 1 else args[0]
    if not isinstance(src, torch.Tensor):
        return False
    return (
        src.dtype == out.dtype
        and tuple(src.shape) == tuple(out.shape)
        and tuple(src.stride()) == tuple(out.stride())
        and (src.is_contiguous() or src.is_contiguous(memory_format=torch.channels_last))
    )


def _nbytes(out: Any) -> int:
    import torch
    from torch.utils._pytree import tree_leaves

    return sum(t.numel() * t.element_size() for t in tree_leaves(out) if isinstance(t, torch.Tensor))


def mem_class(name: str) -> str:
    """The class of an op that is not a matmul or convolution: random numbers (dropout), batch norm,
    pooling, the other normalisations, softmax, copies and casts (of which op_class tells plain copies,
    `mem.clone`, apart), or any other elementwise / reduction op. Each runs at its own rate (`bench`
    measures all eight): per byte read and written (pooling by
    dtype), but random draws and softmax per element made, by dtype."""
    if "bernoulli" in name or "dropout" in name or name.startswith(("rand", "normal", "uniform")):
        return "mem.rng"
    if "batch_norm" in name:
        return "mem.bn"
    if "pool" in name:
        return "mem.pool"
    if "norm" in name and "clip" not in name and "_foreach_norm" not in name and "linalg" not in name:
        return "mem.norm"
    if "softmax" in name:
        return "mem.softmax"
    if name.startswith(("clone", "copy", "_to_copy", "contiguous")):
        return "mem.copy"  # layout changes (transposed to contiguous) and dtype casts (autocast)
    return "mem"


# ops that move no data or only metadata (detach / alias / empty allocations)
_FREE_OPS = {"detach", "alias", "empty", "empty_strided", "empty_like", "lift_fresh", "_to_copy_noop"}


def _counter_class() -> Any:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    _DEVICE = torch.ops.prim.device.default
    _ITEM = torch.ops.aten._local_scalar_dense.default

    class CostCounter(TorchDispatchMode):
        """Sums per phase and op class: cost (FLOPs or bytes) and op count (see the module docstring)."""

        def __init__(self, fake: bool = False) -> None:
            super().__init__()
            self.fake = fake
            self.phase = "fwd"
            self.costs: dict[str, dict[str, list[float]]] = {ph: {} for ph in PHASES}
            self.ops: dict[str, int] = dict.fromkeys(PHASES, 0)

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            if func is _DEVICE:
                return func(*args, **kwargs)
            if func is _ITEM and self.fake:  # a fake tensor has no value (loss.item(), isfinite)
                dtype = args[0].dtype
                return True if dtype == torch.bool else (1.0 if dtype.is_floating_point else 1)
            out = func(*args, **kwargs)
            self.ops[self.phase] += 1
            got = op_class(func, args, kwargs, out)
            if got is not None:
                cls, cost = got
                slot = self.costs[self.phase].setdefault(cls, [0.0, 0])
                slot[0] += cost
                slot[1] += 1
            return out

        def figures(self) -> dict[str, float]:
            """Flat {"phase:class": cost, "phase:class#n": ops of the class, "phase:ops": all ops}."""
            out: dict[str, float] = {}
            for ph in PHASES:
                out[f"{ph}:ops"] = float(self.ops[ph])
                for cls, (cost, n) in self.costs[ph].items():
                    out[f"{ph}:{cls}"] = float(cost)
                    out[f"{ph}:{cls}#n"] = float(n)
            return out

    return CostCounter


def count_step(
    model: Any,
    fresh: set[str],
    kind: str,
    *,
    strategy: str,
    precision: str,
    batch: int,
    x: int,
    native: int,
    unfreeze_blocks: int,
) -> dict[str, float]:
    """Cost figures of one steady-state `trainer.train_step` of the fake-tensor `model` (the caller
    has the FakeTensorMode active), built as engine/memtrace.py builds its traced step."""
    from types import SimpleNamespace

    import torch

    from modelwiz.engine import recipes, trainer
    from modelwiz.engine.memtrace import HEAD_LABELS, _TraceAdapter, plan_for_trace, trainer_run

    plan = plan_for_trace(strategy, precision, batch, unfreeze_blocks)
    names = [n for n, _ in model.named_parameters()]
    blocks = recipes.find_blocks(names, fresh)
    recipes.apply_freeze(model, blocks, strategy, unfreeze_blocks)
    optimizer = recipes.make_optimizer(model, blocks, plan)
    for group in optimizer.param_groups:  # AdamW's state as its first step makes it (memtrace.trace_step)
        for p in group["params"]:
            if p.requires_grad:
                st = optimizer.state[p]
                fused = group.get("fused") or group.get("capturable")
                st["step"] = torch.ones((), dtype=torch.float32) if fused else torch.tensor(1.0)
                st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    counter = _counter_class()(fake=True)

    def mark(phase: str) -> None:
        counter.phase = {"fwd1": "fwd", "bwd1": "bwd", "opt": "opt"}.get(phase, counter.phase)

    run = trainer_run(
        plan=plan,
        data=SimpleNamespace(
            train=SimpleNamespace(items=list(range(batch)), labels=[i % HEAD_LABELS for i in range(batch)])
        ),
        adapter=_TraceAdapter(model, fresh, kind, x, native, mark),
        module=model,
        optimizer=optimizer,
        scheduler=SimpleNamespace(step=lambda: None),
        scaler=None,
        blocks=blocks,
    )
    with counter:
        trainer.train_step(run, list(range(batch)))
    optimizer.zero_grad(set_to_none=True)
    optimizer.state.clear()
    return counter.figures()


def fit_figures(
    counts: dict[tuple[int, int], dict[str, float]], basis: tuple[int, ...], batches: tuple[int, int]
) -> dict[str, list[float]]:
    """Each figure as [P, q_0, q_1, ...] with value = P + b * sum(q_k x**basis_k), from counts at
    batch b1 and every x, and at batch b2 and one x (as memtrace.fit_points fits memory)."""
    import numpy as np

    b1, b2 = batches
    xs = sorted({x for (b, x) in counts if b == b1})
    x1 = next(x for (b, x) in counts if b == b2)
    keys = sorted({k for c in counts.values() for k in c})
    vander = np.array([[float(x) ** e for e in basis] for x in xs])
    out: dict[str, list[float]] = {}
    for key in keys:
        lo, hi = counts[(b1, x1)].get(key, 0.0), counts[(b2, x1)].get(key, 0.0)
        q_x1 = (hi - lo) / (b2 - b1)
        p = lo - b1 * q_x1
        rhs = np.array([q_x1 if x == x1 else (counts[(b1, x)].get(key, 0.0) - p) / b1 for x in xs])
        q = np.linalg.solve(vander, rhs) if len(xs) > 1 else rhs
        out[key] = [float(f"{p:.7g}"), *(float(f"{v:.7g}") for v in q)]
    return out


def count_model(
    spec: dict[str, Any],
    *,
    strategies: tuple[str, ...] = STRATEGIES,
    precisions: tuple[str, ...] = PRECISIONS,
    num_layers: int = 0,
) -> dict[str, Any]:
    """One table entry: the step's cost figures fitted in batch and length/size, per strategy and
    precision. Runs in the calling process (imports torch)."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    from modelwiz.engine import memtrace

    t0 = time.time()
    model, fresh, attn = memtrace.build_model(spec)
    kind = spec["kind"]
    config = getattr(model, "config", None)
    mode = FakeTensorMode()
    memtrace.to_fake(model, mode)
    model.train()
    xs, basis, native = memtrace.trace_shapes(spec, config)
    if kind != "hf-text" and len(xs) > 1:
        works = [x for x in xs if memtrace._accepts_size(model, kind, x, native, mode)]
        if len(works) < len(xs):
            xs, basis = (native,), (0,)
    if kind != "hf-text" and len(xs) > 1:
        xs = xs[-3:] if len(basis) == 3 else xs  # a CNN: three sizes fit 1, px, px^2
    pair_at = native if native in xs else xs[-1]
    if not num_layers and config is not None:
        num_layers = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layers", 0) or 0)
    blocks = memtrace.default_unfreeze_blocks(num_layers)
    b1, b2 = memtrace.TRACE_BATCHES
    entry: dict[str, Any] = {
        "kind": kind,
        "arch": getattr(config, "model_type", None) or spec.get("name", ""),
        "attn": attn,
        "basis": list(basis),
        "counted_at": {"batch": [b1, b2], "x": list(xs)},
        "native": native,
        "partial_blocks": blocks,
        "torch": torch.__version__.split("+")[0],
        "strategies": {},
    }
    with mode:
        for strategy in strategies:
            s_entry: dict[str, Any] = {}
            for precision in precisions:
                counts = {}
                for b, x in [(b1, x) for x in xs] + [(b2, pair_at)]:
                    counts[(b, x)] = count_step(
                        model,
                        fresh,
                        kind,
                        strategy=strategy,
                        precision=precision,
                        batch=b,
                        x=x,
                        native=native,
                        unfreeze_blocks=blocks,
                    )
                s_entry[precision] = fit_figures(counts, tuple(basis), (b1, b2))
            entry["strategies"][strategy] = s_entry
    entry["seconds"] = round(time.time() - t0, 1)
    return entry


# ----------------------------------------------------------------------------- the micro-benchmark


def bench_clock(device: str = "cpu") -> Any:
    """The clock the benchmark times with: on the CPU with one thread this process's CPU time (what
    the work costs, whatever else runs on a shared machine), else wall-clock time."""
    import torch

    return time.process_time if device == "cpu" and torch.get_num_threads() == 1 else time.perf_counter


def _measure(
    fn: Any, *, min_s: float = 0.006, max_reps: int = 100, rounds: int = 3, device: str = "cpu", before: Any = None
) -> float:
    """Seconds per call of `fn` (after one warm-up call): the median of `rounds` rounds, each
    repeating it until `min_s` has passed. `before`, when given, runs untimed before every call."""
    clock = bench_clock(device)
    fn()
    per_call = []
    for _ in range(rounds):
        reps, elapsed = 0, 0.0
        t0 = clock()
        while True:
            if before is not None:
                before()
                t0 = clock()
            fn()
            reps += 1
            elapsed = elapsed + clock() - t0 if before is not None else clock() - t0
            if elapsed >= min_s or reps >= max_reps:
                per_call.append(elapsed / reps)
                break
    return sorted(per_call)[len(per_call) // 2]


def l2_bytes() -> int:
    """This CPU's L2 cache per core (Linux sysfs), else 2 MiB."""
    try:
        text = Path("/sys/devices/system/cpu/cpu0/cache/index2/size").read_text(encoding="ascii").strip()
        return int(text[:-1]) * {"K": 1 << 10, "M": 1 << 20}[text[-1]] if text[-1] in "KM" else int(text)
    except (OSError, ValueError, IndexError, KeyError):
        return 2 << 20


def _counted(fn: Any) -> tuple[dict[str, list[float]], int]:
    """({class: [cost, ops]}, all ops) of one call of `fn` on real tensors."""
    counter = _counter_class()(fake=False)
    with counter:
        fn()
    merged: dict[str, list[float]] = {}
    for ph in PHASES:
        for cls, (c, n) in counter.costs[ph].items():
            slot = merged.setdefault(cls, [0.0, 0])
            slot[0] += c
            slot[1] += n
    return merged, sum(counter.ops.values())


def run_benchmark(device: str = "cpu", threads: int = 0) -> dict[str, Any]:
    """Rates of this device (see the module docstring): {class: [[cost per op, cost per second], ...]}
    and the dispatch overhead in seconds per op. Runs in the calling process (imports torch)."""
    import torch
    import torch.nn.functional as F

    from modelwiz.engine.allocator import keep_freed_memory

    keep_freed_memory()  # as the trainer does: the rates are the trainer's
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = torch.device(device)
    # the load before any of this benchmark's own work adds to it
    load, busy = machine_load(torch.get_num_threads()) if dev.type == "cpu" else (0.0, False)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    t_all = time.perf_counter()

    # dispatch overhead: a tiny model's full training step (forward, backward, fused AdamW), all overhead
    tiny = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.GELU(), torch.nn.Linear(4, 2))
    tiny.to(dev)
    opt = torch.optim.AdamW(tiny.parameters(), lr=1e-3, fused=True)
    xb, yb = torch.randn(2, 4, device=dev), torch.tensor([0, 1], device=dev)

    def tiny_step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(tiny(xb).float(), yb)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tiny.parameters(), 1.0)
        opt.step()
        sync()

    _, tiny_ops = _counted(tiny_step)
    overhead = _measure(tiny_step, min_s=0.03, device=dev.type) / max(tiny_ops, 1)
    one = torch.ones(1, device=dev)

    def bare_op() -> None:
        torch.add(one, one)
        sync()

    bare = _measure(bare_op, min_s=0.01, device=dev.type)

    rates: dict[str, list[list[float]]] = {}
    # inside a training step an op's inputs were written by the ops before it, not by the same op a
    # moment ago: each timed call first overwrites twice the L2 cache, so its inputs come from L3
    scratch = torch.empty(2 * l2_bytes() // 4, dtype=torch.float32) if dev.type == "cpu" else None
    flush = os.environ.get("MODELWIZ_BENCH_EVICT", "1") != "0"

    def evict() -> None:
        if scratch is not None and flush:
            scratch.fill_(1.0)

    def others_seconds(costs: dict[str, list[float]], cls: str) -> float:
        """Seconds of the classes other than `cls` in `costs`, at their rates measured so far."""
        return sum(c / _interp(rates[k], c / max(n, 1)) for k, (c, n) in costs.items() if k != cls and rates.get(k))

    def rate(fn: Any, cls: str) -> tuple[dict[str, list[float]], int, float]:
        """Add a point to `cls`'s curve: its cost over the time `fn` takes, less the dispatch of its
        ops and the time of the other classes it runs (at their rates measured so far). Returns
        what it counted and timed: (costs, ops, seconds)."""
        costs, ops = _counted(fn)
        t = _measure(fn, device=dev.type, before=evict)
        busy = max(t - ops * bare - others_seconds(costs, cls), t * 0.2)
        cost, n = costs[cls]
        rates.setdefault(cls, []).append([cost / n, cost / busy])
        return costs, ops, t

    def backward_rate(fwd: tuple[dict[str, list[float]], int, float], both: Any, cls: str) -> None:
        """Add a point to `cls`_bwd's curve, a class whose forward and backward ops are classed alike
        (batch norm): the cost and time of `both` (forward + backward) beyond the forward's (`fwd`,
        what `rate` returned for it)."""
        costs_f, ops_f, t_f = fwd
        costs, ops = _counted(both)
        t = _measure(both, device=dev.type, before=evict)
        cost, n = costs[cls][0] - costs_f[cls][0], costs[cls][1] - costs_f[cls][1]
        busy = max(t - t_f - (ops - ops_f) * bare - others_seconds(costs, cls), (t - t_f) * 0.2, 1e-9)
        if cost > 0 and n > 0:
            rates.setdefault(f"{cls}_bwd", []).append([cost / n, cost / busy])

    # elementwise and normalisation ops, forward and backward, at several sizes (in cache to DRAM)
    for n in (1 << 12, 1 << 16, 1 << 20, 1 << 23):
        a = torch.randn(n // 256, 256, device=dev, requires_grad=True)
        b = torch.randn(n // 256, 256, device=dev)
        w = torch.ones(256, device=dev, requires_grad=True)
        bn = torch.nn.BatchNorm2d(32).to(dev)
        side = max(4, int((n / 128) ** 0.5))
        img = torch.randn(4, 32, side, side, device=dev, requires_grad=True)

        def elementwise(a: Any = a, b: Any = b) -> None:
            (F.gelu(a) * b + a).sum().backward()
            sync()

        def norm(a: Any = a, w: Any = w) -> None:
            F.layer_norm(a, (256,), w).sum().backward()
            sync()

        def batch_norm_fwd(bn: Any = bn, img: Any = img) -> None:
            with torch.no_grad():  # training mode: the batch's statistics, as a training step's forward
                bn(img)
            sync()

        grad = torch.randn_like(img)

        def batch_norm(bn: Any = bn, img: Any = img, g: Any = grad) -> None:
            # a dense gradient, as a network's layers pass back (a sum's is one value broadcast,
            # which sends batch norm's backward down a slower path)
            bn(img).backward(g)
            sync()

        def copy(a: Any = a) -> None:
            a.t().contiguous().to(torch.bfloat16).sum().backward()
            sync()

        def clone(b: Any = b) -> None:  # a plain copy: same dtype, same layout
            b.clone()
            sync()

        rate(elementwise, "mem")
        rate(norm, "mem.norm")
        # a batch norm's backward moves more bytes than its forward but runs far faster per byte
        # (EfficientNet-B0's step here, one thread: forward 4.1 GB/s, backward 12.4 GB/s), so the
        # two phases have a curve each: the forward's own, the backward's from the excess
        backward_rate(rate(batch_norm_fwd, "mem.bn"), batch_norm, "mem.bn")
        rate(copy, "mem.copy")
        rate(clone, "mem.clone")
    for dtype in (torch.float32, torch.bfloat16):
        tag = str(dtype).removeprefix("torch.")
        # random draws (dropout, and the mask SDPA's math path draws) and softmax, forward + backward
        for n in (1 << 14, 1 << 18, 1 << 22):
            a = torch.randn(n // 96, 96, device=dev, dtype=dtype, requires_grad=True)

            def softmax(a: Any = a) -> None:
                a.softmax(-1).sum().backward()
                sync()

            def dropout(a: Any = a) -> None:  # nn.Dropout on the CPU: a mask drawn with bernoulli_
                torch.empty_like(a).bernoulli_(0.9)
                sync()

            rate(softmax, f"mem.softmax.{tag}")
            rate(dropout, f"mem.rng.{tag}")
        # pooling, forward + backward: a CNN stem's 3x3 max pool, and a 2x2 average pool (DenseNet's
        # transitions; a global average pool to 1x1 runs as a mean, an elementwise op)
        for shape, pool in (((4, 64, 112, 112), "max"), ((4, 64, 56, 56), "max"), ((4, 128, 56, 56), "avg")):
            img = torch.randn(*shape, device=dev, dtype=dtype, requires_grad=True)

            def pooling(img: Any = img, pool: str = pool) -> None:
                y = F.max_pool2d(img, 3, 2, 1) if pool == "max" else F.avg_pool2d(img, 2)
                y.sum().backward()
                sync()

            rate(pooling, f"mem.pool.{tag}")
        # batched small GEMMs: attention's QK^T and AV (batch x heads, length, head size)
        for bh, sq, d in ((24, 64, 32), (96, 128, 64), (192, 96, 32)):
            q = torch.randn(bh, sq, d, device=dev, dtype=dtype)
            kt = torch.randn(bh, d, sq, device=dev, dtype=dtype)

            def bmm(q: Any = q, kt: Any = kt) -> None:
                torch.bmm(q, kt)
                sync()

            rate(bmm, f"bmm.{tag}")
        # GEMMs: tokens x hidden x 4*hidden and smaller
        for m, k, n in ((16, 64, 64), (64, 128, 256), (256, 384, 1536), (1024, 768, 3072)):
            a = torch.randn(m, k, device=dev, dtype=dtype)
            b = torch.randn(k, n, device=dev, dtype=dtype)

            def mm(a: Any = a, b: Any = b) -> None:
                torch.mm(a, b)
                sync()

            rate(mm, f"mm.{tag}")
        # attention forward + backward
        for bh, s, d in ((4, 64, 32), (12, 128, 64)):
            q, k_, v = (torch.randn(1, bh, s, d, device=dev, dtype=dtype, requires_grad=True) for _ in range(3))

            def sdpa(q: Any = q, k_: Any = k_, v: Any = v) -> None:
                F.scaled_dot_product_attention(q, k_, v).sum().backward()
                sync()

            rate(sdpa, f"sdpa.{tag}")
        # convolutions at shapes of CNN blocks (the stem, 3x3, 1x1, depthwise, stride 1 and 2): the
        # forward alone (frozen layers), then forward + backward, whose excess is the backward's rate
        depthwise = [
            (conv_kind(groups=c, in_channels=c, kernel=[k], stride=[st]), c, c, hw, c, k, st)
            for k in DEPTHWISE_KERNELS
            for st in (1, 2)
            for c, hw in ((32, 112), (240, 14))
        ]
        # two shapes a channel class: expanding and projecting, at the sides models run them at
        pointwise = [
            (conv_kind(groups=1, in_channels=ci, out_channels=co, kernel=[1], stride=[1]), ci, co, hw, 1, 1, 1)
            for ci, co, hw in (
                (32, 192, 56),
                (144, 24, 56),
                (64, 256, 28),
                (384, 64, 14),
                (128, 512, 14),
                (576, 96, 14),
                (256, 1024, 7),
                (1152, 320, 7),
            )
        ]
        for cls, cin, cout, hw, groups, ksz, stride in (
            ("convin", 3, 32, 224, 1, 3, 2),
            ("convin", 3, 64, 224, 1, 7, 2),
            ("conv", 64, 64, 56, 1, 3, 1),
            ("conv", 128, 128, 28, 1, 3, 1),
            ("conv", 256, 256, 7, 1, 3, 1),
            *pointwise,
            *depthwise,
        ):
            conv = torch.nn.Conv2d(cin, cout, ksz, stride, padding=ksz // 2, groups=groups, bias=False).to(dev, dtype)
            xi = torch.randn(4, cin, hw, hw, device=dev, dtype=dtype, requires_grad=cin != 3)

            def cv_fwd(conv: Any = conv, xi: Any = xi) -> None:
                with torch.no_grad():
                    conv(xi)
                sync()

            def cv(conv: Any = conv, xi: Any = xi) -> None:
                conv(xi).sum().backward()
                sync()

            rate(cv_fwd, f"{cls}.{tag}")
            rate(cv, f"{cls}_bwd.{tag}")
    return {
        "version": BENCH_VERSION,
        "device": device,
        "machine": machine_name(device),
        "torch": torch.__version__.split("+")[0],
        "threads": torch.get_num_threads(),
        "overhead_s_per_op": overhead,
        "tiny_step_ops": tiny_ops,
        "bare_s_per_op": bare,
        "clock": "cpu" if dev.type == "cpu" and torch.get_num_threads() == 1 else "wall",
        "rates": {k: sorted(v) for k, v in rates.items()},
        "seconds": round(time.perf_counter() - t_all, 2),
        "measured_at": time.time(),
        "load": round(load, 2),
        "busy": busy,
    }


def machine_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return str(torch.cuda.get_device_name(torch.device(device)))
    from modelwiz.engine.hardware import cpu_model_name

    return cpu_model_name()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")[:60] or "unknown"


def bench_path(machine: str, torch_version: str, threads: int) -> Path:
    return cache_dir() / "speed" / f"bench-{_slug(machine)}-torch{_slug(torch_version)}-t{threads}.json"


def default_threads(hardware: Any = None) -> int:
    """Threads torch uses for CPU ops in a process started without settings: OMP_NUM_THREADS, else
    what the hardware probe's torch reported, else the CPUs this process may run on."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if int(getattr(hardware, "torch_threads", 0) or 0) > 0:
        return int(hardware.torch_threads)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def find_benchmark(device: str, hardware: Any, threads: int | None = None) -> dict[str, Any] | None:
    """The cached benchmark of this device, torch version and thread count, or None."""
    if device.startswith("cuda"):
        idx = int(device.split(":")[1]) if ":" in device else 0
        names = [g.name for g in getattr(hardware, "gpus", []) if g.index == idx]
        machine = names[0] if names else ""
        threads = 0
    elif device == "cpu":
        machine = str(getattr(hardware, "cpu_model", "") or "")
        threads = default_threads(hardware) if threads is None else threads
    else:
        return None
    torch_version = str(getattr(hardware, "torch_version", "") or "").split("+")[0]
    if not machine or not torch_version:
        return None
    path = bench_path(machine, torch_version, threads)
    try:
        stamp = path.stat().st_mtime
    except OSError:
        return None
    if _BENCHES.get(path, (None, None))[0] != stamp:  # read once per process, again when rewritten
        _BENCHES[path] = (stamp, read_json(path))
    got = _BENCHES[path][1]
    if isinstance(got, dict) and got.get("version") == BENCH_VERSION and got.get("rates"):
        return got
    return None


_BENCHES: dict[Path, tuple[float | None, Any]] = {}


def lock_path(device: str) -> Path:
    """The file `start_benchmark` writes while a benchmark of `device` is under way."""
    return cache_dir() / "speed" / f"running-{_slug(device)}.lock"


def start_benchmark(device: str = "cpu") -> bool:
    """Start `python -m modelwiz.engine.speed bench` detached when its result is not cached (and no
    other start is under way); returns whether one was started. Never waits for it."""
    lock = lock_path(device)
    try:
        if lock.exists() and time.time() - lock.stat().st_mtime < LOCK_FRESH_S:
            return False
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text(str(os.getpid()), encoding="utf-8")
        subprocess.Popen(
            [sys.executable, "-m", "modelwiz.engine.speed", "bench", "--device", device, "--if-missing"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return False
    return True


LOCK_FRESH_S = 120  # a start lock older than this belongs to a benchmark that died
BENCH_WAIT_S = 90  # the longest a trainer waits for a benchmark under way (alone it takes ~10 s)


def benchmark_running(device: str = "cpu") -> bool:
    """Whether a benchmark of `device` started by `start_benchmark` is under way (its lock is fresh)."""
    try:
        return time.time() - lock_path(device).stat().st_mtime < LOCK_FRESH_S
    except OSError:
        return False


def wait_for_benchmark(device: str, stop: Any = lambda: False, timeout_s: float = BENCH_WAIT_S) -> float:
    """Wait until no benchmark of `device` is under way (at most `timeout_s`, or until `stop()`);
    returns the seconds waited. A training started beside the benchmark slows both: measured here
    on 2 cores, the demo's first epochs took 60 and 42 s instead of 7 s, and the benchmark 105 s
    instead of 8 (its result then marked busy and measured again)."""
    t0 = time.monotonic()
    while benchmark_running(device) and time.monotonic() - t0 < timeout_s and not stop():
        time.sleep(0.25)
    return time.monotonic() - t0


def machine_load(threads: int) -> tuple[float, bool]:
    """(1-minute load average, whether that is busy for a CPU benchmark at `threads` threads): the
    other runnable work beyond the cores the benchmark leaves free. On a busy machine torch's
    threads wait on one another and small ops run up to 100x slower (measured here: 0.2 against
    87 GFLOP/s for a 4-MFLOP matrix product at 2 threads on 2 cores), so rates measured then say
    nothing about a training that runs alone."""
    try:
        load = os.getloadavg()[0]
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return 0.0, False
    limit = max(0.5, 0.25 * cpus) + max(0, cpus - max(1, threads))
    now = _running_now()
    # the 1-minute average lags: what ran a minute ago does not make the machine busy now
    return load, load > limit and (now is None or now > limit)


def _running_now() -> int | None:
    """Processes runnable right now besides this one (Linux /proc/loadavg), else None."""
    try:
        field = Path("/proc/loadavg").read_text(encoding="ascii").split()[3]
        return max(0, int(field.split("/")[0]) - 1)
    except (OSError, IndexError, ValueError):
        return None


def _stale(path: Path, threads: int) -> bool:
    """Whether the cached benchmark at `path` is missing or of another version (find_benchmark
    would not use it), or was measured busy while now is quiet (a CPU's; a GPU's is never busy)."""
    got = read_json(path, default=None) if path.is_file() else None
    if not isinstance(got, dict) or got.get("version") != BENCH_VERSION:
        return True
    return bool(got.get("busy")) and not machine_load(threads)[1]


def start_missing_benchmarks(devices: list[str]) -> list[str]:
    """In a process that has torch imported (the hardware probe): start the benchmark of each
    device whose result is not cached, or was measured while the machine was busy and now it is
    not; the devices started. MODELWIZ_SPEED_BENCH=0 turns it off."""
    import torch

    if os.environ.get("MODELWIZ_SPEED_BENCH", "1") == "0":
        return []
    started = []
    version = torch.__version__.split("+")[0]
    for device in devices:
        threads = torch.get_num_threads() if device == "cpu" else 0
        if _stale(bench_path(machine_name(device), version, threads), threads) and start_benchmark(device):
            started.append(device)
    return started


def _interp(curve: list[list[float]], size: float) -> float:
    """Rate at `size` per op: linear in log(size) between the measured points, flat outside."""
    if not curve:
        return 0.0
    if size <= curve[0][0]:
        return curve[0][1]
    if size >= curve[-1][0]:
        return curve[-1][1]
    for (s0, r0), (s1, r1) in zip(curve, curve[1:], strict=False):
        if s0 <= size <= s1:
            f = (math.log(size) - math.log(s0)) / (math.log(s1) - math.log(s0)) if s1 > s0 else 0.0
            return r0 + f * (r1 - r0)
    return curve[-1][1]


# ----------------------------------------------------------------------------- prediction (pure Python)


def _value(coefs: list[float], basis: list[int], batch: float, x: float) -> float:
    return coefs[0] + batch * sum(c * x**e for c, e in zip(coefs[1:], basis, strict=True))


def phase_figures(entry: dict[str, Any], strategy: str, precision: str, batch: float, x: float) -> dict[str, float]:
    """The step's cost figures at this batch and length / side."""
    strategy = "full" if strategy == "gradual" else strategy
    prec = "fp32" if precision == "fp32" else "bf16"
    fig = entry["strategies"][strategy][prec]
    basis = list(entry["basis"])
    return {k: max(0.0, _value(v, basis, batch, x)) for k, v in fig.items()}


DTYPES = ("float32", "bfloat16", "float16")


def _curve(rates: dict[str, list[list[float]]], cls: str) -> list[list[float]]:
    """The benchmarked curve for an op class: its own; else the same class in float32 (a dtype not
    benchmarked); else GEMMs for batched GEMMs, convolutions and attention; else elementwise ops."""
    head, _, dtype = cls.rpartition(".")
    if cls in rates:
        return rates[cls]
    if dtype in DTYPES and f"{head}.float32" in rates:
        return rates[f"{head}.float32"]
    if cls.startswith(("bmm", "conv", "sdpa")):
        return rates.get(f"mm.{dtype}") or rates.get("mm.float32", [])
    return rates.get("mem", [])


def phase_seconds(figures: dict[str, float], bench: dict[str, Any], phases: tuple[str, ...]) -> float:
    """Seconds of these phases on the benchmarked device."""
    rates = bench["rates"]
    total = 0.0
    for ph in phases:
        total += figures.get(f"{ph}:ops", 0.0) * float(bench["overhead_s_per_op"])
        for key, cost in figures.items():
            if not key.startswith(ph + ":") or key.endswith("#n") or key.endswith(":ops") or cost <= 0:
                continue
            cls = key.split(":", 1)[1]
            # a class whose backward ops are classed as its forward's (batch norm) has a backward curve
            curve = rates[f"{cls}_bwd"] if ph == "bwd" and f"{cls}_bwd" in rates else _curve(rates, cls)
            n = max(1.0, figures.get(key + "#n", 1.0))
            r = _interp(curve, cost / n)
            total += cost / r if r > 0 else 0.0
    return total


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    data = read_json(TABLE_PATH)
    if not isinstance(data, dict) or data.get("version") != TABLE_VERSION:
        return {"version": TABLE_VERSION, "models": {}, "entries": {}}
    return data


def cache_path(key: str) -> Path:
    return cache_dir() / "stepcost" / f"{key}.json"


def _cached_entry(spec: dict[str, Any]) -> dict[str, Any] | None:
    from modelwiz.engine.memtrace import spec_key

    try:
        got = read_json(cache_path(spec_key(spec)))
    except (OSError, ValueError):
        return None
    if isinstance(got, dict) and got.get("version") == TABLE_VERSION and isinstance(got.get("entry"), dict):
        return got["entry"]
    return None


def find_costs(cand: Any) -> tuple[dict[str, Any] | None, str]:
    """(cost entry, where from): the shipped table, the on-disk cache (counted on demand), or a table
    entry of the same architecture; (None, why not) otherwise."""
    table = _table()
    m = table.get("models", {}).get(cand.id)
    if m and m.get("entry") in table.get("entries", {}):
        return table["entries"][m["entry"]], "table"
    from modelwiz.engine.memory import signature
    from modelwiz.engine.memtrace import spec_for_candidate

    try:
        spec = spec_for_candidate(cand)
    except (OSError, ValueError):
        spec = None
    if spec is not None:
        entry = _cached_entry(spec)
        if entry is not None:
            return entry, "cache"
    sig = signature(cand)
    if sig:
        for mm in table.get("models", {}).values():
            e = table["entries"].get(mm.get("entry"), {})
            if e.get("signature") == sig:
                return e, "table (same architecture)"
    return None, "no step-cost count of this architecture"


def expected_padded_length(
    stats: dict[str, float] | None, batch: int, max_length: int, *, sorted_window: int = 0
) -> float | None:
    """Expected longest member (in tokens) of a batch of `batch` texts drawn from the data, from its
    word-length statistics (min, median, p95, max, and the other quantiles of LENGTH_QUANTILES where
    given): the quantile function is taken as piecewise linear through them. Random batches: E[max of b draws] = integral of Q(u) * b * u^(b-1) du.
    Batches cut from windows of `sorted_window` examples sorted by length (engine/batching.py):
    the k-th of the window's m batches ends at quantile k/m, so the mean of Q(k/m). None when unknown."""
    if not stats or not all(k in stats for k in ("min", "median", "p95", "max")):
        return None
    pts = [(u, float(stats[k])) for k, u in LENGTH_QUANTILES if k in stats]

    def q(u: float) -> float:
        for (u0, v0), (u1, v1) in zip(pts, pts[1:], strict=False):
            if u <= u1:
                return v0 + (v1 - v0) * ((u - u0) / (u1 - u0) if u1 > u0 else 0.0)
        return pts[-1][1]

    b = max(1, int(batch))
    if sorted_window > b:
        m = math.ceil(sorted_window / b)
        words = sum(q(k / m) for k in range(1, m + 1)) / m
    else:
        n = 400
        words = sum(q((i + 0.5) / n) * b * ((i + 0.5) / n) ** (b - 1) for i in range(n)) / n
    tokens = words * TOKENS_PER_WORD + SPECIAL_TOKENS
    return float(min(max_length, max(1.0, tokens)))


def predict_epoch(
    cand: Any,
    *,
    strategy: str,
    batch_size: int,
    grad_accum: int,
    precision: str,
    device: str,
    hardware: Any,
    train_size: int,
    val_size: int,
    x: float,
    eval_x: float | None = None,
    unfreeze_blocks: int | None = None,
) -> tuple[float, float, str] | None:
    """(seconds per epoch of training, seconds of the evaluation after it, note) from the step's
    counted costs and the device benchmark; None when either is missing."""
    if device == "mps":
        return None
    bench = find_benchmark(device, hardware)
    entry, where = find_costs(cand)
    if bench is None or entry is None:
        return None
    strategy = "full" if strategy == "gradual" else strategy
    prec = "fp32" if precision == "fp32" else "bf16"
    if prec not in entry.get("strategies", {}).get(strategy, {}):
        return None
    b = max(1, int(batch_size))
    fig = phase_figures(entry, strategy, precision, b, x)
    micro = phase_seconds(fig, bench, ("fwd", "bwd"))
    opt = phase_seconds(fig, bench, ("opt",))
    note = ""
    blocks = int(entry.get("partial_blocks") or 1)
    if strategy == "partial" and unfreeze_blocks and unfreeze_blocks != blocks:
        probe = entry["strategies"].get("linear-probe", {})
        full = entry["strategies"].get("full", {})
        if prec in probe and prec in full:
            lo = phase_seconds(phase_figures(entry, "linear-probe", precision, b, x), bench, ("fwd", "bwd"))
            hi = phase_seconds(phase_figures(entry, "full", precision, b, x), bench, ("fwd", "bwd"))
            micro = min(hi, lo + (micro - lo) * unfreeze_blocks / blocks)
            note = f"partial with {unfreeze_blocks} blocks interpolated from the count of {blocks}"
    accum = max(1, int(grad_accum))
    steps = math.ceil(max(1, train_size) / (b * accum))
    train_s = steps * opt + (max(1, train_size) / b) * micro
    eval_s = 0.0
    if val_size:
        eb = b * EVAL_BATCH_MULTIPLIER
        efig = phase_figures(entry, strategy, precision, eb, eval_x if eval_x is not None else x)
        eval_s = math.ceil(val_size / eb) * phase_seconds(efig, bench, ("fwd",))
    threads = f", {bench['threads']} threads" if device == "cpu" else ""
    what = "; ".join(n for n in (f"step costs ({where})", note) if n)
    return train_s, eval_s, f"time: {what} and this {device}'s measured rates ({bench['machine']}{threads})"


def bench_warning(device: str, hardware: Any) -> str:
    """One line when the device's benchmark ran while the machine was busy, else ''."""
    bench = find_benchmark(device, hardware) if device == "cpu" else None
    if not bench or not bench.get("busy"):
        return ""
    return (
        f"the {device} benchmark ran while the machine was busy (load {float(bench.get('load') or 0):.1f}), so "
        "these times are likely too long; it runs again when the machine is quiet"
    )


# ----------------------------------------------------------------------------- table, cache, CLI


def _catalog_candidates() -> list[Any]:
    from modelwiz.engine.sources import catalog, torchvision_registry

    return [*catalog.load(), *torchvision_registry.load()]


def build_table(
    out: Path = TABLE_PATH,
    only: list[str] | None = None,
    force: bool = False,
    log: Any = print,
    budget_s: float = 0.0,
) -> dict[str, Any]:
    """Count every catalog and torchvision model (shared by identical architectures) into the table;
    entries already there are kept unless `force`. `budget_s` > 0 stops starting new models after it."""
    from modelwiz.engine.memory import signature
    from modelwiz.engine.memtrace import spec_for_candidate, spec_key

    t0 = time.time()
    table = read_json(out)
    if not isinstance(table, dict) or table.get("version") != TABLE_VERSION:
        table = {"version": TABLE_VERSION, "models": {}, "entries": {}}
    models, entries = dict(table["models"]), dict(table["entries"])
    for cand in _catalog_candidates():
        if only and not any(o in cand.id for o in only):
            continue
        spec = spec_for_candidate(cand)
        if spec is None:
            log(f"skip {cand.id}: no spec")
            continue
        key = spec_key(spec)
        if key not in entries or force:
            if budget_s and time.time() - t0 > budget_s:
                log(f"budget spent: {cand.id} and later models not counted")
                break
            try:
                entry = count_model(spec, num_layers=int(cand.num_layers or 0))
            except Exception as exc:  # noqa: BLE001 - one model failing must not stop the table
                log(f"FAIL {cand.id}: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")
                continue
            entry["spec"] = spec
            entries[key] = entry
            log(f"counted {cand.id} in {entry['seconds']} s")
        entries[key].setdefault("signature", signature(cand))
        models[cand.id] = {"entry": key}
        atomic_write_json(out, {"version": TABLE_VERSION, "models": models, "entries": entries})
    return {"version": TABLE_VERSION, "models": models, "entries": entries}


def count_into_cache(spec: dict[str, Any], num_layers: int = 0) -> dict[str, Any]:
    from modelwiz.engine.memtrace import spec_key

    key = spec_key(spec)
    got = read_json(cache_path(key))
    if isinstance(got, dict) and got.get("version") == TABLE_VERSION and isinstance(got.get("entry"), dict):
        return dict(got["entry"])
    entry = count_model(spec, num_layers=num_layers)
    entry["spec"] = spec
    atomic_write_json(cache_path(key), {"version": TABLE_VERSION, "key": key, "entry": entry})
    return entry


def count_candidate(cand: Any, timeout_s: float = COUNT_TIMEOUT_S) -> dict[str, Any]:
    """Count `cand`'s step costs in a subprocess (torch is imported there) into the on-disk cache;
    returns the entry. Raises UserError when its architecture cannot be rebuilt or counted."""
    from modelwiz.engine.memtrace import spec_for_candidate

    spec = spec_for_candidate(cand)
    if spec is None:
        raise UserError(f"cannot rebuild the architecture of '{cand.id}'; give a local model folder or a catalog model")
    cmd = [sys.executable, "-m", "modelwiz.engine.speed", "count", json.dumps(spec)]
    if cand.num_layers:
        cmd += ["--num-layers", str(int(cand.num_layers))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise UserError(f"counting the step of '{cand.id}' took more than {timeout_s:.0f} s; gave up") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise UserError(f"cannot count the step of '{cand.id}': {lines[-1][:200] if lines else 'the counter failed'}")
    entry = _cached_entry(spec)
    if entry is None:
        raise UserError(f"counting '{cand.id}' left no cache entry")
    return entry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m modelwiz.engine.speed", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench", help="measure this device's rates into the cache; prints them as JSON")
    b.add_argument("--device", default="cpu")
    b.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own)")
    b.add_argument("--if-missing", action="store_true", help="do nothing when the result is cached")
    t = sub.add_parser("build", help="count the catalog and torchvision models into the shipped table")
    t.add_argument("--out", type=Path, default=TABLE_PATH)
    t.add_argument("--only", nargs="*", help="model ids containing one of these")
    t.add_argument("--force", action="store_true")
    t.add_argument("--budget-s", type=float, default=0.0, help="stop starting new models after this long")
    c = sub.add_parser("count", help="count one model spec (JSON, see memtrace.spec_for_candidate) into the cache")
    c.add_argument("spec")
    c.add_argument("--num-layers", type=int, default=0)
    args = ap.parse_args(argv)
    if args.cmd == "bench":
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        machine = machine_name(args.device)
        path = bench_path(
            machine, torch.__version__.split("+")[0], 0 if args.device != "cpu" else torch.get_num_threads()
        )
        try:
            if args.if_missing and not _stale(path, torch.get_num_threads()):
                return 0
            result = run_benchmark(args.device, args.threads)
            atomic_write_json(path, result)
        finally:  # done or failed: a trainer waiting for it goes on (trainer.wait_for_benchmark)
            lock_path(args.device).unlink(missing_ok=True)
        print(json.dumps(result))
        return 0
    if args.cmd == "build":
        table = build_table(
            args.out, args.only, args.force, log=lambda m: print(m, file=sys.stderr, flush=True), budget_s=args.budget_s
        )
        print(json.dumps({"models": len(table["models"]), "entries": len(table["entries"])}))
        return 0
    entry = count_into_cache(json.loads(args.spec), num_layers=args.num_layers)
    print(json.dumps({"seconds": entry.get("seconds")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
