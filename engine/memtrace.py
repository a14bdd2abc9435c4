"""Training-step memory traced from the architecture itself, without weights or data.

`python -m modelwiz.engine.memtrace build` writes the table `engine/data/memtraces.json` that
`engine.memory` reads (pure Python, no torch) for every catalog and torchvision model;
`python -m modelwiz.engine.memtrace trace MODEL` traces one model (a local folder, a Hub id
in the table's catalog, `torchvision:NAME`) into the on-disk cache, which is what
`memory.trace_model` runs in a subprocess for models the table lacks.

How a trace works
-----------------
The model is built with its real module structure (`AutoModelFor*Classification.from_config`
or the torchvision builder, a new head as the adapters make it, weight initialisation skipped),
then every parameter and buffer becomes a `FakeTensor`: shape, dtype, strides and device
(`cpu`) without storage. One steady-state training step then runs on fake inputs as
`engine.trainer.train_step` runs it: parameters frozen by `trainer.select_trainable` (the
trainer's own function), AdamW with its state already created (the state is made lazily at
the first step, so a first step would show a lower peak), `zero_grad(set_to_none=True)`, the
forward under the plan's autocast, cross-entropy on fp32 logits, backward, the optimizer
step. The step is run with two micro-batches so that the second one shows what gradient
accumulation keeps alive (the first micro-batch's gradients during the second's forward).

A `TorchDispatchMode` (`LiveMemory`) sees every tensor each aten op returns: in the forward,
in autograd's backward and in AdamW's update, after autocast casts and composite ops are
decomposed. It counts the bytes of each distinct storage once and drops them when the storage is
freed (a weakref callback on the storage object: views and the tensors autograd saves keep a
storage alive exactly as they keep real memory alive). After each op it appends the live total
to a timeline. Fake tensors go through the same CPU dispatch as real ones (SDPA picks the
same kernel, autocast the same casts), so the timeline is the one a real CPU step would
allocate; what it cannot see is scratch memory a kernel allocates and frees inside itself.

From timelines to coefficients
------------------------------
Every tensor of a step is either batch-independent (weights, gradients, optimizer state) or
proportional to the batch, and its size is a polynomial in the sequence length (text: 1, s, s²
for attention scores) or the image side (1, px, px² for CNN feature maps, px⁴ for ViT
attention over px²/p² tokens). So at every op of the timeline the live bytes are

    live(b, x) = P + b * (q0 + q1 x + q2 x² [+ q4 x⁴])

and a few traces at two batch sizes and three or four lengths/sizes give P and q exactly,
op by op (the op sequence does not depend on the shape). Of the thousands of ops only those
that are the maximum of their phase somewhere on a grid of batch sizes and lengths/sizes are
kept: a handful of points per phase (forward, backward, each micro-batch, optimizer step).
The prediction for any batch and length is the maximum over those points: the peak is the
maximum over phases, not a sum of parts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import weakref
from pathlib import Path
from typing import Any

from modelwiz.engine.fsutil import atomic_write_json, read_json
from modelwiz.engine.paths import cache_dir

TABLE_PATH = Path(__file__).resolve().parent / "data" / "memtraces.json"
TABLE_VERSION = 1
STRATEGIES = ("full", "partial", "linear-probe")
PRECISIONS = ("fp32", "bf16")  # fp16 autocast makes the same tensors as bf16
TRACE_BATCHES = (2, 4)
TRACE_LENGTHS = (32, 64, 128)  # text: tokens; basis 1, s, s^2
TRACE_SIZES = (128, 160, 192, 224)  # image side in pixels (multiples of 32); basis 1, px, px^2, px^4
TEXT_BASIS = (0, 1, 2)
IMAGE_BASIS = (0, 1, 2, 4)
CNN_BASIS = (0, 1, 2)
MICRO_BATCHES = 1  # traced; the second micro-batch of an accumulated step is derived (_phase_slices)
HEAD_LABELS = 2  # traced with a 2-class head; memory adds the difference for K classes
PHASES = ("fwd1", "bwd1", "fwd2", "bwd2", "opt")
GRID_BATCHES = tuple(2**i for i in range(12))  # 1 .. 2048
GRID_LENGTHS = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 4096, 8192)
GRID_SIZES = (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 384, 448, 512, 640, 768, 1024)
TRACE_TIMEOUT_S = 600


# ----------------------------------------------------------------------------- model specs
#
# A spec says how to build a model: {"kind": "hf-text" | "hf-image", "config": {...}} for a
# Hugging Face config, {"kind": "hf-text" | "hf-image", "folder": PATH} for a local folder,
# {"kind": "torchvision", "name": NAME}. Catalog entries carry only summary figures, so their
# configs are rebuilt here from the model type and those figures plus what the public config of
# each model family sets differently from transformers' defaults; the trace checks the rebuilt
# backbone's parameter count against the catalog's.

TEXT_CONFIG_KEYS: dict[str, dict[str, str | None]] = {
    "distilbert": {
        "hidden_size": "dim",
        "num_layers": "n_layers",
        "num_heads": "n_heads",
        "intermediate": "hidden_dim",
    },
    "flaubert": {"hidden_size": "emb_dim", "num_layers": "n_layers", "num_heads": "n_heads", "intermediate": None},
}
TEXT_EXTRA: dict[str, dict[str, Any]] = {
    "albert": {"embedding_size": 128},
    "deberta-v2": {
        "relative_attention": True,
        "position_buckets": 256,
        "norm_rel_ebd": "layer_norm",
        "share_att_key": True,
        "pos_att_type": ["p2c", "c2p"],
        "max_relative_positions": -1,
        "position_biased_input": False,
        "type_vocab_size": 0,
        "layer_norm_eps": 1e-7,
    },
    "longformer": {"attention_window": 512},
    "mobilebert": {},
}
ROBERTA_LIKE = ("roberta", "xlm-roberta", "camembert", "longformer", "mpnet")

IMAGE_CONFIGS: dict[str, dict[str, Any]] = {
    "microsoft/swin-tiny-patch4-window7-224": {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24]},
    "microsoft/swin-small-patch4-window7-224": {"embed_dim": 96, "depths": [2, 2, 18, 2], "num_heads": [3, 6, 12, 24]},
    "microsoft/swin-base-patch4-window7-224": {"embed_dim": 128, "depths": [2, 2, 18, 2], "num_heads": [4, 8, 16, 32]},
    "microsoft/swinv2-tiny-patch4-window8-256": {
        "embed_dim": 96,
        "depths": [2, 2, 6, 2],
        "num_heads": [3, 6, 12, 24],
        "window_size": 8,
        "image_size": 256,
    },
    "facebook/convnext-tiny-224": {"depths": [3, 3, 9, 3], "hidden_sizes": [96, 192, 384, 768]},
    "facebook/convnext-small-224": {"depths": [3, 3, 27, 3], "hidden_sizes": [96, 192, 384, 768]},
    "facebook/convnext-base-224": {"depths": [3, 3, 27, 3], "hidden_sizes": [128, 256, 512, 1024]},
    "facebook/convnext-large-224": {"depths": [3, 3, 27, 3], "hidden_sizes": [192, 384, 768, 1536]},
    "facebook/convnextv2-atto-1k-224": {"depths": [2, 2, 6, 2], "hidden_sizes": [40, 80, 160, 320]},
    "facebook/convnextv2-nano-1k-224": {"depths": [2, 2, 8, 2], "hidden_sizes": [80, 160, 320, 640]},
    "facebook/convnextv2-tiny-1k-224": {"depths": [3, 3, 9, 3], "hidden_sizes": [96, 192, 384, 768]},
    "facebook/convnextv2-base-1k-224": {"depths": [3, 3, 27, 3], "hidden_sizes": [128, 256, 512, 1024]},
    "microsoft/resnet-18": {"layer_type": "basic", "depths": [2, 2, 2, 2], "hidden_sizes": [64, 128, 256, 512]},
    "microsoft/resnet-50": {"layer_type": "bottleneck", "depths": [3, 4, 6, 3], "hidden_sizes": [256, 512, 1024, 2048]},
    "microsoft/resnet-101": {
        "layer_type": "bottleneck",
        "depths": [3, 4, 23, 3],
        "hidden_sizes": [256, 512, 1024, 2048],
    },
    "google/efficientnet-b0": {
        "width_coefficient": 1.0,
        "depth_coefficient": 1.0,
        "image_size": 224,
        "hidden_dim": 1280,
    },
    "google/efficientnet-b1": {
        "width_coefficient": 1.0,
        "depth_coefficient": 1.1,
        "image_size": 240,
        "hidden_dim": 1280,
    },
    "google/efficientnet-b2": {
        "width_coefficient": 1.1,
        "depth_coefficient": 1.2,
        "image_size": 260,
        "hidden_dim": 1408,
    },
    "google/efficientnet-b3": {
        "width_coefficient": 1.2,
        "depth_coefficient": 1.4,
        "image_size": 300,
        "hidden_dim": 1536,
    },
    "google/efficientnet-b4": {
        "width_coefficient": 1.4,
        "depth_coefficient": 1.8,
        "image_size": 380,
        "hidden_dim": 1792,
    },
    "google/mobilenet_v2_1.0_224": {"depth_multiplier": 1.0, "image_size": 224},
    "apple/mobilevit-xx-small": {
        "hidden_sizes": [64, 80, 96],
        "neck_hidden_sizes": [16, 16, 24, 48, 64, 80, 320],
        "expand_ratio": 2.0,
    },
    "apple/mobilevit-x-small": {"hidden_sizes": [96, 120, 144], "neck_hidden_sizes": [16, 32, 48, 64, 80, 96, 384]},
    "apple/mobilevit-small": {"hidden_sizes": [144, 192, 240], "neck_hidden_sizes": [16, 32, 64, 96, 128, 160, 640]},
    "apple/mobilevitv2-1.0-imagenet1k-256": {"width_multiplier": 1.0},
    "microsoft/beit-base-patch16-224": {
        "use_relative_position_bias": True,
        "use_absolute_position_embeddings": False,
        "use_mean_pooling": True,
        "layer_scale_init_value": 0.1,
    },
    "facebook/regnet-y-040": {
        "layer_type": "y",
        "depths": [2, 6, 12, 2],
        "hidden_sizes": [128, 192, 512, 1088],
        "groups_width": 64,
    },
    "facebook/levit-128S": {
        "hidden_sizes": [128, 256, 384],
        "num_attention_heads": [4, 6, 8],
        "depths": [2, 3, 4],
        "key_dim": [16, 16, 16],
    },
    "facebook/levit-128": {
        "hidden_sizes": [128, 256, 384],
        "num_attention_heads": [4, 8, 12],
        "depths": [4, 4, 4],
        "key_dim": [16, 16, 16],
    },
    "facebook/levit-192": {
        "hidden_sizes": [192, 288, 384],
        "num_attention_heads": [3, 5, 6],
        "depths": [4, 4, 4],
        "key_dim": [32, 32, 32],
    },
    "facebook/levit-256": {
        "hidden_sizes": [256, 384, 512],
        "num_attention_heads": [4, 6, 8],
        "depths": [4, 4, 4],
        "key_dim": [32, 32, 32],
    },
    "facebook/levit-384": {
        "hidden_sizes": [384, 512, 768],
        "num_attention_heads": [6, 9, 12],
        "depths": [4, 4, 4],
        "key_dim": [32, 32, 32],
    },
    "microsoft/cvt-13": {},
}
VIT_LIKE = ("vit", "deit", "beit", "dinov2")


def spec_for_candidate(cand: Any) -> dict[str, Any] | None:
    """How to build `cand` for a trace, or None when modelwiz cannot rebuild its architecture."""
    model_id = str(cand.id)
    if model_id.startswith("torchvision:"):
        # "torchvision:NAME" or "torchvision:NAME.WEIGHTS": the weights do not change the
        # network, except the input size a ViT's position table is built for
        name = str(cand.arch or "") or model_id.split(":", 1)[1].split(".")[0]
        spec: dict[str, Any] = {"kind": "torchvision", "name": name}
        if name.startswith("vit_") and int(cand.image_size or 224) != 224:
            spec["image_size"] = int(cand.image_size)
        return spec
    path = Path(os.path.expanduser(cand.path or model_id))
    if (path / "config.json").is_file():
        return {"kind": "hf-text" if cand.modality == "text" else "hf-image", "folder": str(path)}
    arch = str(cand.arch or "")
    if cand.modality == "text":
        if not (arch and cand.hidden_size and cand.num_layers):
            return None
        keys = TEXT_CONFIG_KEYS.get(arch, {})
        cfg: dict[str, Any] = {"model_type": arch}
        if arch != "mobilebert":
            cfg[keys.get("hidden_size") or "hidden_size"] = int(cand.hidden_size)
            cfg[keys.get("num_layers") or "num_hidden_layers"] = int(cand.num_layers)
            if cand.num_heads:
                cfg[keys.get("num_heads") or "num_attention_heads"] = int(cand.num_heads)
            inter_key = keys["intermediate"] if "intermediate" in keys else "intermediate_size"
            if cand.intermediate_size and inter_key:
                cfg[inter_key] = int(cand.intermediate_size)
        if cand.vocab_size:
            cfg["vocab_size"] = int(cand.vocab_size)
        positions = int(cand.max_length or 512)
        if arch in ROBERTA_LIKE:
            positions += 2
        if arch == "distilbert" or arch == "flaubert":
            cfg["max_position_embeddings"] = positions
        elif arch != "mobilebert":
            cfg["max_position_embeddings"] = positions
        if arch == "electra":
            cfg["embedding_size"] = 128 if cand.hidden_size <= 256 else int(cand.hidden_size)
        cfg.update(TEXT_EXTRA.get(arch, {}))
        return {"kind": "hf-text", "config": cfg}
    if arch in VIT_LIKE:
        if not (cand.hidden_size and cand.num_layers and cand.num_heads):
            return None
        cfg = {
            "model_type": "deit" if arch == "deit" else arch,
            "hidden_size": int(cand.hidden_size),
            "num_hidden_layers": int(cand.num_layers),
            "num_attention_heads": int(cand.num_heads),
            "intermediate_size": int(cand.intermediate_size or 4 * cand.hidden_size),
            "image_size": int(cand.image_size or 224),
            "patch_size": 14 if arch == "dinov2" else 16,
        }
        if arch == "dinov2":
            cfg.pop("intermediate_size")
            cfg["image_size"] = 518
        if arch == "deit":  # the distilled checkpoints: a class head and a distillation head
            cfg["architectures"] = ["DeiTForImageClassificationWithTeacher"]
        cfg.update(IMAGE_CONFIGS.get(model_id, {}))
        return {"kind": "hf-image", "config": cfg}
    if model_id in IMAGE_CONFIGS:
        cfg = {"model_type": arch, "image_size": int(cand.image_size or 224), **IMAGE_CONFIGS[model_id]}
        if arch == "levit":
            cfg["architectures"] = ["LevitForImageClassificationWithTeacher"]
        return {"kind": "hf-image", "config": cfg}
    return None


def spec_key(spec: dict[str, Any]) -> str:
    """A stable name for what a spec builds: the same architecture gives the same key."""
    if "folder" in spec:
        folder = Path(spec["folder"])
        raw = (folder / "config.json").read_text(encoding="utf-8")
        cfg = json.loads(raw)
        for k in ("_name_or_path", "transformers_version", "architectures", "id2label", "label2id", "torch_dtype"):
            cfg.pop(k, None)
        body: Any = {"kind": spec["kind"], "config": cfg, "fresh": sorted(_fresh_hint(folder))}
    else:
        body = spec
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    return f"{spec['kind']}-{digest}"


def _fresh_hint(folder: Path) -> set[str]:
    """Checkpoint tensor names (from the safetensors header, no weights read)."""
    from modelwiz.engine.sources.local import read_safetensors_header

    names: set[str] = set()
    single = folder / "model.safetensors"
    files = [single] if single.is_file() else sorted(folder.glob("model-*.safetensors"))
    for f in files:
        try:
            names |= {k for k in read_safetensors_header(f) if k != "__metadata__"}
        except (OSError, ValueError):
            continue
    return names


# ----------------------------------------------------------------------------- building


def _no_init() -> Any:
    """Skip weight initialisation: the values are never used and fake tensors have none."""
    from transformers.initialization import no_init_weights

    return no_init_weights()


def build_model(spec: dict[str, Any], num_labels: int = HEAD_LABELS) -> tuple[Any, set[str], str]:
    """(model on the CPU, names of new head parameters, attention implementation), with storage
    that is allocated but never written (weight initialisation skipped)."""
    import torch

    torch.manual_seed(0)
    kind = spec["kind"]
    with _no_init():
        if kind == "torchvision":
            from torchvision import models as tvm

            from modelwiz.engine.adapters.torchvision import drop_aux_heads, replace_head

            extra = {"image_size": int(spec["image_size"])} if spec.get("image_size") else {}
            model = tvm.get_model(spec["name"], weights=None, **extra)
            drop_aux_heads(model)
            head = replace_head(model, num_labels)
            fresh = {n for n, _ in model.named_parameters() if n.startswith(head + ".")}
            return model, fresh, "n/a"
        from transformers import AutoConfig, AutoModelForImageClassification, AutoModelForSequenceClassification

        auto = AutoModelForSequenceClassification if kind == "hf-text" else AutoModelForImageClassification
        if "folder" in spec:
            config = AutoConfig.from_pretrained(spec["folder"], num_labels=num_labels)
        else:
            cfg = dict(spec["config"])
            config = AutoConfig.for_model(cfg.pop("model_type"), **cfg, num_labels=num_labels)
        if kind == "hf-text" and getattr(config, "pad_token_id", None) is None:
            # as the adapter does (adapters/hf_text.ensure_padding): a decoder-only classifier
            # without one refuses batches; which token pads changes no memory
            eos = getattr(config, "eos_token_id", None)
            config.pad_token_id = int((eos[0] if isinstance(eos, (list, tuple)) and eos else eos) or 0)
        model = auto.from_config(config)
    prefix = getattr(model, "base_model_prefix", "")
    ckpt = _fresh_hint(Path(spec["folder"])) if "folder" in spec else set()
    from modelwiz.engine.adapters.base import head_parameters

    outside = head_parameters(model)  # everything outside the backbone
    if ckpt:  # what the checkpoint lacks is new, as `from_pretrained` reports it (missing_keys), and the head
        fresh = {n for n, _ in model.named_parameters() if n not in ckpt and n.removeprefix(prefix + ".") not in ckpt}
        fresh |= outside
    else:  # no weights to compare with: the head is new (no backbone prefix: everything is)
        fresh = outside if prefix else {n for n, _ in model.named_parameters()}
    attn = str(getattr(model.config, "_attn_implementation", None) or "eager")
    return model, fresh, attn


def to_fake(model: Any, mode: Any) -> None:
    """Swap every parameter and buffer for a FakeTensor with the same metadata (shared
    parameters stay shared)."""
    import torch

    memo: dict[int, Any] = {}
    for module in model.modules():
        for name, p in list(module._parameters.items()):
            if p is None:
                continue
            if id(p) not in memo:
                memo[id(p)] = torch.nn.Parameter(mode.from_tensor(p.detach()), requires_grad=p.requires_grad)
            module._parameters[name] = memo[id(p)]
        for name, b in list(module._buffers.items()):
            if b is None:
                continue
            if id(b) not in memo:
                memo[id(b)] = mode.from_tensor(b)
            module._buffers[name] = memo[id(b)]


def head_in_features(model: Any, fresh: set[str]) -> int:
    """Inputs of the new head's last Linear (its weight grows with the number of classes)."""
    import torch

    last = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and f"{name}.weight" in fresh:
            last = int(module.in_features)
    return last


