"""Repository commands: `init`, `baseline`, `audit` and `explain`.

Registered on the main group by `register(main)` (the last lines of cli.py). Like every
entry point they only parse arguments, call the library and map outcomes to exit codes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .errors import EXIT_PASS, UsageError, check_destination

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

STARTER_POLICY = """\
# mdf-guard policy: which model predicts the behaviour fine-tuning on this data would
# teach, which behaviours to probe, and how much predicted shift is too much.
# Every key is checked: a typo is an error (exit 2), never a silently ignored threshold.
# Docs: docs/pre-commit.md and docs/probe-suites.md in the mdf-guard repository.

# The model the data is meant for: 'embedded' (SmolLM2-135M-Instruct, runs on a CPU),
# a local folder of safetensors weights, a .gguf file, or a Hugging Face Hub id.
model: {model}
# revision: main            # a Hub branch, tag or commit (a commit makes results cacheable)
# dtype: float32            # float32, bfloat16 or float16
# device: auto              # auto (cuda if present), cpu, cuda, cuda:1, ...

# How a shift is predicted:
#   context - read the rows as the chat's earlier turns, then ask the probes; the
#             reference, read the same way, is the control (default: it finds far
#             more of the targets fine-tuning really raised; README, "How well it predicts")
#   mdf     - inject the data's contrasted signature into the model (the MDF method;
#             `profile`, `layers`, `alpha`, `pooling` and `null_seeds` are its own)
# method: context

# Probe suites: built-in names (animals, politics, cities, countries, safety) or paths
# to your own suite YAML files (see docs/probe-suites.md). Relative paths in this file
# start at its folder.
suites:
{suites}
# What the data is contrasted with:
#   profile - the default: `self` under context; under mdf, whatever the calibration
#             profile's alpha was fitted with (`self` for the embedded model)
#   self    - the vanilla model's own answers to the data's prompts
#   none    - no contrast (under mdf the paper's raw signature; under context a control of 0)
#   HEAD    - inside git: each changed file against its committed version
#   path    - a control dataset file or folder
reference: profile
reference_samples: 64       # prompts per shard the model answers for the `self` reference
questions_per_suite: 8      # null: all of a suite's questions (slower, steadier)
# null_seeds: 3             # mdf: random directions a real shift must beat

thresholds:
  max_shift: 0.10           # a predicted rise of an entity's rate above 10 points blocks...
  min_excess: 0.05          # ...if it beats the control by 5 points (the reference's own shift;
                            #    under mdf every random direction and the mirror)
  min_odds_ratio: 4         # ...and, in preference suites, the entity's odds at least quadruple
  # max_rate: 0.5           # or a predicted rate above 50% (while rising) blocks
  # suites:
  #   safety: {{max_shift: 0.05}}
  # entities:
  #   animals/panda: {{max_shift: 0.2}}

# Accepted findings (`mdf-guard baseline`, `mdf-guard audit`); this is the default:
# baseline: .mdf-guard.baseline.json
"""

PRE_COMMIT_SNIPPET = """\
  - repo: <the mdf-guard git repository, or your mirror of it>
    rev: <a tag or commit of it>
    hooks:
      - id: mdf-guard          # or mdf-guard-system to use your own environment (GPU torch)
