"""Loading and checking the user's labelled data, before any model is touched.

Text: CSV, TSV or JSONL with a text and a label column (auto-detected unless named).
Images: a folder with one sub-folder per class.

Everything a user can get wrong raises `UserError` with one line naming the problem and the fix.
Softer problems (imbalance, duplicates, very short texts) are returned as warnings in the summary.
"""

from __future__ import annotations

import csv
import json
import random
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelwiz.engine.errors import UserError

TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".ndjson": None}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
TEXT_NAMES = (
    "text",
    "sentence",
    "review",
    "content",
    "message",
    "body",
    "comment",
    "document",
    "utterance",
    "query",
    "question",
    "tweet",
    "description",
    "title",
    "input",
)
LABEL_NAMES = ("label", "labels", "class", "category", "target", "y", "intent", "sentiment", "tag", "topic")
MIN_PER_CLASS = 2
MAX_FILE_BYTES = 2 * 1024**3
# Images above this are refused before decoding (PIL's own warning threshold, ~89 MP: a 3-channel
# image that size is already ~270 MB decoded). Larger ones are usually decompression bombs.
MAX_IMAGE_PIXELS = 89_478_485
_EN_STOPWORDS = set(
    "the a an and or to of in on for is are was were it this that with my your i you we be not have has "
    "at by from as but do does did can will would please".split()
)


@dataclass
class Split:
    items: list[Any]  # texts (str) or image paths (str)
    labels: list[int]


@dataclass
class DataSummary:
    modality: str
    source: str
    rows: int
    label_names: list[str]
    class_counts: dict[str, int]
    train_size: int
    val_size: int
    text_column: str = ""
    label_column: str = ""
    length_chars: dict[str, float] = field(default_factory=dict)  # min / mean / median / p95 / max
    length_words: dict[str, float] = field(default_factory=dict)
    language: str = ""  # "en", "non-en" or "" (unknown / images)
    dropped_rows: int = 0
    duplicates: int = 0
    warnings: list[str] = field(default_factory=list)
    preview: list[dict[str, str]] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @property
    def balance(self) -> float:
        """Smallest class over largest class (1.0 = balanced)."""
        counts = list(self.class_counts.values())
        low, high = min(counts, default=0), max(counts, default=0)
        return low / high if high else 0.0

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["num_classes"] = self.num_classes
        d["balance"] = round(self.balance, 3)
        return d


@dataclass
class TaskData:
    modality: str
    label_names: list[str]
    train: Split
    val: Split
    summary: DataSummary


# ----------------------------------------------------------------------------------- reading text


def _check_file(path: Path, what: str) -> None:
    if not str(path):
        raise UserError(f"no {what} given; set [task] train to a .csv, .tsv or .jsonl file")
    if not path.exists():
        raise UserError(
            f"{what} {path} does not exist; check the path ([task] train in a config is relative to the config's folder)"
        )
    if path.is_dir():
        raise UserError(
            f'{what} {path} is a folder; for text give a .csv/.tsv/.jsonl file, for images set [task] modality = "image"'
        )
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"{what} {path} is empty; it needs a header row and labelled examples")
    if size > MAX_FILE_BYTES:
        raise UserError(f"{what} {path} is larger than 2 GiB; sample it down first")


def _read_text_file(path: Path) -> str:
    raw = path.read_bytes()
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise UserError(f"{path} is UTF-16 text; re-save it as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet)")
    if b"\x00" in raw[:4096]:
        raise UserError(f"{path} looks like a binary file, not CSV/TSV/JSONL text; export your data as UTF-8 text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text (bad byte at offset {exc.start}); re-save it as UTF-8") from None