# ----------------------------------------------------------------------------- the live-memory tracker


def _tracker_class() -> Any:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    _DEVICE = torch.ops.prim.device.default
    _ITEM = torch.ops.aten._local_scalar_dense.default
    _BOOL, _TENSOR = torch.bool, torch.Tensor

    class LiveMemory(TorchDispatchMode):
        """Bytes of live tensor storage after every aten op (see the module docstring)."""

        def __init__(self) -> None:
            super().__init__()
            self.sizes: dict[int, int] = {}
            self.refs: dict[int, Any] = {}
            self.born: dict[int, int] = {}  # storage -> timeline index of the op that made it
            self.live = 0
            self.timeline: list[int] = []
            self.opaque: list[tuple[int, tuple[Any, ...]]] = []  # (timeline index, op_signature)

        def _free(self, key: int) -> None:
            self.live -= self.sizes.pop(key, 0)
            self.refs.pop(key, None)
            self.born.pop(key, None)

        def _freer(self, key: int) -> Any:
            def free(_ref: Any) -> None:
                self._free(key)

            return free

        def track(self, t: Any) -> bool:
            """Count `t`'s storage if new (or resized); whether the live total grew."""
            s = t.untyped_storage()
            key = s._cdata
            n = int(s.nbytes())
            old = self.sizes.get(key)
            if old is None:
                self.sizes[key] = n
                self.born[key] = len(self.timeline)
                self.live += n
                self.refs[key] = weakref.ref(s, self._freer(key))
                return n > 0
            if old != n:
                self.sizes[key] = n
                self.live += n - old
                return n > old
            return False

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            if func is _DEVICE:  # metadata, asked very often: no memory
                return func(*args, **(kwargs or {}))
            if func is _ITEM:
                # a fake tensor has no value: `loss.item()`, `torch.isfinite(loss)` and the like get a
                # harmless one (finite, true) instead of failing; no memory is involved
                dtype = args[0].dtype
                return True if dtype == _BOOL else (1.0 if dtype.is_floating_point else 1)
            out = func(*args, **(kwargs or {}))
            grew = False
            if isinstance(out, _TENSOR):
                grew = self.track(out)
            elif isinstance(out, (tuple, list)):
                for t in tree_leaves(out):
                    if isinstance(t, _TENSOR):
                        grew = self.track(t) or grew
            # a peak follows an op that allocated: only those are points of the timeline (every
            # traced shape runs the same ops, so the timelines still align op by op)
            if grew:
                if any(w in func.__name__ for w in SCRATCH_OPS) or _mixed_floats(args):
                    self.opaque.append((len(self.timeline), op_signature(func, args, kwargs or {})))
                self.timeline.append(self.live)
            return out

    return LiveMemory


