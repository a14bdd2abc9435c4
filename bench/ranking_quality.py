"""Ranking quality: how well each way of ranking the zoo predicts which model fine-tunes best.

On several tasks (generated text and image tasks with real structure, and real labelled text
built offline from the docstrings of installed packages), every zoo member on disk (text:
all-MiniLM-L6-v2, all-mpnet-base-v2 and their random-init controls; image: the torchvision
weights in torch.hub's cache and the random-init MobileNetV2 control; see engine/zoo.py) is
fine-tuned with the same small budget through the real trainer (`modelwiz --batch`, one
detached trainer per model), and its validation macro-F1 is the truth. Then, per task and on
average, for each way of ranking: Kendall tau-b against the truth, whether the best model is
ranked 1st / in the top 3, and whether every pretrained model is above its random twin:

- size:        parameter count (bigger first);
- quality:     the published benchmark alone (the catalog prior, as `recommend` maps it);
- old ranking: the fixed blend before this benchmark (0.40 prior, 0.30 speed, 0.15 on disk,
               0.15 size fit, a neutral 0.45 for an unknown benchmark);
- ranking:     `recommend` without a probe (engine/recommend.py PRIOR_WEIGHTS);
- LogME, H-score: each estimator alone on the probe's frozen features (engine/transfer.py);
- blend:       `recommend --probe` (engine/transfer.py rerank: prior and evidence, EVIDENCE);
- bake-off:    `modelwiz --batch` with `[train] bakeoff = ` every zoo member, offline (so the race
               is among exactly what is on disk): whether its winner is the best model (or tied
               with it), and the race's seconds over the winner's own full fine-tuning.

The blend's weights are chosen here (`--choose`): a grid over the evidence weight and estimator,
best mean tau (then top-3 rate, then top-1 rate), with leave-one-task-out figures so the choice
is not only judged on the tasks that chose it. The weights in the engine are what this printed.

Truth ties: two models whose validation macro-F1 differ by less than two validation examples'
worth (2 / n_val) are tied (tau-b counts the pair for neither side); so are ranking scores that
are equal. Fine-tuning results are cached on disk, keyed by task data, model (id, weight files'
size and time) and settings, so a re-run only re-scores; probe features are cached by the engine.

    .venv/bin/python bench/ranking_quality.py [--json] [--tasks topics,shapes] [--choose]
        [--epochs 3] [--work build/ranking-quality]

The first run fine-tunes (here, on 2 shared CPU cores, 12 to 30 minutes); later runs take
seconds. `--json` prints one last line with every figure.
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
BENCH_VERSION = 1
# About 200 examples a task: half to train, half to validate (the truth needs a validation set that
# can tell models apart more than the training needs examples); one epoch of batch 4 at 32 tokens:
# the budget 2 shared CPU cores could afford for 4 models x 7 tasks (mpnet: minutes a run).
VALIDATION = 0.5
SETTINGS = {"epochs": 1, "batch_size": 4, "max_length": 32, "strategy": "auto", "seed": 42, "learning_rate": "auto"}

# ---------------------------------------------------------------------------------- tasks


@dataclass
class Task:
    name: str
    modality: str
    kind: str  # generated | real
    about: str
    train: Path = Path()
    classes: int = 0
    examples: int = 0


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(rows)
    tmp.replace(path)


TOPICS = {
    "sport": "match goal striker referee league tournament coach stadium penalty season athletes score "
    "championship defender midfield sprint marathon racket medal fans transfer".split(),
    "cooking": "recipe oven garlic simmer flour butter saucepan onion roast dough spices knead pastry "
    "broth whisk chef seasoning grill vinegar dessert".split(),
    "finance": "shares investors dividend inflation bonds interest portfolio earnings market stocks bank "
    "loan currency budget revenue audit mortgage tax hedge profit".split(),
    "travel": "flight passport hotel luggage itinerary beach tourists museum visa airport train ferry "
    "hostel sightseeing map journey cruise backpack resort border".split(),
    "computing": "software compiler database server laptop keyboard kernel network password browser "
    "algorithm processor memory debugging website cloud code install update file".split(),
}
FILLER = (
    "I think that the last week was about people who finally found out how much of it there is "
    "really and yesterday some friends told me another story over there almost every day"
).split()
TOPIC_TEMPLATES = [
    "my friend told me about the {a} and the {b} yesterday",
    "nobody expected the {a} to matter so much for the {b}",
    "we talked for hours about {a}, {b} and {c}",
    "the article covered the {a} before moving on to the {b}",
    "after the {a} everyone wanted to discuss the {b}",
    "is the {a} really worth it if the {b} is this bad",
    "a short note on {a}: the {b} and the {c} were fine",
    "I wrote down something about the {a} in my diary",
]


def make_topics(rng: random.Random, per_class: int = 40) -> list[tuple[str, str]]:
    """Topical sentences: topic words in varied templates, with filler words and, in a third of
    the sentences, one distractor word of another topic."""
    rows = []
    names = sorted(TOPICS)
    for label in names:
        words = TOPICS[label]
        for _ in range(per_class):
            a, b, c = rng.sample(words, 3)
            s = rng.choice(TOPIC_TEMPLATES).format(a=a, b=b, c=c)
            if rng.random() < 0.35:
                other = rng.choice([n for n in names if n != label])
                s += f" and also the {rng.choice(TOPICS[other])}"
            tail = " ".join(rng.sample(FILLER, rng.randint(0, 4)))
            rows.append((f"{s} {tail}".strip(), label))
    return rows


ASPECTS = "battery screen service delivery food staff room price sound design camera support".split()
POSITIVE = "great excellent wonderful superb pleasant reliable fantastic lovely impressive solid".split()
NEGATIVE = "awful terrible poor disappointing broken horrible useless dreadful flimsy slow".split()


def make_sentiment(rng: random.Random, per_class: int = 100) -> list[tuple[str, str]]:
    """Review-like sentences whose label needs more than a word list: negated adjectives ('not
    bad' reads positive), and contrast clauses where the main clause decides."""
    rows = []
    for label in ("negative", "positive"):
        good = label == "positive"
        for _ in range(per_class):
            aspect, other = rng.sample(ASPECTS, 2)
            form = rng.randrange(4)
            if form == 0:
                adj = rng.choice(POSITIVE if good else NEGATIVE)
                s = f"the {aspect} was {rng.choice(['really', 'quite', 'very', ''])} {adj}"
            elif form == 1:  # negation flips
                adj = rng.choice(NEGATIVE if good else POSITIVE)
                s = f"honestly the {aspect} was not {adj} at all"
            elif form == 2:  # contrast: the clause after 'but' decides
                first = rng.choice(NEGATIVE if good else POSITIVE)
                second = rng.choice(POSITIVE if good else NEGATIVE)
                s = f"the {other} was {first} but the {aspect} was {second} overall"
            else:
                adj = rng.choice(POSITIVE if good else NEGATIVE)
                verdict = rng.choice(["would buy again", "recommend it"] if good else ["want a refund", "avoid it"])
                s = f"{adj} {aspect}, {verdict}"
            rows.append((" ".join(s.split()), label))
    return rows


INTENTS = {
    "alarm": ["wake me up at {t}", "set an alarm for {t}", "I need to be up by {t} tomorrow", "alarm at {t} please"],
    "weather": [
        "will it rain in {c} {d}",
        "how cold is it in {c}",
        "do I need an umbrella {d}",
        "what is the forecast for {c} {d}",
    ],
    "music": ["play some {g}", "put on a {g} playlist", "I want to listen to {g}", "turn up the {g} music"],
    "restaurant": [
        "book a table for {n} in {c}",
        "find a {g2} place near me",
        "reserve dinner for {n} at {t}",
        "any good {g2} food in {c}",
    ],
    "travel": ["get me a flight to {c} {d}", "how long is the train to {c}", "book a taxi to the airport at {t}"],
    "timer": ["start a timer for {m} minutes", "count down {m} minutes", "remind me in {m} minutes"],
}


def make_intents(rng: random.Random, per_class: int = 33) -> list[tuple[str, str]]:
    slots = {
        "t": ["six", "7 am", "half past eight", "noon", "9:15"],
        "c": ["Paris", "Lisbon", "Oslo", "Cairo", "Lima", "Kyoto"],
        "d": ["today", "tomorrow", "this weekend", "on Friday"],
        "g": ["jazz", "rock", "classical", "hip hop", "folk"],
        "g2": ["thai", "italian", "vegan", "sushi", "mexican"],
        "n": ["two", "four", "six"],
        "m": ["five", "ten", "twenty"],
    }
    rows = []
    for label in sorted(INTENTS):
        for _ in range(per_class):
            s = rng.choice(INTENTS[label])
            for k, v in slots.items():
                s = s.replace("{" + k + "}", rng.choice(v))
            if rng.random() < 0.3:
                s = rng.choice(["hey, ", "could you ", "please ", "ok so "]) + s
            rows.append((s, label))
    return rows


def _site_packages() -> Path:
    import numpy as _np

    return Path(_np.__file__).resolve().parent.parent


def _first_paragraph(doc: str) -> str:
    para = doc.strip().split("\n\n")[0]
    return " ".join(para.split())


def docstrings(root: Path, names: list[str]) -> list[str]:
    """First paragraphs of the function and class docstrings under `root` (files in sorted
    order, parsed with ast: nothing imported), 40 to 300 characters, the package's own names
    blanked out so the label is not written in the text."""
    out, seen = [], set()
    for path in sorted(root.rglob("*.py")):
        if "test" in path.name or "tests" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                doc = ast.get_docstring(node)
                if not doc:
                    continue
                text = _first_paragraph(doc)
                for n in names:
                    text = text.replace(n, "").replace(n.capitalize(), "").replace(n.upper(), "")
                text = " ".join(text.split())
                if 40 <= len(text) <= 300 and text not in seen and ">>>" not in text:
                    seen.add(text)
                    out.append(text)
    return out


def make_docstrings(
    rng: random.Random, groups: dict[str, tuple[Path, list[str]]], per_class: int
) -> list[tuple[str, str]]:
    rows = []
    for label in sorted(groups):
        root, names = groups[label]
        pool = docstrings(root, names)
        if len(pool) < per_class:
            raise SystemExit(f"error: only {len(pool)} docstrings under {root}; need {per_class}")
        rows += [(t, label) for t in rng.sample(pool, per_class)]
    return rows


def make_package_docs(rng: random.Random) -> list[tuple[str, str]]:
    """Real writing: docstrings of six installed packages, labelled by package."""
    sp = _site_packages()
    groups = {
        "numpy": (sp / "numpy", ["numpy", "np."]),
        "networkx": (sp / "networkx", ["networkx", "nx."]),
        "sympy": (sp / "sympy", ["sympy"]),
        "rich": (sp / "rich", ["rich"]),
        "pillow": (sp / "PIL", ["PIL", "pillow", "Pillow"]),
        "huggingface_hub": (sp / "huggingface_hub", ["huggingface_hub", "huggingface", "Hugging Face", "HF"]),
    }
    return make_docstrings(rng, groups, 33)


def make_stdlib_docs(rng: random.Random) -> list[tuple[str, str]]:
    """Real writing: docstrings of five standard-library packages, labelled by package."""
    lib = Path(os.__file__).resolve().parent
    groups = {
        "email": (lib / "email", ["email"]),
        "asyncio": (lib / "asyncio", ["asyncio", "async"]),
        "xml": (lib / "xml", ["xml", "XML"]),
        "unittest": (lib / "unittest", ["unittest"]),
        "http": (lib / "http", ["http", "HTTP"]),
    }
    return make_docstrings(rng, groups, 40)


def make_shapes(root: Path, rng: np.random.Generator, per_class: int = 50) -> None:
    """Outlined and filled shapes (circle, square, triangle, cross) of random size, position and
    colour on a noisy background of another colour, 64 x 64."""
    from PIL import Image, ImageDraw

    for label in ("circle", "cross", "square", "triangle"):
        d = root / label
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            bg = tuple(int(v) for v in rng.integers(0, 256, 3))
            fg = tuple(int(v) for v in rng.integers(0, 256, 3))
            img = Image.new("RGB", (64, 64), bg)
            draw = ImageDraw.Draw(img)
            r = int(rng.integers(10, 24))
            cx, cy = (int(v) for v in rng.integers(r + 2, 64 - r - 2, 2))
            width = int(rng.integers(2, 5))
            fill = fg if rng.random() < 0.5 else None
            box = (cx - r, cy - r, cx + r, cy + r)
            if label == "circle":
                draw.ellipse(box, outline=fg, fill=fill, width=width)
            elif label == "square":
                draw.rectangle(box, outline=fg, fill=fill, width=width)
            elif label == "triangle":
                draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], outline=fg, fill=fill, width=width)
            else:
                draw.line((cx - r, cy, cx + r, cy), fill=fg, width=width + 2)
                draw.line((cx, cy - r, cx, cy + r), fill=fg, width=width + 2)
            arr = np.asarray(img).astype(np.int16) + rng.normal(0, 18, (64, 64, 3)).astype(np.int16)
            Image.fromarray(np.clip(arr, 0, 255).astype("uint8")).save(d / f"{i:03d}.png")


