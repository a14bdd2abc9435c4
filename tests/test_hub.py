"""engine.hub against a fake Hugging Face Hub on loopback (tests/fakehub.py).

huggingface_hub reads HF_ENDPOINT / HF_HOME when it is imported, so the client code runs in a
subprocess whose environment points at the fake hub and at a fresh cache: the tests never see the
developer's real cache, token or network.

Importing torch and transformers costs seconds, so only one client does: started in the background
by the `heavy` fixture, it builds a tiny BERT classifier, downloads it with `modelwiz.engine.hub` and loads
it, then downloads it again with plain `from_pretrained`; the last two tests check what it saw.
Every other test uses a light client (huggingface_hub only) and a stand-in model folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fakehub import FakeHub, closed_port  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO = "tiny-org/tiny-bert"
GATED = "tiny-org/gated-bert"
BIN_ONLY = "tiny-org/bin-only"
NUM_LABELS = 3
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "sat", "ran", "on", "mat", "good"]
# Served next to the safetensors weights; a correct download fetches none of them.
EXTRA_FILES = {
    "pytorch_model.bin": b"pickled torch weights" * 100,
    "flax_model.msgpack": b"flax weights" * 100,
    "tf_model.h5": b"keras weights" * 100,
    "onnx/model.onnx": b"onnx graph" * 100,
    "onnx/config.json": b"{}",
}
FORBIDDEN_SUFFIXES = (".bin", ".msgpack", ".h5", ".onnx", ".pt", ".ot")
MARK = "/__mark__/transformers-only"


# -- clients -------------------------------------------------------------------------------------


def start_client(code: str, *, endpoint: str, hf_home: Path, env: dict | None = None) -> subprocess.Popen:
    """Start `code` in a fresh interpreter against `endpoint` with the HF cache in `hf_home`.

    `code` runs inside the front-ends' contract: a UserError prints its message as one line on
    stderr and exits 2.
    """
    script = (
        "import sys\nfrom modelwiz.engine.errors import UserError\ntry:\n"
        + textwrap.indent(textwrap.dedent(code), "    ")
        + "\nexcept UserError as e:\n    print(e, file=sys.stderr)\n    sys.exit(e.exit_code)\n"
    )
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("HF_", "HUGGINGFACE", "TRANSFORMERS_", "XDG_CACHE")) and "proxy" not in k.lower()
    }
    clean.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(hf_home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_ETAG_TIMEOUT="5",
        HF_HUB_DOWNLOAD_TIMEOUT="5",
        TOKENIZERS_PARALLELISM="false",
        NO_PROXY="127.0.0.1,localhost",
        **(env or {}),
    )
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(popen: subprocess.Popen, timeout: float = 180) -> subprocess.CompletedProcess:
    try:
        out, err = popen.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        out, err = popen.communicate()
    return subprocess.CompletedProcess(popen.args, popen.returncode, out, err)


def run_client(code: str, **kwargs) -> subprocess.CompletedProcess:
    return finish(start_client(code, **kwargs))


def last_json(proc: subprocess.CompletedProcess):
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


DOWNLOAD = """
import json
from modelwiz.engine.hub import download_model
messages = []
path = download_model({repo!r}, progress=messages.append)
print(json.dumps({{"path": str(path), "messages": messages}}))
"""

LISTING = """
import json
from modelwiz.engine.hub import list_cached_models
print(json.dumps(list_cached_models()))
"""


# -- the heavy client ----------------------------------------------------------------------------

HEAVY = """
import inspect, json, os, traceback, urllib.request
from pathlib import Path
import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, BertConfig,
                          BertForSequenceClassification, BertTokenizerFast)

# 1. The tiny model the fake hub serves (lazily) from `folder`.
folder = Path({folder!r})
folder.mkdir(parents=True)
(folder.parent / "vocab.txt").write_text("\\n".join({vocab!r}) + "\\n")
takes_vocab = "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters  # 5.x; 4.x: vocab_file
BertTokenizerFast(**{{"vocab" if takes_vocab else "vocab_file": str(folder.parent / "vocab.txt")}}).save_pretrained(folder)
torch.manual_seed(0)
config = BertConfig(vocab_size={n_vocab}, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=37, max_position_embeddings=64, num_labels={n_labels})
original = BertForSequenceClassification(config).eval()
original.save_pretrained(folder)
reference = {{k: v.clone() for k, v in original.state_dict().items()}}

