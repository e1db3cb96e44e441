"""`--reference HEAD`: what a change adds to each dataset file, against its committed version.

For each checked file inside a git work tree:
- **new** (not in the revision): the whole file is what the change adds; it is contrasted
  with the policy's own reference (`self` by default), as a plain check would;
- **modified**: the rows that the change adds (a multiset difference of normalised
  records, so reordering or re-serialising adds nothing) are the dataset, and the
  committed version of the file (`git show REV:path`, through the repository's filters:
  Git LFS) is the reference. Contrasting the added rows with what was already there asks
  "does this commit push the data somewhere new?", undiluted by the rows that were already
  accepted;
- **unchanged**, or only rows removed: nothing is added, nothing to check.

Also the git facts the pre-commit hook needs: the repository root, and whether a file
has changes that are not staged.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .data import Conversation, read_conversations
from .errors import InputError, UsageError

NEW, MODIFIED, UNCHANGED, REMOVED_ONLY = "new", "modified", "unchanged", "rows removed only"
NOTHING_PUSHED = "(nothing: the push starts the remote's history)"   # no such revision: every file is new


def _git(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """git with paths taken literally: a file named `a[1].jsonl` is not a pattern for `a1.jsonl`."""
    try:
        result = subprocess.run(["git", "--literal-pathspecs", *args], cwd=cwd, capture_output=True)
    except FileNotFoundError:
        raise UsageError("git is not installed, but the git reference needs it") from None
    if check and result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UsageError(f"git {' '.join(args)} failed: {message[0] if message else result.returncode}")
    return result


def repo_root(path: Path) -> Path | None:
    """The top of the git work tree holding `path`, or None outside one."""
    folder = Path(path).resolve()
    folder = folder if folder.is_dir() else folder.parent
    while not folder.exists():
        folder = folder.parent
    result = _git(["rev-parse", "--show-toplevel"], folder, check=False)
    if result.returncode != 0:
        return None
    return Path(result.stdout.decode().strip()).resolve()


def renamed_since(path: Path, rev: str = "HEAD") -> dict[Path, Path]:
    """Files of the git work tree holding `path` that git sees as renamed since `rev` (staged or
    not; a deleted file and an added one at least half alike), new path -> old path, both
    absolute. A baseline carries a renamed file's entries to its new name, edited or not: keyed
    by path and content, a rename then an edit matched neither and every accepted finding came
    back `new`. `rev` is HEAD, or in a pre-push hook the remote's side of the push (the commits
    being pushed are already made: since HEAD, nothing is renamed). {} where git cannot say (no
    git, no work tree, no such revision: a first push, or no commit yet): nothing is carried
    over, which blocks rather than passes."""
    if shutil.which("git") is None:
        return {}
    root = repo_root(path)
    if root is None or not rev_exists(root, rev):
        return {}
    diff = _git(["diff", "-M", "--name-status", "-z", rev, "--"], root, check=False)
    if diff.returncode != 0:
        return {}
    fields = os.fsdecode(diff.stdout).split("\0")
    renamed, i = {}, 0
    while i < len(fields) - 1:
        status = fields[i]
        if status[:1] in ("R", "C"):    # a rename or a copy names its old path, then its new one
            if status[:1] == "R":
                renamed[root / fields[i + 2]] = root / fields[i + 1]
            i += 3
        else:
            i += 2
    return renamed


def last_commit_of(path: Path) -> str | None:
    """The last commit of HEAD's history that changed `path`; None where git cannot say (no git,
    no work tree, never committed). A baseline describes the tree as of then: renames since it
    are what its entries have not followed yet, committed or not."""
    if shutil.which("git") is None:
        return None
    root = repo_root(path)
    if root is None or not rev_exists(root, "HEAD"):
        return None
    try:
        rel = Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return None
    result = _git(["log", "-1", "--format=%H", "HEAD", "--", rel], root, check=False)
    sha = result.stdout.decode().strip()
    return sha if result.returncode == 0 and sha else None


def hook_revision(rev: str, environ: Mapping[str, str]) -> str:
    """What `HEAD` means in a pre-commit hook: at the pre-push stage, the remote's side of the
    push (pre-commit's from-ref), so that the verdict is about what the push adds. A push that
    starts the remote's history (its root commit included) has no from-ref, only the remote's
    name: the remote's side is empty and every file is new (read against HEAD, each would be
    unchanged, and nothing would be checked)."""
    if environ.get("PRE_COMMIT_FROM_REF"):
        return environ["PRE_COMMIT_FROM_REF"]
    if environ.get("PRE_COMMIT_REMOTE_NAME"):
        return NOTHING_PUSHED
    return rev


def rev_exists(root: Path, rev: str) -> bool:
    return _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], root, check=False).returncode == 0


def committed_bytes(root: Path, rel: str, rev: str = "HEAD") -> bytes | None:
    """The file as committed in `rev`, or None if it is not there. Read as a checkout would
    write it (`--filters`: Git LFS and other smudge filters, line endings), since the working
    file it is compared with went through them too; the raw blob of an LFS file is a pointer."""
    if _git(["cat-file", "-e", f"{rev}:{rel}"], root, check=False).returncode != 0:
        return None
    return _git(["cat-file", "--filters", f"{rev}:{rel}"], root).stdout


def has_unstaged_changes(path: Path) -> bool:
    """True if `path` differs from the index, or is not in the index at all."""
    path = Path(path).resolve()
    root = repo_root(path)
    if root is None:
        return False
    rel = path.relative_to(root).as_posix()
    if _git(["ls-files", "--error-unmatch", "--", rel], root, check=False).returncode != 0:
        return path.exists()   # untracked: nothing of it would be committed
    return _git(["diff", "--quiet", "--", rel], root, check=False).returncode != 0


def row_key(conversation: Conversation) -> str:
    """Identity of a record's content (not of its position)."""
    return json.dumps([[t.role, t.content] for t in conversation.turns], ensure_ascii=False)