# Kernels that allocate scratch memory inside themselves on the CPU (oneDNN convolutions, the
# backward of depthwise convolutions, batch/layer norm on non-contiguous inputs, flash attention's
# per-thread buffers, pooling): the dispatch mode cannot see it, so each distinct call is run once
# for real on tensors of the traced shape and its scratch measured (`measure_scratch`).
SCRATCH_OPS = ("convolution", "batch_norm", "layer_norm", "group_norm", "flash_attention", "pool", "upsample")


def _mixed_floats(args: Any) -> bool:
    """Whether an op's tensor arguments (more than one element each) hold floats of two dtypes.
    The CPU computes such an op (a float32 parameter times a bf16 activation under autocast, a
    float32 residual plus a bf16 branch) on a float32 copy of the narrower input, made and freed
    inside the kernel: measured here at 12 MB for one GRN layer of ConvNeXt V2 (8 x 56 x 56 x 128),
    21-23% of a bf16 probe's peak."""
    import torch

    dtypes = set()
    for a in args:
        if isinstance(a, torch.Tensor) and a.dtype.is_floating_point and a.numel() > 1:
            dtypes.add(a.dtype)
    return len(dtypes) > 1


def op_signature(func: Any, args: Any, kwargs: Any) -> tuple[Any, ...]:
    """A hashable description of a call: the op, and each tensor argument as (shape, stride,
    dtype); holds no tensor (which would keep its storage alive)."""
    import torch
    from torch.utils._pytree import tree_map

    def meta(a: Any) -> Any:
        if isinstance(a, torch.Tensor):
            return ("T", tuple(a.shape), tuple(a.stride()), str(a.dtype).removeprefix("torch."))
        if isinstance(a, (torch.dtype, torch.memory_format, torch.device, torch.layout)):
            return ("O", a)
        return a

    return (func, repr(tree_map(meta, (args, kwargs))), tree_map(meta, (args, kwargs)))


