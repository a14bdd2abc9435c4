"""The Hugging Face Hub as a candidate source (engine/sources/hubsearch.py), against the fake Hub
on loopback (tests/fakehub.py answers `GET /api/models` in the real Hub's shape).

The client runs in this process: hubsearch reads HF_ENDPOINT and HF_HUB_OFFLINE when it is
called, not when huggingface_hub was imported, so each test points it at its own fake Hub.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from fakehub import FakeHub, closed_port
from safetensors.numpy import save_file

from modelwiz.engine.config import config_from_dict
from modelwiz.engine.recommend import gather_candidates, rank
from modelwiz.engine.sources import hubsearch
from modelwiz.engine.sources.base import Candidate

SLOW = 5.0  # seconds the fake Hub waits before answering, in the slow-Hub tests
BERT = {
    "model_type": "bert",
    "architectures": ["BertForMaskedLM"],
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "vocab_size": 100,
    "max_position_embeddings": 128,
}


def repo_folder(root: Path, name: str, config: dict, numel: int) -> Path:
    """config.json and a model.safetensors of `numel` float32 parameters (what the Hub counts)."""
    folder = root / name.replace("/", "--")
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    save_file({"w": np.zeros(numel, dtype=np.float32)}, str(folder / "model.safetensors"))
    return folder


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A fake Hub with text and image models, some of which modelwiz must not offer."""
    root = tmp_path / "repos"
    with FakeHub() as fake:
        models = [
            # id, pipeline tag, downloads, config, params, options
            ("org-a/bert-small", "fill-mask", 500, BERT, 4000, {"license": "mit", "languages": ("en",)}),
            ("org-b/sent-enc", "sentence-similarity", 900, BERT, 3000, {}),
            ("org-c/custom", "fill-mask", 5000, {**BERT, "auto_map": {"AutoModel": "x.Y"}}, 100, {}),
            ("org-d/gated", "fill-mask", 4000, BERT, 100, {"gated": True}),
            ("org-e/vit-feat", "feature-extraction", 3000, {"model_type": "vit", "image_size": 32}, 100, {}),
            ("org-f/odd", "fill-mask", 2000, {"model_type": "no-such-architecture"}, 100, {}),
            ("org-g/sentiment", "text-classification", 9000, BERT, 100, {}),
            ("org-h/no-license", "feature-extraction", 100, BERT, 2000, {"license": None}),
            ("org-i/vit-tiny", "image-classification", 700, {"model_type": "vit", "image_size": 32}, 5000, {}),
            # the catalog's own model, on the Hub too: it must appear once, as the catalog's
            ("prajjwal1/bert-tiny", "fill-mask", 800, BERT, 4_386_178, {"license": "mit"}),
        ]
        for repo_id, tag, downloads, cfg, numel, opts in models:
            folder = repo_folder(root, repo_id, cfg, numel)
            fake.add_repo(repo_id, folder, pipeline_tag=tag, downloads=downloads, **opts)
        monkeypatch.setenv("HF_ENDPOINT", fake.endpoint)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("MODELWIZ_CACHE", str(tmp_path / "cache"))
        hubsearch.clear_memo()
        yield fake
        hubsearch.clear_memo()


def list_requests(fake: FakeHub) -> list:
    return [r for r in fake.requests if r.path == "/api/models"]


def text_config(**constraints):
    return config_from_dict({"task": {"modality": "text", "train": "x.csv"}, "constraints": constraints})


def test_hub_models_listed_with_params_license_and_architecture(hub):
    found = hubsearch.search("text")
    ids = [c.id for c in found.candidates]
    # most downloaded first; custom code, gated, an image model, an unknown architecture and an
    # already fine-tuned classifier are not offered
    assert ids == ["org-b/sent-enc", "prajjwal1/bert-tiny", "org-a/bert-small", "org-h/no-license"]
    by_id = {c.id: c for c in found.candidates}
    small = by_id["org-a/bert-small"]
    assert (small.source, small.modality, small.params, small.license, small.languages) == (
        "hub",
        "text",
        4000,
        "mit",
        ["en"],
    )
    # figures from the config.json each model serves
    assert (small.arch, small.hidden_size, small.num_layers, small.num_heads, small.vocab_size) == (
        "bert",
        32,
        2,
        2,
        100,
    )
    assert small.max_length == 128 and not small.on_disk
    assert by_id["org-h/no-license"].license == "unknown"
    assert any("500 downloads" in r for r in small.refs)
    assert found.note == "Hugging Face Hub: 4 text models (fetched now)"
    # what was asked: one list per pipeline tag, sorted by downloads, with the fields needed
    asked = {r.query for r in list_requests(hub)}
    assert len(asked) == 3
    for q in asked:
        assert "sort=downloads" in q and "expand=safetensors" in q and "expand=cardData" in q
    images = hubsearch.search("image")
    assert [c.id for c in images.candidates] == ["org-i/vit-tiny"]
    assert images.candidates[0].image_size == 32


