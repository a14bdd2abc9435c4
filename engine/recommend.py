"""Ranking candidate models for a task on this hardware, with reasons a person can check.

Without evidence from the user's data (PRIOR_WEIGHTS):

score = 0.55 * quality prior (published benchmark, mapped to [0, 1]; none known: 0)
      + 0.10 * speed (predicted time per epoch on this device)
      + 0.15 * availability (weights already on disk: no download)
      + 0.20 * fit of model size to data size (big models on little data overfit and crawl)
      - 0.30 if the texts look non-English and the model is English-only

The quality prior carries the most weight. Speed alone outweighs a quality difference of at most
0.18 on the [0, 1] scale (its whole range, 30 s against 5 hours an epoch), availability one of
0.27 (a random-init folder on disk stays below its pretrained twin that needs a download: MiniLM's
prior is 0.36), size fit one of 0.36 (435M parameters for 33 examples is a poor start however
good the benchmark). The old weights (0.40 quality, 0.30 speed, 0.15 on disk, 0.15 size fit, and
a neutral 0.45 for an unknown benchmark) ranked random-init copies of all-MiniLM-L6-v2 and
all-mpnet-base-v2 above the real models on four real text tasks (issue 8), and speed outweighed
the quality differences. A model with no published benchmark now gets a quality prior of 0,
below every model with one: a folder of unknown provenance (a random-init copy included) is not
preferred for being unknown, and its reasons say that nothing is known of its quality. With
`--probe`, evidence from the user's data is blended in (engine/transfer.py `rerank`,
EVIDENCE_WEIGHT). bench/ranking_quality.py measures these rankings against fine-tuning.

Hard constraints (modality, licenses, parameter cap, offline) remove candidates; models whose
predicted training peak exceeds the memory budget stay in the list, marked fits = false, after
all that fit. Every reason carries its number: the benchmark and its source, the memory needed
of what is available at the plan's batch and length, the seconds per epoch, the download size.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelwiz.engine.errors import UserError
from modelwiz.engine.plan import Plan, make_plan
from modelwiz.engine.sources import catalog, local
from modelwiz.engine.sources.base import Candidate


@dataclass
class Ranked:
    candidate: Candidate
    score: float
    plan: Plan
    reasons: list[str] = field(default_factory=list)
    # set by `modelwiz.engine.transfer.rerank` when the user's data was probed (--probe): LogME,
    # H-score, rank among the probed, examples, seconds. `score` stays the prior's.
    probe: dict[str, Any] | None = None

    @property
    def fits(self) -> bool:
        return self.plan.fits

    @property
    def ranking_score(self) -> float:
        """What the row is ordered by: once probed, the blend of prior and evidence
        (engine/transfer.py `rerank`); else the prior's `score`."""
        p = self.probe
        if p and not p.get("error") and p.get("blended") is not None:
            return float(p["blended"])
        return float(self.score)

    def to_dict(self) -> dict[str, Any]:
        c = self.candidate
        return {
            "id": c.id,
            "name": c.name,
            "source": c.source,
            "modality": c.modality,
            "arch": c.arch,
            "score": round(self.score, 4),
            "params": c.params,
            "est_train_memory_gb": round(self.plan.memory.total_gb, 2),
            "memory_budget_gb": self.plan.budget_gb,
            "fits": self.fits,
            "license": c.license,
            "available_offline": c.available_offline,
            "on_disk": c.on_disk,
            "path": c.path,
            "languages": c.languages,
            "quality": c.quality,
            "quality_note": c.quality_note,
            "est_epoch_seconds": self.plan.epoch_seconds,
            "strategy": self.plan.strategy,
            "batch_size": self.plan.batch_size,
            "precision": self.plan.precision,
            "device": self.plan.device,
            "reasons": self.reasons,
            "refs": c.refs,
            "probe": self.probe,
        }