def make_textures(root: Path, rng: np.random.Generator, per_class: int = 50) -> None:
    """Textures (horizontal stripes, vertical stripes, checkerboard, dots) at random frequency,
    phase and two random colours, with noise, 64 x 64."""
    from PIL import Image

    yy, xx = np.mgrid[0:64, 0:64].astype(np.float64)
    for label in ("checker", "dots", "hstripes", "vstripes"):
        d = root / label
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            period = float(rng.uniform(6, 16))
            px, py = rng.uniform(0, period, 2)
            if label == "hstripes":
                mask = np.sin(2 * np.pi * (yy + py) / period) > 0
            elif label == "vstripes":
                mask = np.sin(2 * np.pi * (xx + px) / period) > 0
            elif label == "checker":
                mask = (np.sin(2 * np.pi * (xx + px) / period) > 0) ^ (np.sin(2 * np.pi * (yy + py) / period) > 0)
            else:
                gx = ((xx + px) % period) - period / 2
                gy = ((yy + py) % period) - period / 2
                mask = gx**2 + gy**2 < (period / 4) ** 2
            a, b = rng.integers(0, 256, (2, 3))
            arr = np.where(mask[..., None], a, b).astype(np.float64) + rng.normal(0, 20, (64, 64, 3))
            Image.fromarray(np.clip(arr, 0, 255).astype("uint8")).save(d / f"{i:03d}.png")


