"""The Hugging Face Hub as a candidate source, when online: the most downloaded fine-tunable
backbones of a modality, with their safetensors parameter counts, card licenses and the
architecture figures of their config.json.

What is asked: one `GET /api/models` per pipeline tag (the request `HfApi.list_models` sends,
with the same parameters: `pipeline_tag`, `filter`, `sort=downloads`, `limit`, `expand`), parsed
into huggingface_hub's own `ModelInfo`; then each kept model's `config.json` (a few kB), in
parallel, for the figures memory prediction reads (hidden size, layers, heads, vocabulary,
positions). The pipeline tags, chosen for backbones a classifier head can be put on:

- text: `fill-mask` (encoders pre-trained by masked language modelling: BERT, RoBERTa, DeBERTa,
  XLM-R, ELECTRA; the usual start for sequence classification) and `sentence-similarity` /
  `feature-extraction` (sentence encoders such as all-MiniLM-L6-v2 and all-mpnet-base-v2, and
  embedding models). Not `text-classification`: those models are already fine-tuned on someone
  else's labels (sentiment, NLI, toxicity); their head is replaced anyway, and nothing in their
  metadata says what the tuning did to the backbone, so the ranking could not tell a sentiment
  model from a general encoder.
- image: `image-classification` (ImageNet-pretrained ViT, ConvNeXt, ResNet, Swin, ...; their head
  is replaced) and `image-feature-extraction` (DINOv2 and kin).

A model is kept only when the trainer can load it as it loads any Hugging Face model: a
`transformers` model with safetensors weights, not gated, no custom code, of a `model_type` that
`AutoModelForSequenceClassification` / `AutoModelForImageClassification` can build, of the
modality asked for.

Bounds: the whole query, configs included, takes at most `TIMEOUT_S` (2 s) of wall clock; what
has not answered by then is left (a model whose config did not come keeps its parameter count
and a note that its architecture figures are unknown; a list that did not come means the stale
cache or nothing). `HfApi.list_models` itself is not called: it sets no timeout and retries
timeouts and 5xx answers with back-off (1, 2, 4, 8 s), so no bound could hold around it. The
requests go through huggingface_hub's own HTTP session and headers (token, user agent, proxies).

Cache: `<cache_dir>/hub/<modality>-<endpoint hash>.json`, fresh for `TTL_S` (24 h); a failed query
is remembered there for `RETRY_S` (10 min), so that a machine without network pays the 2 s once,
not on every `recommend`; and in the process (the wizard ranks again on every constraint change).
`HF_HUB_OFFLINE=1` or `[constraints] offline = true` skips the Hub altogether.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from modelwiz.engine.fsutil import atomic_write_json, read_json
from modelwiz.engine.paths import cache_dir
from modelwiz.engine.sources.base import Candidate
from modelwiz.engine.sources.local import IMAGE_TYPES, config_figures

TIMEOUT_S = 2.0  # the whole query, wall clock
TTL_S = 24 * 3600.0  # a fetched list is fresh this long
RETRY_S = 600.0  # after a failure, the Hub is not asked again this long
LIMIT = 30  # models asked per pipeline tag
KEEP = 40  # models kept per modality, most downloaded first
CONFIG_WORKERS = 8
MAX_ANSWER_BYTES = 20_000_000
CACHE_VERSION = 1

PIPELINE_TAGS = {
    "text": ("fill-mask", "sentence-similarity", "feature-extraction"),
    "image": ("image-classification", "image-feature-extraction"),
}
EXPAND = ["downloads", "likes", "pipeline_tag", "library_name", "tags", "safetensors", "cardData", "config", "gated"]
# The Auto classes the trainer loads (engine/adapters/hf_text.py, hf_image.py).
AUTO_MAPPINGS = {
    "text": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
    "image": "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",
}
_OFF = {"1", "ON", "YES", "TRUE"}


@dataclass
class HubResult:
    candidates: list[Candidate] = field(default_factory=list)
    note: str = ""  # one line for the recommendation's notes


# -- public API ----------------------------------------------------------------------------------


def search(
    modality: str,
    *,
    offline: bool = False,
    timeout_s: float = TIMEOUT_S,
    ttl_s: float = TTL_S,
    retry_s: float = RETRY_S,
) -> HubResult:
    """The Hub's candidates for `modality` and one line saying where they come from (fetched now,
    cached, stale, none and why). Never raises and never waits longer than `timeout_s`."""
    if modality not in PIPELINE_TAGS:
        return HubResult()
    if offline:
        return HubResult(note="Hugging Face Hub not searched: [constraints] offline = true")
    if env_offline():
        return HubResult(note="Hugging Face Hub not searched: HF_HUB_OFFLINE is set")
    endpoint = endpoint_url()
    key = (endpoint, modality)
    now = time.time()
    with _LOCK:
        entry = _MEMO.get(key)
    if entry is None:
        entry = _read_cache(cache_file(endpoint, modality))
    if entry is not None and now - entry.get("fetched_at", 0.0) < ttl_s:
        return _answer(entry, modality, now, "")
    failed = (entry or {}).get("failed")
    if isinstance(failed, dict) and now - float(failed.get("at", 0.0)) < retry_s:
        wait = retry_s - (now - float(failed["at"]))
        return _answer(entry, modality, now, f"{failed.get('reason')}; asked again in {_age(wait)}")

    listed, reason = _fetch(endpoint, modality, timeout_s)
    now = time.time()
    if listed is not None:
        entry = {"version": CACHE_VERSION, "endpoint": endpoint, "fetched_at": now, "models": listed}
        failure = ""
    else:
        entry = {**(entry or {"version": CACHE_VERSION, "endpoint": endpoint, "models": []})}
        entry["failed"] = {"at": now, "reason": reason}
        failure = reason
    with _LOCK:
        _MEMO[key] = entry
    try:
        atomic_write_json(cache_file(endpoint, modality), entry)
    except OSError:
        pass  # an unwritable cache costs a query next time, nothing else
    return _answer(entry, modality, now, failure)


def cache_file(endpoint: str, modality: str) -> Path:
    digest = hashlib.sha1(endpoint.encode()).hexdigest()[:12]
    return cache_dir() / "hub" / f"{modality}-{digest}.json"


def clear_memo() -> None:
    """Forget what this process fetched (tests; the on-disk cache stays)."""
    with _LOCK:
        _MEMO.clear()


def env_offline() -> bool:
    """`HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) as set now."""
    return any(os.environ.get(v, "").upper() in _OFF for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def endpoint_url() -> str:
    """The Hub in use: `HF_ENDPOINT` as set now (huggingface_hub reads it once, at import)."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


# -- answer --------------------------------------------------------------------------------------


_MEMO: dict[tuple[str, str], dict[str, Any]] = {}
_LOCK = threading.Lock()
_FIELDS = {f.name for f in fields(Candidate)}


def _answer(entry: dict[str, Any] | None, modality: str, now: float, failure: str) -> HubResult:
    models = (entry or {}).get("models") or []
    cands = [Candidate(**{k: v for k, v in m.items() if k in _FIELDS}) for m in models if m.get("modality") == modality]
    fetched = float((entry or {}).get("fetched_at") or 0.0)
    if not failure:
        when = "fetched now" if now - fetched < 5 else f"list fetched {_age(now - fetched)} ago"
        return HubResult(cands, f"Hugging Face Hub: {len(cands)} {modality} models ({when})")
    if cands and fetched:
        return HubResult(cands, f"Hugging Face Hub: {failure}; its list cached {_age(now - fetched)} ago is used")
    return HubResult([], f"Hugging Face Hub: {failure}; no Hub models in this ranking")


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def _read_cache(path: Path) -> dict[str, Any] | None:
    try:
        entry = read_json(path)
    except (OSError, ValueError):
        return None
    if (
        not isinstance(entry, dict)
        or entry.get("version") != CACHE_VERSION
        or not isinstance(entry.get("models"), list)
    ):
        return None
    if not all(isinstance(m, dict) and isinstance(m.get("id"), str) for m in entry["models"]):
        return None
    failed = entry.get("failed")
    if not isinstance(entry.get("fetched_at", 0.0), (int, float)) or (
        failed is not None and not (isinstance(failed, dict) and isinstance(failed.get("at"), (int, float)))
    ):
        return None
    return entry


# -- fetch ---------------------------------------------------------------------------------------


class _Query:
    """What the worker threads found, read by the caller at the deadline."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.lock = threading.Lock()
        self.listed: list[dict[str, Any]] | None = None
        self.error = ""
        self.configs: dict[str, dict[str, Any]] = {}
        self.done = threading.Event()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


def _fetch(endpoint: str, modality: str, timeout_s: float) -> tuple[list[dict[str, Any]] | None, str]:
    """(candidate dicts, "") or (None, why not), within `timeout_s`."""
    q = _Query(timeout_s)
    threading.Thread(target=_work, args=(q, endpoint, modality), name="modelwiz-hub", daemon=True).start()
    q.done.wait(max(0.0, q.remaining()))
    with q.lock:
        listed, error, configs = q.listed, q.error, dict(q.configs)
    if listed is None:
        return None, error or _late(endpoint, timeout_s)
    out = []
    for m in listed:
        figures = configs.get(m["id"])
        if figures is not None:
            m = {**m, **figures}
        else:
            m = {**m, "refs": [*m["refs"], "architecture figures unknown (its config.json was not read in time)"]}
        out.append(m)
    return out, ""


def _work(q: _Query, endpoint: str, modality: str) -> None:
    try:
        from huggingface_hub.utils import build_hf_headers, get_session

        session, headers = get_session(), build_hf_headers()
        pages: dict[str, list[Any]] = {}
        errors: list[str] = []

        def one_tag(tag: str) -> None:
            params = {"pipeline_tag": tag, "filter": ["transformers"], "sort": "downloads", "limit": LIMIT}
            try:
                pages[tag] = _get_json(session, f"{endpoint}/api/models", q, headers, {**params, "expand": EXPAND})
            except Exception as exc:  # noqa: BLE001 - any failure is a reason in the notes
                errors.append(_reason(exc, endpoint, q.timeout_s))

        _run_all([lambda tag=tag: one_tag(tag) for tag in PIPELINE_TAGS[modality]], q)
        if errors or len(pages) < len(PIPELINE_TAGS[modality]):
            with q.lock:
                q.error = errors[0] if errors else _late(endpoint, q.timeout_s)
            return
        listed = _select([item for tag in PIPELINE_TAGS[modality] for item in pages[tag]], modality, endpoint)
        with q.lock:
            q.listed = listed

        def one_config(model_id: str) -> None:
            try:
                cfg = _get_json(session, f"{endpoint}/{model_id}/resolve/main/config.json", q, headers)
            except Exception:  # noqa: BLE001 - the model stays, its figures unknown
                return
            if isinstance(cfg, dict) and not cfg.get("auto_map"):
                figures = config_figures(cfg)
                figures["arch"] = figures["arch"] or next(m["arch"] for m in listed if m["id"] == model_id)
                with q.lock:
                    q.configs[model_id] = figures

        _run_all([lambda mid=m["id"]: one_config(mid) for m in listed], q, workers=CONFIG_WORKERS)
    except Exception as exc:  # noqa: BLE001 - never an error, a reason
        with q.lock:
            q.error = q.error or _reason(exc, endpoint, q.timeout_s)
    finally:
        q.done.set()


def _run_all(tasks: list[Any], q: _Query, workers: int | None = None) -> None:
    """Run `tasks` on daemon threads (a process may exit while one still waits on the network)
    until all are done or the deadline passes."""
    todo: queue.Queue[Any] = queue.Queue()
    for t in tasks:
        todo.put(t)
    n = min(len(tasks), workers or len(tasks))
    finished = threading.Semaphore(0)

    def worker() -> None:
        while q.remaining() > 0:
            try:
                task = todo.get_nowait()
            except queue.Empty:
                break
            task()
        finished.release()

    for i in range(n):
        threading.Thread(target=worker, name=f"modelwiz-hub-{i}", daemon=True).start()
    for _ in range(n):
        if not finished.acquire(timeout=max(0.0, q.remaining())):
            return


def _get_json(session: Any, url: str, q: _Query, headers: dict[str, str], params: dict | None = None) -> Any:
    import httpx2
    from huggingface_hub.utils import hf_raise_for_status

    left = q.remaining()
    if left <= 0:
        raise TimeoutError("the time allowed ran out")
    r = session.get(url, params=params, headers=headers, timeout=httpx2.Timeout(left), follow_redirects=True)
    hf_raise_for_status(r)
    if len(r.content) > MAX_ANSWER_BYTES:
        raise ValueError(f"answered {len(r.content)} bytes, more than a model list or a config holds")
    try:
        return json.loads(r.content)
    except ValueError:
        raise ValueError("answered something that is not JSON") from None


def _late(endpoint: str, timeout_s: float) -> str:
    return f"no answer from {endpoint} within {timeout_s:g} s"


def _reason(exc: BaseException, endpoint: str, timeout_s: float) -> str:
    """One line saying why the Hub gave nothing."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        return f"{endpoint} answered HTTP {status}"
    if isinstance(exc, (httpx2.TimeoutException, TimeoutError)):
        return _late(endpoint, timeout_s)
    if isinstance(exc, httpx2.TransportError):
        text = " ".join(str(exc).split())[:120]
        return f"cannot reach {endpoint} ({text or type(exc).__name__})"
    if isinstance(exc, ValueError):
        return f"{endpoint} {' '.join(str(exc).split())[:160]}"
    return f"{endpoint}: {type(exc).__name__}"


def _select(items: list[Any], modality: str, endpoint: str) -> list[dict[str, Any]]:
    """The candidate dicts worth ranking, most downloaded first, each model once."""
    from huggingface_hub.hf_api import ModelInfo

    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValueError("the model list is not a JSON list of objects")
    trainable = trainable_types(modality)
    seen: set[str] = set()
    out: list[tuple[int, dict[str, Any]]] = []
    for item in items:
        try:
            info = ModelInfo(**{**item, "siblings": None})
        except Exception:  # noqa: BLE001 - an entry of an unexpected shape is skipped
            continue
        cand = _candidate(info, modality, trainable, endpoint)
        if cand is None or cand.id.lower() in seen:
            continue
        seen.add(cand.id.lower())
        out.append((int(info.downloads or 0), asdict(cand)))
    out.sort(key=lambda pair: -pair[0])
    return [c for _, c in out[:KEEP]]


def _candidate(info: Any, modality: str, trainable: frozenset[str] | None, endpoint: str) -> Candidate | None:
    tags = [str(t) for t in (info.tags or [])]
    cfg = info.config if isinstance(info.config, dict) else {}
    model_type = str(cfg.get("model_type") or "")
    total = getattr(info.safetensors, "total", None) if info.safetensors is not None else None
    if not isinstance(info.id, str) or not total or info.gated or "custom_code" in tags or cfg.get("auto_map"):
        return None
    if (info.library_name or "transformers") != "transformers" or not model_type:
        return None
    if trainable is not None and model_type not in trainable:
        return None
    if modality == "text" and model_type in IMAGE_TYPES:  # e.g. a ViT under feature-extraction
        return None
    card = info.card_data
    license_ = getattr(card, "license", None) if card is not None else None
    if isinstance(license_, list):
        license_ = license_[0] if len(license_) == 1 else None
    if not license_:
        license_ = next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), None)
    langs = getattr(card, "language", None) if card is not None else None
    langs = [langs] if isinstance(langs, str) else [str(x) for x in langs or []]
    downloads = int(info.downloads or 0)
    return Candidate(
        id=info.id,
        name=info.id.split("/")[-1],
        source="hub",
        modality=modality,
        arch=model_type,
        params=int(total),
        license=str(license_ or "unknown").lower(),
        languages=langs,
        refs=[
            f"{endpoint}/{info.id}",
            f"Hugging Face Hub: {downloads:,} downloads in 30 days, pipeline {info.pipeline_tag or '?'}",
        ],
    )


@lru_cache(maxsize=2)
def trainable_types(modality: str) -> frozenset[str] | None:
    """The model types the trainer's Auto class can build for `modality`, read from the
    installed transformers' `modeling_auto.py` without importing it (importing the auto classes
    costs about 2.5 s here); None when it cannot be read (then every type is let through and the
    pre-flight check decides)."""
    try:
        spec = find_spec("transformers")
        if spec is None or spec.origin is None:
            return None
        source = (Path(spec.origin).parent / "models" / "auto" / "modeling_auto.py").read_text(encoding="utf-8")
        tree = ast.parse(source)
    except (OSError, SyntaxError, ValueError, ImportError):
        return None
    name = AUTO_MAPPINGS[modality]
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            try:
                pairs = ast.literal_eval(node.value.args[0])  # type: ignore[attr-defined]
                return frozenset(str(k) for k, _ in pairs)
            except (AttributeError, IndexError, ValueError, TypeError):
                return None
    return None