def measure_scratch(signatures: list[tuple[Any, ...]]) -> dict[str, int]:
    """Bytes each call allocates and frees inside itself (peak within the call less what it
    returns), measured from the CPU allocator's records under torch.profiler. Calls that
    cannot be replayed (values that matter, odd arguments) count as none."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function
    from torch.utils._pytree import tree_map

    def real(a: Any) -> Any:
        if isinstance(a, tuple) and a and a[0] == "T":
            _, shape, stride, dtype = a
            dt = getattr(torch, dtype)
            t = torch.empty_strided(shape, stride, dtype=dt)
            if dt.is_floating_point:
                t.normal_()
            else:
                t.zero_()
            return t
        if isinstance(a, tuple) and len(a) == 2 and a[0] == "O":
            return a[1]
        return a

    from torch.utils._python_dispatch import _disable_current_modes

    out: dict[str, int] = {}
    names: dict[str, str] = {}
    with _disable_current_modes(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        for i, (func, key, meta) in enumerate(signatures):
            try:
                args, kwargs = tree_map(
                    real, meta, is_leaf=lambda a: isinstance(a, tuple) and bool(a) and a[0] in ("T", "O")
                )
            except Exception:  # noqa: BLE001 - not replayable: no scratch counted
                continue
            names[f"mw-scratch-{i}"] = key
            try:
                with torch.no_grad(), record_function(f"mw-scratch-{i}"):
                    result = func(*args, **kwargs)
            except Exception:  # noqa: BLE001
                names.pop(f"mw-scratch-{i}")
                continue
            del result, args, kwargs

    def allocations(node: Any) -> list[Any]:
        found, stack = [], [node]
        while stack:
            n = stack.pop()
            if type(n.extra_fields).__name__ == "_ExtraFields_Allocation":
                found.append(n)
            stack.extend(n.children)
        return found

    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.name in names:
            cur = peak = 0
            for a in sorted(allocations(node), key=lambda a: a.start_time_ns):
                cur += a.extra_fields.alloc_size
                peak = max(peak, cur)
            out[names[node.name]] = max(0, peak - max(cur, 0))
        else:
            stack.extend(node.children)
    return out


# ----------------------------------------------------------------------------- one traced step


def plan_for_trace(strategy: str, precision: str, batch: int, unfreeze_blocks: int) -> Any:
    """What `train_step` and the recipes read from a plan, at the config's defaults."""
    from types import SimpleNamespace

    from modelwiz.engine.config import TrainConfig

    d = TrainConfig()
    return SimpleNamespace(
        strategy=strategy,
        unfreeze_blocks=unfreeze_blocks,
        unfreeze_every=d.unfreeze_every,
        learning_rate=1e-4,
        layer_decay=d.layer_decay,
        weight_decay=d.weight_decay,
        max_grad_norm=d.max_grad_norm,
        warmup=d.warmup,
        schedule=d.schedule,
        precision=precision,
        device="cpu",
        batch_size=batch,
        grad_accum=MICRO_BATCHES,
        channels_last=False,
    )


