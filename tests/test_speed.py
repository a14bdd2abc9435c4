"""Time per epoch (engine/speed.py): the step-cost counter, the fit, the pure-Python prediction and
the fallback when the device benchmark is missing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from modelwiz.engine import speed
from modelwiz.engine.config import config_from_dict
from modelwiz.engine.hardware import HardwareReport
from modelwiz.engine.plan import make_plan
from modelwiz.engine.sources.base import Candidate

H, LAYERS, HEADS, INTER, VOCAB = 32, 2, 2, 64, 100
TINY_BERT = {
    "kind": "hf-text",
    "config": {
        "model_type": "bert",
        "hidden_size": H,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "intermediate_size": INTER,
        "vocab_size": VOCAB,
        "max_position_embeddings": 256,
    },
}


@pytest.fixture(scope="module")
def tiny_entry():
    return speed.count_model(TINY_BERT, strategies=("full",), precisions=("fp32",))


def hand_forward_matmul_flops(b: int, s: int) -> int:
    """Per layer: Q, K, V, output (4 h x h), the two feed-forward GEMMs (h x inter, inter x h), and
    attention's QK^T and AV (2 s x s x h each); then the pooler (h x h) and the 2-class head."""
    per_layer = 2 * s * (4 * H * H + 2 * H * INTER) + 2 * 2 * s * s * H
    return b * (LAYERS * per_layer + 2 * H * H + 2 * H * 2)


def _matmul(fig: dict[str, float], phase: str) -> float:
    return sum(
        v
        for k, v in fig.items()
        if k.startswith(f"{phase}:") and k.split(":")[1].startswith(("mm.", "bmm.", "sdpa.")) and "#" not in k
    )


@pytest.mark.parametrize("b, s", [(2, 32), (4, 128), (8, 48), (16, 200)])
def test_counted_matmul_flops_of_a_tiny_bert_step_equal_a_hand_count(tiny_entry, b, s):
    # (4, 128) and (2, 32) were counted; (8, 48) and (16, 200) come from the fitted polynomial
    fig = speed.phase_figures(tiny_entry, "full", "fp32", b, s)
    fwd = hand_forward_matmul_flops(b, s)
    assert _matmul(fig, "fwd") == pytest.approx(fwd, rel=1e-6)
    # full fine-tuning: every GEMM's backward computes the input's and the weight's gradients
    assert _matmul(fig, "bwd") == pytest.approx(2 * fwd, rel=1e-6)
    assert fig["opt:ops"] > 0 and fig.get("opt:mem", 0) > 0  # the optimizer step moves bytes, no FLOPs


def _bench(machine: str, torch_version: str, threads: int) -> dict:
    flat = [[1.0, 1e9], [1e9, 1e9]]
    return {
        "version": speed.BENCH_VERSION,
        "device": "cpu",
        "machine": machine,
        "torch": torch_version,
        "threads": threads,
        "overhead_s_per_op": 1e-5,
        "rates": {"mm.float32": flat, "mem": flat, "mem.norm": flat, "mem.softmax": flat, "mem.rng": flat},
    }


def test_predicted_time_grows_with_batch_and_length(tiny_entry):
    bench = _bench("m", "2", 1)

    def step(b: int, s: int) -> float:
        return speed.phase_seconds(speed.phase_figures(tiny_entry, "full", "fp32", b, s), bench, ("fwd", "bwd"))

    assert step(4, 64) < step(8, 64) < step(16, 64)
    assert step(8, 32) < step(8, 64) < step(8, 128)
    # the dispatch overhead is paid per op: a batch of 1 is not free
    assert step(1, 8) > 0.9 * bench["overhead_s_per_op"] * tiny_entry["strategies"]["full"]["fp32"]["fwd:ops"][0]


def test_expected_padded_length_is_the_longest_of_a_batch():
    stats = {"min": 4, "mean": 10, "median": 9, "p95": 20, "max": 40}
    one, eight, many = (speed.expected_padded_length(stats, b, 512) for b in (1, 8, 64))
    assert one is not None and eight is not None and many is not None
    assert one < eight < many <= 40 * speed.TOKENS_PER_WORD + speed.SPECIAL_TOKENS
    assert speed.expected_padded_length(stats, 64, 16) == 16  # never beyond max_length
    assert speed.expected_padded_length({}, 8, 128) is None


