"""Transferability: how well a model's frozen features fit the user's labels, in seconds.

Two estimators, both on features of a seeded, stratified sample of the training data:

- **LogME** (You, Liu, Wang, Long: "LogME: Practical Assessment of Pre-trained Models for Transfer
  Learning", ICML 2021): the log marginal evidence, per example, of a Bayesian linear regression
  from features to each one-hot label column, with the prior precision alpha and noise precision
  beta fitted by MacKay's fixed point; averaged over classes. Higher is better. Computed in
  float64 from one eigendecomposition of the smaller Gram matrix (F^T F or F F^T). When there are
  fewer samples than feature dimensions, the d - n null directions of F^T F still belong to the
  log-determinant of A = alpha I + beta F^T F: each adds log(alpha) (the reference code, which
  sums over the n singular values only, leaves them out and over-rates wide features).
- **H-score** (Bao, Li, Huang, Zhao, Zhang, Wang: "An Information-theoretic Approach to
  Transferability in Task Transfer Learning", ICIP 2019): tr(cov(f)^-1 cov(E[f | y])), with the
  feature covariance shrunk by Ledoit-Wolf as Ibrahim, Ponomareva, Mazumder ("Newer is not always
  better: Rethinking transferability metrics, their peculiarities, stability and performance",
  ECML-PKDD 2022) found necessary for a stable estimate when samples are few against the
  dimension. Higher is better.

Features are pooled as the transferability literature found best: text, the mean over tokens
(padding masked) of every transformer layer's output, averaged over the layers (Bassignana et
al., "Evidence > Intuition", 2022, and Tenney et al. on layer-wise information); images, the input
of the classifier head (the pooled penultimate features; ViT-style heads: the class token), for
torchvision and Hugging Face models alike. They are cached per (model, data hash,
pooling) under the cache folder, so a second probe of the same data is a file read.

`probe` is the one entry point: the CLI calls it in its own process, a TUI worker would call it
in a subprocess (the UI process never imports torch).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelwiz.engine import batching
from modelwiz.engine import events as ev
from modelwiz.engine.paths import cache_dir

MAX_PROBE_EXAMPLES = 2000
TEXT_POOLING = "mean-tokens-mean-layers"
IMAGE_POOLING = "classifier-input"
Event = dict[str, Any]
Sink = Callable[[Event], None]


# ---------------------------------------------------------------------------------- estimators


def _one_hot(labels: Sequence[int] | np.ndarray) -> tuple[np.ndarray, int]:
    y = np.asarray(labels, dtype=np.int64).ravel()
    classes = np.unique(y)
    index = np.searchsorted(classes, y)
    out = np.zeros((y.size, classes.size), dtype=np.float64)
    out[np.arange(y.size), index] = 1.0
    return out, int(classes.size)


def logme(features: np.ndarray, labels: Sequence[int] | np.ndarray, *, max_iter: int = 100, tol: float = 1e-5) -> float:
    """LogME of `features` (n x d) for integer `labels`: mean over classes of the per-example
    log evidence of a Bayesian linear model (see the module doc). Higher is better."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] != len(labels):
        raise ValueError(f"features {f.shape} do not match {len(labels)} labels")
    n, d = f.shape
    y, k = _one_hot(labels)
    if n >= d:
        sigma, v = np.linalg.eigh(f.T @ f)  # d eigenvalues: F^T F = V diag(sigma) V^T
        sigma = np.clip(sigma, 0.0, None)
        keep = sigma > sigma.max() * 1e-12 if sigma.size else sigma > 0
        sigma, v = sigma[keep], v[:, keep]
        # z = U^T y with U = F V S^-1: the label columns in the left singular basis
        z = (v.T @ (f.T @ y)) / np.sqrt(sigma)[:, None]
    else:
        sigma, u = np.linalg.eigh(f @ f.T)  # n eigenvalues of F F^T = U diag(sigma) U^T
        sigma = np.clip(sigma, 0.0, None)
        keep = sigma > sigma.max() * 1e-12 if sigma.size else sigma > 0
        sigma, u = sigma[keep], u[:, keep]
        z = u.T @ y
    rank = sigma.size
    null = d - rank  # directions of A = alpha I + beta F^T F where only alpha acts
    total = 0.0
    for c in range(k):
        z2 = z[:, c] ** 2
        outside = max(float(y[:, c] @ y[:, c] - z2.sum()), 0.0)  # |y|^2 outside the span of F
        alpha, beta = 1.0, 1.0
        for _ in range(max_iter):
            t = alpha / beta
            gamma = float((sigma / (sigma + t)).sum())
            m2 = float((sigma * z2 / (sigma + t) ** 2).sum())
            res2 = float((z2 * (t / (sigma + t)) ** 2).sum()) + outside
            new_alpha = gamma / (m2 + 1e-12)
            new_beta = (n - gamma) / (res2 + 1e-12)
            done = abs(new_alpha / new_beta - t) / t < tol
            alpha, beta = new_alpha, new_beta
            if done:
                break
        t = alpha / beta
        m2 = float((sigma * z2 / (sigma + t) ** 2).sum())
        res2 = float((z2 * (t / (sigma + t)) ** 2).sum()) + outside
        logdet = float(np.log(alpha + beta * sigma).sum()) + null * math.log(alpha)
        evidence = (
            n / 2 * math.log(beta)
            + d / 2 * math.log(alpha)
            - n / 2 * math.log(2 * math.pi)
            - beta / 2 * res2
            - alpha / 2 * m2
            - logdet / 2
        )
        total += evidence / n
    return total / k


