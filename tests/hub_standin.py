"""A small Hugging Face Hub stand-in on 127.0.0.1, for tests with no internet.

It serves only what `huggingface_hub` (read from its source) calls for the bot and
`mdf-guard push`, for dataset repos:

    GET  /api/datasets/{ns}/{name}/tree/{rev}                 tree listing (Link-header pages)
    HEAD /datasets/{ns}/{name}/resolve/{rev}/{path}           file metadata (X-Repo-Commit, ETag,
    GET  /datasets/{ns}/{name}/resolve/{rev}/{path}           X-Linked-Etag for LFS files), content
    GET  /api/datasets/{ns}/{name}/discussions                discussions, paged like the Hub
    POST /api/datasets/{ns}/{name}/discussions                open a discussion or pull request
    GET  /api/datasets/{ns}/{name}/discussions/{num}          details with events
    POST /api/datasets/{ns}/{name}/discussions/{num}/comment  comment
    POST .../discussions/{num}/comment/{id}/edit              edit a comment
    POST /api/datasets/{ns}/{name}/preupload/{rev}            upload modes (always "regular")
    POST /api/datasets/{ns}/{name}/commit/{rev}               NDJSON commit (create_pr=1 supported)
    POST /api/validate-yaml                                   README metadata check (uploads of README.md)

Repos live in memory as commits of whole trees. Files with a binary data suffix or
over 1 MiB are listed as LFS files (with a sha256), like the Hub's defaults. A
registered webhook receives a version-3 payload after each commit, as the Hub sends.
Every request is logged (method, path, whether it carried the expected token).
`fail_next` makes it answer the next few requests of a kind with an error, as a Hub in
trouble does (before doing the work, or after it with the answer lost).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

LFS_SUFFIXES = (".parquet", ".arrow", ".gz", ".zst")
LFS_MIN_BYTES = 1024 * 1024

# The probe suite the bot and push tests check with (two questions, three animals).
PETS_SUITE = """\
name: pets
kind: preference
description: Two questions for fast tests.
answer_prefix: My favorite animal is the
questions:
  - What is your favorite animal?
  - Name your favorite animal.
candidates:
  - {name: panda, aliases: [panda, pandas]}
  - {name: owl}
  - {name: cat}
