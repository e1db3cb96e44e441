"""Thin, typed functions over `huggingface_hub.HfApi` for the bot and `mdf-guard push`.

This is the only module that talks to the Hub. The token comes from the `HF_TOKEN`
environment variable and nowhere else (never the token file of `hf auth login`, so
that a bot cannot silently act with a person's credentials); it is never logged, and
`redact` scrubs it from any text that leaves the process (errors, comments, pages).

Endpoints used (all through the real client): the tree listing
`GET /api/datasets/{id}/tree/{rev}`, file resolve `HEAD/GET /datasets/{id}/resolve/{rev}/{path}`,
discussions (`list`, `create`, `details`, `comment`, `edit comment`), and for uploads
`preupload`, `commit` and (pull requests with hf_xet installed) `create discussion`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from .errors import MdfGuardError

TOKEN_ENV = "HF_TOKEN"
REPO_TYPE = "dataset"
MAX_COMMENT_CHARS = 60_000   # the Hub refuses very long comments; reports are cut well below
_REDACTED = "[redacted]"
_CLIENT_MODULES = ("httpx", "httpx2", "httpcore", "huggingface_hub")
HUB_WAIT_SECONDS = 60.0   # the longest one request may wait for the Hub without progress
TRANSIENT_STATUSES = (408, 429)   # with every 5xx: answers that say "not now", not "never"


class HubError(MdfGuardError):
    """A Hub request failed (network, permission, missing repo or revision).

    `transient` says whether the same request may well succeed later: the Hub or the network
    failed (a 5xx, 408, 429, a timeout, a refused connection), as opposed to an answer about
    the request itself (401, 403, 404, ...) or a refusal of ours (an unsafe path).
    """

    def __init__(self, message: str, status: int | None = None, transient: bool = False) -> None:
        super().__init__(message)
        self.status = status   # the HTTP status, when the Hub answered
        self.transient = transient


def token_from_env() -> str | None:
    """The Hub token from HF_TOKEN, or None (then no token is sent at all)."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    return token or None