TASKS = {
    "topics": Task("topics", "text", "generated", "5 topics from word lists in templates, filler, distractors"),
    "sentiment": Task("sentiment", "text", "generated", "2 classes; negation and contrast clauses decide"),
    "intents": Task("intents", "text", "generated", "6 assistant intents, slot-filled paraphrases"),
    "package-docs": Task("package-docs", "text", "real", "docstrings of 6 installed packages, by package"),
    "stdlib-docs": Task("stdlib-docs", "text", "real", "docstrings of 5 standard-library packages, by package"),
    "shapes": Task("shapes", "image", "generated", "4 shapes, random size/colour/position, noise"),
    "textures": Task("textures", "image", "generated", "4 textures, random period/phase/colours, noise"),
}


def build_task(task: Task, root: Path) -> Task:
    """Write the task's data under `root` (once: a finished task is reused)."""
    seed = int(hashlib.sha256(task.name.encode()).hexdigest()[:8], 16)
    if task.modality == "text":
        path = root / "data" / f"{task.name}.csv"
        if not path.is_file():
            rng = random.Random(seed)
            maker = {
                "topics": make_topics,
                "sentiment": make_sentiment,
                "intents": make_intents,
                "package-docs": make_package_docs,
                "stdlib-docs": make_stdlib_docs,
            }[task.name]
            rows = maker(rng)
            rng.shuffle(rows)
            _write_csv(path, rows)
        import csv

        with path.open(encoding="utf-8") as fh:
            labels = [r["label"] for r in csv.DictReader(fh)]
    else:
        path = root / "data" / task.name
        done = path / ".done"
        if not done.is_file():
            rng_np = np.random.default_rng(seed)
            {"shapes": make_shapes, "textures": make_textures}[task.name](path, rng_np)
            done.write_text("ok\n")
        labels = [p.parent.name for p in path.glob("*/*.png")]
    out = copy.copy(task)
    out.train, out.classes, out.examples = path, len(set(labels)), len(labels)
    return out