def test_hub_candidates_are_ranked_and_deduplicated_with_the_catalog(hub):
    from tui_fixtures.fakes import fake_hardware

    notes: list[str] = []
    cands = gather_candidates("text", notes=notes)
    tiny = [c for c in cands if c.id.lower() == "prajjwal1/bert-tiny"]
    assert len(tiny) == 1 and tiny[0].source == "catalog"  # once, with the catalog's cited metadata
    assert tiny[0].quality_note and any("800 downloads" in r for r in tiny[0].refs)
    assert notes == ["Hugging Face Hub: 4 text models (fetched now)"]
    ranked = rank(text_config(), fake_hardware(), train_size=200, num_classes=3, candidates=cands)
    hub_rows = [r for r in ranked if r.candidate.source == "hub"]
    assert {r.candidate.id for r in hub_rows} == {"org-b/sent-enc", "org-a/bert-small", "org-h/no-license"}
    for r in hub_rows:
        assert r.plan.memory.peak_gb > 0 and r.plan.memory.trainable_params > 0
        # not on disk: a download, its size from the Hub's parameter count
        assert any(reason.startswith("not on disk: about") and "MB download" in reason for reason in r.reasons)
    # constraints apply to Hub models like any other
    ranked = rank(text_config(licenses=["mit"]), fake_hardware(), train_size=200, num_classes=3, candidates=cands)
    assert "org-h/no-license" not in {r.candidate.id for r in ranked}


def test_a_local_folder_of_a_hub_model_appears_once(hub, tmp_path, monkeypatch):
    from modelwiz.engine.recommend import _merge_hub

    local = Candidate(
        id=str(tmp_path / "bert-small"),
        name="bert-small",
        source="local",
        modality="text",
        params=4000,
        on_disk=True,
        path=str(tmp_path / "bert-small"),
    )
    other = Candidate(id="x", name="bert-small", source="local", modality="text", params=1, path=str(tmp_path / "o"))
    merged = _merge_hub([local, other], hubsearch.search("text").candidates)
    assert "org-a/bert-small" not in {c.id for c in merged}  # same name and parameter count: on disk
    assert local.license == "mit"  # learnt from the Hub, the folder's card said nothing
    assert len(merged) == 2 + 3


def test_second_call_uses_the_cache_and_a_stale_one_is_refetched(hub):
    first = hubsearch.search("text")
    n = len(hub.requests)
    assert n >= 3
    again = hubsearch.search("text")  # in-process
    hubsearch.clear_memo()
    from_disk = hubsearch.search("text")  # another process: the file
    assert len(hub.requests) == n
    assert [c.id for c in again.candidates] == [c.id for c in from_disk.candidates] == [c.id for c in first.candidates]
    assert from_disk.candidates[0].hidden_size == 32
    # a day later: expired, asked again
    path = hubsearch.cache_file(hubsearch.endpoint_url(), "text")
    entry = json.loads(path.read_text())
    entry["fetched_at"] -= hubsearch.TTL_S + 60
    path.write_text(json.dumps(entry))
    hubsearch.clear_memo()
    hubsearch.search("text")
    assert len(list_requests(hub)) == 6


def test_a_slow_hub_is_given_up_on_time_with_the_stale_cache_or_nothing(hub):
    hub.list_delay = SLOW
    t0 = time.monotonic()
    found = hubsearch.search("text")
    took = time.monotonic() - t0
    assert took < SLOW - 1  # gave up at its 2 s bound, not waiting for the answer (margin for a busy machine)
    assert found.candidates == []
    assert "within 2 s" in found.note and found.note.endswith("no Hub models in this ranking")
    # with a list cached earlier: that list, said to be stale
    hub.list_delay = 0.0
    hubsearch.clear_memo()
    hubsearch.cache_file(hubsearch.endpoint_url(), "text").unlink()
    hubsearch.search("text")
    path = hubsearch.cache_file(hubsearch.endpoint_url(), "text")
    entry = json.loads(path.read_text())
    entry["fetched_at"] -= hubsearch.TTL_S + 3600
    path.write_text(json.dumps(entry))
    hubsearch.clear_memo()
    hub.list_delay = SLOW
    t0 = time.monotonic()
    stale = hubsearch.search("text")
    assert time.monotonic() - t0 < SLOW - 1
    assert len(stale.candidates) == 4
    assert "its list cached 25 h ago is used" in stale.note