def _merge_local_with_catalog(cands: list[Candidate], locals_: list[Candidate]) -> list[Candidate]:
    """A local folder that is a catalog model (same name) inherits its cited metadata."""
    by_tail = {c.id.split("/")[-1].lower(): c for c in cands}
    out = list(cands)
    for lc in locals_:
        twin = by_tail.get(Path(lc.path or lc.id).name.lower())
        if twin is not None:
            merged = Candidate(**{**twin.__dict__})
            merged.id, merged.path, merged.on_disk, merged.source = lc.id, lc.path, True, "local"
            merged.name = twin.name
            merged.params = lc.params or twin.params
            if lc.license != "unknown":
                merged.license = lc.license
            merged.refs = twin.refs + [f"same weights as {twin.id}"]
            out.append(merged)
        else:
            out.append(lc)
    return out


def _merge_hub(cands: list[Candidate], hub: list[Candidate]) -> list[Candidate]:
    """Hub models that are not already a candidate. One that is (the same id in the catalog or
    the local HF cache; a local folder of the same name and parameter count) appears once, as
    that candidate, which keeps its cited metadata and gains only what it lacked (license,
    parameter count)."""
    by_id = {c.id.lower(): c for c in cands}
    by_folder = {(Path(c.path).name.lower(), c.params): c for c in cands if c.source == "local" and c.path}
    out = list(cands)
    for h in hub:
        twin = by_id.get(h.id.lower()) or by_folder.get((h.name.lower(), h.params))
        if twin is None:
            out.append(h)
            continue
        if twin.license == "unknown":
            twin.license = h.license
        twin.params = twin.params or h.params
        twin.refs = twin.refs + [r for r in h.refs[1:] if r not in twin.refs]
    return out


def gather_candidates(
    modality: str,
    *,
    include_torchvision: bool = True,
    include_hub: bool = True,
    offline: bool = False,
    notes: list[str] | None = None,
) -> list[Candidate]:
    """Every source's candidates of `modality`, each model once. The Hub is asked unless
    `offline` (or HF_HUB_OFFLINE); what it said (fetched, cached, unreachable) is appended to
    `notes` as one line."""
    from modelwiz.engine.sources import hfcache

    cands = catalog.load()
    cached = {c.id: c for c in hfcache.load()}
    for c in cands:
        if c.id in cached:
            c.on_disk, c.path = True, cached[c.id].path
    cands += [c for cid, c in cached.items() if cid not in {x.id for x in cands}]
    cands = _merge_local_with_catalog(cands, local.scan())
    if include_hub:
        from modelwiz.engine.sources import hubsearch

        found = hubsearch.search(modality, offline=offline)
        cands = _merge_hub(cands, found.candidates)
        if notes is not None and found.note:
            notes.append(found.note)
    if modality == "image" and include_torchvision:
        from modelwiz.engine.sources import torchvision_registry

        cands += torchvision_registry.load()
    return [c for c in cands if c.modality == modality]


@dataclass(frozen=True)
class PriorWeights:
    """The weights of the score without evidence from the user's data (see the module doc)."""

    quality: float
    speed: float
    availability: float
    size_fit: float
    unknown_quality: float = 0.0  # the quality prior of a model with no published benchmark


# See the module doc; bench/ranking_quality.py --choose compares them with other weights.
PRIOR_WEIGHTS = PriorWeights(quality=0.55, speed=0.10, availability=0.15, size_fit=0.20, unknown_quality=0.0)
LANGUAGE_PENALTY = 0.3
UNKNOWN_QUALITY_NOTE = (
    "no published benchmark known: nothing is known of its quality (prior 0.00, below every model with one); "
    "--probe measures it on your data"
)


def quality_prior(c: Candidate, weights: PriorWeights | None = None) -> tuple[float, bool]:
    """(the quality prior in [0, 1], whether a published benchmark backs it). A model with none
    gets `unknown_quality` (0: below any model with a published figure, so a folder of unknown
    provenance, a random-init one included, is never preferred for being unknown)."""
    if c.quality is not None:
        return float(c.quality), True
    return (weights or PRIOR_WEIGHTS).unknown_quality, False


def _short_source(c: Candidate) -> str:
    for ref in c.refs:
        if ref.startswith(("http://", "https://")):
            tail = ref.split("://", 1)[1].removeprefix("www.").rstrip("/")
            return tail if len(tail) <= 48 else tail[:47] + "…"
    return "torchvision weights registry" if c.source == "torchvision" else "catalog"


def benchmark_note(c: Candidate, q: float) -> str:
    """'benchmark: GLUE test score 79.6 (arxiv.org/abs/1810.04805): quality prior 0.61'."""
    return f"benchmark: {c.quality_note} ({_short_source(c)}): quality prior {q:.2f}"


