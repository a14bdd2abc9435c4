"""End to end: `modelwiz --batch` on generated, learnable data with tiny models built here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli, write_image_data, write_text_data

pytestmark = pytest.mark.slow

SUMMARY_KEYS = {"run_id", "run_dir", "status", "model", "metrics", "model_path"}


def text_config(tmp: Path, model: Path, **train) -> Path:
    write_text_data(tmp / "data.csv")
    opts = {"epochs": 12, "learning_rate": 0.002, "batch_size": 16, "max_length": 32, **train}
    lines = ["[task]", 'train = "data.csv"', "[constraints]", "offline = true", "[model]", f'id = "{model}"', "[train]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in opts.items()]
    lines += ["[output]", 'runs_dir = "runs"']
    cfg = tmp / "task.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def parse_json_lines(stdout: str) -> list[dict]:
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    return [json.loads(ln) for ln in lines]  # every stdout line must be JSON


def test_text_batch_learns_and_exports(tmp_path, tiny_bert):
    cfg = text_config(tmp_path, tiny_bert)
    proc = run_cli("--batch", str(cfg), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    events = parse_json_lines(proc.stdout)
    summary = events[-1]
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["status"] == "completed"
    kinds = [e["event"] for e in events]
    for kind in (
        "data_checked",
        "recommendation",
        "run_started",
        "step",
        "eval",
        "checkpoint",
        "exported",
        "run_finished",
    ):
        assert kind in kinds, kind
    # three balanced classes: chance is 1/3
    assert summary["metrics"]["accuracy"] >= 0.75, summary["metrics"]
    assert summary["metrics"]["macro_f1"] >= 0.7

    run_dir = Path(summary["run_dir"])
    for name in ("config.toml", "plan.json", "events.jsonl", "status.json", "report.json", "model/README.md"):
        assert (run_dir / name).exists(), name
    assert len(list((run_dir / "checkpoints").glob("step-*.pt"))) == 2  # keep_checkpoints = 2 of 12 epochs
    report = json.loads((run_dir / "report.json").read_text())
    assert report["metrics"]["accuracy"] == summary["metrics"]["accuracy"]
    assert len(report["confusion_matrix"]) == 3

    # the export loads without modelwiz and predicts the classes it learned
    from transformers import pipeline

    clf = pipeline("text-classification", model=summary["model_path"])
    preds = [
        clf(t)[0]["label"]
        for t in (
            "the striker scored a goal in the league match",
            "storm and rain in the forecast with strong wind",
            "bake the flour and simmer the garlic sauce",
        )
    ]
    assert preds == ["sports", "weather", "cooking"]

    # and through modelwiz predict
    p = run_cli(
        "predict", summary["run_id"], "--runs-dir", str(run_dir.parent), "--json", "coach and referee at the match"
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.splitlines()[0])["label"] == "sports"
    # many inputs of many lengths: read in bounded batches, longest first, answered in the order given
    kinds = {"sports": "coach and referee at the match", "weather": "storm and rain with strong wind"}
    many = [(k, " ".join([kinds[k]] * (1 + i % 5))) for i in range(70) for k in [("sports", "weather")[i % 2]]]
    p = run_cli("predict", summary["run_id"], "--runs-dir", str(run_dir.parent), "--json", *[t for _, t in many])
    assert p.returncode == 0, p.stderr
    answers = [json.loads(line) for line in p.stdout.splitlines()]
    assert [a["input"] for a in answers] == [t for _, t in many]
    assert [a["label"] for a in answers] == [k for k, _ in many]

    runs = run_cli("runs", "--runs-dir", str(run_dir.parent), "--json")
    listed = json.loads(runs.stdout)["runs"]
    assert [r["run_id"] for r in listed] == [summary["run_id"]]
    assert listed[0]["status"] == "completed"

    # every run is a data point for the memory predictor: the third step's live-tensor peak,
    # measured, next to the plan's prediction, in the events and in `runs --json`
    measured = [e for e in events if e["event"] == "memory_measured"]
    assert len(measured) == 1 and measured[0]["step"] == 3 and measured[0]["method"] == "cpu-profiler"
    assert measured[0]["measured_peak_gb"] > 0
    assert listed[0]["memory"]["measured_peak_gb"] == measured[0]["measured_peak_gb"]
    assert listed[0]["memory"]["predicted_peak_gb"] == measured[0]["predicted_peak_gb"] > 0

    # one meaning of "best" everywhere: the summary, the runs list, the report, the model card and
    # the exported weights are all the best epoch's by the configured metric (macro-F1 here)
    evals = [e for e in events if e["event"] == "eval"]
    best = max(evals, key=lambda e: (e["macro_f1"], -e["epoch"]))  # the earliest of the best
    assert summary["best_epoch"] == best["epoch"] == report["best_epoch"] == listed[0]["best_epoch"]
    assert summary["metrics"]["macro_f1"] == best["macro_f1"] == listed[0]["metrics"]["macro_f1"]
    assert report["confusion_matrix"] == best["confusion_matrix"]
    assert [e for e in events if e["event"] == "exported"][0]["epoch"] == best["epoch"]
    assert f"epoch {best['epoch']} of 12, the best by macro_f1" in (run_dir / "model" / "README.md").read_text()

    # every line the trainer wrote, and every line batch printed, is a declared record
    from modelwiz.engine.events import parse_event

    for line in (run_dir / "events.jsonl").read_text().splitlines():
        parse_event(json.loads(line), strict=True)
    for obj in events:
        parse_event(obj, strict=True)

    # the plan the trainer obeyed is the one written at launch, and predict prepares inputs by it
    plan = json.loads((run_dir / "plan.json").read_text())
    assert [e["plan"] for e in events if e["event"] == "plan"] == [plan]
    assert (plan["batch_size"], plan["max_length"], plan["learning_rate"], plan["epochs"]) == (16, 32, 0.002, 12)
    assert json.loads((run_dir / "model" / "modelwiz.json").read_text())["max_length"] == plan["max_length"]


def test_decoder_model_without_a_padding_token_trains_and_predicts(tmp_path, tiny_gpt2):
    """GPT-2, Llama, Mistral and Qwen ship no padding token: batching and their last-token
    classifier need one. The run pads with the end-of-text token, and the export keeps it."""
    cfg = text_config(tmp_path, tiny_gpt2, epochs=8)
    proc = run_cli("--batch", str(cfg), "--json", cwd=tmp_path, env={"MODELWIZ_MEASURE": "1"})
    assert proc.returncode == 0, proc.stderr
    events = parse_json_lines(proc.stdout)
    summary = events[-1]
    assert summary["status"] == "completed"
    assert summary["metrics"]["accuracy"] >= 0.6, summary["metrics"]  # chance: 1/3
    # an architecture the shipped table lacks is traced before the run, not left to the formula
    logs = [e["message"] for e in events if e["event"] == "log"]
    assert any("an architecture not measured before" in m for m in logs), logs
    plan = json.loads((Path(summary["run_dir"]) / "plan.json").read_text())
    assert plan["memory"]["method"] == "traced", plan["memory"]
    from transformers import AutoConfig, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(summary["model_path"])
    assert tok.pad_token == "<|endoftext|>"
    assert AutoConfig.from_pretrained(summary["model_path"]).pad_token_id == tok.pad_token_id
    texts = ["the striker scored a goal", "storm and rain in the forecast with strong wind tonight"]
    pred = run_cli("predict", summary["run_id"], "--runs-dir", "runs", *texts, cwd=tmp_path)
    assert pred.returncode == 0, pred.stderr
    assert len([ln for ln in pred.stdout.splitlines() if ln.strip()]) == 2


def test_a_folder_that_is_already_a_classifier_probes_its_head(tmp_path, tiny_bert):
    """A folder saved from a sequence classifier with as many labels as the task loads its head
    from the checkpoint: a linear probe must still train that head (it trained nothing and failed
    at its first step)."""
    from transformers import AutoModelForSequenceClassification

    folder = tmp_path / "clf"
    AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=3).save_pretrained(str(folder))
    for f in tiny_bert.iterdir():
        if "token" in f.name or f.name == "vocab.txt":
            (folder / f.name).write_bytes(f.read_bytes())
    cfg = text_config(tmp_path, folder, epochs=2, strategy="linear-probe")
    proc = run_cli("--batch", str(cfg), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = parse_json_lines(proc.stdout)[-1]
    assert summary["status"] == "completed"
    report = json.loads((Path(summary["run_dir"]) / "report.json").read_text())
    assert report["metrics"]["accuracy"] > 0


def test_texts_longer_than_the_model_positions_train(tmp_path, tiny_bert):
    """max_length above the model's 64 positions is clamped by the plan, not crashed on."""
    rows = ["text,label"]
    for i in range(30):
        for label, words in (("sports", "goal match league"), ("weather", "rain storm wind")):
            rows.append(f'"{" ".join([words] * 120)} {i}",{label}')
    (tmp_path / "long.csv").write_text("\n".join(rows) + "\n")
    cfg = tmp_path / "long.toml"
    cfg.write_text(
        f'[task]\ntrain = "long.csv"\n[model]\nid = "{tiny_bert}"\n'
        '[train]\nepochs = 1\nbatch_size = 8\nmax_length = 1024\n[output]\nruns_dir = "runs"\n'
    )
    proc = run_cli("--batch", str(cfg), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    events = parse_json_lines(proc.stdout)
    assert events[-1]["status"] == "completed"
    plan = json.loads((Path(events[-1]["run_dir"]) / "plan.json").read_text())
    assert plan["max_length"] == 64
    assert any("max_length 1024 is more than" in n for n in plan["notes"])
    p = run_cli("predict", events[-1]["run_id"], "--runs-dir", str(tmp_path / "runs"), "goal " * 400)
    assert p.returncode == 0, p.stderr


def test_image_batch_learns_and_exports(tmp_path, tiny_vit):
    write_image_data(tmp_path / "images")
    cfg = tmp_path / "img.toml"
    cfg.write_text(f"""
[task]
modality = "image"
train = "images"
validation = 0.25
[model]
id = "{tiny_vit}"
[train]
epochs = 6
learning_rate = 0.003
batch_size = 8
image_size = 32
[output]
runs_dir = "runs"
""")
    proc = run_cli("--batch", str(cfg), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = parse_json_lines(proc.stdout)[-1]
    assert summary["status"] == "completed"
    assert summary["metrics"]["accuracy"] >= 0.7, summary["metrics"]

    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(summary["model_path"]).eval()
    proc_ = AutoImageProcessor.from_pretrained(summary["model_path"])
    img = Image.open(next((tmp_path / "images" / "blue_d").glob("*.png"))).convert("RGB")
    with torch.no_grad():
        logits = model(**proc_(images=img, return_tensors="pt")).logits
    assert logits.shape == (1, 3)
    assert set(model.config.id2label.values()) == {"red_h", "green_v", "blue_d"}


def test_batch_without_json_shows_progress_on_stderr(tmp_path, tiny_bert):
    cfg = text_config(tmp_path, tiny_bert, epochs=1)
    proc = run_cli("--batch", str(cfg), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "epoch 1: val loss" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_batch_downloads_a_hub_model_then_works_offline(tmp_path, tiny_bert):
    """A Hub id in [model] id: the trainer downloads it (real huggingface_hub against a fake Hub on
    loopback), trains and exports; a second run finds it in the HF cache with the Hub gone."""
    from fakehub import FakeHub

    write_text_data(tmp_path / "data.csv")
    cfg = tmp_path / "hub.toml"
    cfg.write_text(
        '[task]\ntrain = "data.csv"\n[model]\nid = "tiny-org/tiny-bert"\n'
        "[train]\nepochs = 1\nbatch_size = 16\nmax_length = 32\nlearning_rate = 0.002\n"
    )
    env = {"HF_HUB_OFFLINE": "0"}
    with FakeHub() as hub:
        hub.add_repo("tiny-org/tiny-bert", tiny_bert)
        env["HF_ENDPOINT"] = hub.endpoint
        proc = run_cli("--batch", str(cfg), "--json", "--runs-dir", str(tmp_path / "runs"), env=env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        fetched = [r.path for r in hub.requests if "/resolve/" in r.path]
    events = parse_json_lines(proc.stdout)
    assert events[-1]["status"] == "completed"
    assert any(f.endswith("model.safetensors") for f in fetched)
    assert any(e["event"] == "log" and "download" in e["message"] for e in events)

    # the Hub is gone; offline = true still works from the cache, and the ranking sees it on disk
    cfg.write_text(cfg.read_text().replace("[train]", "[constraints]\noffline = true\n[train]"))
    again = run_cli("--batch", str(cfg), "--json", "--runs-dir", str(tmp_path / "runs"), env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    chosen = [e for e in parse_json_lines(again.stdout) if e["event"] == "recommendation"][0]["models"][0]
    assert chosen["id"] == "tiny-org/tiny-bert" and chosen["available_offline"]
