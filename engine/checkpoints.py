"""Checkpoints of a run: `checkpoints/step-NNNNNNNN.pt`, the last K kept, each written atomically
(temporary file, fsync, rename) and loaded with `torch.load(weights_only=True)`; the best epoch's
weights separately in `checkpoints/best.safetensors`.

A checkpoint that cannot be read (truncated by a crash, corrupted on disk) is skipped for the one
before it. A write that fails (a full disk) leaves the previous checkpoints as they were.
"""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path
from typing import Any

CKPT_DIR = "checkpoints"
BEST_WEIGHTS = "checkpoints/best.safetensors"
FORMAT = 3


def checkpoint_paths(run_dir: Path) -> list[Path]:
    """Step checkpoints, newest first."""
    folder = Path(run_dir) / CKPT_DIR
    return sorted(folder.glob("step-*.pt"), reverse=True) if folder.is_dir() else []


def rng_state() -> dict[str, Any]:
    """Every generator's state, in types `torch.load(weights_only=True)` accepts."""
    import numpy as np
    import torch

    legacy = np.random.get_state(legacy=True)
    assert isinstance(legacy, tuple)
    kind, keys, pos, has_gauss, cached = legacy
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(keys.astype("int64")),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype("uint32"), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _inject_enospc(step: int) -> None:
    """Fault tests set MODELWIZ_FAULT_ENOSPC_AT_STEP=N: the checkpoint of step N meets a full disk."""
    at = os.environ.get("MODELWIZ_FAULT_ENOSPC_AT_STEP")
    if at and at.isdigit() and int(at) == step:
        raise OSError(errno.ENOSPC, "No space left on device (injected)")


def save(run_dir: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write the checkpoint of `step` atomically, then drop all but the newest `keep`. On any
    failure the temporary file is removed and the previous checkpoints stay as they were."""
    import torch

    folder = Path(run_dir) / CKPT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{step:08d}.pt"
    tmp = folder / f".{path.name}.tmp"
    try:
        torch.save({**state, "format": FORMAT, "step": step}, tmp)
        _inject_enospc(step)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    for old in checkpoint_paths(run_dir)[keep:]:
        old.unlink(missing_ok=True)
    return path


def load_latest(run_dir: Path, warn: Any) -> tuple[dict[str, Any], Path]:
    """The newest checkpoint that reads back whole; `warn(message)` hears of each one skipped.
    Raises FileNotFoundError when none does."""
    import torch

    for path in checkpoint_paths(run_dir):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or state.get("format") != FORMAT:
                raise ValueError("not a checkpoint of this modelwiz version")
            return state, path
        except Exception as exc:  # noqa: BLE001 - any unreadable file: fall back to the one before
            detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            warn(f"checkpoint {path.name} is unreadable ({detail}); using the one before it")
    raise FileNotFoundError(f"no readable checkpoint in {Path(run_dir) / CKPT_DIR}")


def save_best_weights(run_dir: Path, model: Any) -> None:
    from safetensors.torch import save_file

    path = Path(run_dir) / BEST_WEIGHTS
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".best.safetensors.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, path)


def load_best_weights(run_dir: Path, model: Any) -> bool:
    from safetensors.torch import load_file

    path = Path(run_dir) / BEST_WEIGHTS
    if not path.is_file():
        return False
    model.load_state_dict(load_file(str(path)))
    return True
