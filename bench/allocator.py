"""What keeping freed memory (engine/allocator.py) is worth: the trainer's own step with glibc's
defaults and with the thresholds raised, in fresh processes, in alternating order.

Each configuration of bench/time_accuracy.py chosen with `--only` (default: a text model and
CNNs at several batch sizes) is measured `--repeat` times each way (`MODELWIZ_GLIBC_DEFAULTS=1`
for the defaults): the median seconds per step and the peak resident memory. Printed: both, and
their ratios (defaults over kept: above 1 means the kept allocator is faster).

    .venv/bin/python bench/allocator.py [--threads 1] [--repeat 2] [--only SUBSTR ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import time_accuracy as ta  # noqa: E402
from memory_accuracy import candidate_for_case  # noqa: E402

from modelwiz.engine import allocator, memtrace  # noqa: E402

DEFAULT_ONLY = ["all-MiniLM-L6-v2 (real)", "torchvision resnet18", "torchvision mobilenet_v2", "efficientnet_b0"]


def measure(case: tuple[Any, ...], tmp: Path, threads: int, seconds: float, defaults: bool) -> dict[str, Any]:
    cand, spec = candidate_for_case(case[1], case[2], tmp, case[0])
    blocks = memtrace.default_unfreeze_blocks(int(cand.num_layers or 0))
    return ta.measure(case, spec, blocks, threads, seconds, env={allocator.OPT_OUT_ENV: "1" if defaults else "0"})


def main() -> None:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=DEFAULT_ONLY, help="configurations whose name contains one of these")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cases = [c for c in ta.CASES if any(o in c[0] for o in args.only)]
    if not ta.MINILM.is_dir():
        cases = [c for c in cases if c[1] != "minilm"]
    rows = []
    print(
        f"{'configuration':<32}{'strategy':<13}{'prec':<5}{'batch':>5}{'x':>5}"
        f"{'s/step defaults':>17}{'kept':>8}{'ratio':>7}{'RSS MB defaults':>17}{'kept':>8}"
    )
    with tempfile.TemporaryDirectory(prefix="modelwiz-alloc-") as tmp:
        for case in cases:
            got: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
            for r in range(args.repeat):
                for defaults in (r % 2 == 0, r % 2 != 0):  # alternate which goes first
                    got[defaults].append(measure(case, Path(tmp), args.threads, args.seconds, defaults))
            d = statistics.median(m["step_s"] for m in got[True])
            k = statistics.median(m["step_s"] for m in got[False])
            rd = max(m["peak_rss_mb"] for m in got[True])
            rk = max(m["peak_rss_mb"] for m in got[False])
            row = {
                "name": case[0],
                "strategy": case[3],
                "precision": case[4],
                "batch": case[5],
                "x": case[6],
                "step_s_defaults": round(d, 4),
                "step_s_kept": round(k, 4),
                "speedup": round(d / k, 3),
                "peak_rss_mb_defaults": rd,
                "peak_rss_mb_kept": rk,
                "rss_ratio": round(rk / rd, 3),
            }
            rows.append(row)
            print(
                f"{case[0]:<32}{case[3]:<13}{case[4]:<5}{case[5]:>5}{case[6]:>5}"
                f"{d:>17.3f}{k:>8.3f}{d / k:>7.2f}{rd:>17.0f}{rk:>8.0f}",
                flush=True,
            )
    if args.json:
        print(json.dumps({"threads": args.threads, "repeat": args.repeat, "rows": rows}))


if __name__ == "__main__":
    main()
