"""The ranking's prior, its blend with evidence from the user's data, and the numbers its reasons
carry (engine/recommend.py, engine/transfer.py rerank)."""

from __future__ import annotations

import re

from modelwiz.engine import transfer
from modelwiz.engine.config import config_from_dict
from modelwiz.engine.hardware import HardwareReport
from modelwiz.engine.recommend import PRIOR_WEIGHTS, PriorWeights, quality_prior, rank
from modelwiz.engine.sources.base import Candidate


def _hw() -> HardwareReport:
    return HardwareReport("Test CPU", 4, 8, 32.0, 16.0, "/tmp", 100.0, gpus=[])


def _cand(**kw) -> Candidate:
    base = dict(
        id="org/m",
        name="m",
        source="catalog",
        modality="text",
        arch="bert",
        params=22_700_000,
        hidden_size=384,
        num_layers=6,
        num_heads=12,
        vocab_size=30522,
        license="apache-2.0",
        languages=["en"],
        quality=0.36,
        quality_note="Sentence-embedding avg (14 datasets) 68.06",
        refs=["https://www.sbert.net/docs/sentence_transformer/pretrained_models.html"],
    )
    base.update(kw)
    return Candidate(**base)


def _twins(*, pretrained_on_disk: bool = True) -> list[Candidate]:
    """A pretrained model (published benchmark) and a random-init folder of the same
    architecture and size (no benchmark: nothing can tell them apart but evidence)."""
    return [
        _cand(id="/zoo/controls/m-control", name="m-control", source="local", quality=None, quality_note="",
              refs=[], on_disk=True, path="/zoo/controls/m-control"),
        _cand(id="/models/m", name="m", source="local", on_disk=pretrained_on_disk,
              path="/models/m" if pretrained_on_disk else None),
    ]  # fmt: skip


def _rank(cands: list[Candidate], **kw):
    cfg = config_from_dict({"task": {"train": "x.csv"}, "train": {"max_length": 64}})
    return rank(cfg, _hw(), train_size=kw.pop("train_size", 240), num_classes=4, candidates=cands, **kw)


def _result(model: str, logme: float, h: float, rank_: int, of: int) -> transfer.ProbeResult:
    return transfer.ProbeResult(model, logme, h, 240, 384, 1.5, 1.2, False, rank_, of)


def test_unknown_benchmark_ranks_below_a_published_one_and_says_nothing_is_known():
    ranked = _rank(_twins())
    assert [r.candidate.id for r in ranked] == ["/models/m", "/zoo/controls/m-control"]
    control = ranked[1]
    assert quality_prior(control.candidate) == (PRIOR_WEIGHTS.unknown_quality, False)
    assert control.reasons[0].startswith("no published benchmark known: nothing is known of its quality")
    # the old neutral prior (0.45) put the unknown folder first: the fix is what decides here
    old = PriorWeights(quality=0.40, speed=0.30, availability=0.15, size_fit=0.15, unknown_quality=0.45)
    assert _rank(_twins(), weights=old)[0].candidate.id == "/zoo/controls/m-control"


def test_a_random_folder_on_disk_does_not_outrank_its_pretrained_twin_that_needs_a_download():
    ranked = _rank(_twins(pretrained_on_disk=False))
    assert ranked[0].candidate.id == "/models/m"
    assert any(r.startswith("not on disk: about 91 MB download (fp32 weights)") for r in ranked[0].reasons)


