"""Transferability (engine.transfer): LogME and H-score on synthetic features, pooled features of
tiny models built in code, the stratified sample, the feature cache, and `recommend --probe`."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from conftest import build_tiny_bert, run_cli, write_image_data, write_text_data

from modelwiz.engine import transfer


def _separable(n=300, d=20, k=3, seed=0, margin=3.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    f = rng.normal(size=(n, d))
    f[:, :k] += margin * np.eye(k)[y]
    return f, y


def reference_logme(f: np.ndarray, labels: np.ndarray) -> float:
    """LogME written out with explicit matrices (A = alpha I + beta F^T F, its inverse and
    slogdet), the same MacKay fixed point: slow, but plainly the formula of You et al. 2021."""
    f = f.astype(np.float64)
    n, d = f.shape
    ftf = f.T @ f
    eig = np.linalg.eigvalsh(ftf)
    total = 0.0
    classes = np.unique(labels)
    for c in classes:
        y = (labels == c).astype(np.float64)
        alpha, beta = 1.0, 1.0
        for _ in range(100):
            a = alpha * np.eye(d) + beta * ftf
            m = beta * np.linalg.solve(a, f.T @ y)
            gamma = float((beta * eig / (alpha + beta * eig)).sum())
            new_alpha = gamma / (m @ m)
            new_beta = (n - gamma) / float(((y - f @ m) ** 2).sum())
            done = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) < 1e-5
            alpha, beta = new_alpha, new_beta
            if done:
                break
        a = alpha * np.eye(d) + beta * ftf
        m = beta * np.linalg.solve(a, f.T @ y)
        _, logdet = np.linalg.slogdet(a)
        ev = (
            n / 2 * math.log(beta)
            + d / 2 * math.log(alpha)
            - n / 2 * math.log(2 * math.pi)
            - beta / 2 * float(((y - f @ m) ** 2).sum())
            - alpha / 2 * float(m @ m)
            - logdet / 2
        )
        total += ev / n
    return total / len(classes)


def test_logme_orders_separable_above_random_labels():
    f, y = _separable()
    rand = np.random.default_rng(1).integers(0, 3, len(y))
    assert transfer.logme(f, y) > transfer.logme(f, rand) + 0.1
    # and better features score higher for the same labels
    weak, _ = _separable(margin=0.5)
    assert transfer.logme(f, y) > transfer.logme(weak, y)


@pytest.mark.parametrize("shape", [(120, 8), (40, 60)])  # n > d, and n < d (null directions)
def test_logme_matches_the_reference(shape):
    n, d = shape
    f, y = _separable(n=n, d=d, k=3, seed=2)
    fast, ref = transfer.logme(f, y), reference_logme(f, y)
    assert math.isfinite(fast)
    assert fast == pytest.approx(ref, rel=1e-4, abs=1e-4)


def test_logme_with_fewer_samples_than_dimensions_is_finite_and_still_orders():
    f, y = _separable(n=30, d=200, k=3, seed=3)
    rand = np.random.default_rng(4).integers(0, 3, len(y))
    good, bad = transfer.logme(f, y), transfer.logme(f, rand)
    assert math.isfinite(good) and math.isfinite(bad)
    assert good > bad


def test_h_score_orders_and_is_finite_when_n_below_d():
    f, y = _separable()
    rand = np.random.default_rng(1).integers(0, 3, len(y))
    assert transfer.h_score(f, y) > transfer.h_score(f, rand)
    assert transfer.h_score(f, y, shrinkage=False) > transfer.h_score(f, rand, shrinkage=False)
    wide, wy = _separable(n=30, d=200, seed=5)
    assert math.isfinite(transfer.h_score(wide, wy))


def test_stratified_sample_keeps_classes_and_is_seeded():
    labels = [0] * 900 + [1] * 90 + [2] * 10
    a = transfer.stratified_sample(labels, limit=100, seed=7)
    assert len(a) == 100 and a == transfer.stratified_sample(labels, limit=100, seed=7)
    counts = np.bincount(np.asarray(labels)[a])
    assert counts[2] >= 1 and counts[1] >= 8 and counts[0] >= 85
    assert transfer.stratified_sample(labels[:50], limit=100) == list(range(50))


def test_text_features_mean_over_tokens_and_layers(tmp_path):
    import torch
    from transformers import AutoModel, AutoTokenizer

    from modelwiz.engine.adapters.hf_text import HFTextAdapter

    folder = build_tiny_bert(tmp_path / "bert")
    model = AutoModel.from_pretrained(str(folder))
    tok = AutoTokenizer.from_pretrained(str(folder))
    adapter = HFTextAdapter(model, ["a", "b"], tokenizer=tok, max_length=16, source=str(folder), arch="bert")
    texts = ["the match goal", "rain and wind today again", "oven"]
    feats = transfer.extract_features(adapter, texts, batch_size=2, precision="fp32")
    assert feats.shape == (3, 32) and feats.dtype == np.float32
    # by hand: one text alone (no padding), mean over its tokens of each layer, then over layers
    with torch.inference_mode():
        enc = tok(texts[1:2], return_tensors="pt")
        states = model(**enc, output_hidden_states=True).hidden_states[1:]
        want = torch.stack([h[0].mean(dim=0) for h in states]).mean(dim=0).numpy()
    np.testing.assert_allclose(feats[1], want, rtol=1e-4, atol=1e-5)  # padding in its batch is masked
    # under bf16 autocast (what a CPU with native bf16 computes them in): close to the fp32 ones
    low = transfer.extract_features(adapter, texts, batch_size=2, precision="bf16")
    assert low.dtype == np.float32
    np.testing.assert_allclose(low, feats, rtol=0.05, atol=0.05)
    assert not np.array_equal(low, feats)  # computed in bf16, not silently in fp32


def test_feature_precision_and_its_cache_key(monkeypatch):
    # bf16 only on a CPU that computes it natively (torch's oneDNN check), fp32 on GPUs; the
    # environment overrides it; features of another precision are another cache entry
    from types import SimpleNamespace

    import torch

    monkeypatch.delenv("MODELWIZ_FEATURE_PRECISION", raising=False)
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert transfer.feature_precision("cpu") == ("bf16" if native else "fp32")
    assert transfer.feature_precision("cuda") == "fp32"
    cand = SimpleNamespace(id="m", path=None)
    plan = SimpleNamespace(adapter="hf-text", max_length=32)
    auto = transfer.feature_path(cand, plan, ["x"], [0])
    for forced in ("fp32", "bf16"):
        monkeypatch.setenv("MODELWIZ_FEATURE_PRECISION", forced)
        assert transfer.feature_precision("cpu") == forced == transfer.feature_precision("cuda")
        assert (transfer.feature_path(cand, plan, ["x"], [0]) == auto) == (forced == ("bf16" if native else "fp32"))


def test_torchvision_features_are_the_classifier_input(tmp_path):
    import torch
    from torchvision import models

    from modelwiz.engine.adapters.torchvision import TorchvisionAdapter, replace_head

    root = write_image_data(tmp_path / "imgs", n_per_class=2, size=32)
    paths = sorted(str(p) for p in root.rglob("*.png"))
    torch.manual_seed(0)
    model = models.get_model("mobilenet_v3_small", weights=None)
    replace_head(model, 3)
    adapter = TorchvisionAdapter(model, ["a", "b", "c"], source="x", arch="mobilenet_v3_small", image_size=32)
    feats = transfer.extract_features(adapter, paths, batch_size=4)
    assert feats.shape == (len(paths), 1024)  # the last Linear's in_features
    assert np.isfinite(feats).all()


def test_conv_net_features_read_channels_last_and_the_model_is_put_back(tmp_path, monkeypatch):
    """A conv net's features are read channels-last (faster on a CPU), equal to those of the
    contiguous layout, and the model is contiguous again afterwards (as training has it); a
    model with fewer convolutions than the threshold is never converted."""
    import torch
    from torchvision import models

    from modelwiz.engine.adapters.torchvision import TorchvisionAdapter, replace_head

    root = write_image_data(tmp_path / "imgs", n_per_class=2, size=32)
    paths = sorted(str(p) for p in root.rglob("*.png"))
    torch.manual_seed(0)
    model = models.get_model("mobilenet_v3_small", weights=None).eval()
    replace_head(model, 3)
    adapter = TorchvisionAdapter(model, ["a", "b", "c"], source="x", arch="mobilenet_v3_small", image_size=32)
    layouts = []
    real = transfer._channels_last
    monkeypatch.setattr(transfer, "_channels_last", lambda m: layouts.append(real(m)) or layouts[-1])
    fast = transfer.extract_features(adapter, paths, batch_size=4)
    assert layouts == [torch.channels_last]
    convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w.is_contiguous() for w in convs)  # put back
    monkeypatch.setattr(transfer, "CONV_LAYERS_FOR_CHANNELS_LAST", 10_000)
    plain = transfer.extract_features(adapter, paths, batch_size=4)
    assert layouts == [torch.channels_last, None]
    np.testing.assert_allclose(fast, plain, rtol=1e-4, atol=1e-5)


def test_models_that_preprocess_alike_decode_the_sample_once(tmp_path, monkeypatch):
    """A probe's or bake-off's contenders read one sample: an InputMemo collates each image batch
    once for every model of the same size and normalisation (features unchanged), again for a model
    that preprocesses otherwise, and keeps nothing past its byte bound."""
    import torch
    from torchvision import models

    from modelwiz.engine.adapters import base
    from modelwiz.engine.adapters.torchvision import TorchvisionAdapter, replace_head

    root = write_image_data(tmp_path / "imgs", n_per_class=2, size=32)
    paths = sorted(str(p) for p in root.rglob("*.png"))
    decoded = []
    real_load = base.load_image
    monkeypatch.setattr(base, "load_image", lambda p: decoded.append(p) or real_load(p))

    def adapter(seed: int, size: int = 32) -> TorchvisionAdapter:
        torch.manual_seed(seed)
        model = models.get_model("mobilenet_v3_small", weights=None).eval()
        replace_head(model, 3)
        return TorchvisionAdapter(model, ["a", "b", "c"], source="x", arch="mobilenet_v3_small", image_size=size)

    first, second = adapter(0), adapter(1)
    alone = transfer.extract_features(second, paths, batch_size=4)
    decoded.clear()
    memo = transfer.InputMemo()
    transfer.extract_features(first, paths, batch_size=4, memo=memo)
    assert len(decoded) == len(paths)
    shared = transfer.extract_features(second, paths, batch_size=4, memo=memo)
    assert len(decoded) == len(paths)  # the second model decoded nothing
    np.testing.assert_allclose(shared, alone, rtol=1e-5, atol=1e-6)
    # another normalisation (a Hugging Face processor's 0.5 / 0.5) shares the decoded crops
    other = adapter(3)
    other.mean, other.std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    own = transfer.extract_features(other, paths, batch_size=4)
    decoded.clear()
    transfer.extract_features(first, paths, batch_size=4, memo=memo)
    np.testing.assert_allclose(
        transfer.extract_features(other, paths, batch_size=4, memo=memo), own, rtol=1e-5, atol=1e-6
    )
    assert decoded == []
    transfer.extract_features(adapter(2, size=40), paths, batch_size=4, memo=memo)
    assert len(decoded) == len(paths)  # another side: its own crops
    small = transfer.InputMemo(max_bytes=1)
    for _ in range(2):
        transfer.extract_features(first, paths, batch_size=4, memo=small)
    assert len(decoded) == 3 * len(paths) and small.bytes == 0


def test_batched_normalisation_equals_the_per_image_transform(tmp_path):
    # evaluation batches are decoded to uint8 crops, then normalised as a batch: the same pixels
    # as the per-image torchvision pipeline (resize, centre crop, scale, normalise)
    import torch

    from modelwiz.engine.adapters.base import load_image
    from modelwiz.engine.adapters.torchvision import TorchvisionAdapter

    root = write_image_data(tmp_path / "imgs", n_per_class=2, size=50)
    paths = sorted(str(p) for p in root.rglob("*.png"))
    a = TorchvisionAdapter(
        None, ["a", "b", "c"], source="x", arch="x", image_size=32, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.25)
    )
    tf = a.transform(train=False)
    want = torch.stack([tf(load_image(p)) for p in paths])
    got = a.collate(paths, train=False)["pixel_values"]
    assert got.dtype == torch.float32 and got.shape == (len(paths), 3, 32, 32)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert torch.equal(a.collate(paths, train=True)["pixel_values"], got)  # no augmentation asked


def test_features_are_cached_per_model_data_and_pooling(tmp_path, monkeypatch):
    from types import SimpleNamespace

    calls = []

    class FakeAdapter:
        kind = "hf-text"

        @classmethod
        def for_training(cls, plan, labels):
            calls.append(plan.model_id)
            return cls()

    monkeypatch.setattr("modelwiz.engine.adapters.adapter_class", lambda kind: FakeAdapter)
    monkeypatch.setattr(transfer, "extract_features", lambda adapter, items, **kw: np.ones((len(items), 4), "float32"))
    cand = SimpleNamespace(id="m1", path=None)
    plan = SimpleNamespace(model_id="m1", adapter="hf-text", max_length=64)
    items, labels = ["x", "y"], [0, 1]
    _, cached = transfer.cached_features(cand, plan, items, labels, ["a", "b"])
    _, cached_again = transfer.cached_features(cand, plan, items, labels, ["a", "b"])
    assert (cached, cached_again) == (False, True) and calls == ["m1"]
    transfer.cached_features(cand, plan, ["x", "z"], labels, ["a", "b"])  # other data: computed
    assert calls == ["m1", "m1"]
    # texts cut at another length are other features
    _, cached = transfer.cached_features(
        cand, SimpleNamespace(**{**vars(plan), "max_length": 128}), items, labels, ["a", "b"]
    )
    assert not cached and calls == ["m1", "m1", "m1"]


def test_recommend_probe_reranks_end_to_end(tmp_path, tiny_bert):
    """Two tiny local models, offline: `--probe 2 --json` streams progress events, then the
    ranking with each probed model's LogME, its place among the probed, and its time."""
    models = tmp_path / "models"
    models.mkdir()
    shutil.copytree(tiny_bert, models / "tiny-a")
    build_tiny_bert(models / "tiny-b")
    write_text_data(tmp_path / "d.csv", n_per_class=30)
    (tmp_path / "c.toml").write_text(
        '[task]\ntrain = "d.csv"\n[constraints]\noffline = true\n[train]\nmax_length = 32\n'
    )
    proc = run_cli(
        "recommend", str(tmp_path / "c.toml"), "--json", "--probe", "2", env={"MODELWIZ_MODEL_PATH": str(models)}
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(ln) for ln in proc.stdout.splitlines()]
    events = [ln["event"] for ln in lines[:-1]]
    assert events[0] == "probe_started" and events.count("probe_result") == 2 and "probe_progress" in events
    from modelwiz.engine.events import parse_event

    for ln in lines[:-1]:
        parse_event(ln, strict=True)  # every progress line is a declared record
    out = lines[-1]
    probed = [m for m in out["models"] if m.get("probe")]
    assert len(probed) == 2 and len(out["probe"]) == 2
    assert [m["probe"]["rank"] for m in probed] == [1, 2]
    assert probed[0]["probe"]["logme"] >= probed[1]["probe"]["logme"]
    for m in probed:
        assert m["probe"]["examples"] == 72 and m["probe"]["seconds"] >= 0  # 80% of 90, all of it
        assert m["reasons"][0].startswith("LogME ") and " of 2 on 72 of your examples" in m["reasons"][0]
    # a second probe of the same data reads the cached features
    again = run_cli(
        "recommend", str(tmp_path / "c.toml"), "--json", "--probe", "2", env={"MODELWIZ_MODEL_PATH": str(models)}
    )
    assert again.returncode == 0, again.stderr
    assert all(p["cached"] for p in json.loads(again.stdout.splitlines()[-1])["probe"])
    # the table without --json shows the score the rows are ordered by: the blend
    table = run_cli("recommend", str(tmp_path / "c.toml"), "--probe", "2", env={"MODELWIZ_MODEL_PATH": str(models)})
    assert table.returncode == 0, table.stderr
    assert all(f"{m['probe']['blended']:.3f}" in table.stdout for m in probed)


