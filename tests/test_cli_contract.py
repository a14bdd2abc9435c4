"""The command-line contract: shapes of `hardware --json` and `recommend --json`, and --help."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli, write_text_data

RECOMMEND_KEYS = {
    "id",
    "source",
    "score",
    "params",
    "est_train_memory_gb",
    "fits",
    "license",
    "available_offline",
    "reasons",
}


def test_help_lists_every_command_and_each_has_help():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for cmd in ("recommend", "hardware", "runs", "attach", "resume", "cancel", "predict", "--batch", "--demo"):
        assert cmd in proc.stdout
    for cmd in ("recommend", "hardware", "runs", "attach", "resume", "cancel", "predict"):
        sub = run_cli(cmd, "--help")
        assert sub.returncode == 0 and "usage: modelwiz " + cmd in sub.stdout


def test_hardware_json(tmp_path):
    proc = run_cli("hardware", "--json", "--runs-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    hw = json.loads(proc.stdout)
    for key in (
        "cpu_model",
        "cpu_cores_physical",
        "cpu_cores_logical",
        "ram_total_gb",
        "ram_available_gb",
        "gpus",
        "mps",
        "disk_free_gb",
        "disk_path",
    ):
        assert key in hw
    assert hw["cpu_cores_logical"] >= 1 and hw["ram_total_gb"] > 0 and hw["disk_free_gb"] > 0
    assert hw["disk_path"] == str(tmp_path)
    for gpu in hw["gpus"]:
        assert {"name", "total_gb", "free_gb", "compute_capability", "bf16"} <= gpu.keys()


def test_recommend_json_shape_and_order(tmp_path, tiny_bert, monkeypatch):
    write_text_data(tmp_path / "d.csv")
    (tmp_path / "c.toml").write_text('[task]\ntrain = "d.csv"\n[constraints]\nmax_params_m = 400\n')
    proc = run_cli(
        "recommend",
        str(tmp_path / "c.toml"),
        "--json",
        "--top",
        "7",
        env={"MODELWIZ_MODEL_PATH": str(tiny_bert.parent)},
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    models = out["models"]
    assert len(models) == 7
    for m in models:
        assert RECOMMEND_KEYS <= m.keys()
        assert m["params"] <= 400e6 and m["reasons"]
    fits = [m["fits"] for m in models]
    assert fits == sorted(fits, reverse=True)  # all that fit come first
    scores = [m["score"] for m in models if m["fits"]]
    assert scores == sorted(scores, reverse=True)  # best first
    # offline: only models on disk, among them the folder found through MODELWIZ_MODEL_PATH
    (tmp_path / "off.toml").write_text('[task]\ntrain = "d.csv"\n[constraints]\noffline = true\n')
    offline = run_cli(
        "recommend", str(tmp_path / "off.toml"), "--json", env={"MODELWIZ_MODEL_PATH": str(tiny_bert.parent)}
    )
    assert offline.returncode == 0, offline.stderr
    listed = json.loads(offline.stdout)["models"]
    assert str(tiny_bert) in [m["id"] for m in listed]
    assert all(m["available_offline"] for m in listed)


def test_batch_prepare_creates_the_run_and_starts_nothing(tmp_path, tiny_bert):
    write_text_data(tmp_path / "d.csv", n_per_class=20)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[task]\ntrain = "d.csv"\n[model]\nid = "{tiny_bert}"\n[train]\nmax_length = 32\n')
    proc = run_cli("--batch", str(cfg), "--nproc", "3", "--prepare", "--json", "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    created = [json.loads(ln) for ln in proc.stdout.splitlines()][-1]
    assert created["event"] == "run_created"
    run_dir = Path(created["run_dir"])
    assert json.loads((run_dir / "plan.json").read_text())["nproc"] == 3
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "queued" and not status.get("pid")  # no trainer was started
    assert not (run_dir / "events.jsonl").exists()
    bad = run_cli("--batch", str(cfg), "--nproc", "0", "--runs-dir", str(tmp_path / "runs"))
    assert bad.returncode == 2 and "--nproc must be between 1 and 64" in bad.stderr