def same_weights(model):
    mine = model.state_dict()
    return sorted(mine) == sorted(reference) and all(torch.equal(mine[k], reference[k]) for k in reference)

result = {{}}
# 2. modelwiz.engine.hub.download_model, then load the folder it returns.
try:
    from modelwiz.engine.hub import download_model
    messages = []
    path = download_model({repo!r}, progress=messages.append)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    batch = tok(["the cat sat on the mat", "a dog ran"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
        expected = original(**batch).logits
    result["engine"] = {{
        "path": str(path),
        "files": sorted(p.name for p in path.iterdir()),
        "shape": list(logits.shape),
        "same_logits": bool(torch.allclose(logits, expected)),
        "same_weights": same_weights(model),
        "ids": batch["input_ids"].tolist(),
        "messages": messages,
    }}
except Exception:
    result["engine"] = {{"error": traceback.format_exc()}}

# 3. Plain transformers from_pretrained with the hub id, into a cache of its own.
try:
    urllib.request.urlopen(os.environ["HF_ENDPOINT"] + {mark!r})
except Exception:
    pass  # 404: the mark only splits the fake hub's request log
try:
    cache = os.path.join(os.environ["HF_HOME"], "transformers-only")
    model = AutoModelForSequenceClassification.from_pretrained({repo!r}, cache_dir=cache).eval()
    tok = AutoTokenizer.from_pretrained({repo!r}, cache_dir=cache)
    with torch.no_grad():
        logits = model(**tok(["good cat"], return_tensors="pt")).logits
    result["transformers"] = {{"shape": list(logits.shape), "same_weights": same_weights(model), "cache": cache}}
except Exception:
    result["transformers"] = {{"error": traceback.format_exc()}}
print(json.dumps(result))
"""


class HeavyRun:
    def __init__(self, tmp: Path) -> None:
        self.folder = tmp / "models" / "tiny-bert"
        self.hf_home = tmp / "hf"
        self.hub = FakeHub().start()
        self.hub.add_repo(REPO, self.folder, extra_files=EXTRA_FILES, lazy=True)
        code = HEAVY.format(
            folder=str(self.folder), vocab=VOCAB, n_vocab=len(VOCAB), n_labels=NUM_LABELS, repo=REPO, mark=MARK
        )
        self.popen = start_client(code, endpoint=self.hub.endpoint, hf_home=self.hf_home)
        self._result: dict | None = None

    def result(self, part: str) -> dict:
        if self._result is None:
            self._result = last_json(finish(self.popen))
        out = self._result[part]
        assert "error" not in out, out.get("error")
        return out

    def requests(self, part: str):
        """The fake hub's requests made by one part of the client (split at the mark)."""
        reqs = self.hub.requests
        cut = next((i for i, r in enumerate(reqs) if r.path == MARK), len(reqs))
        return reqs[:cut] if part == "engine" else reqs[cut + 1 :]

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        finish(self.popen)
        self.hub.stop()


@pytest.fixture(scope="module", autouse=True)
def heavy(tmp_path_factory):
    """Started before the first test of this module, so that it runs while the light tests do."""
    run = HeavyRun(tmp_path_factory.mktemp("heavy"))
    yield run
    run.close()


# -- the light fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    """A model folder with the files of a real one (config, safetensors, tokenizer), built without torch."""
    import numpy as np
    from safetensors.numpy import save_file

    folder = tmp_path_factory.mktemp("models") / "standin"
    folder.mkdir()
    config = {"architectures": ["BertForSequenceClassification"], "model_type": "bert", "hidden_size": 4}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer"}))
    save_file({"classifier.weight": np.arange(12, dtype=np.float32).reshape(3, 4)}, str(folder / "model.safetensors"))
    return folder


@pytest.fixture(scope="module")
def hub(standin, tmp_path_factory):
    bin_only = tmp_path_factory.mktemp("models") / "bin-only"
    bin_only.mkdir()
    (bin_only / "config.json").write_bytes((standin / "config.json").read_bytes())
    (bin_only / "pytorch_model.bin").write_bytes(b"pickle weights" * 10)
    with FakeHub() as fake:
        fake.add_repo(REPO, standin, extra_files=EXTRA_FILES)
        fake.add_repo(GATED, standin, gated=True)
        fake.add_repo(BIN_ONLY, bin_only)
        yield fake


# -- light tests ---------------------------------------------------------------------------------


def test_import_is_light():
    """engine.hub is imported by light code paths: no huggingface_hub, torch or textual on import."""
    code = "import sys, modelwiz.engine.hub\nprint(sorted(m for m in ('huggingface_hub', 'torch', 'textual') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_cached_model_is_used_without_network(hub, standin, tmp_path):
    hf_home = tmp_path / "hf"
    hub.clear_requests()
    first = last_json(run_client(DOWNLOAD.format(repo=REPO), endpoint=hub.endpoint, hf_home=hf_home))
    assert Path(first["path"]).is_relative_to(hf_home / "hub")
    assert sha256(Path(first["path"]) / "model.safetensors") == sha256(standin / "model.safetensors")
    assert hub.requests, "the first download goes to the hub"

    hub.clear_requests()
    code = f"""
import json
from modelwiz.engine.hub import cached_model_path, download_model
print(json.dumps({{
    "cached": str(cached_model_path({REPO!r})),
    "unknown": cached_model_path("tiny-org/never-downloaded"),
    "online": str(download_model({REPO!r})),
    "offline": str(download_model({REPO!r}, offline=True)),
}}))
"""
    out = last_json(run_client(code, endpoint=hub.endpoint, hf_home=hf_home))
    assert out["cached"] == out["online"] == out["offline"] == first["path"]
    assert out["unknown"] is None
    assert hub.requests == [], "a cached model must not cost a single request"

    # Also with the hub unreachable and HF_HUB_OFFLINE set.
    down = f"http://127.0.0.1:{closed_port()}"
    proc = run_client(DOWNLOAD.format(repo=REPO), endpoint=down, hf_home=hf_home, env={"HF_HUB_OFFLINE": "1"})
    assert last_json(proc)["path"] == first["path"]


def test_incomplete_snapshot_is_not_cached(hub, tmp_path):
    hf_home = tmp_path / "hf"
    first = last_json(run_client(DOWNLOAD.format(repo=REPO), endpoint=hub.endpoint, hf_home=hf_home))
    (Path(first["path"]) / "model.safetensors").unlink()
    code = f"""
import json
from modelwiz.engine.hub import cached_model_path, download_model
missing = cached_model_path({REPO!r})
again = download_model({REPO!r})  # fetches the missing weights
print(json.dumps({{"missing": missing, "again": str(again), "now": str(cached_model_path({REPO!r}))}}))
"""
    out = last_json(run_client(code, endpoint=hub.endpoint, hf_home=hf_home))
    assert out == {"missing": None, "again": first["path"], "now": first["path"]}
    assert (Path(first["path"]) / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown", "no model 'tiny-org/does-not-exist' on the Hugging Face Hub (HF_ENDPOINT=http://127.0.0.1:"),
        ("gated", "needs a Hugging Face token: run `hf auth login` or set HF_TOKEN"),
        ("down", "cannot reach the Hugging Face Hub at http://127.0.0.1:"),
        ("offline", "is not in the local Hugging Face cache and offline mode is on"),
        ("env-offline", "is not in the local Hugging Face cache"),
        ("bin-only", "has no safetensors weights; modelwiz loads only safetensors by default"),
        ("bad-id", "is not a valid Hugging Face model id"),
    ],
)
def test_failures_are_one_line_user_errors(hub, tmp_path, case, expected):
    hub.clear_requests()
    endpoint, env, repo, offline = hub.endpoint, {}, REPO, False
    if case == "unknown":
        repo = "tiny-org/does-not-exist"
    elif case == "gated":
        repo = GATED
    elif case == "down":
        endpoint = f"http://127.0.0.1:{closed_port()}"
    elif case == "offline":
        offline = True
    elif case == "env-offline":
        env = {"HF_HUB_OFFLINE": "1"}
    elif case == "bin-only":
        repo = BIN_ONLY
    elif case == "bad-id":
        repo = "not//a valid id"
    code = f"from modelwiz.engine.hub import download_model\ndownload_model({repo!r}, offline={offline})\nprint('no error')"
    proc = run_client(code, endpoint=endpoint, hf_home=tmp_path / "hf", env=env)

    assert proc.returncode == 2, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert expected in lines[0]
    if case == "down":
        assert endpoint in lines[0]
    if case in ("offline", "env-offline"):
        assert hub.requests == [], "offline mode must not touch the network"
    if case == "gated":
        assert any(r.path.startswith(f"/{GATED}/resolve/") for r in hub.requests), "401 comes from the file download"
    if case == "bin-only":
        assert not [r for r in hub.requests if r.path.endswith(".bin")]


def test_gated_repo_downloads_with_token(hub, standin, tmp_path):
    hub.tokens.add("hf_fake_token")
    try:
        proc = run_client(
            DOWNLOAD.format(repo=GATED),
            endpoint=hub.endpoint,
            hf_home=tmp_path / "hf",
            env={"HF_TOKEN": "hf_fake_token"},
        )
    finally:
        hub.tokens.discard("hf_fake_token")
    assert sha256(Path(last_json(proc)["path"]) / "model.safetensors") == sha256(standin / "model.safetensors")


def test_list_cached_models(hub, tmp_path):
    hf_home = tmp_path / "hf"
    # No cache folder at all: an empty list, not an error.
    assert last_json(run_client(LISTING, endpoint=hub.endpoint, hf_home=hf_home)) == []
    assert not (hf_home / "hub").exists()

    first = last_json(run_client(DOWNLOAD.format(repo=REPO), endpoint=hub.endpoint, hf_home=hf_home))
    (entry,) = last_json(run_client(LISTING, endpoint=hub.endpoint, hf_home=hf_home))
    assert entry["repo_id"] == REPO
    assert entry["path"] == first["path"]
    assert entry["complete"] is True
    files = list(Path(first["path"]).iterdir())
    assert entry["size_on_disk"] == sum(p.stat().st_size for p in files) > 0


# -- the heavy client's results ------------------------------------------------------------------


def test_download_loads_and_matches_original(heavy):
    out = heavy.result("engine")

    path = Path(out["path"])
    assert path.is_relative_to(heavy.hf_home / "hub"), "lands in the (isolated) HF cache"
    assert out["shape"] == [2, NUM_LABELS] and out["same_logits"]
    assert out["same_weights"], "downloaded weights differ from the served ones"
    assert sha256(path / "model.safetensors") == sha256(heavy.folder / "model.safetensors")
    # The tokenizer came along and works: [CLS] the cat sat on the mat [SEP].
    words = ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]"]
    assert out["ids"][0] == [VOCAB.index(w) for w in words]
    # Config, tokenizer and safetensors files only.
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(out["files"])
    assert not [f for f in out["files"] if f.endswith(FORBIDDEN_SUFFIXES) or f == "onnx"], out["files"]
    assert any(m.endswith("files") for m in out["messages"]), out["messages"]

    reqs = heavy.requests("engine")
    paths = [r.path for r in reqs]
    assert not [p for p in paths if p.endswith(FORBIDDEN_SUFFIXES) or "/onnx/" in p], paths
    assert not [p for p in paths if "xet" in p.lower()], "no Xet attempt against this hub"
    assert any("/resolve/" in p and p.endswith("/model.safetensors") for p in paths), paths
    # The weights came through the LFS redirect (a "CDN" on another origin), without a token.
    assert [r for r in reqs if r.path.startswith("/cdn/") and r.method == "GET" and r.authorization is None]


def test_transformers_from_pretrained_against_fake_hub(heavy):
    """The real from_pretrained code path (no engine code) downloads from the fake hub."""
    out = heavy.result("transformers")
    assert out["shape"] == [1, NUM_LABELS] and out["same_weights"]
    assert (Path(out["cache"]) / "models--tiny-org--tiny-bert").is_dir()

    paths = [r.path for r in heavy.requests("transformers")]
    # transformers 5 resolves "main" to a commit once, then fetches files at that commit.
    assert any(p.startswith(f"/{REPO}/resolve/") and p.endswith("/config.json") for p in paths), paths
    assert any(p.startswith("/cdn/") for p in paths), "the safetensors weights come through the LFS redirect"
    assert not [p for p in paths if p.endswith(FORBIDDEN_SUFFIXES) or "xet" in p.lower()], paths