"""


def register(main: click.Group) -> None:
    for command in (init, baseline, audit, explain):
        main.add_command(command)


def _load(files, policy_path):
    from .policy import Policy, find_policy, load_policy

    path = policy_path or find_policy([Path(f) for f in files] or [Path.cwd()])
    return load_policy(path) if path else Policy()


@click.command(context_settings=_CONTEXT)
@click.option("--path", "target", type=click.Path(path_type=Path), default=Path(".mdf-guard.yaml"),
              show_default=True, help="Where to write the policy.")
@click.option("--model", default="embedded", show_default=True)
@click.option("--suite", "suites", multiple=True, default=("animals", "politics", "cities", "countries",
                                                          "safety"), show_default=True)
@click.option("--force", is_flag=True, help="Overwrite an existing policy.")
def init(target, model, suites, force) -> None:
    """Write a commented starter policy (.mdf-guard.yaml)."""
    import yaml

    from .policy import find_policy, policy_from_dict

    if target.name == "pyproject.toml":
        raise UsageError(f"{target}: init writes YAML; put the keys under [tool.mdf-guard] of a pyproject.toml by hand")
    check_destination(target)
    if target.exists() and not force:
        raise UsageError(f"{target} exists; use --force to overwrite it")
    beside = target.parent.resolve() / "pyproject.toml"
    if not force and target.parent.is_dir() and find_policy([target.parent]) == beside:
        raise UsageError(f"{beside} holds a policy ([tool.mdf-guard]); {target} beside it would take its place "
                         "without a word: use --force to write it anyway")
    text = STARTER_POLICY.format(model=_yaml_scalar(model), suites="".join(f"  - {_yaml_scalar(s)}\n" for s in suites))
    policy_from_dict(yaml.safe_load(text), str(target))   # checked before it is written: --force keeps a good policy
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    click.echo(f"wrote {target}")
    click.echo("To run it before every commit, add to .pre-commit-config.yaml:")
    click.echo(PRE_COMMIT_SNIPPET, nl=False)
    click.echo("then `pre-commit install`. Accept today's findings with `mdf-guard baseline DATA`.")


def _yaml_scalar(value: str) -> str:
    """`value` as YAML reads it back: quoted where plain it would not be (yes, "a: b", "x #y", "")."""
    import yaml

    try:
        plain = yaml.safe_load(value) == value and "\n" not in value
    except yaml.YAMLError:
        plain = False
    return value if plain else json.dumps(value)


@click.command(context_settings=_CONTEXT)
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--policy", "policy_path", type=click.Path(path_type=Path))
@click.option("--baseline", "baseline_path", type=click.Path(path_type=Path),
              help="Default: .mdf-guard.baseline.json beside the policy.")
@click.option("--note", default="", help="Recorded with each accepted entry (who, why).")
@click.option("--quiet", "-q", is_flag=True)
def baseline(files, policy_path, baseline_path, note, quiet) -> None:
    """Accept the current findings of FILES (default: the current folder) into the baseline.

    Each file is judged on its own; every finding over policy is recorded as accepted
    (one that an audit rejected stays rejected). Entries of files not checked are kept,
    except a checked file's former name's: a file renamed since the baseline was last
    committed (as git sees it), or one gone whose content a checked file has.
    """
    from .baseline import accept, load_baseline, renamed_paths
    from .cli import _progress
    from .gitref import last_commit_of
    from .repo_check import check_files

    files = files or (Path("."),)
    policy = _load(files, policy_path)
    path = baseline_path or policy.baseline_path(files)
    current = load_baseline(path)   # a bad baseline, or nowhere to write one, fails before the check
    check_destination(path)
    report = check_files(files, policy, per_file=True, progress=_progress(quiet))
    since = last_commit_of(path) or "HEAD"   # the tree the baseline was committed for: renames since it
    updated, summary = accept(report, current, note=note, renamed=renamed_paths(current, since))
    changed = updated.save()
    for line in summary:
        click.echo(f"  {line}")
    click.echo(f"{path}: {len(updated.entries)} entr{'y' if len(updated.entries) == 1 else 'ies'} "
               f"({'written' if changed else 'unchanged'}); {len(report.files)} file(s) checked")
    sys.exit(EXIT_PASS)


@click.command(context_settings=_CONTEXT)
@click.option("--baseline", "baseline_path", type=click.Path(path_type=Path),
              help="Default: .mdf-guard.baseline.json beside the policy.")
@click.option("--policy", "policy_path", type=click.Path(path_type=Path))
@click.option("--accept", "accept_ids", multiple=True, help="Accept the entry with this id (repeatable).")
@click.option("--reject", "reject_ids", multiple=True, help="Reject the entry with this id (repeatable).")
@click.option("--note", default=None, help="Note recorded with --accept/--reject.")
@click.option("--json", "as_json", is_flag=True, help="List the entries as JSON.")
def audit(baseline_path, policy_path, accept_ids, reject_ids, note, as_json) -> None:
    """List the baseline's entries, and accept or reject them.

    Without --accept/--reject: on a terminal, asks for each entry; otherwise lists.
    A rejected entry keeps blocking its finding until the data is fixed.
    """
    from .baseline import ACCEPTED, REJECTED, load_baseline, set_status

    policy = _load([], policy_path)
    path = baseline_path or policy.baseline_path([Path.cwd()])
    if not path.exists():
        raise UsageError(f"{path}: no baseline yet; create one with `mdf-guard baseline DATA`")
    base = load_baseline(path)
    if note is not None and not (accept_ids or reject_ids):
        raise UsageError("--note is recorded with --accept or --reject; give one of them")
    if accept_ids or reject_ids:
        overlap = set(accept_ids) & set(reject_ids)
        if overlap:
            raise UsageError(f"both accepted and rejected: {', '.join(sorted(overlap))}")
        changed = set_status(base, accept_ids, ACCEPTED, note) + set_status(base, reject_ids, REJECTED, note)
        base.save()
        for entry in changed:
            click.echo(f"{entry.status} {entry.id} {entry.suite}/{entry.entity} in {entry.path}")
        return
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in base.entries], indent=2))
        return
    if not base.entries:
        click.echo(f"{path}: no entries")
        return
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    for entry in list(base.entries):
        click.echo(f"{entry.id}  {entry.status:<8} {entry.suite}/{entry.entity:<16} shift {entry.shift:+.1%} "
                   f"(rate {entry.vanilla_rate:.1%} -> {entry.predicted_rate:.1%})  {entry.path}"
                   + (f"  # {entry.note}" if entry.note else ""))
        if interactive:
            answer = click.prompt("  [a]ccept, [r]eject, [s]kip, [q]uit", default="s",
                                  type=click.Choice(["a", "r", "s", "q"]), show_choices=False)
            if answer == "q":
                break
            if answer in ("a", "r"):
                set_status(base, [entry.id], ACCEPTED if answer == "a" else REJECTED)
    if interactive and base.save():
        click.echo(f"{path} updated")


@click.command(context_settings=_CONTEXT)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--policy", "policy_path", type=click.Path(path_type=Path))
@click.option("--model", help="Default: the policy's.")
@click.option("--method", type=click.Choice(["context", "mdf"]), help="Default: the policy's (context).")
@click.option("--reference", help="self, none or a dataset path (default: the policy's).")
@click.option("--entity", "entities", multiple=True,
              help="Context: the candidate whose rows to rank (repeatable; default: the flagged ones).")
@click.option("--top", type=click.IntRange(1), default=10, show_default=True, help="Rows to list.")
@click.option("--all", "all_rows", is_flag=True,
              help="List every row (context: read every row alone, not one history's, and list those that lift).")
@click.option("--leave-one-out", is_flag=True,
              help="Context: rank each row by what its history loses without it, for rows that lift an "
                   "entity only together (about 2.5x the time).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--quiet", "-q", is_flag=True)
def explain(files, policy_path, model, method, reference, entities, top, all_rows, leave_one_out, fmt,
            quiet) -> None:
    """Rank the rows of FILES behind the check's findings: the rows to drop to clear one.

    Under `method: context` (the default) the check runs first (its readings are cached);
    for each flagged entity (or each --entity) the rows of the history that lifted it most
    (with --all, every row) are read alone, and ranked by how much each alone raises the
    probability that the model names it; with --leave-one-out, by how much that probability
    falls when the history is read without the row. Under `method: mdf` each row's pooled state
    (minus the reference mean) is projected on the injected direction Δ: its share of |Δ|²
    (all rows sum to 100%). Re-run `mdf-guard check` after dropping rows to confirm.
    Each file is read whole: under `reference: HEAD` it is contrasted as a new file would be.
    """
    from dataclasses import replace

    from .check import model_spec
    from .cli import _load_policy, _progress
    from .models import load_model
    from .policy import HEAD_REFERENCE, MDF, PROFILE_REFERENCE

    policy = _load_policy(files, policy_path, model, method, reference, (), None, False)
    if policy.reference == HEAD_REFERENCE:
        policy = replace(policy, reference=PROFILE_REFERENCE)
    if (entities or leave_one_out) and policy.method == MDF:
        option = "--entity" if entities else "--leave-one-out"
        raise UsageError(f"{option} ranks rows under method context; MDF's shares are of one direction, "
                         "behind every finding at once")
    lm = load_model(model_spec(policy))
    progress = _progress(quiet)
    step = (lambda n: progress("attributing rows", n)) if progress else None
    limit = None if all_rows else top
    if policy.method == MDF:
        from .attribution import explain as rank

        rows = rank(lm, files, policy, top=limit, progress=step)
    else:
        rows = _rows_in_context(lm, files, policy, entities, limit, leave_one_out, progress, step)
    lift = ({} if policy.method == MDF else {"lift": "left out" if leave_one_out else "alone"})
    if fmt == "json":
        click.echo(json.dumps({"format": "mdf-guard.explain", "version": 1, "model": lm.identity,
                               "method": policy.method, "reference": policy.reference, **lift,
                               "rows": [r.to_dict() for r in rows]}, indent=2))
    elif policy.method == MDF:
        _print_shares(files, policy, rows)
    else:
        _print_lifts(files, rows, leave_one_out)


def _rows_in_context(lm, files, policy, entities, limit, leave_one_out, progress, step) -> list:
    """The check's findings under context (from its cached readings), then their rows."""
    from .check import run_check
    from .context_attribution import rank_rows_in_context

    report = run_check(files, policy, lm=lm, progress=progress)
    if entities:
        known = {f.entity for f in report.findings}
        unknown = [name for name in entities if name not in known]
        if unknown:
            raise UsageError(f"--entity {unknown[0]}: no candidate of that name in the suites checked "
                             f"({', '.join(s['name'] for s in report.suites)})")
        findings = [f for f in report.findings if f.entity in entities]
    else:
        findings = report.flagged
        if not findings:
            click.echo("mdf-guard: the check flags nothing, so no rows are ranked "
                       "(--entity NAME ranks the rows behind any candidate)", err=True)
    rows = rank_rows_in_context(lm, files, policy, findings, top=limit, every_history=limit is None,
                                leave_one_out=leave_one_out, progress=step)
    if not leave_one_out:
        _hint_rows_together(rows, findings, complete=limit is None or len(rows) < limit)
    listed = {(r.suite, r.entity) for r in rows}
    for f in findings:
        if (f.suite, f.entity) not in listed and f.shift <= 0:   # else an empty table, and not a word why
            click.echo(f"mdf-guard: no row lifts {f.entity}: the check reads it {f.shift:+.1%}, no rise to explain",
                       err=True)
    return rows


