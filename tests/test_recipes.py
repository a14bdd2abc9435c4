"""The fine-tuning recipes: blocks, what trains when, learning rates, schedules, auto choices."""

from __future__ import annotations

import math

import pytest

from modelwiz.engine import recipes
from modelwiz.engine.config import config_from_dict
from modelwiz.engine.hardware import HardwareReport
from modelwiz.engine.plan import make_plan
from modelwiz.engine.sources.base import Candidate

BERT = [
    "bert.embeddings.word_embeddings.weight",
    "bert.embeddings.LayerNorm.weight",
    *[f"bert.encoder.layer.{i}.{part}" for i in range(6) for part in ("attention.q.weight", "output.LayerNorm.bias")],
    "bert.pooler.dense.weight",
    "classifier.weight",
    "classifier.bias",
]
HEAD = {"classifier.weight", "classifier.bias"}
RESNET = ["conv1.weight", "bn1.weight", *[f"layer{s}.{b}.conv1.weight" for s in (1, 2) for b in (0, 1)], "fc.weight"]


def test_blocks_are_numbered_layers_bottom_to_top():
    b = recipes.find_blocks(BERT, HEAD)
    assert [blk[0] for blk in b.blocks] == [f"bert.encoder.layer.{i}.attention.q.weight" for i in range(6)]
    assert b.bottom == BERT[:2] and b.top == ["bert.pooler.dense.weight"] and b.head == sorted(HEAD, reverse=True)
    tv = recipes.find_blocks(RESNET, {"fc.weight"})
    assert [blk[0].rsplit(".", 2)[0] for blk in tv.blocks] == ["layer1.0", "layer1.1", "layer2.0", "layer2.1"]


def test_partial_trains_the_top_blocks_and_gradual_opens_one_more_each_period():
    b = recipes.find_blocks(BERT, HEAD)
    top2 = b.trained("partial", 2)
    assert {n.split(".")[3] for n in top2 if ".layer." in n} == {"4", "5"}
    assert "bert.pooler.dense.weight" in top2 and HEAD <= top2 and not any("embeddings" in n for n in top2)
    assert b.trained("linear-probe", 0) == HEAD
    assert b.trained("full", 0) == set(BERT)
    assert b.trained("gradual", 7) == set(BERT)  # past the last block the embeddings open too

    class Plan:
        strategy, unfreeze_blocks, unfreeze_every = "gradual", 1, 2

    assert [recipes.unfrozen_blocks(Plan, e) for e in range(6)] == [1, 1, 2, 2, 3, 3]


def test_layer_decay_and_no_decay_groups():
    import torch.nn as nn

    model = nn.Module()
    model.enc = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
    model.head = nn.Linear(4, 2)
    names = [n for n, _ in model.named_parameters()]
    blocks = recipes.find_blocks(names, {"head.weight", "head.bias"})

    class Plan:
        learning_rate, layer_decay, weight_decay = 1e-3, 0.5, 0.01

    groups = recipes.param_groups(model, blocks, Plan)
    by_param = {id(p): g for g in groups for p in g["params"]}
    assert by_param[id(model.head.weight)]["lr"] == pytest.approx(1e-3)
    assert by_param[id(model.enc[2].weight)]["lr"] == pytest.approx(5e-4)  # the top block: one step down
    assert by_param[id(model.enc[0].weight)]["lr"] == pytest.approx(1.25e-4)
    assert by_param[id(model.enc[0].bias)]["weight_decay"] == 0.0  # biases never decay
    assert by_param[id(model.enc[0].weight)]["weight_decay"] == 0.01
    assert sum(len(g["params"]) for g in groups) == len(names)


@pytest.mark.parametrize("schedule, mid", [("linear", 0.5), ("cosine", 0.5), ("constant", 1.0)])
def test_warmup_then_decay(schedule, mid):
    f = [recipes.lr_factor(s, 100, 0.1, schedule) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)  # linear warmup over 10 steps
    assert f[55] == pytest.approx(mid, abs=0.03)
    if schedule == "cosine":
        assert f[30] > 1.0 - (30 - 10) / 90 and math.isclose(f[99], 0.0, abs_tol=1e-3)


def _hw(free_gb: float) -> HardwareReport:
    return HardwareReport("cpu", 2, 2, 32.0, free_gb, "/", 100.0)


CAND = Candidate(
    id="org/bert",
    name="bert",
    source="catalog",
    modality="text",
    arch="bert",
    params=110_000_000,
    hidden_size=768,
    num_layers=12,
    num_heads=12,
    intermediate_size=3072,
    vocab_size=30522,
)


@pytest.mark.parametrize("per_class, strategy", [(10, "linear-probe"), (50, "partial"), (312, "full")])
def test_auto_recipe_by_data_per_class_says_why(per_class, strategy):
    cfg = config_from_dict({"task": {"train": "x.csv"}})
    plan = make_plan(CAND, cfg.train, cfg.constraints, _hw(16.0), train_size=per_class * 4, num_classes=4)
    assert plan.strategy == strategy
    assert plan.notes[0].startswith(f"{per_class} examples per class and 16.0 GB free: ")
    assert plan.notes[0].endswith(f", batch {plan.batch_size}")
    if strategy == "partial":
        assert plan.unfreeze_blocks == 4  # a third of 12 layers


def test_auto_recipe_gives_way_when_full_cannot_fit():
    cfg = config_from_dict({"task": {"train": "x.csv"}})
    plan = make_plan(CAND, cfg.train, cfg.constraints, _hw(1.6), train_size=4000, num_classes=4)
    assert plan.strategy in ("partial", "linear-probe") and "does not fit even at batch 1" in plan.notes[0]


def test_small_image_data_is_augmented_and_evaluation_never_is(tmp_path):
    from PIL import Image

    from modelwiz.engine.adapters.torchvision import TorchvisionAdapter

    img = CAND.__class__(
        id="org/vit",
        name="vit",
        source="catalog",
        modality="image",
        arch="vit",
        params=5_000_000,
        hidden_size=192,
        num_layers=12,
        num_heads=3,
        image_size=32,
    )
    cfg = config_from_dict({"task": {"train": "imgs", "modality": "image"}})
    small = make_plan(img, cfg.train, cfg.constraints, _hw(16.0), train_size=60, num_classes=3)
    big = make_plan(img, cfg.train, cfg.constraints, _hw(16.0), train_size=3000, num_classes=3)
    assert small.augment and any("augmentation on" in n for n in small.notes) and not big.augment
    off = config_from_dict({"task": {"train": "imgs", "modality": "image"}, "train": {"augment": False}})
    assert not make_plan(img, off.train, off.constraints, _hw(16.0), train_size=60, num_classes=3).augment

    path = tmp_path / "a.png"
    Image.new("RGB", (40, 40), (200, 30, 30)).save(path)

    a = TorchvisionAdapter(None, ["x"], source="", arch="resnet18", image_size=32, augment=True)
    once, twice = a.collate([str(path)], train=False), a.collate([str(path)], train=False)
    assert (once["pixel_values"] == twice["pixel_values"]).all()  # evaluation: never augmented
    draws = [a.collate([str(path)], train=True)["pixel_values"] for _ in range(6)]
    assert any(not (d == once["pixel_values"]).all() for d in draws)  # training: augmented