def read_table(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows of a CSV/TSV/JSONL file."""
    suffix = path.suffix.lower()
    if path.is_dir() or not path.exists():
        _check_file(path, "data file")
    if suffix not in TEXT_SUFFIXES:
        raise UserError(f"{path}: unsupported file type '{suffix or 'none'}'; use .csv, .tsv or .jsonl")
    _check_file(path, "data file")
    text = _read_text_file(path)
    if suffix in (".jsonl", ".ndjson"):
        rows: list[dict[str, Any]] = []
        columns: dict[str, None] = {}
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                raise UserError(
                    f"{path}:{n}: not valid JSON; each line must be one JSON object like "
                    '{"text": "...", "label": "..."}'
                ) from None
            if not isinstance(obj, dict):
                raise UserError(f"{path}:{n}: expected a JSON object per line, got {type(obj).__name__}")
            rows.append(obj)
            for k in obj:
                columns.setdefault(str(k), None)
        return list(columns), rows
    delimiter = sniff_delimiter(text, TEXT_SUFFIXES[suffix] or ",")
    what = _DELIMITER_NAMES[delimiter]
    try:
        reader = csv.reader(text.splitlines(), delimiter=delimiter, strict=True)
        table = [r for r in reader]
    except csv.Error as exc:
        raise UserError(f"{path}: cannot parse as {what} ({exc}); check quoting") from None
    table = [r for r in table if any(cell.strip() for cell in r)]
    if not table:
        raise UserError(f"{path} has no rows; it needs a header row and labelled examples")
    header = [h.strip() for h in table[0]]
    if len(header) < 2:
        raise UserError(
            f"{path}: found {len(header)} column (no comma, semicolon, tab or | separates the header's "
            "fields); need a text column and a label column"
        )
    if len(set(header)) != len(header):
        dup = [h for h, c in Counter(header).items() if c > 1][0]
        raise UserError(f"{path}: column name '{dup}' appears twice in the header; rename one")
    rows = []
    for n, r in enumerate(table[1:], 2):
        if len(r) != len(header):
            raise UserError(
                f"{path}: row {n} has {len(r)} fields but the header has {len(header)}; "
                "quote fields that contain the separator"
            )
        rows.append(dict(zip(header, r, strict=False)))
    return header, rows


_DELIMITER_NAMES = {",": "CSV", ";": "semicolon-separated CSV", "\t": "TSV", "|": "|-separated CSV"}
SNIFF_BYTES = 64 * 1024


def sniff_delimiter(text: str, default: str) -> str:
    """The field separator of a delimited text file, judged on its first 64 KiB by parsing: a
    candidate (comma, semicolon, tab, |) fits when it splits the header into two or more fields
    and the rows into as many. The suffix's `default` wins unless another fits more rows (so a
    semicolon or tab-separated `.csv` is read as such); when none fits, `default` (the parse then
    names the bad row). `csv.Sniffer` counts characters and guesses wrong on texts full of
    punctuation, e.g. a comma-separated file whose texts contain semicolons."""
    sample = text[:SNIFF_BYTES]
    lines = sample.splitlines()
    if len(sample) < len(text) and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut mid-way

    def consistent_rows(delim: str) -> int:
        try:
            rows = [r for r in csv.reader(lines, delimiter=delim) if any(c.strip() for c in r)]
        except csv.Error:
            return -1
        if not rows or len(rows[0]) < 2:
            return -1
        width = len(rows[0])
        # a quoted field may span lines, so a row cut at the sample's end may be short
        good = sum(len(r) == width for r in rows[1:])
        return good if good >= len(rows[1:]) - 1 else -1

    scores = {d: consistent_rows(d) for d in _DELIMITER_NAMES}
    best = max(scores, key=lambda d: scores[d])  # ties: the first of , ; tab |
    if scores[best] > scores[default]:
        return best
    return default


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value).strip()


def detect_columns(
    columns: list[str], rows: list[dict[str, Any]], text_column: str = "", label_column: str = "", source: str = ""
) -> tuple[str, str]:
    """The text and label columns: named ones are checked, otherwise guessed from names and content."""
    where = f"{source}: " if source else ""
    for name, what in ((text_column, "text_column"), (label_column, "label_column")):
        if name and name not in columns:
            raise UserError(f"{where}[task] {what} '{name}' is not a column; columns are: {', '.join(columns)}")
    sample = rows[:2000]

    def values(col: str) -> list[str]:
        return [_cell(r.get(col)) for r in sample]

    lower = {c.lower(): c for c in columns}
    label = label_column or next((lower[n] for n in LABEL_NAMES if n in lower and lower[n] != text_column), "")
    text = text_column or next((lower[n] for n in TEXT_NAMES if n in lower and lower[n] != label), "")
    if not text:
        # the column with the longest values that is mostly non-numeric
        best, best_len = "", 0.0
        for c in columns:
            if c == label:
                continue
            vals = [v for v in values(c) if v]
            if not vals or sum(_is_number(v) for v in vals) > len(vals) / 2:
                continue
            mean_len = sum(len(v) for v in vals) / len(vals)
            if mean_len > best_len:
                best, best_len = c, mean_len
        text = best
    if not label:
        # the column with the fewest distinct short values
        best, best_card = "", None
        for c in columns:
            if c == text:
                continue
            vals = [v for v in values(c) if v]
            if not vals:
                continue
            card = len(set(vals))
            if card < 2 or card > max(2, len(vals) // 2) or max(len(v) for v in vals) > 64:
                continue
            if best_card is None or card < best_card:
                best, best_card = c, card
        label = best
    if not text:
        raise UserError(f"{where}no text column found among {', '.join(columns)}; set [task] text_column")
    if not label:
        raise UserError(
            f"{where}no label column found among {', '.join(columns)} (a column with a few repeated "
            "values); set [task] label_column"
        )
    if text == label:
        raise UserError(f"{where}text and label columns are both '{text}'; set [task] text_column and label_column")
    return text, label


def _is_number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    s = sorted(values)

    def at(q: float) -> int:
        return s[min(len(s) - 1, int(q * len(s)))]

    # the quantiles are what the plan's time prediction reads (engine/speed.py expected_padded_length)
    return {
        "min": s[0],
        "mean": round(statistics.fmean(s), 1),
        "p10": at(0.10),
        "p25": at(0.25),
        "median": statistics.median(s),
        "p75": at(0.75),
        "p90": at(0.90),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": s[-1],
    }


def guess_language(texts: list[str]) -> str:
    """'en' when English function words are common, 'non-en' when texts are clearly something else."""
    words = [w for t in texts[:500] for w in re.findall(r"[^\W\d_]+", t.lower())]
    if len(words) < 20:
        return ""
    share = sum(w in _EN_STOPWORDS for w in words) / len(words)
    non_ascii = sum(any(ord(ch) > 127 for ch in w) for w in words) / len(words)
    if share >= 0.12 and non_ascii < 0.2:
        return "en"
    if share < 0.05:
        return "non-en"
    return ""


def load_text_rows(
    path: Path, text_column: str = "", label_column: str = ""
) -> tuple[list[str], list[str], str, str, int]:
    columns, rows = read_table(path)
    if not rows:
        raise UserError(f"{path} has a header but no examples; add labelled rows")
    text_col, label_col = detect_columns(columns, rows, text_column, label_column, str(path))
    texts, labels, dropped = [], [], 0
    for r in rows:
        t, y = _cell(r.get(text_col)), _cell(r.get(label_col))
        if not t or not y:
            dropped += 1
            continue
        texts.append(t)
        labels.append(y)
    if not texts:
        raise UserError(f"{path}: every row has an empty '{text_col}' or '{label_col}'; fill in texts and labels")
    return texts, labels, text_col, label_col, dropped


# ----------------------------------------------------------------------------------- reading images


def load_image_folder(root: Path, *, verify: bool = True) -> tuple[list[str], list[str]]:
    if not root.exists():
        raise UserError(
            f"image folder {root} does not exist; set [task] train to a folder with one sub-folder per class"
        )
    if not root.is_dir():
        raise UserError(f"{root} is a file; for images set [task] train to a folder with one sub-folder per class")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise UserError(
            f"{root} has no class sub-folders; put each class's images in its own sub-folder ({root}/cat/1.jpg)"
        )
    paths, labels = [], []
    for d in class_dirs:
        for f in sorted(d.rglob("*")):
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."):
                paths.append(str(f))
                labels.append(d.name)
    if not paths:
        raise UserError(f"{root}: no images (.jpg, .png, ...) in its class sub-folders")
    if verify:
        for p in paths:
            verify_image(p)
    return paths, labels


def verify_image(path: str) -> None:
    """Refuse an image that cannot be decoded, or that declares more than MAX_IMAGE_PIXELS (a
    decompression bomb: a few KB on disk, gigabytes once decoded). Reads the header and checks
    the file's integrity; never decodes the pixels."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # PIL warns above its limit (check_image_size refuses those, naming the size) and
            # raises above twice it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                check_image_size(path, im.size)
                im.verify()
    except Image.DecompressionBombError:
        raise image_too_large(path) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"corrupt or unreadable image {path} ({reason}); delete or replace it") from None


