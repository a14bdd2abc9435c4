"""Security: Hugging Face tokens never reach what modelwiz writes or prints, run directories are
private to the user, code that ships with a model never runs unless asked for by name, and weights
are read from safetensors only (their headers checked before anything loads them)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from conftest import run_cli, write_text_data

SECRET = "hf_SECRETtokenAbcdefghijklmnopqrstuvwx"  # shaped like a real token: hf_ + 34 characters


def _private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def _files_holding(root: Path, secret: str) -> list[str]:
    """Files under `root` whose bytes contain `secret`."""
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.slow
def test_token_never_written_and_run_dir_private(tmp_path, tiny_bert):
    """A gated model downloaded with HF_TOKEN: the run completes, and neither its output nor any
    file of the run directory (config, plan, events, status, log, checkpoints, model card,
    report) holds the token; every file and folder in it is private to the user."""
    from fakehub import FakeHub

    write_text_data(tmp_path / "d.csv", n_per_class=20)
    config = tmp_path / "c.toml"
    config.write_text(
        '[task]\ntrain = "d.csv"\n[model]\nid = "tiny-org/gated-bert"\n'
        "[train]\nepochs = 1\nbatch_size = 16\nmax_length = 32\n"
    )
    with FakeHub(tokens=(SECRET,)) as hub:
        hub.add_repo("tiny-org/gated-bert", tiny_bert, gated=True)
        env = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub.endpoint, "HF_TOKEN": SECRET, "NO_PROXY": "127.0.0.1"}
        proc = run_cli("--batch", str(config), "--json", "--runs-dir", str(tmp_path / "runs"), env=env, cwd=tmp_path)
        assert any(r.authorization == f"Bearer {SECRET}" for r in hub.requests)  # the token was used
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["status"] == "completed"
    assert SECRET not in proc.stdout and SECRET not in proc.stderr
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "model" / "README.md").is_file() and (run_dir / "report.json").is_file()
    assert _files_holding(run_dir, SECRET) == []
    assert _files_holding(tmp_path / "runs", SECRET[3:]) == []  # not even without its prefix
    not_private = [str(p) for p in [run_dir, *run_dir.rglob("*")] if not p.is_symlink() and not _private(p)]
    assert not_private == []


def test_a_refused_token_is_not_echoed(tmp_path, tiny_bert):
    from fakehub import FakeHub

    write_text_data(tmp_path / "d.csv")
    config = tmp_path / "c.toml"
    config.write_text('[task]\ntrain = "d.csv"\n[model]\nid = "tiny-org/gated-bert"\n')
    with FakeHub(tokens=("hf_the_right_one",)) as hub:
        hub.add_repo("tiny-org/gated-bert", tiny_bert, gated=True)
        env = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub.endpoint, "HF_TOKEN": SECRET, "NO_PROXY": "127.0.0.1"}
        proc = run_cli("--batch", str(config), "--json", "--runs-dir", str(tmp_path / "runs"), env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "needs a Hugging Face token" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert not (tmp_path / "runs").exists()


def test_redact_hides_tokens_credentials_and_bearer(monkeypatch):
    from modelwiz.engine.redact import redact

    monkeypatch.setenv("HF_TOKEN", "my-private-token-value")
    text = (
        f"token {SECRET} at https://alice:pw@hub.example/x with Authorization: Bearer abc.def "
        "and my-private-token-value; paths like /tmp/hf_cache and hf_transfer stay"
    )
    out = redact(text)
    assert SECRET not in out and "alice" not in out and ":pw@" not in out and "abc.def" not in out
    assert "my-private-token-value" not in out
    assert "https://***@hub.example/x" in out and "Bearer ***" in out
    assert "/tmp/hf_cache" in out and "hf_transfer" in out


def test_cli_errors_are_redacted(tmp_path):
    """Whatever a message was built from, the one line on stderr carries no token."""
    proc = run_cli("recommend", f"{tmp_path}/{SECRET}.toml", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert SECRET not in proc.stderr


def test_run_directory_is_created_private(tmp_path):
    from modelwiz.engine.config import Config
    from modelwiz.engine.runs import create_run, write_status

    runs = tmp_path / "new" / "runs"
    run_dir = create_run(Config(), model_id="some/model", runs_dir=runs)
    write_status(run_dir, by="launcher", state="queued")
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert _private(runs)  # a runs folder created here is private too
    for name in ("config.toml", "status.json", "status.lock"):
        assert _private(run_dir / name), name


# -- custom code (auto_map) ------------------------------------------------------------------------


def _custom_code_model(tmp: Path, marker: Path) -> Path:
    import numpy as np
    from safetensors.numpy import save_file

    folder = tmp / "custom"
    folder.mkdir()
    config = {"model_type": "evilbert", "auto_map": {"AutoModelForSequenceClassification": "modeling_evil.Evil"}}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n")
    save_file({"w": np.zeros((2, 2), dtype=np.float32)}, str(folder / "model.safetensors"))
    return folder


def test_custom_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "PWNED"
    _custom_code_model(tmp_path, marker)
    write_text_data(tmp_path / "d.csv")
    config = tmp_path / "c.toml"
    config.write_text('[task]\ntrain = "d.csv"\n[model]\nid = "./custom"\n')
    proc = run_cli("--batch", str(config), "--json", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "declares custom code (auto_map)" in proc.stderr and "trust_remote_code = true" in proc.stderr
    assert not marker.exists() and not (tmp_path / "runs").exists()


def test_custom_code_trusted_by_name_is_said_in_one_line(tmp_path):
    marker = tmp_path / "PWNED"
    _custom_code_model(tmp_path, marker)
    write_text_data(tmp_path / "d.csv")
    config = tmp_path / "c.toml"
    config.write_text('[task]\ntrain = "d.csv"\n[model]\nid = "./custom"\ntrust_remote_code = true\n')
    proc = run_cli("recommend", str(config), "--json", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    reasons = json.loads(proc.stdout)["models"][0]["reasons"]
    assert [r for r in reasons if r.startswith("custom code:") and "trust_remote_code = true" in r]
    assert not marker.exists()  # ranking loads nothing


def test_model_search_path_offers_only_folders_that_pass_the_check(tmp_path, monkeypatch):
    from modelwiz.engine.sources import local

    _custom_code_model(tmp_path, tmp_path / "PWNED")
    pickle_only = tmp_path / "pickled"
    pickle_only.mkdir()
    (pickle_only / "config.json").write_text('{"model_type": "bert"}')
    (pickle_only / "pytorch_model.bin").write_bytes(b"pickle")
    assert local.is_model_folder(pickle_only)
    assert local.scan([tmp_path]) == []


# -- the checks themselves -------------------------------------------------------------------------


def test_safetensors_header_check_accepts_what_safetensors_writes(tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    from modelwiz.engine.sources.local import read_safetensors_header

    tensors = {
        "a": np.zeros((3, 5), dtype=np.float16),
        "b": np.ones((7,), dtype=np.int64),
        "c": np.zeros((0, 4), dtype=np.float32),
        "d": np.array(True),
    }
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path), metadata={"format": "np"})
    header = read_safetensors_header(path)
    assert set(header) == {"__metadata__", "a", "b", "c", "d"}
    with pytest.raises(ValueError, match="outside the file"):
        path.write_bytes(path.read_bytes()[:-8])
        read_safetensors_header(path)


def test_torchvision_offline_without_weights_is_refused_before_the_run():
    from modelwiz.engine.config import Config
    from modelwiz.engine.errors import UserError
    from modelwiz.engine.preflight import check_model
    from modelwiz.engine.sources.base import Candidate

    config = Config()
    config.constraints.offline = True
    cand = Candidate(id="torchvision:resnet18", name="resnet18", source="torchvision", modality="image")
    with pytest.raises(UserError, match="torchvision weights for resnet18 are not on disk"):
        check_model(cand, config)
    cand.on_disk = True
    assert check_model(cand, config) == []


@pytest.mark.parametrize(
    "model_id, ok",
    [
        ("google-bert/bert-base-uncased", True),
        ("distilbert-base-uncased", True),
        ("org/name.v2_final", True),
        ("org/", False),
        ("/name", False),
        ("org/-name", False),
        ("org/name.", False),
        ("org/na me", False),
        ("org/naïve", False),
        ("a" * 97, False),
    ],
)
def test_hub_id_syntax(model_id, ok):
    from modelwiz.engine.errors import UserError
    from modelwiz.engine.preflight import check_hub_id

    if ok:
        check_hub_id(model_id)
    else:
        with pytest.raises(UserError):
            check_hub_id(model_id)