def _ledoit_wolf(x: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf shrinkage of the covariance of centred `x` (n x d) towards a scaled identity."""
    n, d = x.shape
    s = x.T @ x / n
    mu = float(np.trace(s)) / d
    d2 = float(((s - mu * np.eye(d)) ** 2).sum())
    if d2 <= 0:
        return s
    row4 = float(((x**2).sum(axis=1) ** 2).sum())
    b2 = max((row4 - n * float((s**2).sum())) / n**2, 0.0)
    shrink = min(b2, d2) / d2
    return shrink * mu * np.eye(d) + (1 - shrink) * s


def h_score(features: np.ndarray, labels: Sequence[int] | np.ndarray, *, shrinkage: bool = True) -> float:
    """H-score tr(cov(f)^-1 cov(E[f|y])) (see the module doc); `shrinkage` uses the Ledoit-Wolf
    covariance, else the pseudo-inverse of the sample covariance (Bao et al.'s original)."""
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64).ravel()
    if f.ndim != 2 or f.shape[0] != y.size:
        raise ValueError(f"features {f.shape} do not match {y.size} labels")
    x = f - f.mean(axis=0)
    n = x.shape[0]
    cov = _ledoit_wolf(x) if shrinkage else x.T @ x / n
    classes, index = np.unique(y, return_inverse=True)
    means = np.zeros((classes.size, x.shape[1]))
    np.add.at(means, index, x)
    counts = np.bincount(index).astype(np.float64)
    means /= counts[:, None]
    g = means[index]  # E[f | y] for each example
    cov_g = g.T @ g / n
    inv = np.linalg.pinv(cov, rcond=1e-10, hermitian=True) if not shrinkage else np.linalg.inv(cov)
    return float(np.trace(inv @ cov_g))


# ---------------------------------------------------------------------------------- the sample


def stratified_sample(labels: Sequence[int], limit: int = MAX_PROBE_EXAMPLES, seed: int = 0) -> list[int]:
    """Indices of at most `limit` examples, each class in proportion (at least 2 where it has
    them), chosen with `seed`; sorted."""
    if len(labels) <= limit:
        return list(range(len(labels)))
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(int(y), []).append(i)
    share = {c: max(min(2, len(ix)), int(limit * len(ix) / len(labels))) for c, ix in by_class.items()}
    while sum(share.values()) > limit:  # the floors may overshoot: trim the largest
        big = max(share, key=lambda c: share[c])
        share[big] -= 1
    left = limit - sum(share.values())
    for c in sorted(by_class, key=lambda c: -len(by_class[c])):  # rounding remainder to big classes
        if left <= 0:
            break
        if share[c] < len(by_class[c]):
            share[c] += 1
            left -= 1
    picked: list[int] = []
    for c, ix in sorted(by_class.items()):
        picked += [int(i) for i in rng.choice(ix, size=share[c], replace=False)]
    return sorted(picked)


def data_hash(items: Sequence[Any], labels: Sequence[int]) -> str:
    """What the features depend on in the data: the examples (texts, or image paths with their
    size and modification time) and labels."""
    h = hashlib.sha256()
    for item, y in zip(items, labels, strict=True):
        h.update(str(item).encode("utf-8", "surrogatepass"))
        p = Path(str(item))
        if not isinstance(item, str) or len(item) < 4096:
            try:
                st = p.stat() if p.is_file() else None
            except (OSError, ValueError):
                st = None
            if st is not None:
                h.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
        h.update(f"\x00{y}\x01".encode())
    return h.hexdigest()[:20]


# ---------------------------------------------------------------------------------- features


def pooling_for(adapter: Any) -> str:
    return IMAGE_POOLING if getattr(adapter, "kind", "") in ("torchvision", "hf-image") else TEXT_POOLING


def _pool_hf(outputs: Any, inputs: dict[str, Any], pooling: str) -> Any:
    import torch

    states = outputs.hidden_states
    # every layer's output, not the embeddings; summed in float32 (under bf16 autocast a layer's
    # output is bf16, whose 8-bit mantissa a sum over tokens would round away)
    layers = [h.float() for h in (states[1:] if len(states) > 1 else states)]
    mask = inputs.get("attention_mask")
    if mask is None:
        mask = torch.ones(layers[0].shape[:2], dtype=layers[0].dtype)
    w = mask.to(layers[0].dtype).unsqueeze(-1)
    per_layer = [(h * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0) for h in layers]
    return torch.stack(per_layer).mean(dim=0)


CONV_LAYERS_FOR_CHANNELS_LAST = 8


def _channels_last(model: Any) -> Any:
    """A convolutional network reads images faster on a CPU laid out channels-last (MobileNetV2's
    forward pass here: 0.50 s against 0.81 s for 25 images at 224 px): such a model (at least
    `CONV_LAYERS_FOR_CHANNELS_LAST` 2-D convolutions; a transformer's one patch embedding is not
    worth it) is converted in place for the features and back afterwards. Returns the layout,
    or None where the model is left as it is (on a GPU, or few convolutions)."""
    import torch
    import torch.nn as nn

    convs = sum(1 for m in model.modules() if isinstance(m, nn.Conv2d))
    first = next(model.parameters(), None)
    if convs < CONV_LAYERS_FOR_CHANNELS_LAST or first is None or first.device.type != "cpu":
        return None
    model.to(memory_format=torch.channels_last)
    return torch.channels_last


# what an InputMemo may hold: 100 images at 224 px are 15 MB of uint8 crops, a 2,000-image sample
# 300 MB (what does not fit is decoded again for each model)
MEMO_BYTES = 512 << 20


class InputMemo:
    """Image batches decoded once and read by every model of the same input side: the contenders
    of a probe or a bake-off read the same sample, and each would decode, resize and crop every
    image again (a pretrained model and its copies, most ImageNet CNNs at 224 px). What is kept
    is the uint8 crop before normalisation (`ImageAdapter.eval_pixels`), so models with their own
    mean and std share it too. Text is not kept (each tokenizer is its own, and tokenizing costs
    little). Holds at most `max_bytes`; past that, batches are decoded afresh."""

    def __init__(self, max_bytes: int = MEMO_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self._batches: dict[tuple[int, tuple[str, ...]], Any] = {}

    def collate(self, adapter: Any, batch: list[Any]) -> dict[str, Any]:
        from modelwiz.engine.adapters.base import ImageAdapter

        if not isinstance(adapter, ImageAdapter):
            return adapter.collate(batch, train=False)
        slot = (int(adapter.image_size), tuple(str(x) for x in batch))
        pixels = self._batches.get(slot)
        if pixels is not None:
            self.hits += 1
        else:
            pixels = adapter.eval_pixels(batch)
            size = int(pixels.numel()) * int(pixels.element_size())
            if self.bytes + size <= self.max_bytes:
                self._batches[slot] = pixels
                self.bytes += size
        return {"pixel_values": adapter.normalize(pixels)}


def extract_features(
    adapter: Any,
    items: Sequence[Any],
    *,
    batch_size: int = 32,
    pooling: str = "",
    on_batch: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    memo: InputMemo | None = None,
    precision: str = "auto",
) -> np.ndarray:
    """Frozen, pooled features (n x d, float32) of `items` from an adapter's backbone (eval mode,
    no gradients): for Hugging Face models the hidden states pooled as `pooling` says, for
    torchvision models the input of the last Linear layer (the replaced head). `memo`, shared by
    the models of one probe or bake-off, collates each image batch once (InputMemo). `precision`
    "bf16" runs the forward passes under bf16 autocast; "auto": `feature_precision` of the model's
    device."""
    import torch

    pooling = pooling or pooling_for(adapter)
    model = adapter.model.eval()
    captured: list[Any] = []
    hook = None
    if pooling == IMAGE_POOLING:
        # what the classifier sees: the input of the head (`classifier`, else the last Linear)
        import torch.nn as nn

        head = getattr(model, "classifier", None)
        if not isinstance(head, nn.Linear):
            head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        hook = head.register_forward_hook(lambda _m, args, _out: captured.append(args[0].detach()))
    layout = _channels_last(model) if hook is not None else None
    # texts longest first (by characters: no second tokenization), so a batch pads little; the
    # rows are put back in order below
    chars = [len(str(x)) for x in items] if hook is None else None
    order = batching.eval_order(chars, len(items))
    chunks = []
    try:
        first = next(model.parameters(), None)
        device_type = first.device.type if first is not None else "cpu"
        if precision == "auto":
            precision = feature_precision(device_type)
        with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            for start in range(0, len(items), batch_size):
                if should_stop is not None and should_stop():
                    raise InterruptedError("probe cancelled")
                batch = [items[i] for i in order[start : start + batch_size]]
                inputs = memo.collate(adapter, batch) if memo is not None else adapter.collate(batch, train=False)
                if hook is not None:
                    captured.clear()
                    pixels = inputs["pixel_values"]
                    model(pixels if layout is None else pixels.contiguous(memory_format=layout))
                    pooled = captured[-1]
                    pooled = pooled[:, 0] if pooled.dim() == 3 else pooled.flatten(1)  # token heads: the first
                else:
                    outputs = model(**inputs, output_hidden_states=True)
                    pooled = _pool_hf(outputs, inputs, pooling)
                chunks.append(pooled.float().cpu().numpy())
                if on_batch is not None:
                    on_batch(min(start + batch_size, len(items)))
    finally:
        if hook is not None:
            hook.remove()
        if layout is not None:
            model.to(memory_format=torch.contiguous_format)  # as training has it (its step costs)
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    feats = np.concatenate(chunks, axis=0)
    out = np.empty_like(feats)
    out[np.asarray(order)] = feats
    return out


def _feature_cache(model_key: str, dhash: str, pooling: str, inputs: str = "") -> Path:
    key = hashlib.sha256(f"{model_key}\x00{dhash}\x00{pooling}\x00{inputs}".encode()).hexdigest()[:24]
    return cache_dir() / "features" / f"{key}.npy"


def plan_pooling(plan: Any) -> str:
    return IMAGE_POOLING if plan.adapter in ("torchvision", "hf-image") else TEXT_POOLING


def feature_precision(device_type: str) -> str:
    """The precision frozen features are computed in: bf16 autocast on a CPU that computes bf16
    natively (AVX512-BF16, AMX), else fp32. Measured on this machine's CPU (AVX512-BF16) over the
    ranking bench's 7 tasks and 10 models (bench/ranking_quality.py's data, every training
    example): 30.4 s of features in fp32, 17.0 s in bf16 (MobileNetV2 and all-mpnet-base-v2 each
    about 1.8x faster), the same LogME order on every task, LogME within 0.001 for text and 0.006
    for images, H-score within 0.001. GPUs keep fp32 (not measured here).
    `MODELWIZ_FEATURE_PRECISION=fp32` (or `bf16`) overrides it."""
    forced = os.environ.get("MODELWIZ_FEATURE_PRECISION", "").strip().lower()
    if forced in ("fp32", "bf16"):
        return forced
    if device_type != "cpu":
        return "fp32"
    try:
        import torch

        return "bf16" if bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) else "fp32"
    except (AttributeError, RuntimeError):
        return "fp32"


def feature_path(
    candidate: Any, plan: Any, items: Sequence[Any], labels: Sequence[int], device_type: str = "cpu"
) -> Path:
    """Where the features of `items` for the plan's model are cached: per model (its files), data,
    pooling, what the plan feeds the model (the text's token limit, the image's side) and the
    precision they are computed in on `device_type` (`feature_precision`), so the probe, a bake-off
    and a later probe of the same sample share them."""
    pooling = plan_pooling(plan)
    inputs = (
        f"px{getattr(plan, 'image_size', 0)}" if pooling == IMAGE_POOLING else f"len{getattr(plan, 'max_length', 0)}"
    )
    inputs += f"|{feature_precision(device_type)}"
    return _feature_cache(_model_key(candidate), data_hash(items, labels), pooling, inputs)


def read_features(path: Path, n: int) -> np.ndarray | None:
    """Cached features of `n` examples, or None (missing, unreadable or of another size)."""
    if not path.is_file():
        return None
    try:
        feats = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return feats if feats.ndim == 2 and feats.shape[0] == n else None


def write_features(path: Path, feats: np.ndarray) -> None:
    """Cache features; a cache that cannot be written costs a recomputation later, not the run."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, feats, allow_pickle=False)
        tmp.replace(path)
    except OSError:
        pass


def _model_key(candidate: Any) -> str:
    """A model's identity for the cache: its id, and where it lies with the weights' size and
    modification time (a re-saved folder gets new features)."""
    parts = [str(candidate.id), str(candidate.path or "")]
    where = Path(str(candidate.path)) if candidate.path else None
    if where is not None:
        files = sorted(where.glob("*.safetensors")) if where.is_dir() else [where]
        for f in files:
            try:
                st = f.stat()
                parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
            except OSError:
                pass
    return "|".join(parts)


def cached_features(
    candidate: Any,
    plan: Any,
    items: Sequence[Any],
    labels: Sequence[int],
    label_names: list[str],
    *,
    on_batch: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    memo: InputMemo | None = None,
) -> tuple[np.ndarray, bool]:
    """Features of `items` for the plan's model, from the cache or computed (and cached):
    (features, whether they came from the cache). The model is loaded as the trainer loads it."""
    from modelwiz.engine.adapters import adapter_class

    path = feature_path(candidate, plan, items, labels)
    feats = read_features(path, len(items))
    if feats is not None:
        return feats, True
    adapter = adapter_class(plan.adapter).for_training(plan, label_names)
    feats = extract_features(
        adapter, items, batch_size=32, pooling=plan_pooling(plan), on_batch=on_batch, should_stop=should_stop, memo=memo
    )
    write_features(path, feats)
    return feats, False


# ---------------------------------------------------------------------------------- the probe


@dataclass
class ProbeResult:
    model: str
    logme: float
    h_score: float
    examples: int
    dim: int
    seconds: float  # features and scores
    feature_seconds: float
    cached: bool
    rank: int = 0  # 1 = best LogME among the probed
    of: int = 0
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for key in ("logme", "h_score", "seconds", "feature_seconds"):
            value = out[key]
            out[key] = round(value, 4) if isinstance(value, float) and math.isfinite(value) else None
        return out


def wait_for_speed_benchmark(emit: Sink, should_stop: Callable[[], bool] | None = None) -> None:
    """Let this CPU's speed benchmark finish first when it is under way (the hardware probe starts
    it on a machine's first use, about 12 s): side by side each slows the other (a fresh home's
    first `recommend --probe 4` on the demo took 57 s for all-mpnet-base-v2 alone, 6.8 s once the
    benchmark was done), and a benchmark measured under load is marked busy and measured again."""
    from modelwiz.engine import speed

    if not speed.benchmark_running("cpu"):
        return
    emit(
        ev.Log(
            level="info",
            message="waiting for this CPU's speed benchmark to finish before the probe (once per machine, about 10 s)",
        ).to_json()
    )
    speed.wait_for_benchmark("cpu", stop=should_stop or (lambda: False))


def probe_candidates(ranked: Sequence[Any], k: int, *, offline: bool) -> list[Any]:
    """The first `k` ranked models whose weights are on disk, or downloadable when not offline."""
    return [r for r in ranked if r.candidate.on_disk or not offline][:k]


def probe(
    ranked: Sequence[Any],
    data: Any,
    *,
    k: int = 5,
    seed: int = 0,
    offline: bool = False,
    limit: int = MAX_PROBE_EXAMPLES,
    sink: Sink | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[ProbeResult]:
    """Score the top `k` probe-able models of `ranked` (workflow `Ranked` rows) on a seeded,
    stratified sample of `data.train` (at most `limit` examples); results best LogME first.
    `sink` receives progress events (dicts with an "event" key). A model that fails to load is
    reported with `error` and ranked last, not raised."""
    from modelwiz.engine.allocator import keep_freed_memory

    # as the trainer does: freed blocks stay in the heap for the next batch instead of being mapped
    # and faulted in afresh (engine/allocator.py); the probe's peak is a forward pass's
    keep_freed_memory()
    emit = sink or (lambda _e: None)
    chosen = probe_candidates(ranked, k, offline=offline)
    train = data.train
    picked = stratified_sample(train.labels, limit, seed)
    items = [train.items[i] for i in picked]
    labels = [int(train.labels[i]) for i in picked]
    emit(ev.ProbeStarted(models=[r.candidate.id for r in chosen], examples=len(items)).to_json())
    wait_for_speed_benchmark(emit, should_stop)
    results: list[ProbeResult] = []
    memo = InputMemo()
    for i, r in enumerate(chosen, start=1):
        cid = r.candidate.id
        emit(ev.ProbeModel(model=cid, index=i, of=len(chosen), examples=len(items)).to_json())
        t0 = time.perf_counter()

        def batch_done(done: int, cid: str = cid, i: int = i) -> None:
            emit(ev.ProbeProgress(model=cid, index=i, done=done, total=len(items)).to_json())

        try:
            feats, cached = cached_features(
                r.candidate,
                r.plan,
                items,
                labels,
                list(data.label_names),
                on_batch=batch_done,
                should_stop=should_stop,
                memo=memo,
            )
        except InterruptedError:
            raise
        except Exception as exc:  # noqa: BLE001 - one broken model must not end the probe
            from modelwiz.engine.adapters.base import first_line

            results.append(
                ProbeResult(cid, float("-inf"), float("-inf"), len(items), 0, time.perf_counter() - t0, 0.0, False)
            )
            results[-1].error = first_line(exc)
            emit(ev.ProbeFailed(model=cid, error=results[-1].error).to_json())
            continue
        t1 = time.perf_counter()
        score = logme(feats, labels)
        h = h_score(feats, labels)
        res = ProbeResult(cid, score, h, len(items), int(feats.shape[1]), time.perf_counter() - t0, t1 - t0, cached)
        results.append(res)
        emit(ev.ProbeResult(**res.to_dict()).to_json())
    results.sort(key=lambda x: -x.logme)
    for n, res in enumerate(results, start=1):
        res.rank, res.of = n, len(results)
    return results


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# The blend of prior and evidence, chosen by `bench/ranking_quality.py --choose` (a grid over the
# weight 0..1 in steps of 0.05, the estimator LogME / H-score / both, the scale rank / min-max;
# best mean Kendall tau, then top-3 and top-1 rates, then the smaller weight) on its 6 tasks
# (4 text, 2 image; the zoo's 4 text and 2 image models fine-tuned the same way): w = 0.30 with
# LogME by rank, mean tau 0.91, the best model 1st on 6 of 6, every pretrained model above its
# random twin on 6 of 6; left out one task at a time, the weights the other 5 chose score
# tau 0.85 and best 1st 6 of 6 on it. The prior alone (no probe) scores tau 0.59 there, best 1st
# on 2 of 6 (its size fit favours MiniLM; mpnet fine-tuned best on every text task); LogME alone
# 0.91, H-score alone 0.85. The README's "Ranking quality" has the table.
EVIDENCE_WEIGHT = 0.3
ESTIMATOR = "logme"  # logme | h-score | both (the mean of the two, each scaled as below)
SCALE = "rank"  # rank | minmax: how an estimator's values become evidence in [0, 1]


def evidence_scores(results: Sequence[ProbeResult], estimator: str = ESTIMATOR, scale: str = SCALE) -> dict[str, float]:
    """Each probed model's evidence in [0, 1] among the models probed together (a failed
    probe: 0). Both estimators' values depend on the data, so only values of one probe are
    compared: `minmax` scales them between the lowest (0) and the highest (1); `rank` takes their
    order alone (the best 1, the worst 0, evenly between; ties share), so one far-off model (a
    random-init folder) does not squeeze the differences among the others."""

    def scaled(values: dict[str, float]) -> dict[str, float]:
        ok = {m: v for m, v in values.items() if math.isfinite(v)}
        if not ok:
            return dict.fromkeys(values, 0.0)
        if scale == "rank":
            n = len(ok)
            below = {
                m: sum(w < v for w in ok.values()) + (sum(w == v for w in ok.values()) - 1) / 2 for m, v in ok.items()
            }
            return {m: (below[m] / (n - 1) if n > 1 else 1.0) if m in ok else 0.0 for m in values}
        if scale != "minmax":
            raise ValueError(f"unknown scale {scale!r}; rank or minmax")
        lo, hi = min(ok.values()), max(ok.values())
        span = hi - lo
        return {m: ((ok[m] - lo) / span if span > 0 else 1.0) if m in ok else 0.0 for m in values}

    by_logme = scaled({r.model: (r.logme if not r.error else float("-inf")) for r in results})
    by_h = scaled({r.model: (r.h_score if not r.error else float("-inf")) for r in results})
    if estimator == "logme":
        return by_logme
    if estimator == "h-score":
        return by_h
    if estimator == "both":
        return {m: (by_logme[m] + by_h[m]) / 2 for m in by_logme}
    raise ValueError(f"unknown estimator {estimator!r}; logme, h-score or both")


def blended_score(prior: float, evidence: float, evidence_weight: float = EVIDENCE_WEIGHT) -> float:
    """What the probed models are ordered by: `(1 - evidence_weight) * prior + evidence_weight * evidence`."""
    return (1 - evidence_weight) * prior + evidence_weight * evidence


def reblend(probe: dict[str, Any], prior: float) -> dict[str, Any]:
    """A probed model's `probe` record (as `rerank` sets it) for a new ranking of the same model
    under other settings, whose prior score is `prior`: the same evidence, blended again."""
    weight = float(probe.get("evidence_weight", EVIDENCE_WEIGHT))
    return {**probe, "blended": round(blended_score(prior, float(probe["evidence"]), weight), 4)}


def rerank(
    ranked: list[Any],
    results: list[ProbeResult],
    *,
    evidence_weight: float = EVIDENCE_WEIGHT,
    estimator: str = ESTIMATOR,
    scale: str = SCALE,
) -> list[Any]:
    """The ranking re-ordered by the blend of prior and evidence: the probed models take the
    places they held, ordered among themselves by
    `(1 - evidence_weight) * prior score + evidence_weight * evidence` (`evidence_scores`; ties:
    the better LogME); every other row keeps its place. Each probed row gets `probe` (the result,
    with its evidence and blended score) and a reason line with the numbers."""
    by_id = {res.model: res for res in results}
    evidence = evidence_scores(results, estimator, scale)
    slots = [i for i, r in enumerate(ranked) if r.candidate.id in by_id]

    def blended(row: Any) -> float:
        return blended_score(float(row.score), evidence[row.candidate.id], evidence_weight)

    probed = sorted((ranked[i] for i in slots), key=lambda r: (-blended(r), by_id[r.candidate.id].rank))
    out = list(ranked)
    for slot, row in zip(slots, probed, strict=True):
        res = by_id[row.candidate.id]
        row.probe = {
            **res.to_dict(),
            "evidence": round(evidence[row.candidate.id], 4),
            "blended": round(blended(row), 4),
            "evidence_weight": evidence_weight,
            "estimator": estimator,
            "scale": scale,
        }
        if res.error:
            row.reasons.insert(0, f"probe failed: {res.error}")
        else:
            row.reasons.insert(
                0,
                f"LogME {res.logme:.2f}, {ordinal(res.rank)} of {res.of} on {res.examples:,} of your examples "
                f"(H-score {res.h_score:.2f}; {res.seconds:.1f} s{', cached features' if res.cached else ''}): "
                f"evidence {evidence[row.candidate.id]:.2f}, blended score {blended(row):.2f} "
                f"({1 - evidence_weight:.0%} prior {row.score:.2f})",
            )
        out[slot] = row
    return out


def to_json(results: list[ProbeResult]) -> str:
    return json.dumps([r.to_dict() for r in results])