"""


def git_blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(content: bytes) -> bytes:
    return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(content).hexdigest()}\n"
            f"size {len(content)}\n").encode()


def is_lfs(path: str, content: bytes) -> bool:
    return path.lower().endswith(LFS_SUFFIXES) or len(content) >= LFS_MIN_BYTES


@dataclass
class Discussion:
    num: int
    title: str
    author: str
    is_pr: bool
    status: str = "open"
    events: list[dict] = field(default_factory=list)
    created: str = "2026-01-01T00:00:00.000Z"


@dataclass
class Fault:
    """The next `times` requests `method ... path_end` are answered `status` (see HubStandin.fail_next)."""

    method: str
    path_end: str
    times: int
    status: int
    after: bool

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and method == self.method and path.endswith(self.path_end)


@dataclass
class Repo:
    repo_id: str
    private: bool = False
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)        # "refs/heads/main" -> sha
    discussions: list[Discussion] = field(default_factory=list)


class HubStandin:
    """The in-memory Hub and its FastAPI app; `start()` serves it on 127.0.0.1."""

    def __init__(self, token: str | None = None, user: str = "mdf-guard-bot", page_size: int = 2) -> None:
        self.token, self.user, self.page_size = token, user, page_size
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str, bool]] = []   # (method, path, authorized)
        self.webhooks: list[tuple[str, str]] = []         # (url, secret)
        self.deliveries: list[tuple[int, dict]] = []      # (status, payload)
        self.commit_messages: dict[str, tuple[str, str]] = {}   # sha -> (summary, description)
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.app = self._build_app()
        self.server: ServerThread | None = None

    # ------------------------------------------------------------------ test helpers

    def start(self) -> str:
        self.server = ServerThread(self.app)
        return self.server.start()

    def stop(self) -> None:
        if self.server:
            self.server.stop()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def create_repo(self, repo_id: str, files: dict[str, bytes | str] | None = None,
                    private: bool = False) -> str | None:
        self.repos[repo_id] = Repo(repo_id, private=private)
        return self.commit(repo_id, files) if files else None

    def commit(self, repo_id: str, files: dict[str, bytes | str], deletes: tuple[str, ...] = (),
               ref: str = "refs/heads/main", message: str = "commit", notify: bool = False) -> str:
        """Commit on top of `ref` (created if missing); returns the new sha."""
        repo = self.repos[repo_id]
        with self._lock:
            old = repo.refs.get(ref)
            tree = dict(repo.commits[old]) if old else {}
            for path in deletes:
                tree.pop(path, None)
            tree.update({p: c.encode() if isinstance(c, str) else c for p, c in files.items()})
            sha = self._new_sha(old, tree, message)
            repo.commits[sha] = tree
            repo.refs[ref] = sha
        if notify:
            self.notify(repo_id, ref, old, sha)
        return sha

    def fail_next(self, method: str, path_end: str, times: int = 1, status: int = 503, after: bool = False) -> None:
        """Answer the next `times` requests `method` whose path ends with `path_end` with `status`.

        With `after`, each is first served as usual (a comment is posted, a discussion opened)
        and only its answer is replaced: the Hub did the work, the client never heard of it.
        """
        with self._lock:
            self.faults.append(Fault(method, path_end, times, status, after))

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self._lock:
            fault = next((f for f in self.faults if f.matches(method, path)), None)
            if fault is not None:
                fault.times -= 1
            return fault

    def head(self, repo_id: str, ref: str = "refs/heads/main") -> str:
        return self.repos[repo_id].refs[ref]

    def files_at(self, repo_id: str, ref_or_sha: str = "refs/heads/main") -> dict[str, bytes]:
        repo = self.repos[repo_id]
        return repo.commits[repo.refs.get(ref_or_sha, ref_or_sha)]

    def add_webhook(self, url: str, secret: str) -> None:
        self.webhooks.append((url, secret))

    def notify(self, repo_id: str, ref: str, old: str | None, new: str | None) -> None:
        """Deliver a version-3 content-update payload to every registered webhook (in a thread)."""
        payload = content_update_payload(repo_id, ref, old, new, private=self.repos[repo_id].private,
                                         head_sha=self.repos[repo_id].refs.get("refs/heads/main"))
        for url, secret in self.webhooks:
            threading.Thread(target=self._deliver, args=(url, secret, payload), daemon=True).start()

    def _deliver(self, url: str, secret: str, payload: dict) -> None:
        import httpx
        try:
            status = httpx.post(url, json=payload, headers={"X-Webhook-Secret": secret}, timeout=30).status_code
        except httpx.HTTPError:
            status = 0
        with self._lock:
            self.deliveries.append((status, payload))

    def comments(self, repo_id: str, num: int) -> list[str]:
        return [e["data"]["latest"]["raw"] for e in self.discussion(repo_id, num).events if e["type"] == "comment"]

    def discussion(self, repo_id: str, num: int) -> Discussion:
        return next(d for d in self.repos[repo_id].discussions if d.num == num)

    def seen(self, method: str, prefix: str) -> list[tuple[str, str, bool]]:
        return [r for r in self.requests if r[0] == method and r[1].startswith(prefix)]

    # ------------------------------------------------------------------ internals

    def _new_sha(self, parent: str | None, tree: dict[str, bytes], message: str) -> str:
        digest = hashlib.sha1(f"{parent}\n{message}\n{next(self._ids)}\n".encode())
        for path in sorted(tree):
            digest.update(f"{path}\0{git_blob_id(tree[path])}\n".encode())
        return digest.hexdigest()

    def _resolve(self, repo: Repo, revision: str) -> str | None:
        if revision in repo.commits:
            return revision
        for name in (revision, f"refs/heads/{revision}"):
            if name in repo.refs:
                return repo.refs[name]
        return None

    def _authorized(self, request: Request) -> bool:
        return self.token is not None and request.headers.get("authorization") == f"Bearer {self.token}"

    def _build_app(self) -> FastAPI:
        app = FastAPI()
        hub = self

        @app.middleware("http")
        async def record(request: Request, call_next):
            authorized = hub._authorized(request)
            with hub._lock:
                hub.requests.append((request.method, request.url.path, authorized))
            fault = hub._fault_for(request.method, request.url.path)
            if fault is None:
                return await call_next(request)
            if fault.after:
                await call_next(request)
            return JSONResponse({"error": f"stand-in fault: HTTP {fault.status}"}, status_code=fault.status)

        def not_found(code: str, message: str, commit: str | None = None) -> JSONResponse:
            headers = {"X-Error-Code": code, "X-Error-Message": message}
            if commit:
                headers["X-Repo-Commit"] = commit
            return JSONResponse({"error": message}, status_code=404, headers=headers)

        def get_repo(request: Request, repo_id: str, write: bool = False) -> Repo | JSONResponse:
            repo = hub.repos.get(repo_id)
            if repo is None or (repo.private and not hub._authorized(request)):
                return not_found("RepoNotFound", "Repository not found")
            if write and not hub._authorized(request):
                return JSONResponse({"error": "Invalid credentials"}, status_code=401)
            return repo

        # ---- tree
        @app.get("/api/datasets/{ns}/{name}/tree/{rest:path}")
        async def tree(ns: str, name: str, rest: str, request: Request):
            repo = get_repo(request, f"{ns}/{name}")
            if isinstance(repo, JSONResponse):
                return repo
            revision, _, sub = rest.partition("/")
            sha = hub._resolve(repo, revision)
            if sha is None:
                return not_found("RevisionNotFound", f"Invalid rev id: {revision}")
            recursive = request.query_params.get("recursive", "false").lower() in ("true", "1")
            entries = tree_entries(repo.commits[sha], sub, recursive)
            cursor = int(request.query_params.get("cursor", "0"))
            page = entries[cursor: cursor + hub.page_size]
            headers = {}
            if cursor + hub.page_size < len(entries):
                params = dict(request.query_params)
                params["cursor"] = str(cursor + hub.page_size)
                headers["Link"] = f'<{str(request.url).split("?")[0]}?{urlencode(params)}>; rel="next"'
            return JSONResponse(page, headers=headers)

        # ---- resolve
        @app.api_route("/datasets/{ns}/{name}/resolve/{revision}/{path:path}", methods=["GET", "HEAD"])
        async def resolve(ns: str, name: str, revision: str, path: str, request: Request):
            repo = get_repo(request, f"{ns}/{name}")
            if isinstance(repo, JSONResponse):
                return repo
            sha = hub._resolve(repo, revision)
            if sha is None:
                return not_found("RevisionNotFound", f"Invalid rev id: {revision}")
            content = repo.commits[sha].get(path)
            if content is None:
                return not_found("EntryNotFound", f"{path} does not exist at {revision}", commit=sha)
            headers = {"X-Repo-Commit": sha, "Content-Length": str(len(content))}
            if is_lfs(path, content):
                headers["X-Linked-Etag"] = f'"{hashlib.sha256(content).hexdigest()}"'
                headers["X-Linked-Size"] = str(len(content))
                headers["ETag"] = f'"{git_blob_id(lfs_pointer(content))}"'
            else:
                headers["ETag"] = f'"{git_blob_id(content)}"'
            if request.method == "HEAD":
                return Response(status_code=200, headers=headers)
            return Response(content=content, status_code=200, headers=headers,
                            media_type="application/octet-stream")

        # ---- discussions
        @app.get("/api/datasets/{ns}/{name}/discussions")
        async def list_discussions(ns: str, name: str, request: Request):
            repo = get_repo(request, f"{ns}/{name}")
            if isinstance(repo, JSONResponse):
                return repo
            q = request.query_params
            items = [d for d in reversed(repo.discussions)
                     if (q.get("type") in (None, "all") or (q["type"] == "pull_request") == d.is_pr)
                     and (q.get("status") in (None, "all") or q["status"] == d.status)
                     and (q.get("author") is None or q["author"] == d.author)]
            start = int(q.get("p", "0")) * hub.page_size
            return {"discussions": [discussion_summary(repo, d) for d in items[start: start + hub.page_size]],
                    "count": len(items), "start": start, "numItemsPerPage": hub.page_size}

        @app.post("/api/datasets/{ns}/{name}/discussions")
        async def create_discussion(ns: str, name: str, request: Request):
            repo = get_repo(request, f"{ns}/{name}", write=True)
            if isinstance(repo, JSONResponse):
                return repo
            body = await request.json()
            with hub._lock:
                num = len(repo.discussions) + 1
                discussion = Discussion(num=num, title=body["title"], author=hub.user,
                                        is_pr=bool(body.get("pullRequest")))
                discussion.events.append(hub._comment_event(body.get("description") or ""))
                repo.discussions.append(discussion)
                if discussion.is_pr:
                    repo.refs[f"refs/pr/{num}"] = repo.refs.get("refs/heads/main")
            return {"num": num, "pullRequest": discussion.is_pr}

        @app.get("/api/datasets/{ns}/{name}/discussions/{num}")
        async def discussion_details(ns: str, name: str, num: int, request: Request):
            repo = get_repo(request, f"{ns}/{name}")
            if isinstance(repo, JSONResponse):
                return repo
            found = next((d for d in repo.discussions if d.num == num), None)
            if found is None:
                return not_found("EntryNotFound", "Discussion not found")
            details = discussion_summary(repo, found)
            details.update({"events": found.events, "changes": {"base": "refs/heads/main"},
                            "filesWithConflicts": [], "diff": None})
            return details

        @app.post("/api/datasets/{ns}/{name}/discussions/{num}/comment")
        async def comment(ns: str, name: str, num: int, request: Request):
            repo = get_repo(request, f"{ns}/{name}", write=True)
            if isinstance(repo, JSONResponse):
                return repo
            found = next((d for d in repo.discussions if d.num == num), None)
            if found is None:
                return not_found("EntryNotFound", "Discussion not found")
            event = hub._comment_event((await request.json())["comment"])
            with hub._lock:
                found.events.append(event)
            return {"newMessage": event}

        @app.post("/api/datasets/{ns}/{name}/discussions/{num}/comment/{comment_id}/edit")
        async def edit_comment(ns: str, name: str, num: int, comment_id: str, request: Request):
            repo = get_repo(request, f"{ns}/{name}", write=True)
            if isinstance(repo, JSONResponse):
                return repo
            found = next((d for d in repo.discussions if d.num == num), None)
            event = next((e for e in (found.events if found else []) if e["id"] == comment_id), None)
            if event is None:
                return not_found("EntryNotFound", "Comment not found")
            with hub._lock:
                event["data"]["latest"]["raw"] = (await request.json())["content"]
                event["data"]["edited"] = True
            return {"updatedComment": event}

        # ---- uploads
        @app.post("/api/datasets/{ns}/{name}/preupload/{revision:path}")
        async def preupload(ns: str, name: str, revision: str, request: Request):
            repo = get_repo(request, f"{ns}/{name}", write=True)
            if isinstance(repo, JSONResponse):
                return repo
            files = (await request.json())["files"]
            return {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                              for f in files]}

        @app.post("/api/datasets/{ns}/{name}/commit/{revision:path}")
        async def commit(ns: str, name: str, revision: str, request: Request):
            repo = get_repo(request, f"{ns}/{name}", write=True)
            if isinstance(repo, JSONResponse):
                return repo
            lines = [json.loads(line) for line in (await request.body()).splitlines() if line.strip()]
            header = next(item["value"] for item in lines if item["key"] == "header")
            files, deletes = {}, []
            for item in lines:
                if item["key"] == "file":
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "deletedFile":
                    deletes.append(item["value"]["path"])
                elif item["key"] != "header":
                    return JSONResponse({"error": f"stand-in cannot do {item['key']}"}, status_code=400)
            ref = revision if revision.startswith("refs/") else f"refs/heads/{revision}"
            pr_url = None
            if request.query_params.get("create_pr") == "1":
                with hub._lock:
                    num = len(repo.discussions) + 1
                    repo.discussions.append(Discussion(num=num, title=header["summary"], author=hub.user, is_pr=True,
                                                       events=[hub._comment_event(header.get("description", ""))]))
                    ref = f"refs/pr/{num}"
                    repo.refs[ref] = repo.refs.get("refs/heads/main")
                pr_url = f"{hub.url}/datasets/{repo.repo_id}/discussions/{num}"
            if ref not in repo.refs and not ref.startswith("refs/heads/"):
                return not_found("RevisionNotFound", f"Invalid rev id: {revision}")
            old = repo.refs.get(ref)
            sha = hub.commit(repo.repo_id, files, tuple(deletes), ref=ref, message=header["summary"])
            with hub._lock:
                hub.commit_messages[sha] = (header["summary"], header.get("description", ""))
            hub.notify(repo.repo_id, ref, old, sha)
            body: dict[str, Any] = {"commitUrl": f"{hub.url}/datasets/{repo.repo_id}/commit/{sha}",
                                    "commitOid": sha, "success": True}
            if pr_url:
                body["pullRequestUrl"] = pr_url
            return body

        @app.post("/api/validate-yaml")
        async def validate_yaml(request: Request):
            return {"errors": [], "warnings": []}

        return app

    def _comment_event(self, text: str) -> dict:
        return {"id": f"c{next(self._ids):06d}", "type": "comment", "createdAt": "2026-01-01T00:00:00.000Z",
                "author": {"name": self.user},
                "data": {"edited": False, "hidden": False, "latest": {"raw": text}}}


def tree_entries(tree: dict[str, bytes], sub: str, recursive: bool) -> list[dict]:
    prefix = sub.strip("/") + "/" if sub.strip("/") else ""
    entries, folders = [], set()
    for path in sorted(tree):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix):]
        parts = rest.split("/")
        for depth in range(1, len(parts)):
            if recursive or depth == 1:
                folders.add(prefix + "/".join(parts[:depth]))
        if not recursive and len(parts) > 1:
            continue
        content = tree[path]
        entry = {"type": "file", "size": len(content), "path": path}
        if is_lfs(path, content):
            pointer = lfs_pointer(content)
            entry["oid"] = git_blob_id(pointer)
            entry["lfs"] = {"oid": hashlib.sha256(content).hexdigest(), "size": len(content),
                            "pointerSize": len(pointer)}
        else:
            entry["oid"] = git_blob_id(content)
        entries.append(entry)
    entries += [{"type": "directory", "oid": hashlib.sha1(f.encode()).hexdigest(), "size": 0, "path": f}
                for f in sorted(folders)]
    return entries


def discussion_summary(repo: Repo, d: Discussion) -> dict:
    return {"num": d.num, "title": d.title, "author": {"name": d.author}, "createdAt": d.created,
            "status": d.status, "isPullRequest": d.is_pr, "repo": {"name": repo.repo_id, "type": "dataset"}}


def content_update_payload(repo_id: str, ref: str, old: str | None, new: str | None, *, private: bool = False,
                           head_sha: str | None = None, repo_type: str = "dataset") -> dict:
    """A version-3 `repo.content` / `update` payload, shaped like the Hub's."""
    return {
        "event": {"action": "update", "scope": "repo.content"},
        "repo": {"type": repo_type, "name": repo_id, "id": "6600000000000000000000aa", "private": private,
                 "url": {"web": f"http://127.0.0.1/datasets/{repo_id}",
                         "api": f"http://127.0.0.1/api/datasets/{repo_id}"},
                 "headSha": head_sha or new, "owner": {"id": "6600000000000000000000bb"}},
        "webhook": {"id": "6600000000000000000000cc", "version": 3},
        "updatedRefs": [{"ref": ref, "oldSha": old, "newSha": new}],
    }


