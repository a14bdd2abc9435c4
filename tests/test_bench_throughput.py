"""bench/throughput.py's command line: help, refused arguments, and its dry mode (the setup it
would train, resolved through modelwiz's plan, without training). No timings: those are the
bench's to print, never a test's to assert."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench" / "throughput.py"
MODEL = Path(sys.prefix) / "share/modelwiz/models/all-MiniLM-L6-v2"


def bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def test_help_names_the_options() -> None:
    out = bench("--help")
    assert out.returncode == 0, out.stderr
    for option in ("--repeat", "--json", "--trainers", "--threads", "--dry-run", "--hf-optim", "--group-by-length"):
        assert option in out.stdout
    assert "--worker" not in out.stdout  # internal


@pytest.mark.parametrize(
    "args",
    [
        ["--repeat", "0"],
        ["--batch", "0"],
        ["--trainers", "bare,keras"],
        ["--trainers", ","],
        ["--model", "/nonexistent/model-folder"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: list[str]) -> None:
    out = bench(*args)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("throughput.py: error:")


@pytest.mark.skipif(not (MODEL / "config.json").is_file(), reason="the shipped demo model is not installed")
@pytest.mark.parametrize("grouping", ["true", "auto"])
def test_dry_run_resolves_the_compared_setup(grouping: str) -> None:
    out = bench("--dry-run", "--json", "--repeat", "3", "--group-by-length", grouping)
    assert out.returncode == 0, out.stderr
    last = json.loads(out.stdout.strip().splitlines()[-1])
    spec = last["spec"]
    assert (spec["batch"], spec["length"], spec["learning_rate"], spec["weight_decay"]) == (32, 64, 5e-5, 0.01)
    assert (spec["warmup"], spec["max_grad_norm"], spec["seed"]) == (0.06, 1.0, 42)
    assert spec["data"].endswith("demo_tickets.csv")
    assert last["steps"] == -(-last["train_samples"] // 32)
    # the order rotates: each round starts with the next trainer
    # on the demo (12 steps an epoch) auto does not group: the Trainer's default is then "HF Trainer"
    assert spec["grouped"] is (grouping == "true")
    kinds = (
        ["bare", "hf", "hf-default", "hf-grouped", "modelwiz"]
        if grouping == "true"
        else ["bare", "hf", "hf-grouped", "modelwiz"]
    )
    assert [r[0] for r in last["rounds"]] == kinds[:3]
    assert all(sorted(r) == sorted(kinds) for r in last["rounds"])
    # modelwiz's batches (grouped by length) pad less than a plain shuffle's
    assert 1.0 <= last["padding_grouped"] < last["padding_plain"]
    ratios = ("ratio_vs_bare_loop", "ratio_vs_hf_trainer", "ratio_vs_hf_trainer_default", "ratio_vs_hf_trainer_grouped")
    for key in (*ratios, "event_us_per_step_event", "event_fraction_of_step"):
        assert key in last and last[key] is None