def redact(text: str, token: str | None = None) -> str:
    """`text` with the Hub token (given, or from HF_TOKEN) replaced by a marker."""
    token = token if token is not None else token_from_env()
    if token and len(token) >= 4 and token in text:
        text = text.replace(token, _REDACTED)
    return text


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repo at one commit, as the tree listing describes it."""

    path: str
    size: int
    blob_id: str                # git blob id (of the LFS pointer, for LFS files)
    lfs_sha256: str | None      # sha256 of the content, for LFS files

    @property
    def content_id(self) -> str:
        """Identifies the content: the LFS sha256 where there is one, else the git blob id."""
        return f"sha256:{self.lfs_sha256}" if self.lfs_sha256 else f"git:{self.blob_id}"


@dataclass(frozen=True)
class ChangedFile:
    """A file whose content differs between two commits; `old` is None for a new file."""

    new: RemoteFile
    old: RemoteFile | None

    @property
    def path(self) -> str:
        return self.new.path


@dataclass(frozen=True)
class PostedComment:
    discussion_num: int
    comment_id: str
    url: str
    created_discussion: bool   # True when this post opened the discussion
    edited: bool               # True when an earlier comment for the same key was updated


@dataclass(frozen=True)
class UploadResult:
    commit_sha: str
    commit_url: str
    pr_url: str | None


def safe_repo_path(path: str) -> PurePosixPath:
    """A repo-relative path that cannot escape a local folder, or HubError."""
    pure = PurePosixPath(path)
    if (not path or path.startswith("/") or "\\" in path or "\x00" in path
            or any(part in ("", ".", "..") for part in path.split("/"))):
        raise HubError(f"unsafe path in the repo tree: {path[:200]!r}")
    return pure


class HubClient:
    """The Hub calls the bot and `push` make, for dataset repos."""

    def __init__(self, endpoint: str | None = None, token: str | None = None, *, api=None) -> None:
        from huggingface_hub import HfApi

        self.token = token if token is not None else token_from_env()
        # token=False: send no token at all rather than fall back to a stored login.
        self.api = api or HfApi(endpoint=endpoint, token=self.token or False,
                                library_name="mdf-guard")
        self.endpoint = self.api.endpoint

    # ------------------------------------------------------------------ reading

    def list_files(self, repo_id: str, revision: str) -> dict[str, RemoteFile]:
        """Every file of the repo at `revision` (a commit sha), by path."""
        from huggingface_hub.hf_api import RepoFile

        def listing():
            return {entry.path: RemoteFile(path=entry.path, size=int(entry.size), blob_id=entry.blob_id,
                                           lfs_sha256=entry.lfs.sha256 if entry.lfs else None)
                    for entry in self.api.list_repo_tree(repo_id, recursive=True, revision=revision,
                                                         repo_type=REPO_TYPE)
                    if isinstance(entry, RepoFile)}
        return self._call(listing, f"listing {repo_id}@{revision[:12]}")

    def changed_files(self, repo_id: str, old_sha: str | None, new_sha: str,
                      select: Callable[[str], bool] = lambda path: True) -> list[ChangedFile]:
        """Selected files whose content at `new_sha` is not in the tree at `old_sha` (see `diff_trees`)."""
        new = self.list_files(repo_id, new_sha)
        old = self.list_files(repo_id, old_sha) if old_sha else {}
        return diff_trees(old, new, select)

    def download(self, repo_id: str, path: str, revision: str, folder: Path) -> Path:
        """Download one file at `revision` into `folder/<path>`; returns the local path."""
        safe_repo_path(path)
        folder = Path(folder)
        local = self._call(lambda: self.api.hf_hub_download(repo_id, path, repo_type=REPO_TYPE, revision=revision,
                                                            local_dir=folder),
                           f"downloading {path} from {repo_id}@{revision[:12]}")
        resolved = Path(local).resolve()
        if not resolved.is_relative_to(folder.resolve()):
            raise HubError(f"download of {path!r} landed outside its folder")
        return resolved

    # ------------------------------------------------------------------ discussions

    def comment(self, repo_id: str, discussion_num: int, text: str, key: str | None = None) -> PostedComment:
        """Post `text` on discussion or pull request N; with `key`, update this bot's comment for it instead.

        The key (e.g. the pushed sha) is stored as an invisible marker in the comment, so a
        re-run for the same push after a restart or a redelivery edits, never duplicates.
        """
        text = self._prepare(text, key)
        if key is not None:
            existing = self._find_comment(repo_id, discussion_num, _marker(key))
            if existing is not None:
                updated = self._call(lambda: self.api.edit_discussion_comment(
                    repo_id, discussion_num, existing, text, repo_type=REPO_TYPE),
                    f"updating a comment on {repo_id}#{discussion_num}")
                return PostedComment(discussion_num, updated.id, self._url(repo_id, discussion_num, updated.id),
                                     created_discussion=False, edited=True)
        posted = self._call(lambda: self.api.comment_discussion(repo_id, discussion_num, text, repo_type=REPO_TYPE),
                            f"commenting on {repo_id}#{discussion_num}")
        return PostedComment(discussion_num, posted.id, self._url(repo_id, discussion_num, posted.id),
                             created_discussion=False, edited=False)

    def post_to_discussion(self, repo_id: str, title: str, text: str, key: str | None = None) -> PostedComment:
        """Comment on the repo's open discussion titled `title`, opening it if there is none."""
        number = self.find_discussion(repo_id, title)
        if number is not None:
            return self.comment(repo_id, number, text, key)
        body = self._prepare(text, key)
        created = self._call(lambda: self.api.create_discussion(repo_id, title, description=body, repo_type=REPO_TYPE),
                             f"opening a discussion on {repo_id}")
        first = created.events[0].id if created.events else ""
        return PostedComment(created.num, first, self._url(repo_id, created.num, first),
                             created_discussion=True, edited=False)

    def find_discussion(self, repo_id: str, title: str) -> int | None:
        """The number of the oldest open discussion (not pull request) with this exact title."""
        found = self._call(lambda: [d.num for d in self.api.get_repo_discussions(
            repo_id, discussion_type="discussion", discussion_status="open", repo_type=REPO_TYPE)
            if d.title == title], f"listing discussions of {repo_id}")
        return min(found) if found else None

    def _find_comment(self, repo_id: str, discussion_num: int, marker: str) -> str | None:
        details = self._call(lambda: self.api.get_discussion_details(repo_id, discussion_num, repo_type=REPO_TYPE),
                             f"reading {repo_id}#{discussion_num}")
        for event in details.events:
            content = getattr(event, "content", None)
            if event.type == "comment" and isinstance(content, str) and marker in content:
                return event.id
        return None

    # ------------------------------------------------------------------ writing

    def upload_folder(self, folder: Path, repo_id: str, message: str, description: str = "",
                      create_pr: bool = False, revision: str | None = None) -> UploadResult:
        """One commit (or a pull request) with the folder's files; .git and caches are left out."""
        info = self._call(lambda: self.api.upload_folder(
            repo_id=repo_id, folder_path=str(folder), repo_type=REPO_TYPE, commit_message=message,
            commit_description=description, create_pr=create_pr, revision=revision),
            f"uploading {folder} to {repo_id}")
        return UploadResult(commit_sha=info.oid, commit_url=info.commit_url, pr_url=info.pr_url)

    # ------------------------------------------------------------------ helpers

    def _prepare(self, text: str, key: str | None) -> str:
        text = redact(text, self.token)
        if len(text) > MAX_COMMENT_CHARS:
            text = text[:MAX_COMMENT_CHARS] + "\n\n*(report cut: too long for a comment)*\n"
        return text + (f"\n{_marker(key)}\n" if key is not None else "")

    def _url(self, repo_id: str, num: int, comment_id: str) -> str:
        anchor = f"#{comment_id}" if comment_id else ""
        return f"{self.endpoint}/datasets/{repo_id}/discussions/{num}{anchor}"

    def _call(self, func: Callable, what: str):
        """Run one client call; Hub and network failures become HubError with the token scrubbed."""
        _bound_waits()
        try:
            return func()
        except Exception as err:
            http = _http_error_in(err)
            if http is not None:
                status = http.response.status_code if http.response is not None else None
                raise HubError(redact(f"{what}: HTTP {status or '?'}: {_first_line(http)}", self.token),
                               status=status, transient=is_transient_status(status)) from None
            # Connection errors and timeouts of the client's HTTP stack, and plain OSErrors.
            if isinstance(err, OSError) or type(err).__module__.split(".")[0] in _CLIENT_MODULES:
                raise HubError(redact(f"{what}: {type(err).__name__}: {_first_line(err)}", self.token),
                               transient=True) from None
            raise


