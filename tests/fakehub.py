"""A fake Hugging Face Hub on loopback, serving model repos from local folders.

It answers exactly what `huggingface_hub` 2.x (`snapshot_download`, `hf_hub_download`,
`HfApi.model_info`, `HfApi.list_repo_tree`) and transformers 5.x (`from_pretrained`) ask for, with
the headers and error codes the real Hub sends:

    GET  /api/models?pipeline_tag=&filter=&sort=downloads&limit=&expand=...
                                                   the model list (`HfApi.list_models`): repos of
                                                   that pipeline tag carrying every filter tag,
                                                   most downloaded first, each with `_id`, `id`
                                                   and the fields `expand` names, in the real
                                                   Hub's shape (safetensors, cardData, config, ...)
    GET  /api/models/{repo}                        model info (sha, siblings, gated, safetensors)
    GET  /api/models/{repo}/revision/{rev}         same, at a revision ("main" or the commit sha)
    GET  /api/models/{repo}/tree/{rev}[/{path}]    file listing (`recursive`, `expand` ignored)
    HEAD/GET /{repo}/resolve/{rev}/{file}          file metadata / content: ETag, X-Repo-Commit,
                                                   Content-Length; LFS files (weights) answer 302
                                                   to a "CDN" on another origin with
                                                   X-Linked-Etag / X-Linked-Size, like the real Hub
    HEAD/GET /cdn/{sha256}                         the LFS "CDN" (reached as http://localhost:PORT)

Errors: unknown or private repo → 401 `X-Error-Code: RepoNotFound` (404 when a token was sent),
missing file or tree path → 404 `EntryNotFound`, unknown revision → 404 `RevisionNotFound`, gated
repo without an accepted token → 401 `GatedRepo` on file downloads (its info and tree are public,
as on the Hub). No Xet headers (`X-Xet-Hash`) and no `xetHash` in tree entries are ever sent, so
the client downloads over plain HTTP. Every request is recorded in `FakeHub.requests`.
Faults for the list: `list_delay` (seconds before answering), `list_status` (e.g. 500),
`list_body` (raw bytes instead of the JSON list); `file_delay` delays every file download.

Use it as a context manager:

    with FakeHub() as hub:
        hub.add_repo("tiny-org/tiny-bert", folder)
        env = {"HF_ENDPOINT": hub.endpoint, ...}
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".ot", ".gguf")
_DATE = "2024-01-01T00:00:00.000Z"


@dataclass
class FakeFile:
    data: bytes
    blob_id: str  # git blob sha1, what the Hub calls `oid`
    sha256: str | None  # set for LFS files

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, FakeFile]
    sha: str
    gated: bool = False
    private: bool = False
    license: str | None = None
    config: dict = field(default_factory=dict)
    pipeline_tag: str | None = None
    downloads: int = 0
    languages: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # unquoted path, no query string
    query: str
    host: str
    authorization: str | None


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _safetensors_parameters(data: bytes) -> dict[str, int]:
    """Parameter count per dtype from a safetensors header, as the Hub reports it."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    counts: dict[str, int] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        numel = 1
        for dim in meta["shape"]:
            numel *= dim
        counts[meta["dtype"]] = counts.get(meta["dtype"], 0) + numel
    return counts


def _load_repo(
    repo_id: str,
    folder: Path,
    *,
    gated: bool,
    private: bool,
    license: str | None,
    extra_files: dict[str, bytes] | None,
    listing: dict | None = None,
) -> FakeRepo:
    files: dict[str, bytes] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            files[p.relative_to(folder).as_posix()] = p.read_bytes()
    files.update(extra_files or {})
    fake_files = {
        name: FakeFile(
            data=data,
            blob_id=git_blob_id(data),
            sha256=hashlib.sha256(data).hexdigest() if name.endswith(LFS_SUFFIXES) else None,
        )
        for name, data in files.items()
    }
    tree = "".join(f"{n}:{f.blob_id}\n" for n, f in sorted(fake_files.items()))
    sha = hashlib.sha1(f"{repo_id}\n{tree}".encode()).hexdigest()
    config = {}
    if "config.json" in files:
        try:
            full = json.loads(files["config.json"])
            config = {k: full[k] for k in ("architectures", "model_type", "auto_map") if k in full}
        except ValueError:
            pass
    return FakeRepo(
        repo_id, fake_files, sha, gated=gated, private=private, license=license, config=config, **(listing or {})
    )