def format_mb(mb: float) -> str:
    return f"{mb / 1000:.1f} GB" if mb >= 1000 else f"{mb:.0f} MB"


def memory_note(plan: Plan) -> str:
    """'needs 5.1 GB of 24.0 GB at batch 32, length 128 — fits'."""
    shape = f"length {plan.max_length}" if plan.modality == "text" else f"{plan.image_size} px"
    accum = f" x {plan.grad_accum} accumulated" if plan.grad_accum > 1 else ""
    head = f"needs {plan.memory.total_gb:.1f} GB of {plan.budget_gb:.1f} GB at batch {plan.batch_size}{accum}, {shape}"
    return head + (" — fits" if plan.fits else " — does NOT fit: lower batch size or choose a smaller model")


def download_note(c: Candidate) -> str:
    """'on disk: usable offline', or 'not on disk: 420 MB download' (the file size when the
    source knows it, else about the parameters at 4 bytes each)."""
    if c.on_disk:
        return "on disk: usable offline"
    if c.download_mb:
        return f"not on disk: {format_mb(c.download_mb)} download"
    if c.params:
        return f"not on disk: about {format_mb(c.params * 4 / 1e6)} download (fp32 weights)"
    return "not on disk: a download of unknown size"


def _speed_score(epoch_s: float) -> float:
    # 1.0 at <= 30 s per epoch, falling by 0.4 per factor of 10 (0 beyond ~5 hours)
    return max(0.0, min(1.0, 1.0 - 0.4 * math.log10(max(epoch_s, 30.0) / 30.0)))


def _size_fit(params: int, train_size: int) -> tuple[float, str]:
    m = params / 1e6
    # rough comfort zone: ~1M parameters per 20 examples is fine; bigger needs more data
    comfortable = max(30.0, train_size / 20.0)
    if m <= comfortable:
        return 1.0, ""
    ratio = m / comfortable
    score = max(0.0, 1.0 - 0.3 * math.log2(ratio))
    return (
        score,
        f"{m:.0f}M parameters for {train_size} training examples: may overfit, consider more data or a smaller model",
    )


def format_seconds(seconds: float) -> str:
    """A duration as people read it: '<1 s', '35 s', '12 min', '1.5 h' ('?' when unknown)."""
    if seconds < 0:
        return "?"
    if seconds < 1:
        return "<1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def rank(
    config: Any,
    hardware: Any,
    *,
    train_size: int,
    num_classes: int,
    language: str = "",
    candidates: list[Candidate] | None = None,
    weights: PriorWeights | None = None,
    val_size: int | None = None,
    text_lengths: dict[str, float] | None = None,
) -> list[Ranked]:
    """Candidates that pass the constraints, best first (those that fit before those that do
    not), each with its score under `weights` (default PRIOR_WEIGHTS), plan and reasons."""
    weights = weights or PRIOR_WEIGHTS
    task, con = config.task, config.constraints
    cands = candidates if candidates is not None else gather_candidates(task.modality)
    ranked: list[Ranked] = []
    for c in cands:
        if c.modality != task.modality:
            continue
        if con.max_params_m and c.params > con.max_params_m * 1e6:
            continue
        if con.licenses and c.license not in con.licenses:
            continue
        if con.offline and not c.on_disk:
            continue
        plan = make_plan(
            c,
            config.train,
            con,
            hardware,
            train_size=train_size,
            num_classes=num_classes,
            trust_remote_code=config.model.trust_remote_code,
            val_size=val_size,
            text_lengths=text_lengths,
        )
        reasons: list[str] = []
        q, known = quality_prior(c, weights)
        reasons.append(benchmark_note(c, q) if known else UNKNOWN_QUALITY_NOTE)
        reasons.append(memory_note(plan))
        avail = 1.0 if c.on_disk else 0.0
        reasons.append(download_note(c))
        speed = _speed_score(plan.epoch_seconds)
        approx = "" if plan.epoch_seconds < 1 else "~"
        reasons.append(
            f"{approx}{format_seconds(plan.epoch_seconds)}/epoch on {plan.device} ({plan.strategy}, batch {plan.batch_size}, "
            f"{plan.precision})"
        )
        fit, fit_note = _size_fit(c.params, train_size)
        if fit_note:
            reasons.append(fit_note)
        penalty = 0.0
        if c.modality == "text":
            if language == "non-en" and not c.multilingual and "en" in c.languages:
                penalty = LANGUAGE_PENALTY
                reasons.append(f"your texts look non-English but this model is English-only (score -{penalty:.2f})")
            elif language == "non-en" and c.multilingual:
                reasons.append("multilingual: matches your non-English texts")
        if c.license not in ("unknown",):
            reasons.append(f"license {c.license}")
        score = (
            weights.quality * q
            + weights.speed * speed
            + weights.availability * avail
            + weights.size_fit * fit
            - penalty
        )
        ranked.append(Ranked(c, round(score, 4), plan, reasons))
    ranked.sort(key=lambda r: (not r.fits, -r.score, r.candidate.params))
    return ranked


