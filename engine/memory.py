"""Predicting peak training memory and time before anything is loaded.

peak = weights + gradients + optimizer state + activations + runtime overhead, where
- weights are kept in fp32 (AMP keeps fp32 master weights; bf16/fp16 only halve activations),
- gradients (fp32) and AdamW's two moments (2 x fp32) exist only for trainable parameters,
- activations of a transformer layer follow Korthikanti et al. 2022 ("Reducing Activation
  Recomputation in Large Transformer Models", arXiv:2205.05198, sec. 4.1): per layer
  s*b*h*(34 + 5*a*s/h) bytes in 16-bit precision, doubled for fp32;
- CNN activations are taken proportional to forward GFLOPs (an approximation to be calibrated by
  bench/memory_estimate.py against torch.cuda.max_memory_allocated);
- frozen layers keep no activations for backward (linear probe: only the head's input).
This is a first version of the predictor; bench/ measures its error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

GB = 1024**3
CUDA_CONTEXT_GB = 0.5  # CUDA context + allocator slack
CPU_RUNTIME_GB = 0.6  # torch + transformers imported, resident
CNN_ACT_BYTES_PER_GFLOP = 35e6  # fp32 activation bytes per image per forward GFLOP
# Eager fp32 training keeps more than the 16-bit formula doubled (fp32 attention scores, GELU and
# LayerNorm inputs, transient gradients in backward). bench/memory_estimate.py measured 1.9-2.1x
# on the CPU (BERT-base and all-MiniLM-L6-v2, torch 2.14, transformers 5.23); 16-bit is not yet
# calibrated on a GPU.
FP32_ACT_FACTOR = 2.0


@dataclass
class MemoryEstimate:
    weights_gb: float
    gradients_gb: float
    optimizer_gb: float
    activations_gb: float
    overhead_gb: float
    total_gb: float
    trainable_params: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def trainable_fraction(strategy: str, num_layers: int) -> tuple[float, float]:
    """(fraction of backbone parameters trained, fraction of layers keeping activations)."""
    if strategy == "linear-probe":
        return 0.0, 0.0
    if strategy == "partial":
        # the top third of the layers
        return 1 / 3, 1 / 3
    return 1.0, 1.0


def estimate(
    cand: Any,
    *,
    strategy: str = "full",
    batch_size: int = 16,
    seq_len: int = 128,
    image_size: int | None = None,
    precision: str = "fp32",
    device: str = "cpu",
    num_labels: int = 2,
) -> MemoryEstimate:
    params = max(int(cand.params or 0), 1)
    hidden = int(cand.hidden_size or 0)
    layers = int(cand.num_layers or 0)
    heads = int(cand.num_heads or 0) or max(1, hidden // 64)
    head_params = (hidden or 512) * num_labels + num_labels
    train_frac, act_frac = trainable_fraction(strategy, layers)
    if strategy == "full":
        trainable = params + head_params
    else:
        trainable = int(params * train_frac) + head_params

    # multiplier on the 16-bit formula
    act_bytes_per_elem = 1.0 if precision in ("bf16", "fp16") else 2.0 * FP32_ACT_FACTOR
    if cand.modality == "text" or cand.arch in ("vit", "deit", "beit", "dinov2", "swin", "swinv2"):
        if cand.modality == "text":
            s = seq_len
        else:
            size = image_size or cand.image_size or 224
            s = (size // 16) ** 2 + 1
        h = hidden or 768
        per_layer = s * batch_size * h * (34 + 5 * heads * s / h) * act_bytes_per_elem
        activations = per_layer * max(layers, 1) * act_frac
        # the layer being computed (forward only) and the logits/embeddings
        activations += per_layer + batch_size * s * h * 4 * 2
    else:
        size = image_size or cand.image_size or 224
        gflops = cand.gflops or (params / 1e6) * 0.2
        scale = (size / (cand.image_size or 224)) ** 2
        half = 0.5 if precision in ("bf16", "fp16") else 1.0
        full = batch_size * gflops * scale * CNN_ACT_BYTES_PER_GFLOP * half
        activations = full * act_frac + full / max(layers or 20, 1)

    weights = params * 4
    gradients = trainable * 4
    optimizer = trainable * 8
    overhead = (CUDA_CONTEXT_GB if device.startswith("cuda") else CPU_RUNTIME_GB) * GB
    total = weights + gradients + optimizer + activations + overhead
    return MemoryEstimate(
        weights_gb=round(weights / GB, 3),
        gradients_gb=round(gradients / GB, 3),
        optimizer_gb=round(optimizer / GB, 3),
        activations_gb=round(activations / GB, 3),
        overhead_gb=round(overhead / GB, 3),
        total_gb=round(total / GB, 3),
        trainable_params=trainable,
    )


def flops_per_sample(cand: Any, *, strategy: str, seq_len: int, image_size: int | None) -> float:
    """Training FLOPs per example: 2*N*T forward plus 4*N*T backward for trained parts."""
    params = max(int(cand.params or 0), 1)
    if cand.modality == "text":
        tokens = seq_len
        h, layers = int(cand.hidden_size or 0), int(cand.num_layers or 0)
        if h and layers:
            # from the architecture, not the parameter count: models that share weights across
            # layers (ALBERT) compute far more than their parameter count suggests
            inter = int(cand.intermediate_size or 4 * h)
            per_token_layer = 2 * (4 * h * h + 2 * h * inter) + 4 * tokens * h
            fwd: float = tokens * layers * per_token_layer
        else:
            embed = (cand.vocab_size or 0) * (cand.hidden_size or 0)
            compute_params = max(params - embed, params * 0.2)
            fwd = 2 * compute_params * tokens
    else:
        size = image_size or cand.image_size or 224
        gflops = cand.gflops or (params / 1e6) * 0.2
        fwd = gflops * 1e9 * (size / (cand.image_size or 224)) ** 2 * 2 / 2  # GFLOPs as MACs*2 reported
    train_frac, _ = trainable_fraction(strategy, cand.num_layers or 0)
    return fwd * (1 + 2 * (train_frac if strategy != "full" else 1.0))


def device_flops(device: str, hardware: Any) -> float:
    """Sustained training FLOP/s assumed for a device (rough; bench/ calibrates it).
    CPU: ~22 GFLOP/s per physical core, from all-MiniLM-L6-v2 full fine-tuning measured at ~11
    samples/s on 2 cores (batch 32, length 64)."""
    if device.startswith("cuda"):
        name = ""
        for g in getattr(hardware, "gpus", []):
            name = g.name
        if "H100" in name or "H200" in name or "B200" in name:
            return 150e12
        if "A100" in name:
            return 80e12
        return 25e12
    if device == "mps":
        return 3e12
    cores = getattr(hardware, "cpu_cores_physical", 1) or 1
    return 22e9 * cores
