"""The run configuration: one TOML file, read by `--batch` and written by the wizard.

`load_config` validates everything a user can get wrong and raises `UserError` with one line
naming the key, what was wrong and how to fix it. Relative paths are resolved against the
config file's folder, so a config works from any current directory.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from modelwiz.engine.errors import UserError

MODALITIES = ("text", "image")
STRATEGIES = ("auto", "linear-probe", "partial", "gradual", "full")
SCHEDULES = ("linear", "cosine", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
METRICS = ("macro_f1", "accuracy", "val_loss")  # what "best" means (engine.events.is_better)


@dataclass
class TaskConfig:
    modality: str = "text"
    train: str = ""
    validation: float | str = 0.2
    text_column: str = ""
    label_column: str = ""
    problem: str = "single-label"


@dataclass
class ConstraintsConfig:
    device: str = "auto"
    max_memory_gb: float | None = None  # None: what the chosen device has
    max_params_m: float | None = None
    licenses: list[str] = field(default_factory=list)  # empty: any license
    offline: bool = False


@dataclass
class ModelConfig:
    id: str = ""
    trust_remote_code: bool = False  # run code a model ships (config.json auto_map); only when asked by name


@dataclass
class TrainConfig:
    strategy: str = "auto"
    epochs: int = 3
    learning_rate: float | str = "auto"
    batch_size: int | str = "auto"
    precision: str = "auto"
    seed: int = 42
    nproc: int = 1
    grad_accum: int = 1  # micro-batches per optimizer step (effective batch = batch_size * grad_accum)
    metric: str = "macro_f1"  # what "best" means: the checkpoint exported, the runs list, the report
    max_length: int = 128  # text: tokens per example
    image_size: int | str = "auto"  # image: side in pixels; auto = the model's own
    max_train_samples: int = 0  # 0: all
    # recipes (engine/recipes.py)
    unfreeze_blocks: int | str = "auto"  # partial: top N blocks trained; gradual: blocks unfrozen first
    unfreeze_every: int = 1  # gradual: one more block every E epochs
    layer_decay: float = 1.0  # layer-wise LR decay: block k from the top trains at lr * layer_decay**k
    schedule: str = "linear"  # after warmup: linear | cosine decay to zero, or constant
    warmup: float = 0.06  # fraction of optimizer steps warming up linearly
    weight_decay: float = 0.01  # AdamW; never on biases and norm weights
    max_grad_norm: float = 1.0  # gradient clipping (0: off)
    augment: bool | str = "auto"  # images: standard augmentation in training (auto: on for small data)
    group_by_length: bool | str = "auto"  # text: steps of similar-length texts, less padding (auto: on for large data)
    checkpoint_every: int = 0  # optimizer steps between checkpoints (0: each epoch only)
    keep_checkpoints: int = 2  # step checkpoints kept besides the best weights
    patience: int = 0  # early stopping: epochs without a better [train] metric (0: off)
    # bake-off (engine/bakeoff.py): K >= 2 races the top K ranked models by successive halving,
    # then trains the winner on; 0: off
    bakeoff: int = 0
    bakeoff_share: float = 0.25  # the bake-off's time (steps and evaluations): this share of one full run


@dataclass
class OutputConfig:
    runs_dir: str = ""  # empty: $MODELWIZ_HOME/runs


@dataclass
class Config:
    task: TaskConfig = field(default_factory=TaskConfig)
    constraints: ConstraintsConfig = field(default_factory=ConstraintsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    source: str = ""  # the file this was read from, for messages

    def to_dict(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for section in SECTIONS:
            obj = getattr(self, section)
            out[section] = {f.name: getattr(obj, f.name) for f in fields(obj)}
        return out

    def to_toml(self) -> str:
        lines: list[str] = []
        for section, values in self.to_dict().items():
            lines.append(f"[{section}]")
            for key, value in values.items():
                if value is None:
                    continue
                lines.append(f"{key} = {_toml_value(value)}")
            lines.append("")
        return "\n".join(lines)

    def save(self, path: str | Path) -> Path:
        """Write atomically: a crash mid-write never leaves a half-written config."""
        from modelwiz.engine.fsutil import atomic_write_text

        path = Path(path)
        atomic_write_text(path, self.to_toml())
        return path


SECTIONS = {
    "task": TaskConfig,
    "constraints": ConstraintsConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "output": OutputConfig,
}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    s = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def _where(section: str, key: str, source: str) -> str:
    return f"{source + ': ' if source else ''}[{section}] {key}"


def _check_keys(section: str, table: dict[str, Any], allowed: list[str], source: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(allowed)}"
            raise UserError(f"{_where(section, key, source)}: unknown key; {hint}")


def _number(
    section: str,
    key: str,
    value: Any,
    source: str,
    *,
    integer: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_min: bool = False,
) -> Any:
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise UserError(f"{_where(section, key, source)} must be {kind}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{_where(section, key, source)} must be a finite number, got {value!r}")
    if minimum is not None and (value < minimum or (exclusive_min and value == minimum)):
        bound = f"greater than {minimum}" if exclusive_min else f"at least {minimum}"
        raise UserError(f"{_where(section, key, source)} must be {bound}, got {value!r}")
    if maximum is not None and value > maximum:
        raise UserError(f"{_where(section, key, source)} must be at most {maximum}, got {value!r}")
    return value


def _choice(section: str, key: str, value: Any, choices: tuple[str, ...], source: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise UserError(f"{_where(section, key, source)} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _string(section: str, key: str, value: Any, source: str) -> str:
    if not isinstance(value, str):
        raise UserError(f"{_where(section, key, source)} must be a string, got {value!r}")
    return value


def _bool(section: str, key: str, value: Any, source: str) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"{_where(section, key, source)} must be true or false, got {value!r}")
    return value


def _auto_or_bool(section: str, key: str, value: Any, source: str) -> bool | str:
    if value == "auto" or isinstance(value, bool):
        return value
    raise UserError(f'{_where(section, key, source)} must be "auto", true or false, got {value!r}')


def _resolve_path(value: str, base: Path | None) -> str:
    if not value:
        return value
    p = Path(value).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p
    return str(p)


Rule = Callable[[str, str, Any, str], Any]  # (section, key, value, source) -> the parsed value


def _integer(minimum: int, maximum: int | None = None) -> Rule:
    return lambda s, k, v, src: _number(s, k, v, src, integer=True, minimum=minimum, maximum=maximum)


def _positive(maximum: float | None = None) -> Rule:
    return lambda s, k, v, src: float(_number(s, k, v, src, minimum=0, exclusive_min=True, maximum=maximum))


def _one_of(choices: tuple[str, ...]) -> Rule:
    return lambda s, k, v, src: _choice(s, k, v, choices, src)


def _or_auto(rule: Rule) -> Rule:
    return lambda s, k, v, src: v if v == "auto" else rule(s, k, v, src)


TRAIN_RULES: dict[str, Rule] = {
    "strategy": _one_of(STRATEGIES),
    "epochs": _integer(1, 1000),
    "learning_rate": _or_auto(_positive(1.0)),
    "batch_size": _or_auto(_integer(1, 65536)),
    "precision": _one_of(PRECISIONS),
    "seed": _integer(0),
    "nproc": _integer(1, 64),
    "grad_accum": _integer(1, 1024),
    "metric": _one_of(METRICS),
    "max_length": _integer(8, 8192),
    "image_size": _or_auto(_integer(16, 2048)),
    "max_train_samples": _integer(0),
    "unfreeze_blocks": _or_auto(_integer(1, 10000)),
    "unfreeze_every": _integer(1, 1000),
    "layer_decay": lambda s, k, v, src: float(_number(s, k, v, src, minimum=0, exclusive_min=True, maximum=1.0)),
    "schedule": _one_of(SCHEDULES),
    "warmup": lambda s, k, v, src: float(_number(s, k, v, src, minimum=0.0, maximum=0.5)),
    "weight_decay": lambda s, k, v, src: float(_number(s, k, v, src, minimum=0.0, maximum=1.0)),
    "max_grad_norm": lambda s, k, v, src: float(_number(s, k, v, src, minimum=0.0)),
    "augment": _auto_or_bool,
    "group_by_length": _auto_or_bool,
    "checkpoint_every": _integer(0),
    "keep_checkpoints": _integer(1, 100),
    "patience": _integer(0, 1000),
    "bakeoff": lambda s, k, v, src: _bakeoff_size(s, k, v, src),
    "bakeoff_share": lambda s, k, v, src: float(_number(s, k, v, src, minimum=0, exclusive_min=True, maximum=0.9)),
}

BAKEOFF_MAX = 16  # contenders: each is loaded and trained in turn


def _bakeoff_size(section: str, key: str, value: Any, source: str) -> int:
    k = int(_number(section, key, value, source, integer=True, minimum=0, maximum=BAKEOFF_MAX))
    if k == 1:
        raise UserError(
            f"{_where(section, key, source)} = 1 is a race of one; set it to 2 or more contenders, or 0 for no bake-off"
        )
    return k


def check_bakeoff(cfg: Config) -> None:
    """A bake-off chooses the model itself, in one process: refuse the settings that contradict it."""
    k, source = cfg.train.bakeoff, cfg.source
    if not k:
        return
    if cfg.model.id:
        raise UserError(
            f"{_where('train', 'bakeoff', source)} = {k} races the top {k} ranked models, but [model] id "
            f"names one ({cfg.model.id}); remove [model] id, or set bakeoff = 0 to train that model"
        )
    if cfg.train.nproc > 1:
        raise UserError(
            f"{_where('train', 'bakeoff', source)} = {k} trains its contenders in one process, but "
            f"[train] nproc = {cfg.train.nproc}; set nproc = 1, or bakeoff = 0"
        )


def _check_tables(raw: dict[str, Any], source: str) -> None:
    where = f"{source}: " if source else ""
    for section, value in raw.items():
        if section not in SECTIONS:
            close = difflib.get_close_matches(section, list(SECTIONS), n=1)
            known = ", ".join("[" + s + "]" for s in SECTIONS)
            hint = f"did you mean [{close[0]}]?" if close else f"known tables: {known}"
            raise UserError(f"{where}unknown table [{section}]; {hint}")
        if not isinstance(value, dict):
            raise UserError(f"{where}[{section}] must be a table, e.g. [{section}] on its own line")
        _check_keys(section, value, [f.name for f in fields(SECTIONS[section])], source)


def _parse_task(t: dict[str, Any], task: TaskConfig, source: str, base_dir: Path | None) -> None:
    if "modality" in t:
        task.modality = _choice("task", "modality", t["modality"], MODALITIES, source)
    if "problem" in t:
        task.problem = _choice("task", "problem", t["problem"], ("single-label",), source)
    if "train" in t:
        task.train = _resolve_path(_string("task", "train", t["train"], source), base_dir)
    if "validation" in t:
        v = t["validation"]
        if isinstance(v, str):
            task.validation = _resolve_path(v, base_dir)
        else:
            task.validation = float(
                _number("task", "validation", v, source, minimum=0.0, maximum=0.9, exclusive_min=True)
            )
    for key in ("text_column", "label_column"):
        if key in t:
            setattr(task, key, _string("task", key, t[key], source))


def _parse_constraints(c: dict[str, Any], con: ConstraintsConfig, source: str) -> None:
    if "device" in c:
        dev = _string("constraints", "device", c["device"], source)
        if dev not in ("auto", "cpu", "cuda", "mps") and not (dev.startswith("cuda:") and dev[5:].isdigit()):
            where = _where("constraints", "device", source)
            raise UserError(f"{where} must be auto, cpu, cuda, cuda:N or mps; got {dev!r}")
        con.device = dev
    for key in ("max_memory_gb", "max_params_m"):
        if key in c:
            setattr(con, key, _positive()("constraints", key, c[key], source))
    if "licenses" in c:
        lic = c["licenses"]
        if not isinstance(lic, list) or not all(isinstance(x, str) for x in lic):
            where = _where("constraints", "licenses", source)
            raise UserError(f'{where} must be a list of strings, e.g. ["apache-2.0", "mit"]')
        con.licenses = [x.lower() for x in lic]
    if "offline" in c:
        con.offline = _bool("constraints", "offline", c["offline"], source)


def _parse_model(m: dict[str, Any], model: ModelConfig, source: str, base_dir: Path | None) -> None:
    if "id" in m:
        model.id = _string("model", "id", m["id"], source).strip()
        local = model.id.startswith((".", "/", "~")) or (base_dir is not None and (base_dir / model.id).is_dir())
        if model.id and local:
            model.id = _resolve_path(model.id, base_dir)
    if "trust_remote_code" in m:
        model.trust_remote_code = _bool("model", "trust_remote_code", m["trust_remote_code"], source)


def config_from_dict(raw: dict[str, Any], *, source: str = "", base_dir: Path | None = None) -> Config:
    """Validate a parsed TOML document into a Config. Raises UserError on the first problem."""
    if not isinstance(raw, dict):
        raise UserError(f"{source or 'config'}: expected TOML tables [task], [train], ...")
    _check_tables(raw, source)
    cfg = Config(source=source)
    _parse_task(raw.get("task", {}), cfg.task, source, base_dir)
    _parse_constraints(raw.get("constraints", {}), cfg.constraints, source)
    _parse_model(raw.get("model", {}), cfg.model, source, base_dir)
    for key, value in raw.get("train", {}).items():
        setattr(cfg.train, key, TRAIN_RULES[key]("train", key, value, source))
    check_bakeoff(cfg)
    o = raw.get("output", {})
    if "runs_dir" in o:
        cfg.output.runs_dir = _resolve_path(_string("output", "runs_dir", o["runs_dir"], source), base_dir)
    return cfg


def load_config(path: str | Path, *, require_train: bool = True) -> Config:
    path = Path(path)
    if not path.exists():
        raise UserError(
            f"config file {path} does not exist; check the path (`modelwiz demo-config` prints a working example)"
        )
    if path.is_dir():
        raise UserError(f"{path} is a folder; pass the path of a .toml config file")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file; a config is a TOML text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML ({exc}); fix the syntax at that line") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    cfg = config_from_dict(raw, source=str(path), base_dir=path.resolve().parent)
    if require_train and not cfg.task.train:
        raise UserError(f"{path}: [task] train is missing; set it to your data file (text) or folder (images)")
    return cfg