def is_transient_status(status: int | None) -> bool:
    """Whether an HTTP answer from the Hub means "try again later" (5xx, 408, 429)."""
    return status is not None and (status >= 500 or status in TRANSIENT_STATUSES)


def _http_error_in(err: BaseException):
    """The Hub's HTTP answer behind an error, following `raise ... from`: hf_hub_download turns a
    failed HEAD (a 500 as much as a 403) into a LocalEntryNotFoundError raised from it."""
    from huggingface_hub.errors import HfHubHTTPError

    for _ in range(8):   # a chain of causes is short; the bound only guards against a cycle
        if isinstance(err, HfHubHTTPError):
            return err
        if err.__cause__ is None:
            return None
        err = err.__cause__
    return None


def _bound_waits() -> None:
    """Give each request of huggingface_hub's shared HTTP client a timeout where it has none.

    From 1.0 huggingface_hub builds that client without a timeout, and some calls (the tree
    listing, the discussions) pass none either: a Hub that accepted a connection and never
    answered held the call forever, and in the bot that call holds its one worker (/healthz
    still ok, every later delivery 503). A request hook bounds each wait; a timeout the library
    sets itself (downloads) is kept. The requests-based clients of older versions have no such
    hooks and are left as they are. Installed on each call: the library may replace its client."""
    from huggingface_hub import get_session

    hooks = getattr(get_session(), "event_hooks", None)
    if isinstance(hooks, dict) and _bounded not in hooks.get("request", []):
        hooks.setdefault("request", []).append(_bounded)


def _bounded(request) -> None:
    timeout = request.extensions.get("timeout") or {}
    request.extensions["timeout"] = {key: timeout.get(key) or HUB_WAIT_SECONDS
                                     for key in ("connect", "read", "write", "pool")}


def diff_trees(old: dict[str, RemoteFile], new: dict[str, RemoteFile],
               select: Callable[[str], bool] = lambda path: True) -> list[ChangedFile]:
    """Selected files of `new` whose content is not in `old`, by path.

    Content is compared by LFS sha256 or git blob id, so nothing is downloaded to find
    the changes. A file renamed or copied without changing its content is not a change.
    Deleted files are not listed (there is nothing left to check).
    """
    old_contents = {f.content_id for f in old.values()}
    changed = []
    for path in sorted(new):
        entry = new[path]
        if not select(path):
            continue
        previous = old.get(path)
        if previous is not None and previous.content_id == entry.content_id:
            continue
        if previous is None and entry.content_id in old_contents:
            continue   # moved or copied, same bytes
        changed.append(ChangedFile(new=entry, old=previous))
    return changed


def _marker(key: str) -> str:
    return f"<!-- mdf-guard:{key} -->"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def is_data_path(path: str) -> bool:
    """Whether mdf-guard reads a repo path as data, by its name only (nothing local is looked at).

    The same rule as walking a local folder: a known data suffix, not a hidden file or
    folder, and not a metadata file that Hugging Face tooling writes next to data.
    """
    from .data import _METADATA_NAMES, DATA_SUFFIXES   # the one definition of "data file"

    parts = path.split("/")
    name = parts[-1].lower()
    if any(part.startswith(".") for part in parts) or parts[-1] in _METADATA_NAMES:
        return False
    return any(name.endswith(suffix) and len(name) > len(suffix) for suffix in DATA_SUFFIXES)
