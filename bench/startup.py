"""Start-up: time to the first interactive screen of `modelwiz --demo` against a minimal Textual app.

Each measurement is a fresh interpreter (imports included, as a user pays them): the clock starts
just before the process is spawned and stops when the app's first screen is mounted and has
processed its first messages (an auto-pilot's first pause), the moment keys would be handled. The
two apps alternate, several times, and the medians are printed with their ratio. Target: under 2.

    .venv/bin/python bench/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import sys, time
t0 = float(sys.argv[1])
which = sys.argv[2]
if which == "modelwiz":
    from modelwiz.tui.app import ModelwizApp
    app = ModelwizApp(None, demo=True)
else:
    from textual.app import App
    from textual.widgets import Footer, Header, Label

    class Minimal(App):
        def compose(self):
            yield Header()
            yield Label("hello")
            yield Footer()

    app = Minimal()

async def first_screen(pilot):
    await pilot.pause()
    print(f"{time.time() - t0:.4f}", flush=True)
    pilot.app.exit()

app.run(headless=True, size=(80, 24), auto_pilot=first_screen)
"""


def measure(which: str, env: dict[str, str]) -> float:
    t0 = time.time()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, repr(t0), which], capture_output=True, text=True, env=env, timeout=120
    )
    lines = [x for x in out.stdout.splitlines() if x.strip()]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{which} did not start: {out.stderr.strip().splitlines()[-1:]}")
    return float(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="measurements of each app (alternating)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, MODELWIZ_HOME=home)  # no settings or themes of the user's
        measure("minimal", env)  # warm the OS file cache once; not counted
        measure("modelwiz", env)
        times: dict[str, list[float]] = {"minimal": [], "modelwiz": []}
        for _ in range(args.runs):
            for which in ("minimal", "modelwiz"):
                times[which].append(measure(which, env))
    base = statistics.median(times["minimal"])
    ours = statistics.median(times["modelwiz"])
    for which, ts in times.items():
        print(f"{which:9} median {statistics.median(ts):.3f} s  (min {min(ts):.3f}, max {max(ts):.3f}, n={len(ts)})")
    print(f"ratio modelwiz / minimal Textual app: {ours / base:.2f}  (target < 2)")


if __name__ == "__main__":
    main()