def _hw(torch_version: str = "2.0.0") -> HardwareReport:
    return HardwareReport("Test CPU", 2, 2, 32.0, 16.0, "/", 100.0, torch_version=torch_version, torch_threads=2)


CAND = Candidate(
    id="org/tiny-bert",
    name="tiny-bert",
    source="catalog",
    modality="text",
    arch="bert",
    params=200_000,
    hidden_size=H,
    num_layers=LAYERS,
    num_heads=HEADS,
    intermediate_size=INTER,
    vocab_size=VOCAB,
    max_length=256,
)


def test_missing_benchmark_falls_back_to_the_formula_with_a_note(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cfg = config_from_dict({"task": {"train": "x.csv"}, "train": {"batch_size": 8}})
    plan = make_plan(CAND, cfg.train, cfg.constraints, _hw(), train_size=400, num_classes=4, val_size=100)
    assert plan.time_method == "formula"
    assert plan.epoch_seconds > 0
    assert any("FLOPs formula" in n and "no benchmark" in n for n in plan.notes)


def test_plan_time_from_the_table_and_benchmark_without_torch(tmp_path, tiny_entry):
    """make_plan reads the step-cost table and the cached benchmark in pure Python: torch is never
    imported, and the epoch includes the evaluation the trainer runs after it."""
    table = tmp_path / "stepcosts.json"
    table.write_text(
        json.dumps({"version": speed.TABLE_VERSION, "models": {CAND.id: {"entry": "e"}}, "entries": {"e": tiny_entry}})
    )
    cache = tmp_path / "cache"
    script = textwrap.dedent(
        f"""
        import json, os, sys
        os.environ["MODELWIZ_CACHE"] = {str(cache)!r}
        os.environ.pop("OMP_NUM_THREADS", None)
        from modelwiz.engine import speed
        from modelwiz.engine.config import config_from_dict
        from modelwiz.engine.fsutil import atomic_write_json
        from modelwiz.engine.hardware import HardwareReport
        from modelwiz.engine.plan import make_plan
        from modelwiz.engine.sources.base import Candidate
        speed.TABLE_PATH = __import__("pathlib").Path({str(table)!r})
        speed._table.cache_clear()
        atomic_write_json(speed.bench_path("Test CPU", "2.0.0", 2), json.loads({json.dumps(_bench("Test CPU", "2.0.0", 2))!r}))
        hw = HardwareReport("Test CPU", 2, 2, 32.0, 16.0, "/", 100.0, torch_version="2.0.0+cpu", torch_threads=2)
        cand = Candidate(**json.loads({json.dumps(CAND.__dict__)!r}))
        cfg = config_from_dict({{"task": {{"train": "x.csv"}}, "train": {{"batch_size": 8, "max_length": 128}}}})
        stats = {{"min": 3, "mean": 8, "median": 7, "p95": 15, "max": 30}}
        p = make_plan(cand, cfg.train, cfg.constraints, hw, train_size=400, num_classes=2, val_size=100,
                      text_lengths=stats)
        short = make_plan(cand, cfg.train, cfg.constraints, hw, train_size=400, num_classes=2, val_size=100)
        print(json.dumps({{"torch": "torch" in sys.modules, "plan": p.to_dict(), "no_stats": short.to_dict()}}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    plan = out["plan"]
    assert out["torch"] is False
    assert plan["time_method"] == "measured"
    assert plan["eval_seconds"] > 0 and plan["train_epoch_seconds"] > 0
    assert plan["epoch_seconds"] == pytest.approx(plan["train_epoch_seconds"] + plan["eval_seconds"], abs=0.11)
    assert any("dynamic padding" in n for n in plan["notes"]) and any("step costs (table)" in n for n in plan["notes"])
    # dynamic padding: the data's short texts cost less than max_length would
    assert plan["time_length"] < 128 and out["no_stats"]["time_length"] == 128
    assert plan["train_epoch_seconds"] < out["no_stats"]["train_epoch_seconds"]


def test_each_epoch_records_its_measured_time_and_runs_show_predicted_against_measured(tmp_path, monkeypatch):
    """The trainer's epoch: its training seconds, steps and evaluation seconds land in the eval
    event; `runs --json` (runs.time_figures) puts them next to the plan's epoch_seconds."""

    from modelwiz.engine import events as ev
    from modelwiz.engine import runs, trainer

    def fake_train_epoch(run, epoch):
        run.progress.train_seconds += 4.0
        run.progress.step_in_epoch += 5

    metrics = {
        "val_loss": 0.5,
        "accuracy": 0.9,
        "macro_f1": 0.8,
        "macro_precision": 0.8,
        "macro_recall": 0.8,
        "confusion_matrix": [[1]],
        "per_class": [],
    }
    monkeypatch.setattr(trainer, "train_epoch", fake_train_epoch)
    monkeypatch.setattr(trainer, "evaluate", lambda run: dict(metrics))
    emitted = []
    run = SimpleNamespace(
        progress=trainer.Progress(step_in_epoch=5),  # resumed half-way: 5 of 10 steps left
        reporter=SimpleNamespace(on_evaluate=lambda run, record, m: emitted.append(record)),
        plan=SimpleNamespace(metric="macro_f1"),
        dist=SimpleNamespace(main=False),
    )
    trainer.record_evaluation(run, 0, trainer.time_epoch(run, 0))
    record = emitted[0]
    assert record["train_seconds"] == 4.0 and record["train_steps"] == 5 and record["eval_seconds"] >= 0
    path = tmp_path / "events.jsonl"
    w = ev.EventWriter(path)
    plan = {"epoch_seconds": 10.0, "time_method": "measured", "epochs": 2}
    w.emit(ev.PlanStarted(plan=plan, epochs=2, batch_size=8, learning_rate=1e-3, total_steps=20, steps_per_epoch=10))
    w.emit(ev.Evaluated(**{**record, "eval_seconds": 1.0}))
    w.close()
    t = runs.time_figures(ev.fold_file(path))
    assert t is not None
    # 4 s for 5 steps: 8 s for the epoch's 10, plus 1 s of evaluation
    assert t["measured_epoch_seconds"] == 9.0 and t["predicted_epoch_seconds"] == 10.0
    assert t["predicted_over_measured"] == pytest.approx(10 / 9, abs=1e-3) and t["method"] == "measured"


def test_a_benchmark_measured_on_a_busy_machine_is_measured_again_when_quiet(tmp_path, monkeypatch):
    """Rates measured while other work ran are far too slow (small ops up to 100x); such a result
    says so in the plan's note and is replaced once the machine is quiet."""
    monkeypatch.setattr(speed.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    monkeypatch.setattr(speed.os, "getloadavg", lambda: (1.9, 1.0, 1.0))
    monkeypatch.setattr(speed, "_running_now", lambda: 2)
    assert speed.machine_load(2) == (1.9, True)  # two cores, two threads: any other runnable work
    assert speed.machine_load(1)[1] is True  # one core left free, but 1.9 is more than it
    path = tmp_path / "bench.json"
    assert speed._stale(path, 2)  # missing
    path.write_text(json.dumps({**_bench("m", "2", 2), "busy": True, "load": 1.9}))
    assert not speed._stale(path, 2)  # still busy: keep it rather than measure busy again
    monkeypatch.setattr(speed.os, "getloadavg", lambda: (0.1, 0.2, 0.3))
    assert speed.machine_load(2) == (0.1, False)
    monkeypatch.setattr(speed.os, "getloadavg", lambda: (1.9, 1.0, 1.0))
    monkeypatch.setattr(speed, "_running_now", lambda: 0)
    assert speed.machine_load(2) == (1.9, False)  # the average lags: nothing else runs now
    assert speed._stale(path, 2)  # quiet now: measure again
    path.write_text(json.dumps({**_bench("m", "2", 2), "busy": False, "load": 0.1}))
    assert not speed._stale(path, 2)
    path.write_text(json.dumps({**_bench("m", "2", 2), "version": speed.BENCH_VERSION - 1}))
    assert speed._stale(path, 2)  # an older result does not say whether it was busy


def test_the_plan_note_says_when_the_benchmark_ran_busy(monkeypatch):
    busy = {**_bench("m", "2", 1), "busy": True, "load": 3.2}
    monkeypatch.setattr(speed, "find_benchmark", lambda *a, **k: busy)
    line = speed.bench_warning("cpu", None)
    assert "busy (load 3.2)" in line and "runs again when the machine is quiet" in line
    monkeypatch.setattr(speed, "find_benchmark", lambda *a, **k: {**busy, "busy": False})
    assert speed.bench_warning("cpu", None) == ""


def test_convolutions_are_classed_by_kind_kernel_and_stride_and_counted_exactly():
    # depthwise convolutions run at a rate set by kernel and stride (engine/speed.py DEPTHWISE_KERNELS),
    # the input layer on a path of its own; each class's FLOPs are 2 x output elements x (input
    # channels per group x kernel), forward, and twice that backward (input and weight gradients)
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, 2, 1),  # the stem: convin
        torch.nn.MaxPool2d(3, 2, 1),
        torch.nn.Conv2d(8, 8, 3, 2, 1, groups=8),  # depthwise 3x3 stride 2
        torch.nn.Conv2d(8, 16, 1),  # 1x1
        torch.nn.Conv2d(16, 16, 5, 1, 2, groups=16),  # depthwise 5x5 stride 1
        torch.nn.Conv2d(16, 16, 9, 1, 4, groups=16),  # depthwise 9x9: counted as the nearest, 7x7
        torch.nn.Conv2d(16, 16, 3, 1, 1, groups=4),  # grouped, not depthwise: dense
    )
    x = torch.randn(2, 3, 32, 32)
    counter = speed._counter_class()(fake=False)
    with counter:
        y = net(x)
        counter.phase = "bwd"
        y.sum().backward()
    fig = counter.figures()
    # output sides: 16 (stem), 8 (pool), 4 (dw s2), then 4
    assert fig["fwd:convin.float32"] == 2 * 2 * 8 * 16 * 16 * 3 * 9
    assert fig["fwd:convdw_k3s2.float32"] == 2 * 2 * 8 * 4 * 4 * 9
    assert fig["fwd:conv1x1_c32.float32"] == 2 * 2 * 16 * 4 * 4 * 8  # 1x1 classed by its smaller channel count
    assert fig["fwd:convdw_k5s1.float32"] == 2 * 2 * 16 * 4 * 4 * 25
    assert fig["fwd:convdw_k7s1.float32"] == 2 * 2 * 16 * 4 * 4 * 81
    assert fig["fwd:conv.float32"] == 2 * 2 * 16 * 4 * 4 * 4 * 9
    assert fig["bwd:convdw_k5s1_bwd.float32"] == 2 * fig["fwd:convdw_k5s1.float32"]
    # the stem's input needs no gradient: its backward computes the weight's only
    assert fig["bwd:convin_bwd.float32"] == fig["fwd:convin.float32"]
    assert fig["fwd:mem.pool.float32"] > 0 and fig["bwd:mem.pool.float32"] > 0
    assert not any(k.split(":")[1].startswith("convdw.") for k in fig)
    assert speed.conv_kind(groups=32, in_channels=32, kernel=[3, 3], stride=[2, 2]) == "convdw_k3s2"
    assert speed.conv_kind(groups=1, in_channels=1, kernel=[7, 7], stride=[2, 2]) == "convin"  # grayscale


def test_plain_copies_are_classed_apart_from_transposes_and_casts():
    # a clone or copy_ of the same dtype and layout is a memcpy (engine/speed.py `mem.clone`), counted
    # as its bytes read and written once; a transposing copy or a cast stays `mem.copy`
    import torch

    a = torch.randn(64, 32)
    img = torch.randn(2, 8, 4, 4).to(memory_format=torch.channels_last)
    dst = torch.empty(64, 32)
    counter = speed._counter_class()(fake=False)
    with counter:
        a.clone()  # plain: 2 x 8 KiB
        img.clone()  # channels-last kept: plain, 2 x 1 KiB
        dst.copy_(a)  # plain: 2 x 8 KiB
        a.t().contiguous()  # transposed: a layout change
        a.to(torch.bfloat16)  # a cast
    fig = counter.figures()
    assert fig["fwd:mem.clone"] == 2 * 8192 + 2 * 1024 + 2 * 8192
    assert fig["fwd:mem.clone#n"] == 3
    assert fig["fwd:mem.copy#n"] == 2
    assert fig["fwd:mem.copy"] == 2 * 8192 + 8192 + 4096


def test_a_depthwise_class_reads_its_own_rate():
    # a 5x5 depthwise step at 5 GFLOP/s and a 3x3 one at 20: each class is timed at its own rate
    bench = _bench("m", "2", 1)
    bench["overhead_s_per_op"] = 0.0
    bench["rates"]["convdw_k5s1.float32"] = [[1.0, 5e9], [1e12, 5e9]]
    bench["rates"]["convdw_k3s1.float32"] = [[1.0, 2e10], [1e12, 2e10]]
    figs = {"fwd:convdw_k5s1.float32": 1e9, "fwd:convdw_k5s1.float32#n": 4, "fwd:convdw_k3s1.float32": 1e9}
    assert speed.phase_seconds(figs, bench, ("fwd",)) == pytest.approx(1e9 / 5e9 + 1e9 / 2e10)


def test_batch_norms_backward_reads_its_own_curve():
    # batch norm's forward and backward ops share a class in the count; the backward phase is timed
    # at the benchmark's backward curve where it has one, the forward at the class's own
    bench = _bench("m", "2", 1)
    bench["overhead_s_per_op"] = 0.0
    bench["rates"]["mem.bn"] = [[1.0, 4e9], [1e12, 4e9]]
    figs = {"fwd:mem.bn": 1e9, "bwd:mem.bn": 2e9}
    assert speed.phase_seconds(figs, bench, ("fwd", "bwd")) == pytest.approx(1e9 / 4e9 + 2e9 / 4e9)
    bench["rates"]["mem.bn_bwd"] = [[1.0, 1e10], [1e12, 1e10]]
    assert speed.phase_seconds(figs, bench, ("fwd",)) == pytest.approx(1e9 / 4e9)
    assert speed.phase_seconds(figs, bench, ("bwd",)) == pytest.approx(2e9 / 1e10)


def test_a_trainer_waits_for_a_benchmark_under_way_and_not_for_a_dead_one(tmp_path, monkeypatch):
    import os
    import threading
    import time as _time

    monkeypatch.setenv("MODELWIZ_CACHE", str(tmp_path))
    lock = tmp_path / "speed" / "running-cpu.lock"
    lock.parent.mkdir(parents=True)
    assert speed.wait_for_benchmark("cpu") < 0.1  # none under way
    lock.write_text("1")
    threading.Timer(0.6, lock.unlink).start()  # the benchmark finishes
    waited = speed.wait_for_benchmark("cpu")
    assert 0.5 < waited < 5 and not speed.benchmark_running("cpu")
    lock.write_text("1")
    old = _time.time() - speed.LOCK_FRESH_S - 5  # a benchmark that died long ago
    os.utime(lock, (old, old))
    assert speed.wait_for_benchmark("cpu") < 0.1
    os.utime(lock, None)  # fresh again: a cancel stops the wait, and the wait is bounded
    assert speed.wait_for_benchmark("cpu", stop=lambda: True) < 0.1
    assert 0.3 < speed.wait_for_benchmark("cpu", timeout_s=0.4) < 2


def test_the_benchmark_does_not_time_what_runs_before_each_call():
    # the L2 eviction before each timed call (run_benchmark's `evict`) is left out of the rate
    def spin(seconds: float) -> None:
        import time as _time

        t0 = _time.process_time()
        while _time.process_time() - t0 < seconds:
            pass

    per_call = speed._measure(lambda: spin(0.0005), min_s=0.005, before=lambda: spin(0.004))
    assert 0.0004 < per_call < 0.002
    assert speed.l2_bytes() >= 64 << 10
