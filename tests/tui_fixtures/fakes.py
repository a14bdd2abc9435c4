"""Deterministic stand-ins for the engine calls the wizard makes (see modelwiz.tui.state.Services).

- hardware: a fixed report ("Test CPU", 8 cores, 32 GB RAM, one "Fake GPU 24GB" or none);
- data: tests/tui_fixtures/tickets.csv through the real modelwiz.engine.data checks (41 rows, 3 classes);
- models: a fixed candidate list ranked by the real modelwiz.engine.recommend.rank (deterministic given
  the fixed hardware);
- probe: FakeProbe sends the engine probe's progress events, then fixed LogME figures;
- NVML: none (device_memory answers None), whatever this machine has;
- runs: start_run copies the recorded tests/tui_fixtures/events.jsonl into a run directory and
  writes status.json instead of launching the trainer; cancel_run records its calls.
"""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelwiz.engine.config import Config
from modelwiz.engine.data import TaskData
from modelwiz.engine.hardware import GPUInfo, HardwareReport
from modelwiz.engine.recommend import Ranked, rank
from modelwiz.engine.sources.base import Candidate
from modelwiz.engine.workflow import Recommendation, check_data
from modelwiz.tui.probe import ProbeStopped
from modelwiz.tui.state import Services

FIXTURES = Path(__file__).resolve().parent
CSV_NAME = "tickets.csv"
EVENTS = FIXTURES / "events.jsonl"
RUN_ID = "20250101-120000-ab12"
THEMES = FIXTURES.parent.parent / "themes"


def fake_hardware(gpu: bool = True) -> HardwareReport:
    return HardwareReport(
        cpu_model="Test CPU",
        cpu_cores_physical=8,
        cpu_cores_logical=16,
        ram_total_gb=32.0,
        ram_available_gb=28.0,
        disk_path="/data/modelwiz",
        disk_free_gb=120.0,
        gpus=[GPUInfo(index=0, name="Fake GPU 24GB", total_gb=24.0, free_gb=23.5, compute_capability="8.9", bf16=True)]
        if gpu
        else [],
        mps=False,
        torch_version="2.5.0",
        cuda_version="12.4" if gpu else "",
    )


def _text(
    id_: str,
    source: str,
    arch: str,
    params: float,
    hidden: int,
    layers: int,
    heads: int,
    vocab: int,
    license_: str,
    quality: float | None,
    note: str,
    *,
    on_disk: bool = False,
    languages: tuple[str, ...] = ("en",),
) -> Candidate:
    return Candidate(
        id=id_,
        name=id_.split("/")[-1],
        source=source,
        modality="text",
        arch=arch,
        params=int(params * 1e6),
        license=license_,
        languages=list(languages),
        on_disk=on_disk,
        path=f"/models/{id_.split('/')[-1]}" if on_disk else None,
        quality=quality,
        quality_note=note,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        intermediate_size=4 * hidden,
        vocab_size=vocab,
        max_length=512,
    )


CANDIDATES: list[Candidate] = [
    _text(
        "sentence-transformers/all-MiniLM-L6-v2",
        "local",
        "bert",
        22.7,
        384,
        6,
        12,
        30522,
        "apache-2.0",
        0.55,
        "MTEB classification 63.1",
        on_disk=True,
    ),
    _text(
        "distilbert/distilbert-base-uncased",
        "catalog",
        "distilbert",
        66.4,
        768,
        6,
        12,
        30522,
        "apache-2.0",
        0.53,
        "GLUE 77.0",
    ),
    _text(
        "google-bert/bert-base-uncased", "catalog", "bert", 109.5, 768, 12, 12, 30522, "apache-2.0", 0.61, "GLUE 79.6"
    ),
    _text("FacebookAI/roberta-base", "catalog", "roberta", 124.6, 768, 12, 12, 50265, "mit", 0.83, "GLUE 86.4"),
    _text(
        "FacebookAI/xlm-roberta-base",
        "catalog",
        "xlm-roberta",
        278.0,
        768,
        12,
        12,
        250002,
        "mit",
        0.50,
        "XNLI 76.2",
        languages=("multilingual",),
    ),
    _text("microsoft/deberta-v3-large", "catalog", "deberta-v2", 435.0, 1024, 24, 16, 128100, "mit", 0.98, "GLUE 91.4"),
    _text("Qwen/Qwen2.5-7B", "catalog", "qwen2", 7615.6, 3584, 28, 28, 152064, "apache-2.0", None, ""),
]


