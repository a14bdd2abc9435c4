"""Models from the Hugging Face Hub: download, find in the local cache, list the cache.

Everything goes through `huggingface_hub` (2.x) and its standard cache (`$HF_HOME/hub`), so a model
downloaded here is also found by `transformers`, and one downloaded by `transformers` is found here.
`huggingface_hub` is imported inside the functions: importing this module costs nothing.

Only what fine-tuning needs is downloaded: the root-level config, tokenizer and processor files and
the safetensors weights. Pickle-based weights (`*.bin`, `*.pt`, ...), other frameworks' weights
(`*.msgpack`, `*.h5`, ONNX) and sub-folders are never fetched. Every failure the user can fix
(unknown id, gated model, no network, offline and not cached, no safetensors) becomes a one-line
`UserError`.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Callable
from pathlib import Path

from modelwiz.engine.errors import UserError
from modelwiz.engine.redact import redact

# Root-level files worth having for config, tokenizer, processor and weights.
ALLOW_PATTERNS = [
    "*.json",  # config, tokenizer, processor, generation config, safetensors index
    "*.safetensors",
    "*.txt",  # vocab.txt, merges.txt
    "*.model",  # sentencepiece
    "*.tiktoken",
    "*.jinja",  # chat template
    "README.md",  # model card: license, intended use
]
# Anything in a sub-folder (onnx/, openvino/, checkpoints, sentence-transformers modules).
IGNORE_PATTERNS = ["*/*"]

Progress = Callable[[str], None]


# -- public API ----------------------------------------------------------------------------------


def cached_model_path(repo_id: str, revision: str | None = None) -> Path | None:
    """The local snapshot folder of `repo_id` if its config and safetensors weights are in the
    Hugging Face cache, else None. Never touches the network."""
    try:
        from huggingface_hub import snapshot_download, try_to_load_from_cache
        from huggingface_hub.errors import LocalEntryNotFoundError

        config = try_to_load_from_cache(repo_id, "config.json", revision=revision)
        if not isinstance(config, str):
            return None
        # Also confirms the snapshot is complete when a download recorded its file list.
        folder = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                local_files_only=True,
                allow_patterns=ALLOW_PATTERNS,
                ignore_patterns=IGNORE_PATTERNS,
            )
        )
    except (LocalEntryNotFoundError, ValueError, OSError):
        return None
    if not (folder / "config.json").is_file() or not _has_safetensors(folder):
        return None
    return folder


def download_model(
    repo_id: str,
    *,
    revision: str | None = None,
    offline: bool = False,
    progress: Progress | None = None,
) -> Path:
    """A local folder with `repo_id`'s config, tokenizer/processor files and safetensors weights.

    From the cache when it is there (no network); otherwise downloaded from the Hub
    (`HF_ENDPOINT`). `offline=True` or `HF_HUB_OFFLINE=1` forbids the download.
    Raises `UserError` (one line) for anything the user can fix.
    """
    say = progress or (lambda message: None)
    cached = cached_model_path(repo_id, revision)
    if cached is not None:
        say(f"{repo_id}: found in the local Hugging Face cache")
        return cached
    if offline or hub_offline():
        raise UserError(
            f"model '{repo_id}' is not in the local Hugging Face cache and offline mode is on; "
            "run once with network or set [constraints] offline = false"
        )

    from huggingface_hub import HfApi, snapshot_download

    endpoint = hub_endpoint()
    try:
        say(f"{repo_id}: looking it up on {endpoint}")
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
        files = _files_to_download(repo_id, info.siblings)
        size = sum((s.size or 0) for s in info.siblings or [] if s.rfilename in files)
        say(f"{repo_id}: downloading {len(files)} files ({_human_size(size)})")
        folder = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                allow_patterns=ALLOW_PATTERNS,
                ignore_patterns=IGNORE_PATTERNS,
                tqdm_class=_progress_bar_class(say, repo_id),
            )
        )
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - translated when the user can fix it, re-raised otherwise
        error = _user_error(exc, repo_id, revision, endpoint)
        if error is None:
            raise
        raise error from exc

    if not (folder / "config.json").is_file() or not _has_safetensors(folder):
        raise UserError(f"the download of '{repo_id}' into {folder} is incomplete; run again to resume it")
    say(f"{repo_id}: ready in {folder}")
    return folder


def remote_config(repo_id: str, *, revision: str | None = None) -> dict:
    """`repo_id`'s parsed config.json, after asking the Hub that the model exists, may be read
    with the token in use and has safetensors weights: what a run needs to know before it starts,
    without downloading any weights (config.json lands in the cache, where the download reuses it).
    Raises `UserError` (one line) for anything the user can fix."""
    from huggingface_hub import HfApi, hf_hub_download

    endpoint = hub_endpoint()
    try:
        info = HfApi().model_info(repo_id, revision=revision)
        _files_to_download(repo_id, info.siblings)
        path = Path(hf_hub_download(repo_id, "config.json", revision=revision))
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - translated when the user can fix it, re-raised otherwise
        error = _user_error(exc, repo_id, revision, endpoint)
        if error is None:
            raise
        raise error from exc
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise UserError(f"the config.json of '{repo_id}' on the Hugging Face Hub is not valid JSON") from None
    if not isinstance(config, dict):
        raise UserError(f"the config.json of '{repo_id}' on the Hugging Face Hub is not a JSON object")
    return config


def list_cached_models() -> list[dict]:
    """Models in the local Hugging Face cache, largest first.

    Each entry: `repo_id`, `path` (the snapshot of `main`, else the newest one), `revision` (its
    commit), `size_on_disk` (bytes, whole repo), `last_modified` (timestamp) and `complete`
    (config and safetensors weights present in that snapshot). Never raises.
    """
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir()
    except Exception:  # noqa: BLE001 - no cache (CacheNotFound), unreadable cache: nothing cached
        return []
    models = []
    for repo in info.repos:
        if repo.repo_type != "model" or not repo.revisions:
            continue
        refs = repo.refs
        rev = refs.get("main") or max(repo.revisions, key=lambda r: r.last_modified)
        folder = Path(rev.snapshot_path)
        models.append(
            {
                "repo_id": repo.repo_id,
                "path": str(folder),
                "revision": rev.commit_hash,
                "size_on_disk": int(repo.size_on_disk),
                "last_modified": float(rev.last_modified),
                "complete": (folder / "config.json").is_file() and _has_safetensors(folder),
            }
        )
    models.sort(key=lambda m: (-m["size_on_disk"], m["repo_id"]))
    return models


def hub_endpoint() -> str:
    """The Hub URL in use (`HF_ENDPOINT`, read by huggingface_hub when it was imported)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_offline() -> bool:
    """Whether `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) forbids network access."""
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}:
        return True
    from huggingface_hub import constants

    return constants.is_offline_mode()