def test_evidence_puts_the_pretrained_model_above_its_random_twin_even_against_the_prior():
    """Fake probe results: the pretrained model's LogME is higher; the blend must follow the
    evidence even when the prior put the random twin first (here: the twin known, the
    pretrained one not, so the prior alone favours the twin)."""
    control, pretrained = _twins()
    control.quality, control.quality_note = 0.5, "GLUE test score 76.0"  # a prior that is wrong
    pretrained.quality, pretrained.quality_note = None, ""
    ranked = _rank([control, pretrained])
    assert ranked[0].candidate.id == control.id  # the prior's order
    results = [_result(pretrained.id, 0.40, 3.1, 1, 2), _result(control.id, -0.71, 0.4, 2, 2)]
    out = transfer.rerank(ranked, results)
    assert [r.candidate.id for r in out] == [pretrained.id, control.id]
    first = out[0].reasons[0]
    assert re.match(r"LogME 0\.40, 1st of 2 on 240 of your examples \(H-score 3\.10; 1\.5 s\): evidence 1\.00", first)
    assert out[0].probe["evidence"] == 1.0 and out[1].probe["evidence"] == 0.0
    assert out[0].probe["blended"] > out[1].probe["blended"]
    # with no weight on the evidence the prior's order stands: the weight is what decides
    assert transfer.rerank(_rank([control, pretrained]), results, evidence_weight=0.0)[0].candidate.id == control.id


def test_evidence_scores_scale_within_one_probe_and_failed_probes_get_none():
    results = [_result("a", 0.5, 2.0, 1, 3), _result("b", 0.0, 4.0, 2, 3), _result("c", float("-inf"), 0.0, 3, 3)]
    results[2].error = "cannot load"
    assert transfer.evidence_scores(results, "logme", "minmax") == {"a": 1.0, "b": 0.0, "c": 0.0}
    assert transfer.evidence_scores(results, "h-score", "minmax") == {"a": 0.0, "b": 1.0, "c": 0.0}
    assert transfer.evidence_scores(results, "both", "minmax") == {"a": 0.5, "b": 0.5, "c": 0.0}
    # rank: one far-off model does not squeeze the others together (min-max would give 1, 0.96, 0.93, 0)
    far = [_result("p", 0.05, 1, 1, 4), _result("q", 0.0, 1, 2, 4), _result("r", -0.02, 1, 3, 4)]
    far.append(_result("control", -0.7, 1, 4, 4))
    assert transfer.evidence_scores(far, "logme", "rank") == {"p": 1.0, "q": 2 / 3, "r": 1 / 3, "control": 0.0}
    assert transfer.evidence_scores(results, "logme", "rank") == {"a": 1.0, "b": 0.0, "c": 0.0}


def test_reasons_carry_their_numbers():
    published = _cand(id="org/big", params=109_500_000, hidden_size=768, num_layers=12,
                      quality=0.61, quality_note="GLUE test score 79.6", refs=["https://arxiv.org/abs/1810.04805"])  # fmt: skip
    tv = _cand(id="torchvision:resnet18", source="torchvision", modality="image", arch="resnet18",
               params=11_689_512, quality=0.45, quality_note="ImageNet-1k top-1 69.758", refs=[],
               download_mb=44.661)  # fmt: skip
    reasons = _rank([published])[0].reasons
    assert reasons[0] == "benchmark: GLUE test score 79.6 (arxiv.org/abs/1810.04805): quality prior 0.61"
    assert re.search(r"^needs \d+\.\d GB of 16\.0 GB at batch \d+, length 64 — fits$", "\n".join(reasons), re.M)
    assert "not on disk: about 438 MB download (fp32 weights)" in reasons
    assert any(re.match(r"110M parameters for 240 training examples", r) for r in reasons)
    cfg = config_from_dict({"task": {"modality": "image", "train": "imgs"}})
    image = rank(cfg, _hw(), train_size=240, num_classes=4, candidates=[tv])[0].reasons
    assert "not on disk: 45 MB download" in image
    assert re.search(r"^needs \d+\.\d GB of 16\.0 GB at batch \d+, \d+ px — fits$", "\n".join(image), re.M)


def test_speed_does_not_outweigh_a_quality_difference():
    """A much faster model with a clearly lower published benchmark stays below the better one."""
    slow = _cand(id="org/good", params=109_500_000, hidden_size=768, num_layers=12, quality=0.8, on_disk=True)
    fast = _cand(id="org/fast", params=4_400_000, hidden_size=128, num_layers=2, quality=0.5, on_disk=True)
    ranked = _rank([fast, slow], train_size=20_000)
    assert ranked[0].candidate.id == "org/good"