def explain_empty(config: Any) -> str:
    con = config.constraints
    parts = []
    if con.offline:
        parts.append("offline = true (only models already on disk; add a folder to MODELWIZ_MODEL_PATH)")
    if con.licenses:
        parts.append(f"licenses = {con.licenses}")
    if con.max_params_m:
        parts.append(f"max_params_m = {con.max_params_m}")
    why = "; ".join(parts) if parts else "no models are known for this modality"
    return f"no candidate model satisfies the constraints: {why}; relax [constraints] or set [model] id"


def resolve_model_choice(config: Any, ranked: list[Ranked]) -> Ranked:
    if not ranked:
        raise UserError(explain_empty(config))
    fitting = [r for r in ranked if r.fits]
    if not fitting:
        best = ranked[0]
        raise UserError(
            f"no candidate fits in {best.plan.budget_gb:.1f} GB (smallest predicted peak "
            f"{min(r.plan.memory.total_gb for r in ranked):.1f} GB); raise [constraints] max_memory_gb or "
            "set a smaller [train] batch_size"
        )
    return fitting[0]


def candidate_for_id(model_id: str, modality: str) -> Candidate:
    """The candidate for an explicit [model] id: a local folder, a torchvision name or a Hub id."""
    p = Path(os.path.expanduser(model_id))
    if p.is_dir() or model_id.startswith(("/", "./", "../", "~")):
        if not local.is_model_folder(p):
            raise UserError(
                f"[model] id: {model_id} is not a model folder (needs config.json and "
                "model.safetensors); check the path"
            )
        local.read_model_config(p)  # names what is wrong with config.json
        cand = local.candidate_from_folder(p)
        if cand is None:
            raise UserError(f"[model] id: {model_id}/config.json is unreadable; re-save the model with save_pretrained")
        if cand.modality != modality:
            raise UserError(f"[model] id: {model_id} is a {cand.modality} model but [task] modality is {modality}")
        # the folder may be a catalog model: keep its cited metadata
        merged = _merge_local_with_catalog(catalog.load(), [cand])
        return merged[-1]
    if model_id.startswith("torchvision:"):
        from modelwiz.engine.sources import torchvision_registry

        for c in torchvision_registry.load():
            if c.id == model_id:
                if modality != "image":
                    raise UserError(f"[model] id: {model_id} is an image model but [task] modality is {modality}")
                return c
        raise UserError(f"[model] id: unknown torchvision model '{model_id[12:]}'; e.g. torchvision:resnet18")
    from modelwiz.engine.sources import hfcache

    cached = {x.id: x for x in hfcache.load()}
    for c in catalog.load():
        if c.id == model_id:
            if model_id in cached:
                c.on_disk, c.path = True, cached[model_id].path
            return c
    if model_id in cached:
        if cached[model_id].modality != modality:
            raise UserError(
                f"[model] id: {model_id} is a {cached[model_id].modality} model but [task] modality is {modality}"
            )
        return cached[model_id]
    if "/" not in model_id and not model_id.count("-") and len(model_id.split()) == 1 and not p.exists():
        raise UserError(f"[model] id: '{model_id}' is not a folder, a torchvision:NAME or an org/name Hub id")
    return Candidate(id=model_id, name=model_id.split("/")[-1], source="hub", modality=modality)
