"""Shared fixtures: an isolated modelwiz home, tiny models built in code, learnable data."""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

CLASS_WORDS = {
    "sports": ["match", "goal", "coach", "league", "striker", "season", "referee", "tournament"],
    "weather": ["rain", "storm", "forecast", "sunny", "humidity", "wind", "snowfall", "temperature"],
    "cooking": ["recipe", "oven", "garlic", "simmer", "flour", "bake", "sauce", "skillet"],
}
FILLER = [
    "the",
    "a",
    "today",
    "we",
    "saw",
    "that",
    "really",
    "very",
    "some",
    "new",
    "and",
    "it",
    "was",
    "about",
    "news",
    "people",
    "said",
    "this",
    "week",
    "local",
    "report",
    "again",
]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own MODELWIZ_HOME and an empty HF cache; nothing touches the network."""
    home = tmp_path_factory.mktemp("mwhome")
    monkeypatch.setenv("MODELWIZ_HOME", str(home))
    monkeypatch.setenv("MODELWIZ_CACHE", str(shared_cache_dir(tmp_path_factory)))
    monkeypatch.setenv("MODELWIZ_MODEL_PATH", "")
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    # no detached speed benchmark started by the hardware probe behind a test's back (CPU time
    # taken from the other tests, and plans that change when it lands)
    monkeypatch.setenv("MODELWIZ_SPEED_BENCH", "0")
    # nor a trace and step-cost count of every tiny model folder a test builds before its run
    # (seconds each; tests that check it turn it back on)
    monkeypatch.setenv("MODELWIZ_MEASURE", "0")
    return home


_SHARED: dict[str, Path] = {}


def shared_cache_dir(factory) -> Path:
    # the torchvision registry dump takes seconds; share it across the session
    if "cache" not in _SHARED:
        _SHARED["cache"] = factory.mktemp("mwcache")
    return _SHARED["cache"]


def write_text_data(path: Path, n_per_class: int = 60, seed: int = 0, columns=("text", "label")) -> Path:
    rng = random.Random(seed)
    rows = []
    for label, words in CLASS_WORDS.items():
        for _ in range(n_per_class):
            body = [rng.choice(FILLER) for _ in range(rng.randint(4, 9))]
            for _ in range(rng.randint(1, 3)):
                body.insert(rng.randrange(len(body) + 1), rng.choice(words))
            rows.append((" ".join(body), label))
    rng.shuffle(rows)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        w.writerows(rows)
    return path


def build_tiny_bert(folder: Path) -> Path:
    """A random-initialised 2-layer BERT with a word-level vocabulary covering the test data."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(
        {w for ws in CLASS_WORDS.values() for w in ws} | set(FILLER)
    )
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    tok.save_pretrained(str(folder))
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    import torch

    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(str(folder))
    return folder


def build_tiny_gpt2(folder: Path) -> Path:
    """A random-initialised 2-layer GPT-2 whose tokenizer, like GPT-2's and Llama's, has an
    end-of-text token and no padding token; the model classifies from its last real token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["<|endoftext|>", "<unk>"] + sorted({w for ws in CLASS_WORDS.values() for w in ws} | set(FILLER))
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>", unk_token="<unk>")
    assert tok.pad_token is None
    tok.save_pretrained(str(folder))
    cfg = GPT2Config(
        vocab_size=len(vocab), n_embd=32, n_layer=2, n_head=2, n_positions=64, bos_token_id=0, eos_token_id=0
    )
    import torch

    torch.manual_seed(0)
    GPT2Model(cfg).save_pretrained(str(folder))
    return folder


def write_image_data(root: Path, n_per_class: int = 24, size: int = 32, seed: int = 0) -> Path:
    """Three classes that differ by colour and stripe direction, with noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    specs = {"red_h": (200, 40, 40, "h"), "green_v": (40, 180, 40, "v"), "blue_d": (40, 60, 200, "d")}
    for name, (r, g, b, kind) in specs.items():
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            img = rng.normal(0, 30, (size, size, 3)) + np.array([r, g, b])
            for k in range(0, size, 6):
                if kind == "h":
                    img[k : k + 2, :, :] += 60
                elif kind == "v":
                    img[:, k : k + 2, :] += 60
                else:
                    for j in range(size):
                        img[j, (j + k) % size, :] += 60
            Image.fromarray(np.clip(img, 0, 255).astype("uint8")).save(d / f"{i}.png")
    return root


def build_tiny_vit(folder: Path, image_size: int = 32) -> Path:
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    cfg = ViTConfig(
        image_size=image_size,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    ViTModel(cfg, add_pooling_layer=False).save_pretrained(str(folder))
    ViTImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("models") / "tiny-gpt2")


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory) -> Path:
    return build_tiny_vit(tmp_path_factory.mktemp("models") / "tiny-vit")


def run_cli(
    *args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """The real `modelwiz` command in a subprocess (as a user runs it)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "modelwiz.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=str(cwd or REPO),
        timeout=timeout,
    )