def _info(repo: FakeRepo) -> dict:
    """What the Hub says of a repo (model info and the model list share it), without siblings."""
    params: dict[str, int] = {}
    for name, f in repo.files.items():
        if name.endswith(".safetensors") and "/" not in name:
            for dtype, n in _safetensors_parameters(f.data).items():
                params[dtype] = params.get(dtype, 0) + n
    tags = ["transformers"] + (["safetensors"] if params else []) + [repo.config.get("model_type", "")]
    tags += repo.tags + repo.languages + ([f"license:{repo.license}"] if repo.license else [])
    card: dict = {}
    if repo.license:
        card["license"] = repo.license
    if repo.languages:
        card["language"] = list(repo.languages)
    info = {
        "_id": repo.sha[:24],
        "id": repo.repo_id,
        "modelId": repo.repo_id,
        "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
        "sha": repo.sha,
        "lastModified": _DATE,
        "createdAt": _DATE,
        "private": repo.private,
        "gated": "manual" if repo.gated else False,
        "disabled": False,
        "downloads": repo.downloads,
        "likes": 0,
        "library_name": "transformers",
        "tags": [t for t in tags if t],
        "config": repo.config,
        "cardData": card or None,
        "usedStorage": sum(f.size for f in repo.files.values()),
    }
    if repo.pipeline_tag:
        info["pipeline_tag"] = repo.pipeline_tag
    if params:
        info["safetensors"] = {"parameters": params, "total": sum(params.values())}
    return info