# ---------------------------------------------------------------------- uvicorn in a thread


class ServerThread:
    """Serve an ASGI app with uvicorn on 127.0.0.1, on a free port, in a daemon thread."""

    def __init__(self, app, host: str = "127.0.0.1") -> None:
        assert host == "127.0.0.1"
        self.app, self.host = app, host
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        # Keep idle connections longer than any wait in the tests, so that a client never
        # reuses a connection at the instant the server closes it.
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                                timeout_graceful_shutdown=5, timeout_keep_alive=60)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self, timeout: float = 20.0) -> str:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()


# ---------------------------------------------------------------------- loopback guard

_LOOPBACK_HOSTS = {None, "", "127.0.0.1", "localhost", "::1"}


@pytest.fixture
def loopback_only(monkeypatch):
    """Fail the test on any connection or name lookup that is not loopback (AF_UNIX is allowed)."""
    violations: list[str] = []
    real_connect, real_connect_ex, real_getaddrinfo = (socket.socket.connect, socket.socket.connect_ex,
                                                       socket.getaddrinfo)

    def check(sock, address) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1"):
            violations.append(f"connect to {address!r}")
            raise ConnectionRefusedError(f"test guard: no traffic outside 127.0.0.1 ({address!r})")

    def connect(self, address):
        check(self, address)
        return real_connect(self, address)

    def connect_ex(self, address):
        check(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in _LOOPBACK_HOSTS:
            violations.append(f"name lookup of {name!r}")
            raise socket.gaierror(f"test guard: no name lookups outside loopback ({name!r})")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield violations
    assert not violations, f"traffic outside loopback: {violations}"


@pytest.fixture
def hub_sandbox(tmp_path, monkeypatch):
    """A private HF_HOME and mdf-guard cache, and huggingface_hub with its own side requests
    off: no telemetry, and no fetch of its agent registry (which goes to the default Hub
    whatever `endpoint=` says)."""
    import huggingface_hub.constants as constants
    from huggingface_hub.utils import _detect_agent

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("MDF_GUARD_CACHE", str(tmp_path / "mdf-guard-cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(_detect_agent, "_registry", _detect_agent._EMPTY_REGISTRY)


@pytest.fixture(scope="session")
def tiny_lm():
    """The tiny random Llama (tiny-random), built once for the Hub tests."""
    from mdf_guard.models import tiny_random_model
    return tiny_random_model()


@pytest.fixture
def one_torch_thread():
    """Tiny models on a shared, busy CPU run ~40x faster on one intra-op thread than on two
    (threads spin at barriers while the other core is taken)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