@dataclass
class Change:
    """One checked file and what the change adds to it."""

    path: Path                          # the file as the user named it
    status: str                         # NEW, MODIFIED, UNCHANGED or REMOVED_ONLY
    rev: str = "HEAD"
    added: list[Conversation] = field(default_factory=list)   # MODIFIED: the added rows, with their sources
    removed: int = 0                    # MODIFIED: rows that are gone
    committed_path: Path | None = None  # MODIFIED: the committed version, written under the work folder
    added_path: Path | None = None      # MODIFIED: the added rows as JSONL, under the work folder
    committed_name: str = ""            # MODIFIED: "REV:path" (the reports name the committed version so,
                                        # not by its copy in a temporary folder)

    @property
    def checked(self) -> bool:
        return self.status in (NEW, MODIFIED)

    def describe(self) -> dict:
        info = {"rev": self.rev, "status": self.status}
        if self.status == MODIFIED:
            info.update(added_rows=len(self.added), removed_rows=self.removed, path=self.committed_name,
                        files=[self.committed_name])
        return info


def changes(paths: list[Path], workdir: Path, rev: str = "HEAD") -> list[Change]:
    """Classify each data file against `rev` and write what the contrast needs under `workdir`."""
    out = []
    for index, path in enumerate(paths):
        root = repo_root(path)
        if root is None:
            raise UsageError(f"{path}: --reference {rev} needs the file inside a git work tree")
        if not rev_exists(root, rev):   # no commit yet: everything is new
            out.append(Change(path, NEW, rev))
            continue
        if Path(path).is_dir():          # a `datasets` folder: no single committed blob to compare
            rel = Path(path).resolve().relative_to(root).as_posix()
            tracked = _git(["ls-tree", "-d", rev, "--", rel], root).stdout.strip()
            if tracked:
                raise UsageError(f"{path}: --reference {rev} compares files; check the folder's "
                                 "Arrow files, or use another reference")
            out.append(Change(path, NEW, rev))
            continue
        rel = Path(path).resolve().relative_to(root).as_posix()
        old = committed_bytes(root, rel, rev)
        if old is None:
            out.append(Change(path, NEW, rev))
            continue
        if old == Path(path).read_bytes():
            out.append(Change(path, UNCHANGED, rev))
            continue
        out.append(_diff(Path(path), old, workdir / f"{index}", rev, f"{rev}:{rel}"))
    return out


def _diff(path: Path, old: bytes, folder: Path, rev: str, name: str) -> Change:
    folder.mkdir(parents=True, exist_ok=True)
    committed = folder / "committed" / path.name    # same name: same format and compression
    committed.parent.mkdir(parents=True, exist_ok=True)
    committed.write_bytes(old)
    try:
        before = Counter(row_key(c) for c in read_conversations(committed))
    except InputError as err:
        raise InputError(path, f"the version in {rev} cannot be read ({err}); "
                               "use another reference for this commit") from None
    added: list[Conversation] = []
    for conversation in read_conversations(path):
        key = row_key(conversation)
        if before[key] > 0:
            before[key] -= 1
        else:
            added.append(conversation)
    removed = sum(before.values())
    status = MODIFIED if added else REMOVED_ONLY if removed else UNCHANGED   # reordered or re-serialised
    change = Change(path, status, rev, added=added, removed=removed, committed_path=committed,
                    committed_name=name)
    if added:
        change.added_path = folder / "added.jsonl"
        change.added_path.write_text(
            "".join(json.dumps({"messages": [{"role": t.role, "content": t.content} for t in c.turns]},
                               ensure_ascii=False) + "\n" for c in added), encoding="utf-8")
    return change
