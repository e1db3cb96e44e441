"""`mdf-guard push FOLDER REPO_ID`: check a dataset folder, then upload it only if it passes.

Exit codes: 0 uploaded (passed, or forced past a failing check), 1 risk over policy
(nothing uploaded), 2 usage, input or Hub error (nothing uploaded).

`--force` uploads despite a failing verdict and needs `--reason`, which goes into the
commit message (and the commit description, with the findings), so the Hub history
says who overrode the check and why. It does not override data the check cannot read.
Between the check and the upload, the folder's data files are hashed again: a file
added or changed in the meantime stops the upload, so what is uploaded is what was checked.
A policy's `reference: HEAD` (for the pre-commit hook) has no committed version here: every
file is checked as new, against the profile's reference, as `check` does for a file git has not seen.
With the policy's baseline, the folder is judged as `check` judges it: each file on its own, and
risk the baseline accepts does not block. The baseline is read, never rewritten.

Renames, as `check` finds them: a file git sees as renamed since HEAD in FOLDER's work tree keeps
its entries under its new name. The Hub's files are not asked. The upload deletes nothing there
(a renamed file's old name stays on the Hub), so no Hub file is "deleted by the upload" to pair
with; and the baseline is the local one, keyed by local paths and content: a file renamed as it
was already matches its entry by content, while a renamed and edited file shares no hash with
the Hub's old version. Pairing those by likeness would mean downloading the Hub's files and
redoing git's rename heuristics: not cheap, and a guess where the folder's git knows.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from .errors import EXIT_PASS, EXIT_RISK, MdfGuardError, UsageError

MAX_REASON_CHARS = 500


@click.command("push", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("repo_id")
@click.option("--pr", "create_pr", is_flag=True, help="Open a pull request instead of committing to the branch.")
@click.option("--revision", help="Branch to commit to (default: the repo's default branch).")
@click.option("--message", "-m", help="Commit title (default: 'Upload dataset checked by mdf-guard').")
@click.option("--force", is_flag=True, help="Upload even if the check fails; needs --reason.")
@click.option("--reason", help="Why a failing check is overridden (required with --force; goes into the "
                                "commit message).")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Policy file (default: found upward from FOLDER).")
@click.option("--model", help="Model: 'embedded' (default), a folder, a .gguf file or a Hub id.")
@click.option("--reference", help="Contrast with 'self' (default), 'none', or a reference dataset path.")
@click.option("--suite", "suites", multiple=True, help="Probe suite name or YAML path (repeatable).")
@click.option("--questions", type=int, help="Questions per suite.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Format of the report printed on stdout.")
@click.option("--endpoint", envvar="HF_ENDPOINT", help="Hub endpoint (default: huggingface_hub's).")
def push_command(folder, repo_id, create_pr, revision, message, force, reason, policy_path, model, reference,
                 suites, questions, fmt, endpoint) -> None:
    """Check FOLDER, then upload it to the dataset repo REPO_ID only if the check passes.

    FOLDER is judged as `mdf-guard check FOLDER` judges it: with the policy's baseline, risk
    it accepts does not block (the baseline is read, never rewritten).
    """
    from .data import find_data_files, open_shard
    from .hub import HubClient
    from .policy import HEAD_REFERENCE, PROFILE_REFERENCE, Policy, find_policy, load_policy
    from .report import render
    from .webhook import PayloadError, validate_repo_id

    reason = " ".join((reason or "").split())
    if force and not reason:
        raise UsageError("--force needs --reason: say why the check is overridden (it goes into the commit message)")
    if reason and not force:
        raise UsageError("--reason is only used with --force")
    if len(reason) > MAX_REASON_CHARS:
        raise UsageError(f"--reason is limited to {MAX_REASON_CHARS} characters")
    if create_pr and revision:
        raise UsageError("--pr opens a pull request against the default branch; drop --revision")
    try:
        validate_repo_id(repo_id)
    except PayloadError as err:
        raise UsageError(str(err)) from None

    path = policy_path or find_policy([folder])
    policy = load_policy(path) if path else Policy()
    baseline = policy.baseline_path([folder])
    hidden = _hidden_data_files(folder, baseline)
    if hidden:
        raise UsageError(f"{len(hidden)} hidden data file(s) would be uploaded but are never checked "
                         f"(e.g. {hidden[0]}); move or remove them")

    overrides = {"model": model, "reference": reference, "suites": tuple(suites) or None,
                 "questions_per_suite": questions}
    policy = replace(policy, **{k: v for k, v in overrides.items() if v is not None})
    if policy.reference == HEAD_REFERENCE:   # no committed version to contrast with: as `check` does for a new file
        policy = replace(policy, reference=PROFILE_REFERENCE)

    report = _judged(folder, policy, baseline)
    click.echo(render(report, fmt, color=None if fmt == "text" else False), nl=False)
    failed = report.verdict == "fail"
    if failed and not force:
        click.echo(f"mdf-guard: not uploaded to {repo_id}: the check failed "
                   "(fix the data, or --force --reason '...' to override)", err=True)
        sys.exit(EXIT_RISK)

    checked = {Path(f.path).resolve(): f.sha256 for f in report.files}
    now = {p.resolve(): open_shard(p).sha256 for p in find_data_files([folder])}
    if now != checked:
        raise MdfGuardError("the data files in the folder changed during the check; nothing uploaded, run again")

    title = message or "Upload dataset checked by mdf-guard"
    if failed:
        title = f"{title} [mdf-guard check FAILED, forced: {reason}]"
    description = _description(report, reason if failed else None)
    result = HubClient(endpoint=endpoint).upload_folder(folder, repo_id, title, description,
                                                         create_pr=create_pr, revision=revision)
    where = f"pull request {result.pr_url}" if result.pr_url else f"commit {result.commit_url}"
    click.echo(f"mdf-guard: {report.verdict}{' (forced)' if failed else ''}; uploaded to {repo_id} as {where}",
               err=True)
    sys.exit(EXIT_PASS)


def _judged(folder: Path, policy, baseline: Path):
    """The folder's report and verdict as `check FOLDER` gives them: with a baseline, file by
    file with accepted risk not blocking; a baseline that changed for an edited or renamed file
    (what `check` would rewrite) is applied as `check` applies it, and left as it is on disk."""
    from .baseline import apply_baseline, load_baseline, renamed_paths
    from .check import run_check
    from .repo_check import check_files

    if not baseline.is_file():
        return run_check([folder], policy)
    accepted = load_baseline(baseline)   # a bad baseline fails before the check
    return apply_baseline(check_files([folder], policy, per_file=True), accepted, renamed_paths(accepted)).report


def _hidden_data_files(folder: Path, baseline: Path) -> list[str]:
    """Files with a data suffix under a hidden folder or name: the check skips them, the upload would not.

    The policy's baseline (`.mdf-guard.baseline.json`) is mdf-guard's own record, not data.
    """
    import os

    from .data import DATA_SUFFIXES

    found = []
    baseline = baseline.resolve()
    for dirpath, dirnames, filenames in os.walk(folder):
        rel = Path(dirpath).relative_to(folder)
        dirnames[:] = [d for d in dirnames if not (rel / d).as_posix() in (".git", ".cache/huggingface")]
        hidden_dir = any(part.startswith(".") for part in rel.parts)
        for name in filenames:
            if ((hidden_dir or name.startswith(".")) and name.lower().endswith(DATA_SUFFIXES)
                    and (Path(dirpath) / name).resolve() != baseline):
                found.append((rel / name).as_posix())
    return sorted(found)


def _description(report, forced_reason: str | None) -> str:
    lines = [f"mdf-guard verdict: {report.verdict}",
             f"model: {report.model.get('name')} ({report.model.get('identity', '')[:16]})",
             f"policy: {report.settings.get('policy')}",
             "files: " + ", ".join(f"{Path(f.path).name} ({f.sha256[:12]})" for f in report.files)]
    for finding in report.flagged:
        lines.append(f"RISK {finding.suite}/{finding.entity}: {finding.reason}")
    if forced_reason:
        lines.append(f"forced past the failing check; reason: {forced_reason}")
    return "\n".join(lines)
