"""Hugging Face Hub webhook payloads (version 3), parsed and validated into plain values.

Nothing here does I/O: `parse_payload` turns the decoded JSON of one delivery into a
`WebhookEvent`, and `dataset_push` decides whether it is a push of dataset content the
bot should check and, if so, which refs. Everything the bot will later put in a URL
or a local path (the repo name, refs, shas) is validated here, before any download:
a repo name with `..`, a leading `/`, a backslash or any character outside the Hub's
own alphabet is rejected.

Facts about the format (Hub webhook docs, and `huggingface_hub._webhooks_payload`):
- `webhook.version` is 3; `event.scope` and `event.action` say what happened. Content
  pushes (commits, new branches, tags, pull request refs) are scope `repo.content`,
  action `update`. Narrower future scopes (`repo.content.x`) count as `repo.content`.
- The pushed commits are `updatedRefs[].newSha`; `repo.headSha` is always main's head,
  so it is the wrong commit for a push to a branch or a pull request.
- A new ref has `oldSha: null`, a deleted ref `newSha: null`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

SUPPORTED_VERSION = 3
CONTENT_SCOPE = "repo.content"
DATASET = "dataset"
ZERO_SHA = "0" * 40
MAIN = "refs/heads/main"

# The Hub's repo name alphabet: ASCII letters, digits, '-', '_', '.'; at most 96
# characters per part; no leading or trailing '-' or '.', and no '--' or '..'.
_NAME_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?\Z")
_SHA = re.compile(r"(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")
_REF = re.compile(r"refs/[A-Za-z0-9._/-]{1,250}\Z")
_PR_REF = re.compile(r"refs/pr/([1-9][0-9]{0,8})\Z")
MAX_REFS = 64


class PayloadError(ValueError):
    """The delivery is not a well-formed version-3 webhook payload (answered with 400)."""


@dataclass(frozen=True)
class RefUpdate:
    """One entry of `updatedRefs`: a ref moved from `old_sha` to `new_sha`."""

    ref: str
    old_sha: str | None   # None: the ref was created by this push
    new_sha: str | None   # None: the ref was deleted
    base_sha: str | None = None   # for a new ref: main's head, what the new ref is compared with

    @property
    def pr_number(self) -> int | None:
        """N for `refs/pr/N` (a Hub pull request), else None."""
        match = _PR_REF.match(self.ref)
        return int(match.group(1)) if match else None

    @property
    def kind(self) -> str:
        """`branch`, `pr`, `tag`, `convert` (Hub-made refs such as refs/convert/parquet) or `other`."""
        if self.pr_number is not None:
            return "pr"
        for prefix, kind in (("refs/heads/", "branch"), ("refs/tags/", "tag"), ("refs/convert/", "convert")):
            if self.ref.startswith(prefix):
                return kind
        return "other"

    @property
    def is_deletion(self) -> bool:
        return self.new_sha is None


@dataclass(frozen=True)
class WebhookEvent:
    """The parts of a version-3 payload the bot uses."""

    version: int
    scope: str
    action: str
    repo_type: str
    repo_name: str        # validated only for dataset content events (see `dataset_push`)
    private: bool
    head_sha: str | None  # main's head: informational only, never the pushed commit
    refs: tuple[RefUpdate, ...]
    webhook_id: str | None

    @property
    def is_content_update(self) -> bool:
        return self.scope == CONTENT_SCOPE or self.scope.startswith(CONTENT_SCOPE + ".")


@dataclass(frozen=True)
class DatasetPush:
    """What the bot will check: a dataset repo and the refs whose new commits need a report."""

    repo_id: str
    private: bool
    refs: tuple[RefUpdate, ...]
    skipped: tuple[tuple[RefUpdate, str], ...]   # refs not checked, with the reason


def parse_payload(data: Any) -> WebhookEvent:
    """Validate the envelope of a delivery (version, event, repo) and parse its refs."""
    if not isinstance(data, dict):
        raise PayloadError("the payload must be a JSON object")
    webhook = _mapping(data, "webhook")
    version = webhook.get("version")
    if version != SUPPORTED_VERSION or isinstance(version, bool):
        raise PayloadError(f"unsupported webhook version {version!r} (this bot reads version {SUPPORTED_VERSION})")
    event = _mapping(data, "event")
    scope, action = _string(event, "scope", "event"), _string(event, "action", "event")
    repo = _mapping(data, "repo")
    repo_type, name = _string(repo, "type", "repo"), _string(repo, "name", "repo")
    private = repo.get("private", False)
    if not isinstance(private, bool):
        raise PayloadError("repo.private must be a boolean")
    head_sha = repo.get("headSha")
    if not isinstance(head_sha, str) or not _SHA.match(head_sha) or is_zero_sha(head_sha):
        head_sha = None
    webhook_id = webhook.get("id")
    return WebhookEvent(version=version, scope=scope, action=action, repo_type=repo_type, repo_name=name,
                        private=private, head_sha=head_sha,
                        refs=_refs(data.get("updatedRefs")),
                        webhook_id=webhook_id if isinstance(webhook_id, str) else None)


def ignore_reason(event: WebhookEvent) -> str | None:
    """Why this event needs no check (answered 200 with the reason), or None for a dataset push."""
    if event.repo_type != DATASET:
        return f"not a dataset repo (repo.type is {event.repo_type!r})"
    if not event.is_content_update:
        return f"not a content update (event.scope is {event.scope!r}, action {event.action!r})"
    if not event.refs:
        return "no updatedRefs in a content update"
    return None


def dataset_push(event: WebhookEvent) -> DatasetPush:
    """The refs of a dataset content update to check; raises PayloadError on an unsafe name.

    Checked: branches and pull request refs that point at a new commit. Not checked:
    deleted refs, tags (they name an existing commit, already checked when pushed) and
    Hub-made refs such as `refs/convert/parquet` (the Hub's own conversion of the data).

    A new ref other than main (a new branch or pull request, `oldSha` null) is compared
    with main's head (`repo.headSha`), so that only what it adds is checked, not the
    whole dataset again; a new main (the first push to a repo) is checked whole. A new ref
    at main's head (a branch or pull request opened with no commit of its own) adds nothing.
    """
    repo_id = validate_repo_id(event.repo_name)
    to_check: list[RefUpdate] = []
    skipped: list[tuple[RefUpdate, str]] = []
    for update in event.refs:
        if update.is_deletion:
            skipped.append((update, "ref deleted"))
        elif update.kind == "tag":
            skipped.append((update, "tag (its commit is checked when pushed to a branch)"))
        elif update.kind == "convert":
            skipped.append((update, "made by the Hub (dataset conversion)"))
        elif update.kind == "other":
            skipped.append((update, "not a branch or pull request ref"))
        elif update.old_sha == update.new_sha:
            skipped.append((update, "ref did not move"))
        elif update.old_sha is None and update.ref != MAIN and update.new_sha == event.head_sha:
            skipped.append((update, "new ref at main's head (it adds nothing to check)"))
        else:
            if update.old_sha is None and update.ref != MAIN and event.head_sha not in (None, update.new_sha):
                update = replace(update, base_sha=event.head_sha)
            to_check.append(update)
    return DatasetPush(repo_id=repo_id, private=event.private, refs=tuple(to_check), skipped=tuple(skipped))


def validate_repo_id(name: Any) -> str:
    """`namespace/name` in the Hub's alphabet, or PayloadError.

    Rejects, before the name reaches any URL or path: absolute paths, `..` and `--`
    sequences, backslashes, whitespace, percent escapes, non-ASCII and control
    characters, and anything but exactly one `/`.
    """
    if not isinstance(name, str) or not name:
        raise PayloadError("repo.name must be a non-empty string")
    shown = name if len(name) <= 120 and name.isprintable() else repr(name[:120])
    if name.startswith("/"):
        raise PayloadError(f"repo name {shown!r} is an absolute path")
    if ".." in name or "--" in name:
        raise PayloadError(f"repo name {shown!r} contains '..' or '--'")
    parts = name.split("/")
    if len(parts) != 2:
        raise PayloadError(f"repo name {shown!r} must be 'namespace/name'")
    for part in parts:
        if not _NAME_PART.match(part):
            raise PayloadError(f"repo name {shown!r} has characters outside [A-Za-z0-9._-] "
                               "or a part that starts or ends with '.' or '-'")
    return name


def is_zero_sha(sha: str | None) -> bool:
    return sha is None or set(sha) == {"0"}


def _refs(value: Any) -> tuple[RefUpdate, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PayloadError("updatedRefs must be a list")
    if len(value) > MAX_REFS:
        raise PayloadError(f"updatedRefs has {len(value)} entries (at most {MAX_REFS} are accepted)")
    refs = []
    for index, item in enumerate(value):
        where = f"updatedRefs[{index}]"
        if not isinstance(item, dict):
            raise PayloadError(f"{where} must be an object")
        ref = _string(item, "ref", where)
        if not _REF.match(ref) or ".." in ref or "//" in ref or ref.endswith(("/", ".lock")):
            raise PayloadError(f"{where}.ref {ref[:120]!r} is not a valid git ref")
        old, new = _sha(item, "oldSha", where), _sha(item, "newSha", where)
        if old is None and new is None:
            raise PayloadError(f"{where} has neither oldSha nor newSha")
        refs.append(RefUpdate(ref=ref, old_sha=old, new_sha=new))
    return tuple(refs)


def _sha(item: dict, key: str, where: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not _SHA.match(value):
        raise PayloadError(f"{where}.{key} must be a hex commit id or null")
    return None if is_zero_sha(value) else value


def _mapping(data: dict, key: str) -> dict:
    value = data.get(key)
    if not isinstance(value, dict):
        raise PayloadError(f"missing or invalid '{key}' object")
    return value


def _string(data: dict, key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise PayloadError(f"{where}.{key} must be a non-empty string")
    return value