def fake_recommend(config: Config, data: TaskData, hardware: HardwareReport) -> Recommendation:
    s = data.summary
    ranked = rank(
        config,
        hardware,
        train_size=s.train_size,
        num_classes=s.num_classes,
        language=s.language,
        candidates=copy.deepcopy(CANDIDATES),
    )
    return Recommendation(data, hardware, ranked)


def write_run(
    run_dir: Path,
    *,
    state: str = "completed",
    lines: int | None = None,
    model: str = "all-MiniLM-L6-v2",
    pid: int | None = None,
) -> Path:
    """A run directory holding the recorded events (the first `lines` of them) and a status.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    events = EVENTS.read_text(encoding="utf-8").splitlines(keepends=True)
    if lines is not None:
        events = events[:lines]
    (run_dir / "events.jsonl").write_text("".join(events), encoding="utf-8")
    status: dict[str, Any] = {
        "run_id": run_dir.name,
        "state": state,
        "model": model,
        "model_name": model,
        "created": 1735732800.0,
        "updated": 1735732812.9,
    }
    if pid is not None:
        status["pid"] = pid
    if state == "completed":
        status["best_metrics"] = {"accuracy": 0.8889, "macro_f1": 0.8857}
    (run_dir / "status.json").write_text(json.dumps(status, indent=2), encoding="utf-8")
    return run_dir


class RecordedRuns:
    """start_run / cancel_run fakes over a runs folder."""

    def __init__(self, runs_dir: Path, *, state: str = "completed", lines: int | None = None) -> None:
        self.runs_dir = Path(runs_dir)
        self.state = state
        self.lines = lines
        self.started: list[tuple[Config, Ranked]] = []
        self.contenders: list[list[Ranked] | None] = []  # what each start passed for a bake-off
        self.cancelled: list[Path] = []
        self.resumed: list[Path] = []

    def start_run(self, config: Config, ranked: Ranked, contenders: list[Ranked] | None = None) -> Path:
        self.started.append((config, ranked))
        self.contenders.append(contenders)
        pid = os.getpid() if self.state == "running" else None
        return write_run(
            self.runs_dir / RUN_ID, state=self.state, lines=self.lines, model=ranked.candidate.name, pid=pid
        )

    def cancel_run(self, run_dir: Path) -> bool:
        self.cancelled.append(Path(run_dir))
        return True

    def resume_run(self, run_dir: Path) -> None:
        """As modelwiz.engine.batch.resume_run leaves it: running again (pid: this process)."""
        self.resumed.append(Path(run_dir))
        status_file = Path(run_dir) / "status.json"
        status = json.loads(status_file.read_text(encoding="utf-8"))
        status.update(state="running", pid=os.getpid())
        status_file.write_text(json.dumps(status), encoding="utf-8")


# three runs for the runs screen, newest first: one training (12 events, pid: the test process),
# one interrupted after epoch 1's checkpoint, one completed
RUNS = (
    ("20250103-090000-cc33", "running", 12, "distilbert-base-uncased", 1735894800.0),
    ("20250102-100000-bb22", "interrupted", 12, "bert-base-uncased", 1735812000.0),
    (RUN_ID, "completed", None, "all-MiniLM-L6-v2", 1735732800.0),
)


def write_runs(runs_dir: Path) -> list[Path]:
    dirs = []
    for run_id, state, lines, model, created in RUNS:
        pid = os.getpid() if state == "running" else None
        run_dir = write_run(Path(runs_dir) / run_id, state=state, lines=lines, model=model, pid=pid)
        status_file = run_dir / "status.json"
        status = json.loads(status_file.read_text(encoding="utf-8"))
        status.update(run_id=run_id, created=created)
        status_file.write_text(json.dumps(status), encoding="utf-8")
        events = run_dir / "events.jsonl"
        events.write_text(events.read_text(encoding="utf-8").replace(RUN_ID, run_id), encoding="utf-8")
        dirs.append(run_dir)
    return dirs


def make_services(runs: RecordedRuns, *, gpu: bool = True, hardware_delay: float = 0.0) -> Services:
    def read_hardware(config: Config) -> HardwareReport:
        if hardware_delay:
            time.sleep(hardware_delay)
        return fake_hardware(gpu)

    return Services(
        check_data=check_data,
        read_hardware=read_hardware,
        recommend=fake_recommend,
        start_run=runs.start_run,
        cancel_run=runs.cancel_run,
        resume_run=runs.resume_run,
        candidates=lambda modality: [c for c in CANDIDATES if c.modality == modality],
        device_memory=lambda index: None,  # no NVML: screens do not depend on this machine's GPUs
        measure=lambda config, data, hardware, ranked: ranked,  # no tracing subprocesses in tests
    )


def make_config(train: str = CSV_NAME) -> Config:
    cfg = Config()
    cfg.task.train = train
    return cfg


class FakeProbe:
    """`Services.probe` stand-in: progress events as the engine's probe sends them, then fixed
    LogME figures; `gate` (when set) holds it mid-run until the test lets it go or stops it."""

    LOGME = {
        "sentence-transformers/all-MiniLM-L6-v2": -0.5,
        "distilbert/distilbert-base-uncased": 0.7,
        "google-bert/bert-base-uncased": 0.2,
        "FacebookAI/roberta-base": 0.4,
        "FacebookAI/xlm-roberta-base": 0.1,
        "microsoft/deberta-v3-large": 0.3,
    }

    def __init__(self, *, fail: str = "", error: Exception | None = None, hold: bool = False) -> None:
        self.calls: list[tuple[list[str], int]] = []
        self.fail, self.error = fail, error
        self.gate = threading.Event() if hold else None
        self.stopped = False

    def __call__(
        self,
        config: Config,
        ids: list[str],
        k: int,
        on_event: Callable[[dict[str, Any]], None],
        should_stop: Callable[[], bool],
    ) -> list[dict[str, Any]]:
        self.calls.append((list(ids), k))
        if self.error is not None:
            raise self.error
        on_event({"event": "probe_started", "models": ids, "examples": 30})
        results = []
        for i, mid in enumerate(ids, 1):
            on_event({"event": "probe_model", "model": mid, "index": i, "of": len(ids), "examples": 30})
            on_event({"event": "probe_progress", "model": mid, "index": i, "done": 15, "total": 30})
            while self.gate is not None and not self.gate.is_set():
                if should_stop():
                    self.stopped = True
                    raise ProbeStopped
                time.sleep(0.01)
            if mid == self.fail:
                results.append(
                    {
                        "model": mid,
                        "logme": None,
                        "h_score": None,
                        "examples": 30,
                        "dim": 0,
                        "seconds": 0.1,
                        "feature_seconds": 0.0,
                        "cached": False,
                        "error": "no weights",
                    }
                )
                continue
            results.append(
                {
                    "model": mid,
                    "logme": self.LOGME[mid],
                    "h_score": 1.0,
                    "examples": 30,
                    "dim": 8,
                    "seconds": 0.2,
                    "feature_seconds": 0.1,
                    "cached": False,
                    "error": "",
                }
            )
        return sorted(results, key=lambda r: -(r["logme"] if r["logme"] is not None else -1e9))


BAKEOFF_MODELS = (
    ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"),
    ("distilbert/distilbert-base-uncased", "distilbert-base-uncased"),
    ("google-bert/bert-base-uncased", "bert-base-uncased"),
)


def bakeoff_events(*, finished: bool) -> list[dict[str, Any]]:
    """A recorded bake-off of three (engine.events' bakeoff_* records): round 1 of 4 steps each,
    bert-base cut; round 2 of 4 more, distilbert cut; MiniLM wins (`finished`) and its run begins."""
    t = 1735732802.3
    contenders = [
        {"index": i, "model": m, "name": n, "strategy": "full", "batch_size": 8, "learning_rate": 1e-4}
        for i, (m, n) in enumerate(BAKEOFF_MODELS)
    ]
    out: list[dict[str, Any]] = [
        {
            "v": 2,
            "event": "bakeoff_started",
            "time": t,
            "contenders": contenders,
            "share": 0.25,
            "metric": "macro_f1",
            "rounds": [{"round": 1, "contenders": 3, "steps": 4}, {"round": 2, "contenders": 2, "steps": 4}],
        }
    ]
    finals = {0: (0.70, 0.81), 1: (0.78, 0.74), 2: (0.95, 0.52)}  # index -> (last loss, macro-F1 after round 1)
    for rnd, racing in ((1, (0, 1, 2)), (2, (0, 1))):
        for i in racing:
            m = BAKEOFF_MODELS[i][0]
            start = (rnd - 1) * 4
            end_loss, f1 = finals[i]
            losses = [[start + s, round(1.1 - (1.1 - end_loss) * (start + s) / 8 - 0.02 * i, 4)] for s in (1, 2, 3, 4)]
            value = round(f1 + 0.05 * (rnd - 1) * (1 if i == 0 else 0.2), 4)
            out.append(
                {
                    "v": 2,
                    "event": "bakeoff_round",
                    "time": t + rnd * 3 + i,
                    "round": rnd,
                    "index": i,
                    "model": m,
                    "steps": 4,
                    "total_steps": start + 4,
                    "losses": losses,
                    "metric": "macro_f1",
                    "value": value,
                    "accuracy": value,
                    "macro_f1": value,
                    "val_loss": losses[-1][1],
                    "seconds": 2.5,
                    "batch_size": 8,
                }
            )
        dropped = BAKEOFF_MODELS[racing[-1]][0]
        kept = [BAKEOFF_MODELS[i][0] for i in racing[:-1]]
        out.append({"v": 2, "event": "bakeoff_cut", "time": t + rnd * 3 + 2.5, "round": rnd, "kept": kept,
                    "dropped": [dropped]})  # fmt: skip
        if not finished and rnd == 1:
            return out
    table = [
        {"model": m, "name": n, "rounds": 2 if i < 2 else 1, "steps": 8 if i < 2 else 4, "value": v}
        for i, ((m, n), v) in enumerate(zip(BAKEOFF_MODELS, (0.86, 0.75, 0.52), strict=True))
    ]
    out.append({"v": 2, "event": "bakeoff_result", "time": t + 10, "winner": BAKEOFF_MODELS[0][0], "winner_index": 0,
                "metric": "macro_f1", "table": table, "seconds": 14.0, "steps": 8})  # fmt: skip
    return out


def write_bakeoff_run(run_dir: Path, *, finished: bool) -> Path:
    """The recorded run's start, a bake-off (`bakeoff_events`), then (finished) the winner's run:
    the recorded epoch 1 of all-MiniLM-L6-v2. Status "running" (pid: this test process)."""
    write_run(run_dir, state="running", lines=4, pid=os.getpid())
    events = EVENTS.read_text(encoding="utf-8").splitlines(keepends=True)
    lines = [json.dumps(e) + "\n" for e in bakeoff_events(finished=finished)]
    if finished:
        lines += events[4:12]
    with (run_dir / "events.jsonl").open("a", encoding="utf-8") as f:
        f.writelines(lines)
    return run_dir
