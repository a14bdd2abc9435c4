"""The transferability probe from the wizard, in a process of its own: the probe imports torch and
the UI process never does.

- `run_probe` (the UI side, the default `Services.probe`) writes the wizard's config to a temporary
  TOML, starts `probe_main` in a fresh interpreter and reads its progress line by line; tests
  replace it with a function that calls `on_event` itself.
- `probe_main` (the child side) ranks the models as `modelwiz recommend` does and runs the
  engine's probe (`modelwiz.engine.transfer.probe`, as `recommend --probe K`) on the named ones,
  printing the probe's events as JSON lines, then `{"probe": [results]}`. It imports no Textual."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelwiz.engine.config import Config
from modelwiz.engine.errors import UserError

Event = dict[str, Any]
POLL_S = 0.2  # how often a stop request is noticed while the probe is silent
ENTRY = "import sys; from modelwiz.tui.probe import probe_main; sys.exit(probe_main(sys.argv[1:]))"


class ProbeStopped(Exception):
    """The probe was stopped before it ended (the user cancelled it)."""


def run_probe(
    config: Config,
    model_ids: list[str],
    k: int,
    on_event: Callable[[Event], None],
    should_stop: Callable[[], bool],
) -> list[Event]:
    """Probe `model_ids` (else the top `k`) under `config`; `on_event` gets each progress event.
    Returns the results (dicts, best LogME first). Raises UserError with the probe's own line when
    it fails, ProbeStopped when `should_stop()` turned true (the process is then terminated)."""
    with tempfile.TemporaryDirectory(prefix="modelwiz-probe-") as tmp:
        cfg_path = Path(tmp) / "config.toml"
        config.save(cfg_path)
        err_path = Path(tmp) / "stderr.txt"  # a file, not a pipe: library warnings cannot fill it
        with err_path.open("w", encoding="utf-8") as err_file:
            proc = subprocess.Popen(
                [sys.executable, "-c", ENTRY, str(cfg_path), str(k), *model_ids],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err_file,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        assert proc.stdout is not None
        results: list[Event] | None = None
        fd, pending = proc.stdout.fileno(), b""
        try:
            while True:
                if should_stop():
                    raise ProbeStopped
                ready, _, _ = select.select([fd], [], [], POLL_S)
                if not ready:
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue  # a library's stray print
                    if isinstance(obj, dict) and "probe" in obj:
                        results = list(obj["probe"])
                    elif isinstance(obj, dict) and "event" in obj:
                        on_event(obj)
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        proc.stdout.close()
        err = err_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    if rc != 0 or results is None:
        why = err[-1] if err else f"the probe process ended with exit code {rc}"
        raise UserError(f"probe failed: {why}")
    return results


def probe_models(
    config: Config,
    model_ids: list[str],
    *,
    k: int,
    sink: Callable[[Event], None],
) -> list[Event]:
    """The probe of the models named by `model_ids` among the ranking of `config` (none named: its
    top `k`), results as dicts, best LogME first. UserError when a named model is not ranked."""
    from modelwiz.engine import transfer
    from modelwiz.engine.hub import hub_offline
    from modelwiz.engine.workflow import recommend

    rec = recommend(config)
    rows = rec.ranked
    if model_ids:
        by_id = {r.candidate.id: r for r in rec.ranked}
        missing = [m for m in model_ids if m not in by_id]
        if missing:
            raise UserError(f"{missing[0]} is not among the models these settings rank; rank again (f5)")
        rows, k = [by_id[m] for m in model_ids], len(model_ids)
    offline = bool(config.constraints.offline) or hub_offline()
    results = transfer.probe(rows, rec.data, k=k, seed=config.train.seed, offline=offline, sink=sink)
    return [r.to_dict() for r in results]


def probe_main(argv: list[str]) -> int:
    """The child: `CONFIG.toml K [MODEL_ID ...]`. A bad input is one line on stderr and exit 2,
    any other failure one line and exit 1 (the wizard shows the line in a dialog)."""
    from modelwiz.engine.config import load_config

    def emit(obj: Event) -> None:
        print(json.dumps(obj, default=str), flush=True)

    try:
        config = load_config(argv[0])
        results = probe_models(config, argv[2:], k=int(argv[1]), sink=emit)
    except UserError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line for the wizard's dialog, not a traceback
        lines = str(exc).strip().splitlines()
        print(f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__, file=sys.stderr)
        return 1
    emit({"probe": results})
    return 0