# -- helpers -------------------------------------------------------------------------------------


def _files_to_download(repo_id: str, siblings) -> list[str]:
    names = [s.rfilename for s in siblings or []]
    wanted = [
        n
        for n in names
        if any(fnmatch.fnmatchcase(n, p) for p in ALLOW_PATTERNS)
        and not any(fnmatch.fnmatchcase(n, p) for p in IGNORE_PATTERNS)
    ]
    if not any(n.endswith(".safetensors") for n in wanted):
        raise UserError(
            f"model '{repo_id}' has no safetensors weights; modelwiz loads only safetensors by default "
            "(pick another model or convert it with `transformers` and use the local folder)"
        )
    if "config.json" not in wanted:
        raise UserError(f"model '{repo_id}' has no config.json; it is not a transformers model modelwiz can load")
    return wanted


def _has_safetensors(folder: Path) -> bool:
    """Weights complete: every shard named by the index exists, or one safetensors file does."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return False
        return bool(shards) and all((folder / s).is_file() for s in shards)
    return any(p.is_file() for p in folder.glob("*.safetensors"))


def _user_error(exc: BaseException, repo_id: str, revision: str | None, endpoint: str) -> UserError | None:
    """The one-line `UserError` for a failure the user can fix; None for a bug or unknown failure.
    Its text never carries a token (engine.redact), whatever the library's message held."""
    error = _translate(exc, repo_id, revision, endpoint)
    return None if error is None else UserError(redact(str(error)))


def _translate(exc: BaseException, repo_id: str, revision: str | None, endpoint: str) -> UserError | None:
    import httpx2
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    token_hint = "run `hf auth login` or set HF_TOKEN"
    # snapshot_download wraps network failures in LocalEntryNotFoundError: look down the chain.
    for err in _chain(exc):
        if isinstance(err, HFValidationError):
            return UserError(f"'{repo_id}' is not a valid Hugging Face model id (expected 'org/name')")
        if isinstance(err, GatedRepoError):
            return UserError(
                f"model '{repo_id}' is gated and needs a Hugging Face token: {token_hint} "
                "(and accept its terms on the model page)"
            )
        if isinstance(err, RepositoryNotFoundError):
            return UserError(
                f"no model '{repo_id}' on the Hugging Face Hub (HF_ENDPOINT={endpoint}); check the id "
                f"(a private model needs a token: {token_hint})"
            )
        if isinstance(err, RevisionNotFoundError):
            return UserError(f"model '{repo_id}' has no revision '{revision}' on the Hugging Face Hub; check it")
        if isinstance(err, HfHubHTTPError):
            status = err.response.status_code if err.response is not None else None
            if status in (401, 403):
                return UserError(f"model '{repo_id}' needs a Hugging Face token: {token_hint}")
            return UserError(
                f"the Hugging Face Hub at {endpoint} answered HTTP {status} for '{repo_id}'; "
                "try again later or use a local model folder"
            )
        if isinstance(err, OfflineModeIsEnabled):
            return UserError(
                f"model '{repo_id}' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
                "run once with network or unset HF_HUB_OFFLINE"
            )
        if isinstance(err, httpx2.TransportError):
            reason = _one_line(str(err)) or type(err).__name__
            return UserError(
                f"cannot reach the Hugging Face Hub at {endpoint}: {reason}; "
                "check the network or use a local model folder"
            )
    for err in _chain(exc):
        if isinstance(err, OSError) and err.errno is not None:
            where = f" ({err.filename})" if err.filename else ""
            return UserError(f"cannot write '{repo_id}' to the Hugging Face cache{where}: {err.strerror}")
    return None


def _chain(exc: BaseException):
    seen: set[int] = set()
    err: BaseException | None = exc
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _human_size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    size = float(n)
    for unit in ("kB", "MB", "GB", "TB"):
        size /= 1000
        if size < 1000 or unit == "TB":
            break
    return f"{size:.1f} {unit}"


def _progress_bar_class(say: Progress, repo_id: str):
    """A silent huggingface_hub progress bar that reports finished files through `say`.

    The library's own bars would write to stderr, which the wizard's screen and `--json` output
    must not get.
    """
    from huggingface_hub.utils import tqdm as hf_tqdm

    class _Bar(hf_tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            desc = str(kwargs.get("desc") or "")
            self._count_files = desc.startswith("Fetching")
            self._done = 0
            self._of = kwargs.get("total")
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            if self._count_files and n:
                self._done += int(n)
                say(f"{repo_id}: {self._done}/{self._of} files")
            return super().update(n)

    return _Bar