class _TraceAdapter:
    """The adapter interface `train_step` uses, making fake inputs of the traced shape; marks
    where each micro-batch's forward and backward begin."""

    def __init__(self, model: Any, fresh: set[str], kind: str, x: int, native: int, mark: Any) -> None:
        self.model, self.new_params, self.kind, self.x, self.native, self.mark = model, fresh, kind, x, native, mark
        self.micro = 0

    def collate(self, items: list[Any], *, train: bool) -> dict[str, Any]:
        import torch

        self.micro += 1
        self.mark(f"fwd{self.micro}")
        b = len(items)
        if self.kind == "hf-text":
            return {
                "input_ids": torch.randint(5, 100, (b, self.x)),
                "attention_mask": torch.ones(b, self.x, dtype=torch.long),
            }
        return {"pixel_values": torch.randn(b, 3, self.x, self.x)}

    def logits(self, inputs: dict[str, Any]) -> Any:
        import inspect

        import torch

        if self.kind == "torchvision":
            out = self.model(inputs["pixel_values"])
        else:
            extra = {}
            if self.kind == "hf-image" and self.x != self.native:
                if "interpolate_pos_encoding" in inspect.signature(self.model.forward).parameters:
                    extra["interpolate_pos_encoding"] = True
            out = self.model(**inputs, **extra).logits
        micro = self.micro

        def on_grad(grad: Any) -> None:  # the backward has reached the logits
            self.mark(f"bwd{micro}")
            if micro == MICRO_BATCHES:
                torch.autograd.Variable._execution_engine.queue_callback(lambda: self.mark("opt"))

        if out.requires_grad:
            out.register_hook(on_grad)
        return out


def trainer_run(**known: Any) -> Any:
    """A `trainer.Run` holding what `train_step` touches (the rest None), so that the traced
    step is the trainer's own code."""
    import dataclasses

    from modelwiz.engine import trainer

    kw: dict[str, Any] = {"progress": trainer.Progress()}
    for f in dataclasses.fields(trainer.Run):
        if f.name in known:
            kw[f.name] = known[f.name]
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kw.setdefault(f.name, None)
    return trainer.Run(**kw)