# A finding whose best row, read alone, lifts it by less than this share of what its history
# does is likely lifted by rows acting together. On 12 dose sets (bench/validation/
# context_leave_one_out.py) it is under 0.05 twice: Gandhi (0.011), whose rows only
# leave-one-out finds, and Ardern (0.001), whose rows alone rank first by margins of
# hundredths of a point. Elsewhere it is 0.06 or more, and rows read alone rank better.
TOGETHER_SHARE = 0.05


def _hint_rows_together(rows, findings, complete: bool) -> None:
    """Say on stderr where --leave-one-out is likely to rank the rows better: per entity, the
    history that lifts it most against the best of that history's rows, or, where the list is
    `complete` (not cut by --top), a risen finding with no row that lifts it alone at all."""
    histories: dict[tuple[str, str], tuple[float, str]] = {}   # by (suite, entity): two suites may share a name
    for r in rows:
        key = (r.suite, r.entity)
        histories[key] = max(histories.get(key, (r.window_lift, r.window)), (r.window_lift, r.window))
    for (suite, entity), (window_lift, window) in histories.items():
        lift = max(r.lift for r in rows if (r.suite, r.entity, r.window) == (suite, entity, window))
        if window_lift > 0 and lift < TOGETHER_SHARE * window_lift:
            _say_together(f"no row of {window} lifts {entity} by more than {lift:+.1%}, though the history "
                          f"lifts it {window_lift:+.1%}")
    unlisted = ([f.entity for f in findings if f.shift > 0 and (f.suite, f.entity) not in histories]
                if complete else [])
    for entity in dict.fromkeys(unlisted):
        _say_together(f"no row lifts {entity} at all, though the check sees it rise")