def check_image_size(path: str, size: tuple[int, int]) -> None:
    """Raise unless `size` (from the header) is a real image within MAX_IMAGE_PIXELS."""
    width, height = size
    if width <= 0 or height <= 0:
        raise UserError(f"image {path} is {width}x{height} pixels; delete or replace it")
    if width * height > MAX_IMAGE_PIXELS:
        raise image_too_large(path, size)


def image_too_large(path: str, size: tuple[int, int] | None = None) -> UserError:
    declared = f"is {size[0]}x{size[1]} pixels" if size else "declares more pixels than that"
    return UserError(
        f"image {path} {declared}; modelwiz decodes at most {MAX_IMAGE_PIXELS / 1e6:.0f} million pixels "
        "(a decompression bomb?): resize it or delete it"
    )


# ----------------------------------------------------------------------------------- splitting


def stratified_split(labels: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, val): each class contributes round(n*fraction) examples to validation, at least
    one, and keeps at least one in training. Seeded, so the same data gives the same split."""
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    train, val = [], []
    for y in sorted(by_class):
        idx = by_class[y][:]
        rng.shuffle(idx)
        k = min(max(1, round(len(idx) * fraction)), len(idx) - 1)
        val.extend(idx[:k])
        train.extend(idx[k:])
    rng.shuffle(train)
    val.sort()
    return train, val


def load_task_data(task: Any, *, seed: int = 42, verify_images: bool = True) -> TaskData:
    """Read, check and split the data named by a `TaskConfig`."""
    path = Path(task.train) if task.train else Path("")
    if not task.train:
        raise UserError("[task] train is not set; point it at your data file (text) or class-folder root (images)")
    text_col = label_col = ""
    dropped = 0
    if task.modality == "image":
        items, raw_labels = load_image_folder(path, verify=verify_images)
    else:
        items, raw_labels, text_col, label_col, dropped = load_text_rows(path, task.text_column, task.label_column)

    counts = Counter(raw_labels)
    label_names = sorted(counts)
    source = str(path)
    if len(label_names) < 2:
        raise UserError(
            f"{source}: only one class ('{label_names[0]}') — classification needs at least 2 classes; "
            "check the label column" + (f" ('{label_col}')" if label_col else "")
        )
    if len(label_names) > 1000 or (task.modality == "text" and len(label_names) > max(50, len(items) // 2)):
        raise UserError(
            f"{source}: {len(label_names)} distinct labels in {len(items)} examples — "
            f"'{label_col or 'label'}' does not look like a class column; set [task] label_column"
        )
    index = {name: i for i, name in enumerate(label_names)}
    labels = [index[y] for y in raw_labels]

    if isinstance(task.validation, str):
        val_path = Path(task.validation)
        if task.modality == "image":
            v_items, v_raw = load_image_folder(val_path, verify=verify_images)
        else:
            v_items, v_raw, *_ = load_text_rows(val_path, text_col, label_col)
        unknown = sorted(set(v_raw) - set(index))
        if unknown:
            raise UserError(
                f"{val_path}: label '{unknown[0]}' does not occur in the training data; "
                "validation labels must be a subset of training labels"
            )
        train = Split(items, labels)
        val = Split(v_items, [index[y] for y in v_raw])
    else:
        small = [name for name in label_names if counts[name] < MIN_PER_CLASS]
        if small:
            raise UserError(
                f"{source}: class '{small[0]}' has only {counts[small[0]]} example; each class needs at "
                f"least {MIN_PER_CLASS} (10+ recommended) — add examples or remove the class"
            )
        tr_idx, va_idx = stratified_split(labels, float(task.validation), seed)
        train = Split([items[i] for i in tr_idx], [labels[i] for i in tr_idx])
        val = Split([items[i] for i in va_idx], [labels[i] for i in va_idx])

    summary = DataSummary(
        modality=task.modality,
        source=source,
        rows=len(items),
        label_names=label_names,
        class_counts={name: counts[name] for name in label_names},
        train_size=len(train.items),
        val_size=len(val.items),
        text_column=text_col,
        label_column=label_col,
        dropped_rows=dropped,
    )
    _describe(summary, items, raw_labels)
    return TaskData(task.modality, label_names, train, val, summary)


def _describe(summary: DataSummary, items: list[str], raw_labels: list[str]) -> None:
    w = summary.warnings
    if summary.modality == "text":
        summary.length_chars = _stats([len(t) for t in items])
        summary.length_words = _stats([len(t.split()) for t in items])
        summary.language = guess_language(items)
        seen: dict[str, str] = {}
        dup = conflict = 0
        for t, y in zip(items, raw_labels, strict=True):
            key = t.strip().lower()
            if key in seen:
                dup += 1
                conflict += seen[key] != y
            else:
                seen[key] = y
        summary.duplicates = dup
        if dup:
            w.append(f"{dup} duplicate texts" + (f", {conflict} of them with a different label" if conflict else ""))
        short = sum(1 for t in items if len(t.split()) < 3)
        if short > len(items) * 0.1:
            w.append(f"{short} texts have fewer than 3 words")
        summary.preview = [{"text": t[:200], "label": y} for t, y in list(zip(items, raw_labels, strict=True))[:8]]
    else:
        summary.preview = [{"path": p, "label": y} for p, y in list(zip(items, raw_labels, strict=True))[:8]]
    if summary.dropped_rows:
        w.append(f"{summary.dropped_rows} rows skipped: empty text or label")
    if summary.balance < 0.2:
        small = min(summary.class_counts, key=summary.class_counts.get)  # type: ignore[arg-type]
        w.append(
            f"classes are imbalanced: '{small}' has {summary.class_counts[small]} examples vs "
            f"{max(summary.class_counts.values())} for the largest"
        )
    few = [n for n, c in summary.class_counts.items() if c < 10]
    if few:
        w.append(f"{len(few)} class(es) have fewer than 10 examples (e.g. '{few[0]}'); results will be noisy")