class FakeHub:
    def __init__(self, *, lfs_redirect: bool = True, tokens: tuple[str, ...] = ()) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.tokens = set(tokens)
        self.lfs_redirect = lfs_redirect
        self._pending: dict[str, Callable[[], FakeRepo]] = {}
        self._requests: list[Request] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.list_delay = 0.0
        self.list_status = 200
        self.list_body: bytes | None = None
        self.file_delay = 0.0

    # -- repos ---------------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        folder: str | Path,
        *,
        gated: bool = False,
        private: bool = False,
        license: str | None = "apache-2.0",
        extra_files: dict[str, bytes] | None = None,
        lazy: bool = False,
        pipeline_tag: str | None = None,
        downloads: int = 0,
        languages: tuple[str, ...] = (),
        tags: tuple[str, ...] = (),
    ) -> None:
        """Serve every file under `folder` (plus `extra_files`) as repo `repo_id`, branch main.

        `lazy=True` reads the folder at the first request for the repo, so a client process can
        create it just before downloading it. `pipeline_tag`, `downloads`, `languages` (the card's)
        and `tags` (extra, e.g. "custom_code") are what the model list reports.
        """
        listing = dict(pipeline_tag=pipeline_tag, downloads=downloads, languages=list(languages), tags=list(tags))
        options = dict(gated=gated, private=private, license=license, extra_files=extra_files, listing=listing)
        with self._lock:
            self._pending[repo_id] = lambda: _load_repo(repo_id, Path(folder), **options)
            self.repos.pop(repo_id, None)
        if not lazy:
            self.find_repo(repo_id)

    # -- requests seen -------------------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    # -- server --------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "FakeHub is not started"
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cdn(self) -> str:
        # Another origin (host differs) on the same socket: the client then treats the LFS redirect
        # like the real Hub's redirect to its CDN (stops at the 302, drops the auth header).
        return f"http://localhost:{self.port}"

    def start(self) -> FakeHub:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fakehub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- helpers for the handler ---------------------------------------------------------------

    def authorized(self, repo: FakeRepo, authorization: str | None) -> bool:
        token = (authorization or "").removeprefix("Bearer ").strip()
        return bool(token) and token in self.tokens

    def find_repo(self, rest: str) -> tuple[FakeRepo | None, str]:
        """Split `org/name/more...` into a known repo and what follows it."""
        with self._lock:
            for repo_id in sorted({*self.repos, *self._pending}, key=len, reverse=True):
                if rest == repo_id or rest.startswith(repo_id + "/"):
                    if repo_id not in self.repos:
                        self.repos[repo_id] = self._pending[repo_id]()
                    return self.repos[repo_id], rest[len(repo_id) + 1 :]
        return None, rest

    def blob_by_sha256(self, sha256: str) -> FakeFile | None:
        with self._lock:
            repos = list(self.repos.values())
        for repo in repos:
            for f in repo.files.values():
                if f.sha256 == sha256:
                    return f
        return None


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"

    def log_message(self, format, *args) -> None:  # noqa: A002 - silence the default stderr log
        pass

    # -- plumbing ------------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def _dispatch(self, *, head: bool) -> None:
        split = urlsplit(self.path)
        raw_path = split.path
        self.hub._record(
            Request(
                method=self.command,
                path=unquote(raw_path),
                query=split.query,
                host=self.headers.get("Host", ""),
                authorization=self.headers.get("Authorization"),
            )
        )
        self._head = head
        self._query = parse_qs(split.query)
        try:
            if raw_path.rstrip("/") == "/api/models":
                self._list_models()
            elif raw_path.startswith("/api/models/"):
                self._api_models(raw_path[len("/api/models/") :])
            elif raw_path.startswith("/cdn/"):
                self._cdn(raw_path[len("/cdn/") :])
            elif "/resolve/" in raw_path:
                self._resolve(raw_path[1:])
            else:
                self._error(404, None, "Not found")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if not self._head and body:
            self.wfile.write(body)

    def _json(self, obj, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(obj).encode()
        self._send(200, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})

    def _error(self, status: int, code: str | None, message: str, extra: dict[str, str] | None = None) -> None:
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Error-Message": message, **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers)

    def _repo_not_found(self) -> None:
        # The real Hub answers 401 to anonymous requests for unknown (or private) repos, 404 otherwise.
        status = 404 if self.headers.get("Authorization") else 401
        self._error(status, "RepoNotFound", "Repository not found")

    def _lookup(self, rest: str) -> tuple[FakeRepo | None, list[str]]:
        # Repo ids travel unquoted; the revision is one segment quoted with safe="" (refs%2Fpr%2F1).
        repo, tail = self.hub.find_repo(rest)
        if repo is not None and repo.private and not self.hub.authorized(repo, self.headers.get("Authorization")):
            repo = None
        return repo, (tail.split("/") if tail else [])

    def _check_revision(self, repo: FakeRepo, rev: str) -> bool:
        if unquote(rev) in ("main", repo.sha):
            return True
        self._error(404, "RevisionNotFound", f"Invalid rev id: {unquote(rev)}")
        return False

    # -- /api/models/... -----------------------------------------------------------------------

    def _api_models(self, rest: str) -> None:
        repo, parts = self._lookup(rest)
        if repo is None:
            self._repo_not_found()
            return
        if not parts:
            self._model_info(repo)
        elif parts[0] == "revision" and len(parts) == 2:
            if self._check_revision(repo, parts[1]):
                self._model_info(repo)
        elif parts[0] == "tree" and len(parts) >= 2:
            if self._check_revision(repo, parts[1]):
                self._tree(repo, unquote("/".join(parts[2:])))
        else:
            # e.g. xet-read-token: this fake hub has no Xet storage.
            self._error(404, None, "Not found")

    def _list_models(self) -> None:
        hub = self.hub
        if hub.list_delay:
            time.sleep(hub.list_delay)
        if hub.list_status != 200:
            self._error(hub.list_status, None, "Internal Error")
            return
        if hub.list_body is not None:
            self._send(200, hub.list_body, {"Content-Type": "application/json; charset=utf-8"})
            return
        tag = self._query.get("pipeline_tag", [None])[0]
        wanted = self._query.get("filter", [])
        expand = self._query.get("expand", [])
        limit = int(self._query.get("limit", ["1000"])[0])
        with hub._lock:
            repo_ids = sorted({*hub.repos, *hub._pending})
        repos = [r for r in (hub.find_repo(rid)[0] for rid in repo_ids) if r is not None and not r.private]
        items = []
        for repo in repos:
            info = _info(repo)
            if tag and repo.pipeline_tag != tag:
                continue
            if not all(f in info["tags"] or f == info["library_name"] for f in wanted):
                continue
            items.append(info)
        if self._query.get("sort", [None])[0] == "downloads":
            items.sort(key=lambda i: -i["downloads"])
        fields = expand or ["author", "downloads", "likes", "pipeline_tag", "library_name", "tags", "createdAt"]
        self._json([{"_id": i["_id"], "id": i["id"], **{k: i[k] for k in fields if k in i}} for i in items[:limit]])

    def _model_info(self, repo: FakeRepo) -> None:
        blobs = self._query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for name, f in sorted(repo.files.items()):
            entry: dict = {"rfilename": name}
            if blobs:
                entry.update(size=f.size, blobId=f.blob_id)
                if f.sha256:
                    entry["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": 134}
            siblings.append(entry)
        self._json({**_info(repo), "siblings": siblings})

    def _tree(self, repo: FakeRepo, path: str) -> None:
        recursive = self._query.get("recursive", ["false"])[0].lower() == "true"
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        entries: dict[str, dict] = {}
        for name, f in sorted(repo.files.items()):
            if not name.startswith(prefix):
                continue
            rel = name[len(prefix) :]
            # Folders on the way (every level when recursive, the first one otherwise).
            segs = rel.split("/")
            for depth in range(1, len(segs) if recursive else min(2, len(segs))):
                d = prefix + "/".join(segs[:depth])
                entries.setdefault(d, {"type": "directory", "oid": git_blob_id(d.encode()), "size": 0, "path": d})
            if recursive or len(segs) == 1:
                entry = {"type": "file", "oid": f.blob_id, "size": f.size, "path": name}
                if f.sha256:
                    entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": 134}
                entries[name] = entry
        if prefix and not entries:
            self._error(404, "EntryNotFound", f'{path} does not exist on "main"')
            return
        self._json(list(entries.values()))

    # -- /{repo}/resolve/{rev}/{file} ------------------------------------------------------------

    def _resolve(self, rest: str) -> None:
        repo, parts = self._lookup(rest)
        if repo is None or len(parts) < 3 or parts[0] != "resolve":
            self._repo_not_found()
            return
        if not self._check_revision(repo, parts[1]):
            return
        commit = {"X-Repo-Commit": repo.sha}
        if repo.gated and not self.hub.authorized(repo, self.headers.get("Authorization")):
            msg = (
                f"Access to model {repo.repo_id} is restricted. You must have access to it and be "
                "authenticated to access it. Please log in."
            )
            self._error(401, "GatedRepo", msg, commit)
            return
        filename = unquote("/".join(parts[2:]))
        f = repo.files.get(filename)
        if f is None:
            self._error(404, "EntryNotFound", "Entry not found", commit)
            return
        if f.sha256 and self.hub.lfs_redirect:
            self._send(
                302,
                b"",
                {
                    **commit,
                    "Location": f"{self.hub.cdn}/cdn/{f.sha256}",
                    "ETag": f'"{f.sha256}"',
                    "X-Linked-Etag": f'"{f.sha256}"',
                    "X-Linked-Size": str(f.size),
                },
            )
            return
        self._file(f, {**commit, "ETag": f'"{f.sha256 or f.blob_id}"'})

    def _cdn(self, sha256: str) -> None:
        f = self.hub.blob_by_sha256(sha256)
        if f is None:
            self._error(404, None, "Not found")
            return
        self._file(f, {"ETag": f'"{f.sha256}"'})

    def _file(self, f: FakeFile, headers: dict[str, str]) -> None:
        if self.hub.file_delay:
            time.sleep(self.hub.file_delay)
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes", **headers}
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and not self._head:
            start_s, _, end_s = rng[len("bytes=") :].partition("-")
            start = int(start_s or 0)
            end = int(end_s) if end_s else f.size - 1
            body = f.data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{start + len(body) - 1}/{f.size}"
            self._send(206, body, headers)
            return
        if self._head:
            self._send(200, b"", {**headers, "Content-Length": str(f.size)})
        else:
            self._send(200, f.data, headers)