def test_slow_configs_leave_the_architecture_unknown_not_the_model(hub):
    hub.file_delay = SLOW
    t0 = time.monotonic()
    found = hubsearch.search("text")
    assert time.monotonic() - t0 < SLOW - 1
    assert len(found.candidates) == 4
    small = next(c for c in found.candidates if c.id == "org-a/bert-small")
    assert (small.arch, small.params, small.hidden_size, small.num_layers) == ("bert", 4000, 0, 0)
    assert any("architecture figures unknown" in r for r in small.refs)


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (500, None, "answered HTTP 500"),
        (200, b"<html>not json", "answered something that is not JSON"),
        (200, b'{"error": "a dict, not a list"}', "not a JSON list of objects"),
    ],
)
def test_a_broken_hub_gives_nothing_and_a_note(hub, status, body, reason):
    hub.list_status, hub.list_body = status, body
    found = hubsearch.search("text")
    assert found.candidates == []
    assert reason in found.note and found.note.startswith("Hugging Face Hub: ")
    # remembered: the next ranking does not wait on the Hub again
    n = len(hub.requests)
    hubsearch.clear_memo()
    again = hubsearch.search("text")
    assert len(hub.requests) == n and "asked again in 10 min" in again.note


def test_unreachable_hub_is_a_note(hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    found = hubsearch.search("text")
    assert found.candidates == [] and "cannot reach" in found.note


def test_offline_skips_the_hub(hub, monkeypatch):
    off = hubsearch.search("text", offline=True)
    assert off.candidates == [] and "offline = true" in off.note
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    off = hubsearch.search("text")
    assert off.candidates == [] and "HF_HUB_OFFLINE" in off.note
    assert hub.requests == []
    notes: list[str] = []
    assert not [c for c in gather_candidates("text", notes=notes) if c.source == "hub"]
    assert notes == ["Hugging Face Hub not searched: HF_HUB_OFFLINE is set"]


def test_trainable_types_come_from_the_installed_transformers():
    text, image = hubsearch.trainable_types("text"), hubsearch.trainable_types("image")
    assert text is not None and image is not None
    assert {"bert", "roberta", "deberta-v2", "xlm-roberta", "mpnet"} <= text and "vit" not in text
    assert {"vit", "convnext", "resnet", "swin", "dinov2"} <= image and "bert" not in image


def test_recommend_json_carries_the_hub_models_and_its_note(hub, tmp_path, capsys, monkeypatch):
    from conftest import write_text_data
    from tui_fixtures.fakes import fake_hardware

    from modelwiz import cli
    from modelwiz.engine import workflow

    monkeypatch.setattr(workflow, "read_hardware", lambda config, runs_dir=None: fake_hardware())
    write_text_data(tmp_path / "train.csv")
    cfg = tmp_path / "task.toml"
    cfg.write_text('[task]\nmodality = "text"\ntrain = "train.csv"\n')
    assert cli.main(["recommend", str(cfg), "--json", "--top", "500"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["notes"] == ["Hugging Face Hub: 4 text models (fetched now)"]
    hub_models = {m["id"]: m for m in out["models"] if m["source"] == "hub"}
    assert set(hub_models) == {"org-b/sent-enc", "org-a/bert-small", "org-h/no-license"}
    assert hub_models["org-a/bert-small"]["params"] == 4000 and hub_models["org-a/bert-small"]["license"] == "mit"
    assert [m["id"] for m in out["models"]].count("prajjwal1/bert-tiny") == 1
    # offline = true: the Hub is not asked, and the notes say so
    cfg.write_text('[task]\nmodality = "text"\ntrain = "train.csv"\n[constraints]\noffline = true\n')
    n = len(hub.requests)
    code = cli.main(["recommend", str(cfg), "--json"])
    captured = capsys.readouterr()
    assert len(hub.requests) == n
    if code == 0:  # something on disk qualified
        assert json.loads(captured.out)["notes"] == ["Hugging Face Hub not searched: [constraints] offline = true"]
    else:
        assert code == 2 and "offline = true" in captured.err