def test_probe_puts_a_trained_encoder_above_its_random_twin(tmp_path, monkeypatch):
    """Pretrained-vs-random control on learnable data: a tiny BERT trained briefly on the task
    (standing in for pretraining) and its untouched random-init twin, through `probe` and
    `rerank` as the CLI runs them; the probe keeps freed memory as the trainer does."""
    import csv
    from types import SimpleNamespace

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    random_folder = build_tiny_bert(tmp_path / "random")
    trained_folder = tmp_path / "trained"
    shutil.copytree(random_folder, trained_folder)
    rows = list(csv.reader(write_text_data(tmp_path / "d.csv", n_per_class=40).open()))[1:]
    names = sorted({r[1] for r in rows})
    texts, labels = [r[0] for r in rows], [names.index(r[1]) for r in rows]
    tok = AutoTokenizer.from_pretrained(str(trained_folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(trained_folder), num_labels=len(names))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for _ in range(40):
        idx = torch.randint(0, len(texts), (16,)).tolist()
        enc = tok([texts[i] for i in idx], padding=True, return_tensors="pt")
        loss = model(**enc, labels=torch.tensor([labels[i] for i in idx])).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.base_model.save_pretrained(str(trained_folder))

    def row(folder, score):
        cand = SimpleNamespace(id=str(folder), path=str(folder), on_disk=True)
        plan = SimpleNamespace(
            model_id=str(folder), adapter="hf-text", offline=True, max_length=32, trust_remote_code=False
        )
        return SimpleNamespace(candidate=cand, plan=plan, reasons=[], probe=None, score=score)

    # the prior's order: random first, by more than the prior's spread between real models
    ranked = [row(random_folder, 0.6), row(trained_folder, 0.4)]
    data = SimpleNamespace(train=SimpleNamespace(items=texts, labels=labels), label_names=names)
    events, kept = [], []
    monkeypatch.setattr("modelwiz.engine.allocator.keep_freed_memory", lambda: kept.append(True) or True)
    results = transfer.probe(ranked, data, k=2, offline=True, sink=events.append)
    assert kept == [True]
    assert [r.model for r in results] == [str(trained_folder), str(random_folder)]
    assert results[0].logme > results[1].logme and results[0].rank == 1
    reordered = transfer.rerank(ranked, results)
    assert reordered[0].candidate.id == str(trained_folder)
    assert (
        reordered[0].reasons[0].startswith("LogME ") and "1st of 2 on 120 of your examples" in reordered[0].reasons[0]
    )
    assert {e["event"] for e in events} >= {"probe_started", "probe_model", "probe_progress", "probe_result"}


def test_the_probe_waits_for_a_speed_benchmark_under_way(monkeypatch):
    """A machine's first use starts the CPU speed benchmark in the background: the probe lets it
    finish before its first model (side by side each slows the other), and says so in a log event;
    with no benchmark running it waits for nothing."""
    from types import SimpleNamespace

    from modelwiz.engine import speed

    order: list[str] = []
    running = {"now": True}
    monkeypatch.setattr(speed, "benchmark_running", lambda device: running["now"])

    def wait(device, stop=lambda: False, timeout_s=0.0):
        order.append(f"wait {device}")
        running["now"] = False
        return 1.0

    monkeypatch.setattr(speed, "wait_for_benchmark", wait)

    def features(candidate, plan, items, labels, names, **kw):
        order.append(f"features {candidate.id}")
        return np.eye(len(items), 4, dtype=np.float32), False

    monkeypatch.setattr(transfer, "cached_features", features)
    cand = SimpleNamespace(id="m1", path=None, on_disk=True)
    ranked = [SimpleNamespace(candidate=cand, plan=SimpleNamespace(), reasons=[], probe=None, score=0.5)]
    data = SimpleNamespace(train=SimpleNamespace(items=list("abcd"), labels=[0, 1, 0, 1]), label_names=["x", "y"])
    events: list[dict] = []
    transfer.probe(ranked, data, k=1, offline=True, sink=events.append)
    assert order == ["wait cpu", "features m1"]
    logs = [e for e in events if e["event"] == "log"]
    assert len(logs) == 1 and "speed benchmark" in logs[0]["message"]
    order.clear()
    transfer.probe(ranked, data, k=1, offline=True, sink=events.append)
    assert order == ["features m1"]  # nothing under way: no wait


def test_hf_image_features_pool_the_last_hidden_state(tmp_path, tiny_vit):
    from types import SimpleNamespace

    root = write_image_data(tmp_path / "imgs", n_per_class=2, size=32)
    paths = sorted(str(p) for p in root.rglob("*.png"))
    cand = SimpleNamespace(id=str(tiny_vit), path=str(tiny_vit))
    plan = SimpleNamespace(
        model_id=str(tiny_vit), adapter="hf-image", offline=True, trust_remote_code=False, image_size=32, augment=False
    )
    feats, cached = transfer.cached_features(cand, plan, paths, [0, 0, 1, 1, 2, 2], ["a", "b", "c"])
    assert feats.shape == (6, 32) and np.isfinite(feats).all() and not cached


def test_probe_zero_is_a_usage_error(tmp_path):
    write_text_data(tmp_path / "d.csv", n_per_class=5)
    (tmp_path / "c.toml").write_text('[task]\ntrain = "d.csv"\n')
    proc = run_cli("recommend", str(tmp_path / "c.toml"), "--probe", "0")
    assert proc.returncode == 2 and "--probe K must be at least 1" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