def task_hash(task: Task) -> str:
    h = hashlib.sha256()
    files = [task.train] if task.train.is_file() else sorted(task.train.glob("*/*.png"))
    for f in files:
        h.update(str(f.relative_to(task.train.parent)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------- the zoo


def controls_path() -> Path:
    from modelwiz.engine.zoo import controls_dir

    return controls_dir()


def zoo(modality: str) -> list[Any]:
    """Every candidate on disk for `modality` (local folders, the controls, cached torchvision
    weights); the same model in two sources appears once."""
    from modelwiz.engine.recommend import gather_candidates

    seen, out = set(), []
    for c in gather_candidates(modality):
        if not c.on_disk:
            continue
        key = os.path.realpath(c.path) if c.path else c.id
        if key in seen:
            continue
        seen.add(key)
        out.append(c)
    return out


def twins(cands: list[Any]) -> list[tuple[str, str]]:
    """(pretrained id, control id) pairs, from each control's zoo stamp (`control_of`)."""
    pairs = []
    for c in cands:
        stamp = Path(c.path or "") / ".modelwiz-zoo.json" if c.path else None
        if stamp is None or not stamp.is_file():
            continue
        of = json.loads(stamp.read_text()).get("control_of", "")
        for other in cands:
            if other is c:
                continue
            same_folder = other.path and of and os.path.realpath(other.path) == os.path.realpath(of)
            same_arch = other.source == "torchvision" and other.arch == of
            if same_folder or same_arch:
                pairs.append((other.id, c.id))
    return pairs


# ---------------------------------------------------------------------------------- fine-tuning


def model_key(c: Any) -> str:
    from modelwiz.engine.transfer import _model_key

    return _model_key(c)


def cache_slot(work: Path, kind: str, parts: list[Any]) -> tuple[str, Path, Path]:
    """(key, cached result, config path) of one `modelwiz --batch` run of this bench, keyed by
    what decides its outcome (`parts`, the bench version and the validation share)."""
    key_src = json.dumps([BENCH_VERSION, *parts, VALIDATION], sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:20]
    (work / "configs").mkdir(parents=True, exist_ok=True)
    prefix = "" if kind == "finetune" else f"{kind}-"
    return key, work / kind / f"{key}.json", work / "configs" / f"{prefix}{key}.toml"


def finetune(
    task: Task, cand: Any, work: Path, settings: dict[str, Any], thash: str, log: Any, keep_runs: bool = False
) -> dict[str, Any]:
    """Fine-tune `cand` on `task` with `modelwiz --batch` (cached); the summary's metrics."""
    key, out, cfg = cache_slot(work, "finetune", [task.name, thash, model_key(cand), settings])
    if out.is_file():
        return json.loads(out.read_text())
    train = {k: v for k, v in settings.items()}
    lines = [
        "[task]",
        f'modality = "{task.modality}"',
        f"train = {json.dumps(str(task.train))}",
        f"validation = {VALIDATION}",
        "[model]",
        f"id = {json.dumps(cand.id)}",
        "[train]",
        *(f"{k} = {json.dumps(v)}" for k, v in train.items()),
        "[output]",
        f"runs_dir = {json.dumps(str(work / 'runs'))}",
    ]
    cfg.write_text("\n".join(lines) + "\n")
    summary, seconds = run_batch(cfg, work, f"fine-tuning {cand.id} on {task.name}")
    plan = {}
    try:
        plan = json.loads((Path(summary["run_dir"]) / "plan.json").read_text())
    except (OSError, ValueError, KeyError):
        pass
    result = {
        "task": task.name,
        "model": cand.id,
        "metrics": summary.get("metrics", {}),
        "seconds": round(seconds, 1),
        "run_dir": summary.get("run_dir"),
        "strategy": plan.get("strategy"),
        "learning_rate": plan.get("learning_rate"),
        "batch_size": plan.get("batch_size"),
        "settings": settings,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    if not keep_runs and summary.get("run_dir"):
        shutil.rmtree(summary["run_dir"], ignore_errors=True)  # checkpoints and exports: GBs for mpnet
    print(
        f"  fine-tuned {cand.name:<32} {task.name:<13} macro-F1 {result['metrics'].get('macro_f1', float('nan')):.3f} "
        f"({seconds:.0f} s, {result['strategy']})",
        file=log,
        flush=True,
    )
    return result


def run_batch(cfg: Path, work: Path, what: str) -> tuple[dict[str, Any], float]:
    """`modelwiz --batch CFG --json` in a process of its own: (its summary, wall seconds)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelwiz", "--batch", str(cfg), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
        cwd=str(work),  # not the repository: `-m modelwiz` would find its source folder first
    )
    try:
        stdout, stderr = proc.communicate()
    except KeyboardInterrupt:  # modelwiz --batch asks its detached trainer to stop on SIGINT
        proc.send_signal(signal.SIGINT)
        proc.communicate()
        raise
    seconds = time.perf_counter() - t0
    lines_out = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    summary = json.loads(lines_out[-1]) if lines_out else {}
    if proc.returncode != 0 or summary.get("status") != "completed":
        err = (stderr.strip().splitlines() or ["?"])[-1]
        raise SystemExit(f"error: {what} failed (exit {proc.returncode}): {err}")
    return summary, seconds


def _carried_seconds(row: dict[str, Any]) -> float:
    """A race row's seconds a run without the race pays too (rows before load_seconds was
    recorded: all of them)."""
    if "load_seconds" not in row:
        return float(row.get("seconds") or 0.0)
    return float(row.get("load_seconds") or 0.0) + float(row.get("train_seconds") or 0.0)


def bakeoff(
    task: Task, cands: list[Any], work: Path, settings: dict[str, Any], thash: str, log: Any, keep_runs: bool = False
) -> dict[str, Any]:
    """`modelwiz --batch` left to choose, offline, with `[train] bakeoff = ` every zoo member: the
    race (engine/bakeoff.py, its default share of the time) among what is on disk, then the
    winner trained on with the same settings as every fine-tuning here (cached)."""
    ids = sorted(model_key(c) for c in cands)
    _, out, cfg = cache_slot(work, "bakeoff", ["bakeoff", task.name, thash, ids, settings])
    if out.is_file():
        return json.loads(out.read_text())
    lines = [
        "[task]",
        f'modality = "{task.modality}"',
        f"train = {json.dumps(str(task.train))}",
        f"validation = {VALIDATION}",
        "[constraints]",
        "offline = true",
        "[train]",
        *(f"{k} = {json.dumps(v)}" for k, v in settings.items()),
        f"bakeoff = {len(cands)}",
        "[output]",
        f"runs_dir = {json.dumps(str(work / 'runs'))}",
    ]
    cfg.write_text("\n".join(lines) + "\n")
    # a cold bake-off: the features an earlier probe of this bench cached would be read instead of
    # computed (engine/bakeoff.py), and the race's cost is measured here without them
    from modelwiz.engine.paths import cache_dir

    shutil.rmtree(cache_dir() / "features", ignore_errors=True)
    summary, seconds = run_batch(cfg, work, f"the bake-off on {task.name}")
    report = json.loads((Path(summary["run_dir"]) / "report.json").read_text())
    bo = report.get("bakeoff") or {}
    result = {
        "task": task.name,
        "winner": bo.get("winner"),
        "contenders": [c.get("model") for c in bo.get("contenders") or []],
        # what of the winner's rounds its full training would have spent anyway: loading it and
        # its training steps (not the race's evaluations, nor the evidence's features)
        "winner_race_seconds": sum(
            _carried_seconds(r)
            for c in bo.get("contenders") or []
            if c.get("model") == bo.get("winner")
            for r in c.get("results") or []
        ),
        "table": bo.get("table"),
        "rounds": bo.get("rounds"),
        "share": bo.get("share"),
        "bakeoff_seconds": bo.get("seconds"),
        "run_seconds": round(seconds, 1),
        "metrics": summary.get("metrics", {}),
        "settings": settings,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    if not keep_runs and summary.get("run_dir"):
        shutil.rmtree(summary["run_dir"], ignore_errors=True)
    print(
        f"  bake-off on {task.name:<13}: {Path(str(result['winner'])).name} won in {result['bakeoff_seconds']:.0f} s "
        f"({seconds:.0f} s in all)",
        file=log,
        flush=True,
    )
    return result


# ---------------------------------------------------------------------------------- scoring


def kendall_tau_b(x: list[float], y: list[float], tie_x: float = 0.0, tie_y: float = 0.0) -> float:
    """Kendall's tau-b of two score lists; |difference| <= tie counts as a tie."""
    n = len(x)
    conc = disc = tx = ty = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            ax, ay = abs(dx) <= tie_x, abs(dy) <= tie_y
            if ax and ay:
                continue
            if ax:
                tx += 1
            elif ay:
                ty += 1
            elif (dx > 0) == (dy > 0):
                conc += 1
            else:
                disc += 1
    denom = math.sqrt((conc + disc + tx) * (conc + disc + ty))
    return (conc - disc) / denom if denom else 0.0


def fractional_ranks(scores: list[float]) -> list[float]:
    """1 = highest; tied scores share the mean of their places."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


@dataclass
class Outcome:
    tau: float
    top1: bool
    top3: bool
    twins_ok: bool
    order: list[str] = field(default_factory=list)


def judge(ids: list[str], truth: list[float], scores: list[float], tie: float, pairs: list[tuple[str, str]]) -> Outcome:
    tau = kendall_tau_b(scores, truth, 0.0, tie)
    ranks = fractional_ranks(scores)
    best = max(truth)
    best_ix = [i for i, t in enumerate(truth) if best - t <= tie]
    top1 = any(ranks[i] <= 1 for i in best_ix)
    top3 = any(ranks[i] <= 3 for i in best_ix)
    pos = {m: i for i, m in enumerate(ids)}
    twins_ok = all(scores[pos[p]] > scores[pos[c]] for p, c in pairs if p in pos and c in pos)
    order = [ids[i] for i in sorted(range(len(ids)), key=lambda i: ranks[i])]
    return Outcome(tau, top1, top3, twins_ok, order)


OLD_WEIGHTS = {"quality": 0.40, "speed": 0.30, "availability": 0.15, "size_fit": 0.15, "unknown_quality": 0.45}


def method_scores(
    config: Any, hardware: Any, data: Any, cands: list[Any], probe: dict[str, Any], blend: dict[str, Any] | None = None
) -> dict[str, dict[str, float]]:
    """Each method's score of every candidate (higher = ranked higher)."""
    from modelwiz.engine import recommend as rec
    from modelwiz.engine import transfer

    s = data.summary
    kw = {"train_size": s.train_size, "num_classes": s.num_classes, "language": s.language, "candidates": cands}
    old = rec.rank(config, hardware, weights=rec.PriorWeights(**OLD_WEIGHTS), **kw)
    new = rec.rank(config, hardware, **kw)
    out: dict[str, dict[str, float]] = {
        "size": {c.id: float(c.params) for c in cands},
        "quality": {c.id: rec.quality_prior(c)[0] for c in cands},
        "old ranking": _positions(old),
        "ranking": _positions(new),
        "LogME": {m: probe[m].logme for m in probe},
        "H-score": {m: probe[m].h_score for m in probe},
    }
    blend = blend or {}
    blended = transfer.rerank(copy.deepcopy(new), list(probe.values()), **blend)
    out["blend"] = _positions(blended)
    return out


def _positions(ranked: list[Any]) -> dict[str, float]:
    """A ranking's order as scores: the first gets the most (the order includes every sort key)."""
    return {r.candidate.id: float(len(ranked) - i) for i, r in enumerate(ranked)}


# ---------------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="a last line with every figure as JSON")
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task names")
    ap.add_argument("--work", default=str(REPO / "build" / "ranking-quality"), help="data, runs and caches")
    ap.add_argument("--epochs", type=int, default=SETTINGS["epochs"])
    ap.add_argument("--choose", action="store_true", help="search the blend's weights (grid) and print the choice")
    ap.add_argument("--markdown", action="store_true", help="also the README's tables")
    ap.add_argument("--keep-runs", action="store_true", help="keep each fine-tuning's run folder")
    ap.add_argument("--finetune-only", action="store_true", help="fine-tune (fill the cache) and stop")
    ap.add_argument("--no-bakeoff", action="store_true", help="leave the bake-off column out (its runs take minutes)")
    args = ap.parse_args()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ["MODELWIZ_HOME"] = str(work / "home")
    paths = [str(controls_path())] + [p for p in os.environ.get("MODELWIZ_MODEL_PATH", "").split(os.pathsep) if p]
    os.environ["MODELWIZ_MODEL_PATH"] = os.pathsep.join(paths)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = dict(SETTINGS, epochs=args.epochs)
    names = [n.strip() for n in args.tasks.split(",") if n.strip()]
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        print(f"error: unknown task {unknown[0]}; known: {', '.join(TASKS)}", file=sys.stderr)
        return 2

    from modelwiz.engine import transfer
    from modelwiz.engine.config import config_from_dict
    from modelwiz.engine.hardware import detect
    from modelwiz.engine.workflow import check_data

    hardware = detect(work / "runs")
    log = sys.stderr
    built = []
    for name in names:  # every fine-tuning first (the long part, cached), then the probes
        task = build_task(TASKS[name], work)
        cands = zoo(task.modality)
        if len(cands) < 2:
            print(f"error: fewer than 2 {task.modality} models on disk; run `make zoo`", file=sys.stderr)
            return 2
        thash = task_hash(task)
        print(
            f"{task.name}: {task.examples} examples, {task.classes} classes, {len(cands)} models", file=log, flush=True
        )
        results = {c.id: finetune(task, c, work, settings, thash, log, args.keep_runs) for c in cands}
        race = None if args.no_bakeoff else bakeoff(task, cands, work, settings, thash, log, args.keep_runs)
        built.append((task, cands, results, race))
    if args.finetune_only:
        return 0
    from modelwiz.engine.recommend import rank

    per_task: list[dict[str, Any]] = []
    for task, cands, results, race in built:
        config = config_from_dict(
            {
                "task": {"modality": task.modality, "train": str(task.train), "validation": VALIDATION},
                "train": dict(settings),
            }
        )
        data = check_data(config)
        s = data.summary
        ranked = rank(
            config, hardware, train_size=s.train_size, num_classes=s.num_classes, language=s.language, candidates=cands
        )
        probe = {r.model: r for r in transfer.probe(ranked, data, k=len(ranked), seed=config.train.seed)}
        per_task.append(
            {
                "task": task,
                "cands": cands,
                "results": results,
                "config": config,
                "data": data,
                "probe": probe,
                "n_val": s.val_size,
                "pairs": twins(cands),
                "bakeoff": race,
            }
        )

    report = score_all(per_task, hardware)
    if args.choose:
        report["choice"] = choose_blend(per_task, hardware)
    print_report(report)
    if args.markdown:
        print()
        print_markdown(report)
    if args.json:
        print(json.dumps(report, default=str))
    return 0


METHODS = ("size", "quality", "old ranking", "ranking", "LogME", "H-score", "blend")


def score_task(t: dict[str, Any], hardware: Any, blend: dict[str, Any] | None = None) -> dict[str, Outcome]:
    ids = [c.id for c in t["cands"]]
    truth = [float(t["results"][m]["metrics"].get("macro_f1") or 0.0) for m in ids]
    tie = 2.0 / max(t["n_val"], 1)
    scores = method_scores(t["config"], hardware, t["data"], t["cands"], t["probe"], blend)
    return {name: judge(ids, truth, [scores[name][m] for m in ids], tie, t["pairs"]) for name in METHODS}


def score_all(per_task: list[dict[str, Any]], hardware: Any) -> dict[str, Any]:
    tasks = []
    for t in per_task:
        outcome = score_task(t, hardware)
        ids = [c.id for c in t["cands"]]
        tasks.append(
            {
                "task": t["task"].name,
                "modality": t["task"].modality,
                "kind": t["task"].kind,
                "about": t["task"].about,
                "examples": t["task"].examples,
                "classes": t["task"].classes,
                "validation": t["n_val"],
                "models": {
                    m: {
                        "macro_f1": t["results"][m]["metrics"].get("macro_f1"),
                        "accuracy": t["results"][m]["metrics"].get("accuracy"),
                        "finetune_seconds": t["results"][m]["seconds"],
                        "strategy": t["results"][m]["strategy"],
                        "logme": round(t["probe"][m].logme, 4),
                        "h_score": round(t["probe"][m].h_score, 4),
                        "probe_seconds": round(t["probe"][m].seconds, 2),
                    }
                    for m in ids
                },
                "twins": t["pairs"],
                "methods": {k: o.__dict__ for k, o in outcome.items()},
                "bakeoff": judge_bakeoff(t),
            }
        )
    out = {"settings": SETTINGS, "validation": VALIDATION, "tasks": tasks, "summary": summarize(tasks)}
    races = [t["bakeoff"] for t in tasks if t["bakeoff"]]
    if races:
        out["bakeoff"] = {
            "tasks": len(races),
            "picks_best": round(float(np.mean([r["picks_best"] for r in races])), 3),
            "share_of_full_max": round(max(r["share_of_full"] for r in races), 3),
            "share_of_full_mean": round(float(np.mean([r["share_of_full"] for r in races])), 3),
        }
    return out


def judge_bakeoff(t: dict[str, Any]) -> dict[str, Any] | None:
    """Whether the bake-off's winner is the best model (the truth's best, or tied with it), and its
    time, all measured in the bake-off's own run (so under the same load): the race's seconds over
    the winner's full fine-tuning there (the run without the race, plus the winner's own rounds,
    which were its first steps)."""
    race = t.get("bakeoff")
    if not race or not race.get("winner"):
        return None
    truth = {m: float(r["metrics"].get("macro_f1") or 0.0) for m, r in t["results"].items()}
    tie = 2.0 / max(t["n_val"], 1)
    top = max(truth.values())
    winner = str(race["winner"])
    seconds, run = float(race.get("bakeoff_seconds") or 0.0), float(race["run_seconds"])
    full = run - seconds + float(race.get("winner_race_seconds") or 0.0)
    return {
        "winner": winner,
        "winner_macro_f1": truth.get(winner),
        "best": [m for m, v in truth.items() if top - v <= tie],
        "picks_best": winner in truth and top - truth[winner] <= tie,
        "contenders_are_the_zoo": sorted(race.get("contenders") or []) == sorted(truth),
        "bakeoff_seconds": race.get("bakeoff_seconds"),
        "run_seconds": race.get("run_seconds"),
        "winner_full_seconds": full,
        "share_of_full": round(seconds / full, 3) if full > 0 else float("nan"),
        "share_of_run": round(seconds / run, 3),
        "run_macro_f1": race.get("metrics", {}).get("macro_f1"),
    }


def summarize(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for m in METHODS:
        outs = [t["methods"][m] for t in tasks]
        out[m] = {
            "tau": round(float(np.mean([o["tau"] for o in outs])), 3),
            "top1": round(float(np.mean([o["top1"] for o in outs])), 3),
            "top3": round(float(np.mean([o["top3"] for o in outs])), 3),
            "twins_ok": round(float(np.mean([o["twins_ok"] for o in outs])), 3),
        }
    return out


def choose_blend(per_task: list[dict[str, Any]], hardware: Any) -> dict[str, Any]:
    """Grid over the blend's evidence weight and estimator: the best mean tau, then top-3 and
    top-1 rates, then the smaller evidence weight; and, leave one task out, the figures of the
    weights the other tasks would have chosen (how well the choice generalises here)."""
    grid = [
        {"evidence_weight": round(float(w), 2), "estimator": e, "scale": sc}
        for e in ("logme", "h-score", "both")
        for sc in ("rank", "minmax")
        for w in np.linspace(0.0, 1.0, 21)
    ]
    table = []  # per grid point, per task outcome of the blend
    for g in grid:
        table.append([score_task(t, hardware, g)["blend"] for t in per_task])

    def key(rows: list[Outcome]) -> tuple[float, float, float]:
        return (
            round(float(np.mean([o.tau for o in rows])), 6),
            float(np.mean([o.top3 for o in rows])),
            float(np.mean([o.top1 for o in rows])),
        )

    def pick(task_ix: list[int]) -> int:
        return max(
            range(len(grid)), key=lambda gi: (*key([table[gi][i] for i in task_ix]), -grid[gi]["evidence_weight"])
        )

    all_ix = list(range(len(per_task)))
    best = pick(all_ix)
    loo = []
    for i in all_ix if len(all_ix) > 1 else []:
        gi = pick([j for j in all_ix if j != i])
        loo.append({"held_out": per_task[i]["task"].name, "chosen": grid[gi], **table[gi][i].__dict__})
    curve = [
        {**g, "tau": key(rows)[0], "top3": key(rows)[1], "top1": key(rows)[2]}
        for g, rows in zip(grid, table, strict=True)
    ]
    return {
        "prior_variants": prior_variants(per_task, hardware),
        "chosen": grid[best],
        "tau": key(table[best])[0],
        "top3": key(table[best])[1],
        "top1": key(table[best])[2],
        "leave_one_out": {
            "tau": round(float(np.mean([r["tau"] for r in loo])), 3),
            "top3": round(float(np.mean([r["top3"] for r in loo])), 3),
            "top1": round(float(np.mean([r["top1"] for r in loo])), 3),
            "folds": loo,
        },
        "curve": curve,
    }


PRIOR_VARIANTS = {
    "old: 0.40/0.30/0.15/0.15, unknown 0.45": OLD_WEIGHTS,
    "old weights, unknown 0": {**OLD_WEIGHTS, "unknown_quality": 0.0},
    "quality only": {"quality": 1.0, "speed": 0.0, "availability": 0.0, "size_fit": 0.0},
    "0.55/0.10/0.15/0.20 (PRIOR_WEIGHTS)": {"quality": 0.55, "speed": 0.1, "availability": 0.15, "size_fit": 0.2},
    "0.70/0.10/0.10/0.10": {"quality": 0.7, "speed": 0.1, "availability": 0.1, "size_fit": 0.1},
    "0.55/0.30/0.15/0.00 (no size fit)": {"quality": 0.55, "speed": 0.3, "availability": 0.15, "size_fit": 0.0},
}


def prior_variants(per_task: list[dict[str, Any]], hardware: Any) -> dict[str, dict[str, float]]:
    """The ranking without a probe under other prior weights (quality / speed / on disk / size
    fit): mean tau, top-3 and top-1 rates, twins in order."""
    from modelwiz.engine import recommend as rec

    out = {}
    for name, w in PRIOR_VARIANTS.items():
        rows = []
        for t in per_task:
            s = t["data"].summary
            ranked = rec.rank(
                t["config"],
                hardware,
                train_size=s.train_size,
                num_classes=s.num_classes,
                language=s.language,
                candidates=t["cands"],
                weights=rec.PriorWeights(**w),
            )
            ids = [c.id for c in t["cands"]]
            truth = [float(t["results"][m]["metrics"].get("macro_f1") or 0.0) for m in ids]
            pos = _positions(ranked)
            rows.append(judge(ids, truth, [pos[m] for m in ids], 2.0 / max(t["n_val"], 1), t["pairs"]))
        out[name] = {
            "tau": round(float(np.mean([o.tau for o in rows])), 3),
            "top3": round(float(np.mean([o.top3 for o in rows])), 3),
            "top1": round(float(np.mean([o.top1 for o in rows])), 3),
            "twins_ok": round(float(np.mean([o.twins_ok for o in rows])), 3),
        }
    return out


def print_report(report: dict[str, Any]) -> None:
    for t in report["tasks"]:
        print(
            f"\n{t['task']} ({t['modality']}, {t['kind']}: {t['about']}; {t['examples']} examples, {t['validation']} validation)"
        )
        for m, r in sorted(t["models"].items(), key=lambda kv: -(kv[1]["macro_f1"] or 0)):
            print(
                f"  {m[-44:]:<44} macro-F1 {r['macro_f1']:.3f}  acc {r['accuracy']:.3f}  LogME {r['logme']:+.3f}  "
                f"H {r['h_score']:6.2f}  ({r['finetune_seconds']:.0f} s fine-tune, {r['probe_seconds']:.1f} s probe)"
            )
        for name, o in t["methods"].items():
            print(
                f"    {name:<12} tau {o['tau']:+.2f}  best 1st {'yes' if o['top1'] else 'no ':<3}  "
                f"top 3 {'yes' if o['top3'] else 'no ':<3}  twins {'ok' if o['twins_ok'] else 'WRONG'}"
            )
        b = t.get("bakeoff")
        if b:
            print(
                f"    {'bake-off':<12} picks {Path(b['winner']).name} ({'the best' if b['picks_best'] else 'NOT the best'}"
                f"{'' if b['contenders_are_the_zoo'] else '; contenders differ from the zoo'}) in "
                f"{b['bakeoff_seconds']:.0f} s = {b['share_of_full']:.0%} of its own full fine-tuning "
                f"({b['share_of_run']:.0%} of the bake-off run); the run's macro-F1 {b['run_macro_f1']:.3f}"
            )
    print("\naverage over", len(report["tasks"]), "tasks")
    print(f"  {'method':<12} {'tau':>6} {'best 1st':>9} {'top 3':>6} {'twins ok':>9}")
    for name, s in report["summary"].items():
        print(f"  {name:<12} {s['tau']:+6.2f} {s['top1']:9.0%} {s['top3']:6.0%} {s['twins_ok']:9.0%}")
    if "bakeoff" in report:
        b = report["bakeoff"]
        print(
            f"  bake-off: picks the best model on {b['picks_best']:.0%} of {b['tasks']} tasks, in at most "
            f"{b['share_of_full_max']:.0%} (mean {b['share_of_full_mean']:.0%}) of the winner's full fine-tuning time"
        )
    if "choice" in report:
        c = report["choice"]
        print("\nthe ranking without a probe under other prior weights (quality/speed/on disk/size fit)")
        for name, v in c["prior_variants"].items():
            print(
                f"  {name:<40} tau {v['tau']:+.2f}  best 1st {v['top1']:.0%}  top 3 {v['top3']:.0%}  "
                f"twins ok {v['twins_ok']:.0%}"
            )
        print(
            f"\nblend chosen by grid: {c['chosen']}: tau {c['tau']:+.3f}, top 3 {c['top3']:.0%}, best 1st {c['top1']:.0%}; "
            f"leave one task out: tau {c['leave_one_out']['tau']:+.3f}, top 3 {c['leave_one_out']['top3']:.0%}, "
            f"best 1st {c['leave_one_out']['top1']:.0%}"
        )


def print_markdown(report: dict[str, Any]) -> None:
    """The README's tables: per task, each method's tau (* = the best model ranked 1st), the
    fine-tuned macro-F1 of each model; then the averages."""
    short = {"size": "size", "quality": "quality", "old ranking": "old", "ranking": "ranking", "blend": "blend"}
    names = list(report["summary"])
    print("| task | fine-tuned macro-F1, best first | " + " | ".join(short.get(n, n) for n in names) + " |")
    print("|---|---|" + "---|" * len(names))
    for t in report["tasks"]:
        models = sorted(t["models"].items(), key=lambda kv: -(kv[1]["macro_f1"] or 0))
        f1 = ", ".join(f"{Path(m).name.replace('torchvision:', '')} {r['macro_f1']:.2f}" for m, r in models)
        cells = [f"{t['methods'][n]['tau']:+.2f}{'*' if t['methods'][n]['top1'] else ''}" for n in names]
        print(f"| {t['task']} ({t['kind']}, {t['modality']}) | {f1} | " + " | ".join(cells) + " |")
    print()
    print(
        "| average over " + str(len(report["tasks"])) + " tasks | " + " | ".join(short.get(n, n) for n in names) + " |"
    )
    print("|---|" + "---|" * len(names))
    for key, label in (("tau", "Kendall tau-b"), ("top1", "best model 1st"), ("top3", "best model in the top 3"),
                       ("twins_ok", "every pretrained model above its random twin")):  # fmt: skip
        fmt = (lambda v: f"{v:+.2f}") if key == "tau" else (lambda v: f"{v:.0%}")
        print(f"| {label} | " + " | ".join(fmt(report["summary"][n][key]) for n in names) + " |")
    if "bakeoff" in report:
        print()
        print("| task | bake-off winner | the best? | race seconds | share of the winner's full fine-tuning |")
        print("|---|---|---|---|---|")
        for t in report["tasks"]:
            b = t.get("bakeoff")
            if b:
                print(
                    f"| {t['task']} | {Path(b['winner']).name.replace('torchvision:', '')} | "
                    f"{'yes' if b['picks_best'] else 'no'} | {b['bakeoff_seconds']:.0f} | {b['share_of_full']:.0%} |"
                )
        b = report["bakeoff"]
        print(
            f"| all {b['tasks']} | | {b['picks_best']:.0%} | | max {b['share_of_full_max']:.0%}, mean {b['share_of_full_mean']:.0%} |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