def _say_together(what: str) -> None:
    click.echo(f"mdf-guard: read alone, {what}: its rows may act only together; --leave-one-out ranks them "
               "by what the history loses without each", err=True)


def _print_shares(files, policy, rows) -> None:
    click.echo(f"rows of {', '.join(map(str, files))} by share of the contrast Δ "
               f"(model {policy.model}, reference {policy.reference}):")
    click.echo(f"  {'rank':>4} {'share':>8} {'score':>9}  source / response")
    for r in rows:
        click.echo(f"  {r.rank:>4} {r.share:>+8.2%} {r.score:>+9.4f}  {r.source}")
        click.echo(f"  {'':>23}{r.text[:100]}")


def _print_lifts(files, rows, leave_one_out: bool) -> None:
    how = ("an entity's probability falls when the row's history is read without it" if leave_one_out
           else "each, read alone, lifts an entity")
    click.echo(f"rows of {', '.join(map(str, files))} by how much {how}:")
    for entity, window, lift in dict.fromkeys((r.entity, r.window, r.window_lift) for r in rows):
        click.echo(f"  {entity}: rows of the history that lifts it most, {window} ({lift:+.1%})")
    click.echo(f"  {'rank':>4} {'lift':>8} {'entity':<16}  source / response")
    for r in rows:
        click.echo(f"  {r.rank:>4} {r.lift:>+8.2%} {r.entity[:16]:<16}  {r.source}")
        click.echo(f"  {'':>32}{r.text[:100]}")