def trace_step(
    model: Any,
    fresh: set[str],
    kind: str,
    *,
    strategy: str,
    precision: str,
    batch: int,
    x: int,
    native: int = 0,
    unfreeze_blocks: int = 1,
    scratch: dict[str, int] | None = None,
    optimizer_part: list[int] | None = None,
) -> dict[str, Any]:
    """Timeline of live bytes over one steady-state `trainer.train_step`: {"timeline": [...],
    "marks": {phase: first index}, "static": {...}, "optimizer_part": [...]}. `model` holds
    fake tensors and the caller has the FakeTensorMode active. `scratch` caches the measured
    scratch bytes of opaque kernels by call signature (see SCRATCH_OPS). Gradient clipping and
    the optimizer step allocate the same whatever the batch and length (they see parameters
    and gradients only), so a later trace of the same model, strategy and precision passes the
    first one's `optimizer_part` (live bytes relative to the end of the backward) and skips them."""
    from types import SimpleNamespace

    scratch = {} if scratch is None else scratch

    import torch

    from modelwiz.engine import recipes, trainer

    plan = plan_for_trace(strategy, precision, batch, unfreeze_blocks)
    names = [n for n, _ in model.named_parameters()]
    blocks = recipes.find_blocks(names, fresh)
    trainable = recipes.apply_freeze(model, blocks, strategy, unfreeze_blocks)
    optimizer = recipes.make_optimizer(model, blocks, plan)  # the trainer's own (fused where it can)
    params = [p for p in model.parameters() if p.requires_grad]
    # AdamW makes its state at the first step (torch.optim.adam, _init_group): made here as it
    # makes it, so that the traced step is a later one
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.requires_grad:
                state = optimizer.state[p]
                fused = group.get("fused") or group.get("capturable")
                state["step"] = torch.ones((), dtype=torch.float32, device=p.device) if fused else torch.tensor(1.0)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if group.get("amsgrad"):
                    state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    tracker = _tracker_class()()
    marks: dict[str, int] = {}

    marks_live: dict[str, int] = {}

    def mark(phase: str) -> None:
        marks.setdefault(phase, len(tracker.timeline))
        marks_live.setdefault(phase, tracker.live)

    seen: set[int] = set()
    param_bytes = buffer_bytes = trainable_bytes = state_bytes = 0
    group_bytes = max(
        (sum(p.numel() * p.element_size() for p in g["params"] if p.requires_grad) for g in optimizer.param_groups),
        default=0,
    )
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        tracker.track(p)
        param_bytes += p.numel() * p.element_size()
        trainable_bytes += p.numel() * p.element_size() if p.requires_grad else 0
    for b in model.buffers():
        tracker.track(b)
        buffer_bytes += b.numel() * b.element_size()
    for st in optimizer.state.values():
        for v in st.values():
            if isinstance(v, torch.Tensor):
                tracker.track(v)
                state_bytes += v.numel() * v.element_size()
    n = batch * MICRO_BATCHES
    run = trainer_run(
        plan=plan,
        data=SimpleNamespace(train=SimpleNamespace(items=list(range(n)), labels=[i % HEAD_LABELS for i in range(n)])),
        adapter=_TraceAdapter(model, fresh, kind, x, native, mark),
        module=model,
        optimizer=optimizer,
        scheduler=SimpleNamespace(step=lambda: None),
        scaler=None,
        blocks=blocks,
    )
    clip = torch.nn.utils.clip_grad_norm_
    if optimizer_part is not None:
        optimizer.step = lambda *a, **k: None  # type: ignore[method-assign]
        torch.nn.utils.clip_grad_norm_ = lambda *a, **k: None
    try:
        with tracker:
            trainer.train_step(run, list(range(n)))
    finally:
        torch.nn.utils.clip_grad_norm_ = clip
    if "opt" not in marks:
        raise RuntimeError("the traced step did not reach the end of its backward")
    if optimizer_part is not None:
        del tracker.timeline[marks["opt"] :]
        tracker.timeline += [marks_live["opt"] + d for d in optimizer_part]
    marks["end"] = len(tracker.timeline)
    timeline = tracker.timeline
    made_at: dict[int, int] = {}  # timeline index -> gradient bytes made by that op
    grad_bytes = 0
    for p in params:
        if p.grad is not None:
            st = p.grad.untyped_storage()
            grad_bytes += int(st.nbytes())
            at = tracker.born.get(st._cdata)
            if at is not None:
                made_at[at] = made_at.get(at, 0) + int(st.nbytes())
    grads_made, running = [], 0
    for t in range(len(timeline)):
        running += made_at.get(t, 0)
        grads_made.append(running)
    if tracker.opaque:
        todo = {sig[1]: sig for _, sig in tracker.opaque if sig[1] not in scratch}
        if todo:
            scratch.update(measure_scratch(list(todo.values())))
        for t, sig in tracker.opaque:
            timeline[t] += scratch.get(sig[1], 0)
    missing = [ph for ph in ("fwd1", "bwd1", "opt") if ph not in marks]
    if missing:
        raise RuntimeError(f"the traced step did not reach {', '.join(missing)}")
    optimizer.zero_grad(set_to_none=True)
    return {
        "timeline": timeline,
        "marks": marks,
        "grad_bytes": grad_bytes,
        "grads_made": grads_made,
        "optimizer_part": [v - marks_live["opt"] for v in timeline[marks["opt"] : marks["end"]]],
        "static": {
            "param_bytes": param_bytes,
            "buffer_bytes": buffer_bytes,
            "trainable_params": trainable,
            "trainable_bytes": trainable_bytes,
            "state_bytes": state_bytes,
            "max_group_bytes": group_bytes,
        },
    }


def _phase_slices(trace: dict[str, Any]) -> dict[str, list[int]]:
    """The timeline cut into phases. The step is traced with one micro-batch; the second
    micro-batch of an accumulated step is the first with every gradient already alive: in its
    forward all of them, in its backward those the first backward had not yet made by then."""
    m, tl = trace["marks"], trace["timeline"]
    fwd = tl[m["fwd1"] : m["bwd1"]] or [tl[max(0, m["fwd1"] - 1)]]
    bwd = tl[m["bwd1"] : m["opt"]] or [tl[max(0, m["bwd1"] - 1)]]
    opt = tl[m["opt"] : m["end"]] or [tl[max(0, m["opt"] - 1)]]
    grads, made = trace["grad_bytes"], trace["grads_made"][m["bwd1"] : m["opt"]] or [0]
    return {
        "fwd1": fwd,
        "bwd1": bwd,
        "fwd2": [v + grads for v in fwd],
        "bwd2": [v + grads - g for v, g in zip(bwd, made, strict=True)] if len(made) == len(bwd) else bwd,
        "opt": opt,
    }


def fit_points(
    traces: dict[tuple[int, int], dict[str, Any]], basis: tuple[int, ...], grid_x: tuple[int, ...], max_x: int
) -> dict[str, list[list[float]]]:
    """Per phase, the timeline points that are a maximum somewhere on the grid, each as
    [P, q_0, q_1, ...] with live = P + b * sum(q_k x**basis_k)."""
    import numpy as np

    (b1, b2) = TRACE_BATCHES
    xs = sorted({x for (_, x) in traces})
    x1 = next(x for (b, x) in traces if b == b2)  # where both batch sizes were traced
    per_phase = {k: _phase_slices(t) for k, t in traces.items()}
    vander = np.array([[float(x) ** e for e in basis] for x in xs])
    gx = np.array([x for x in grid_x if x <= max_x] or [xs[0]], dtype=float)
    gb = np.array(GRID_BATCHES, dtype=float)
    out: dict[str, list[list[float]]] = {}
    for ph in PHASES:
        lengths = {len(v[ph]) for v in per_phase.values()}
        if len(lengths) == 1:
            series = {k: np.array(v[ph], dtype=float) for k, v in per_phase.items()}
        else:  # the op sequence changed with the shape: keep the phase's maximum only
            series = {k: np.array([max(v[ph])], dtype=float) for k, v in per_phase.items()}
            out.setdefault("unaligned", []).append(ph)  # type: ignore[arg-type]
        lo, hi = series[(b1, x1)], series[(b2, x1)]
        q_x1 = (hi - lo) / (b2 - b1)
        p = lo - b1 * q_x1
        rhs = np.stack([q_x1 if x == x1 else (series[(b1, x)] - p) / b1 for x in xs])  # (len(xs), n)
        q = np.linalg.solve(vander, rhs)  # (len(basis), n)
        qx = (gx[:, None] ** np.array(basis, dtype=float)[None, :]) @ q  # (len(gx), n)
        values = p[None, None, :] + gb[None, :, None] * qx[:, None, :]  # (x, b, n)
        keep = sorted({int(i) for i in values.reshape(-1, values.shape[-1]).argmax(axis=1)})
        out[ph] = [[round(float(p[i])), *(float(f"{v:.7g}") for v in q[:, i])] for i in keep]
    return out


def text_positions(config: Any) -> int:
    """Tokens per example a text model accepts (RoBERTa-style position tables reserve two)."""
    positions = int(getattr(config, "max_position_embeddings", 0) or 512)
    if getattr(config, "model_type", "") in ROBERTA_LIKE:
        positions -= 2
    return positions


def trace_shapes(spec: dict[str, Any], config: Any) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """(lengths or sizes traced, polynomial basis, native size): windowed attention (Swin) needs
    sizes that fill whole windows; LeViT's attention biases exist for its own resolution only."""
    if spec["kind"] == "hf-text":
        positions = text_positions(config)
        if positions >= TRACE_LENGTHS[-1]:
            return TRACE_LENGTHS, TEXT_BASIS, 0
        top = max(8, positions)
        return (top // 4, top // 2, top), TEXT_BASIS, 0  # a model with few positions
    native = int(getattr(config, "image_size", 0) or 224) if config is not None else int(spec.get("image_size") or 224)
    if isinstance(getattr(config, "image_size", None), (list, tuple)):
        native = int(config.image_size[0])
    mtype = getattr(config, "model_type", "")
    if mtype in ("swin", "swinv2"):
        unit = 32 * int(config.window_size)
        return tuple(unit * k for k in (1, 2, 3, 4)), IMAGE_BASIS, native
    if mtype == "levit":
        return (native,), (0,), native
    name = str(spec.get("name", ""))
    sizes = tuple(sorted({*TRACE_SIZES[:-1], native}))  # the model's own size is one of them
    if mtype in VIT_LIKE or name.startswith("vit_"):  # global attention over px^2 / p^2 tokens
        return sizes, IMAGE_BASIS, native
    return sizes[-3:], CNN_BASIS, native  # feature maps: (px / stride + c)^2


def _accepts_size(model: Any, kind: str, x: int, native: int, mode: Any) -> bool:
    """Whether one forward at side `x` runs (fake tensors, no gradients)."""
    import torch

    adapter = _TraceAdapter(model, set(), kind, x, native, lambda _phase: None)
    try:
        with mode, torch.no_grad():
            adapter.logits(adapter.collate([0], train=True))
    except Exception:  # noqa: BLE001 - any failure means: not at this size
        return False
    return True


def default_unfreeze_blocks(num_layers: int) -> int:
    """The plan's `unfreeze_blocks = "auto"` for partial fine-tuning (engine/plan.py)."""
    return max(1, (num_layers or 3) // 3)


def trace_model(
    spec: dict[str, Any],
    *,
    strategies: tuple[str, ...] = STRATEGIES,
    precisions: tuple[str, ...] = PRECISIONS,
    num_layers: int = 0,
    max_x: int | None = None,
) -> dict[str, Any]:
    """One table entry: how the model's step memory depends on batch and length/size, for each
    strategy and precision. `num_layers` is the candidate's (partial trains its top third)."""
    import torch
    import transformers
    from torch._subclasses.fake_tensor import FakeTensorMode

    t0 = time.time()
    model, fresh, attn = build_model(spec)
    kind = spec["kind"]
    config = getattr(model, "config", None)
    backbone = sum(p.numel() for n, p in model.named_parameters() if n not in fresh)
    head_in = head_in_features(model, fresh)
    mode = FakeTensorMode()
    to_fake(model, mode)
    model.train()
    xs, basis, native = trace_shapes(spec, config)
    if kind != "hf-text" and len(xs) > 1:
        works = [x for x in xs if _accepts_size(model, kind, x, native, mode)]
        if len(works) < len(xs):  # a model built for its own resolution only (torchvision ViT, MaxViT)
            xs, basis = (native,), (0,)
    # the second batch size is traced at one length / size, where the batch-independent part is
    # exact (it can grow with the size: Swin's shifted-window masks): the model's own image size,
    # the longest traced length for text
    pair_at = native if native in xs else xs[-1]
    if max_x is None:
        if kind != "hf-text":
            max_x = max(GRID_SIZES) if len(xs) > 1 else native
        else:
            max_x = text_positions(config)
    if not num_layers and config is not None:
        num_layers = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layers", 0) or 0)
    blocks = default_unfreeze_blocks(num_layers)
    entry: dict[str, Any] = {
        "kind": kind,
        "arch": getattr(config, "model_type", None) or spec.get("name", ""),
        "attn": attn,
        "x": "tokens" if kind == "hf-text" else "pixels",
        "basis": list(basis),
        "traced_at": {"batch": list(TRACE_BATCHES), "x": list(xs)},
        "native": native,
        "max_x": max_x,
        "backbone_params": backbone,
        "head_in": head_in,
        "head_labels": HEAD_LABELS,
        "partial_blocks": blocks,
        "versions": {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__},
        "strategies": {},
    }
    grid = GRID_SIZES if kind != "hf-text" else GRID_LENGTHS
    scratch: dict[str, int] = {}
    with mode:
        for strategy in strategies:
            s_entry: dict[str, Any] = {}
            for precision in precisions:
                shapes = [(TRACE_BATCHES[0], x) for x in xs] + [(TRACE_BATCHES[1], pair_at)]
                traces: dict[tuple[int, int], dict[str, Any]] = {}
                part = None
                for b, x in shapes:
                    traces[(b, x)] = trace_step(
                        model,
                        fresh,
                        kind,
                        strategy=strategy,
                        precision=precision,
                        batch=b,
                        x=x,
                        native=native,
                        unfreeze_blocks=blocks,
                        scratch=scratch,
                        optimizer_part=part,
                    )
                    part = traces[(b, x)]["optimizer_part"]
                s_entry[precision] = fit_points(traces, basis, grid if len(xs) > 1 else (native,), max_x)
                static = traces[shapes[-1]]["static"]
                entry["param_bytes"], entry["buffer_bytes"] = static["param_bytes"], static["buffer_bytes"]
                for k in ("trainable_params", "trainable_bytes", "state_bytes", "max_group_bytes"):
                    s_entry[k] = static[k]
            entry["strategies"][strategy] = s_entry
    entry["seconds"] = round(time.time() - t0, 1)
    return entry


# ----------------------------------------------------------------------------- table and cache


# Traces made on demand are cached per revision of the tracer: a trace an older tracer made is
# made again (2: ops mixing float dtypes are replayed for their scratch, see _mixed_floats)
CACHE_REVISION = 2


def cache_path(key: str) -> Path:
    return cache_dir() / f"memtrace-{CACHE_REVISION}" / f"{key}.json"


def load_table(path: Path = TABLE_PATH) -> dict[str, Any]:
    data = read_json(path)
    if not isinstance(data, dict) or data.get("version") != TABLE_VERSION:
        return {"version": TABLE_VERSION, "models": {}, "entries": {}}
    return data


def _catalog_candidates() -> list[Any]:
    from modelwiz.engine.sources import catalog, torchvision_registry

    return [*catalog.load(), *torchvision_registry.load()]


def signature(cand: Any) -> str:
    from modelwiz.engine.memory import signature as sig

    return sig(cand)


def build_table(
    out: Path = TABLE_PATH, only: list[str] | None = None, force: bool = False, log: Any = print
) -> dict[str, Any]:
    """Trace every catalog and torchvision model (entries shared by identical architectures);
    entries whose spec is unchanged are kept unless `force`."""
    table = load_table(out)
    models: dict[str, Any] = dict(table.get("models", {}))
    entries: dict[str, Any] = dict(table.get("entries", {}))
    for cand in _catalog_candidates():
        if only and not any(o in cand.id for o in only):
            continue
        spec = spec_for_candidate(cand)
        if spec is None:
            log(f"skip {cand.id}: no spec")
            continue
        key = spec_key(spec)
        if key not in entries or force:
            try:
                entry = trace_model(spec, num_layers=int(cand.num_layers or 0))
            except Exception as exc:  # noqa: BLE001 - one model failing must not stop the table
                log(f"FAIL {cand.id}: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")
                continue
            entry["spec"] = spec
            entries[key] = entry
            log(f"traced {cand.id} in {entry['seconds']} s")
        entry = entries[key]
        entry.setdefault("signature", signature(cand))
        # torchvision's registry counts the original 1000-class head; the rebuilt model is exact
        expected = 0 if cand.id.startswith("torchvision:") else int(cand.params or 0)
        got = int(entry["backbone_params"])
        mismatch = abs(got - expected) / expected if expected else 0.0
        models[cand.id] = {"entry": key, "params_mismatch": round(mismatch, 4)}
        if mismatch > 0.02:
            log(f"note {cand.id}: rebuilt backbone has {got:,} parameters, the catalog says {expected:,}")
        table = {"version": TABLE_VERSION, "models": models, "entries": entries}
        atomic_write_json(out, table)
    used = {m["entry"] for m in models.values()}
    table = {"version": TABLE_VERSION, "models": models, "entries": {k: v for k, v in entries.items() if k in used}}
    table["formula_scale"] = fit_formula(table, _catalog_candidates())
    atomic_write_json(out, table)
    return table


FORMULA_FIT_SETTINGS = ((8, 64, 160), (16, 128, 224), (32, 256, 288))  # (batch, length, image side)


FORMULA_QUANTILE = 0.9  # the fallback errs high: a prediction too low is an out-of-memory crash


def fit_formula(table: dict[str, Any], candidates: list[Any]) -> dict[str, float]:
    """The closed-form fallback's peak multiplier per family (transformer / cnn), strategy and
    precision, fitted to the traced table: the FORMULA_QUANTILE quantile over traced models and a
    few batch sizes and lengths of traced peak / formula peak, so that the formula, used only
    where no trace exists, under-predicts for about one traced configuration in ten."""
    from modelwiz.engine import memory

    ratios: dict[str, list[float]] = {}
    for cand in candidates:
        m = table["models"].get(cand.id)
        if not m:
            continue
        entry = table["entries"][m["entry"]]
        family = memory.formula_family(cand)
        for strategy in STRATEGIES:
            for precision in PRECISIONS:
                for b, length, side in FORMULA_FIT_SETTINGS:
                    kw = dict(strategy=strategy, batch_size=b, seq_len=length, image_size=side, precision=precision)
                    traced = memory.estimate(cand, **kw, trace=entry)  # type: ignore[arg-type]
                    if traced.method != "traced":
                        continue
                    f = memory.formula_estimate(cand, **kw, scale=1.0)  # type: ignore[arg-type]
                    if f.peak_gb > 0:
                        ratios.setdefault(f"{family}/{strategy}/{precision}", []).append(traced.peak_gb / f.peak_gb)
    out = {}
    for k, v in sorted(ratios.items()):
        v.sort()
        out[k] = round(v[min(len(v) - 1, int(FORMULA_QUANTILE * len(v)))], 4)
    return out


def trace_into_cache(
    spec: dict[str, Any], strategies: tuple[str, ...], precisions: tuple[str, ...], num_layers: int = 0
) -> dict[str, Any]:
    """Trace what the cache entry for `spec` lacks; returns the (merged) entry."""
    key = spec_key(spec)
    path = cache_path(key)
    cached = read_json(path)
    have = cached if isinstance(cached, dict) and cached.get("version") == TABLE_VERSION else None
    todo_s = tuple(
        s for s in strategies if not have or not all(p in have["entry"]["strategies"].get(s, {}) for p in precisions)
    )
    if have and not todo_s:
        return dict(have["entry"])
    entry = trace_model(spec, strategies=todo_s, precisions=precisions, num_layers=num_layers)
    if have:
        merged = dict(have["entry"])
        for s, v in entry["strategies"].items():
            merged["strategies"].setdefault(s, {}).update(v)
        entry = merged
    entry["spec"] = spec
    atomic_write_json(path, {"version": TABLE_VERSION, "key": key, "entry": entry})
    return entry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m modelwiz.engine.memtrace", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="trace the catalog and torchvision models into the shipped table")
    b.add_argument("--out", type=Path, default=TABLE_PATH)
    b.add_argument("--only", nargs="*", help="model ids containing one of these")
    b.add_argument("--force", action="store_true")
    t = sub.add_parser("trace", help="trace one model into the on-disk cache; prints the entry as JSON")
    t.add_argument("spec", help="a JSON spec (see spec_for_candidate)")
    t.add_argument("--strategy", nargs="*", default=list(STRATEGIES))
    t.add_argument("--precision", nargs="*", default=list(PRECISIONS))
    t.add_argument("--num-layers", type=int, default=0, help="the candidate's layers (partial trains a third)")
    args = ap.parse_args(argv)
    if args.cmd == "build":
        table = build_table(args.out, args.only, args.force, log=lambda m: print(m, file=sys.stderr, flush=True))
        print(json.dumps({"models": len(table["models"]), "entries": len(table["entries"])}))
        return 0
    spec = json.loads(args.spec)
    precisions = tuple(dict.fromkeys(p if p != "fp16" else "bf16" for p in args.precision))
    entry = trace_into_cache(spec, tuple(args.strategy), precisions, num_layers=args.num_layers)
    print(json.dumps({"key": spec_key(spec), "seconds": entry.get("seconds")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
