"""Command line: parse arguments, call the library, map outcomes to exit codes.

Exit codes: 0 pass, 1 risk over policy, 2 usage or input error, 3 baseline rewritten,
4 internal error (130: interrupted; 141: stdout closed early, as by `| head`). A user
error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import replace
from pathlib import Path

import click

from . import __version__
from .errors import EXIT_INTERNAL, EXIT_PASS, EXIT_RISK, MdfGuardError
from .report import FORMATS as _FORMATS

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Group(click.Group):
    """Turns MdfGuardError into a one-line message and its exit code, and any other exception
    into its traceback and EXIT_INTERNAL: Python's own exit status for one is 1, the code
    that means "risk over policy", and a crash must not read as a finding."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MdfGuardError as err:
            click.echo(f"mdf-guard: error: {err}", err=True)
            ctx.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("mdf-guard: interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:
            # The reader of stdout went away (`| head`): no bug, and no verdict it will read. Quiet,
            # with the shell's status for it (128 + SIGPIPE); stdout now leads nowhere, so the flush
            # at exit cannot fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(141)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as err:
            traceback.print_exc()
            click.echo(f"mdf-guard: internal error ({type(err).__name__}; traceback above): a bug, or the "
                       "machine (memory, disk); nothing was judged", err=True)
            ctx.exit(EXIT_INTERNAL)


@click.group(cls=_Group, context_settings=_CONTEXT)
@click.version_option(__version__, prog_name="mdf-guard")
def main() -> None:
    """Predict the behavioural risk of fine-tuning data before training (MDF)."""


def _policy_options(func):
    options = [
        click.option("--policy", "policy_path", type=click.Path(path_type=Path),
                     help="Policy file (.mdf-guard.yaml or pyproject.toml); default: found upward from the files."),
        click.option("--model", help="Model: 'embedded' (default), a folder, a .gguf file or a Hub id."),
        click.option("--method", type=click.Choice(["context", "mdf"]),
                     help="Read the rows in context (default) or inject their signature (MDF)."),
        click.option("--reference", help="Contrast with 'self' (default), 'none', a reference dataset path, "
                                         "or HEAD (each changed file against its committed version)."),
        click.option("--suite", "suites", multiple=True, help="Probe suite name or YAML path (repeatable)."),
        click.option("--questions", type=click.IntRange(min=1), help="Questions per suite (default from policy: 8)."),
        click.option("--offline", is_flag=True, help="Never contact the Hugging Face Hub (HF_HUB_OFFLINE=1)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _load_policy(files, policy_path, model, method, reference, suites, questions, offline):
    from .policy import Policy, find_policy, load_policy, validate_policy

    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    path = policy_path or find_policy([Path(f) for f in files])
    policy = load_policy(path) if path else Policy()
    overrides = {"model": model, "method": method, "reference": reference, "suites": tuple(suites) or None,
                 "questions_per_suite": questions}
    return validate_policy(replace(policy, **{k: v for k, v in overrides.items() if v is not None}))


def _progress(quiet: bool):
    """A tqdm bar per stage on stderr; silent when quiet or stderr is not a terminal."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def update(stage: str, done: int) -> None:
        if stage not in bars:
            for bar in bars.values():
                bar.close()
            bars.clear()
            bars[stage] = tqdm(desc=stage, unit="ex", file=sys.stderr, leave=False)
        bars[stage].update(done)

    return update


@main.command(context_settings=_CONTEXT)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@_policy_options
@click.option("--format", "fmt", type=click.Choice(list(_FORMATS)), default="text", show_default=True)
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write the report here instead of stdout.")
@click.option("--baseline", "baseline_path", type=click.Path(path_type=Path),
              help="Baseline of accepted findings (default: .mdf-guard.baseline.json beside the policy, "
                   "used when it exists). With a baseline each file is judged on its own.")
@click.option("--no-baseline", is_flag=True, help="Ignore any baseline.")
@click.option("--hook", is_flag=True, help="Pre-commit mode (also when PRE_COMMIT=1): refuse to run while "
                                           "the baseline has unstaged changes.")
@click.option("--attribution/--no-attribution", default=None,
              help="Rank the rows behind the findings (default: on for html and sarif).")
@click.option("--top-rows", type=click.IntRange(1), default=10, show_default=True,
              help="Rows listed by the attribution.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def check(files, policy_path, model, method, reference, suites, questions, offline, fmt, output, baseline_path,
          no_baseline, hook, attribution, top_rows, quiet) -> None:
    """Predict the risk of FILES (dataset files or folders).

    Exit 0 pass, 1 risk over policy, 2 usage or input error, 3 the baseline was rewritten
    (git add it and commit again), 4 internal error. --reference HEAD contrasts each changed
    file with its committed version (the rows the change adds against what was there).
    """
    from . import gitref
    from .baseline import apply_baseline, load_baseline, renamed_paths
    from .errors import EXIT_BASELINE_REWRITTEN, InputError, UsageError, check_destination
    from .policy import HEAD_REFERENCE
    from .repo_check import check_files
    from .report import render

    git_rev = None
    if reference is not None and _is_git_rev(reference):
        git_rev, reference = reference, None
    policy = _load_policy(files, policy_path, model, method, reference, suites, questions, offline)
    if output:
        check_destination(output)   # now, not once minutes of reading are done
    if git_rev is None and policy.reference == HEAD_REFERENCE:
        git_rev = HEAD_REFERENCE
    hook = hook or os.environ.get("PRE_COMMIT") == "1"
    if git_rev == HEAD_REFERENCE and hook:
        git_rev = gitref.hook_revision(git_rev, os.environ)   # pre-push: what the push adds to the remote
    if no_baseline and baseline_path:
        raise UsageError("--baseline and --no-baseline contradict each other")
    path = baseline_path or policy.baseline_path(files)
    use_baseline = not no_baseline and (baseline_path is not None or path.is_file())
    if use_baseline and hook and gitref.has_unstaged_changes(path):
        raise UsageError(f"{path} has unstaged changes (or is not added): git add it, then commit again")
    if attribution is None:
        attribution = fmt in ("html", "sarif")
    accepted = load_baseline(path) if use_baseline else None   # a bad baseline fails before the check

    report = check_files(files, policy, per_file=use_baseline, git_rev=git_rev, attribution=attribution,
                         top_rows=top_rows, progress=_progress(quiet))
    rewritten = False
    if use_baseline:
        # Renames since the revision the hook compares against: at the pre-push stage the pushed
        # commits are made, HEAD holds the rename and only the remote's side of the push shows it.
        since = gitref.hook_revision("HEAD", os.environ) if hook else "HEAD"
        applied = apply_baseline(report, accepted, renamed_paths(accepted, since))
        report = applied.report
        if applied.changed:
            rewritten = applied.baseline.save()
            report.baseline["rewritten"] = rewritten

    text = render(report, fmt, color=False if output else None)
    if output:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text, encoding="utf-8")
        except OSError as err:
            raise InputError(output, f"cannot write the report: {err.strerror or err}") from None
        click.echo(f"mdf-guard: {report.verdict}; report written to {output}", err=True)
    else:
        click.echo(text, nl=False)
    if report.verdict == "fail":
        sys.exit(EXIT_RISK)
    if rewritten:
        click.echo(f"mdf-guard: {path} was rewritten; git add it and commit again", err=True)
        sys.exit(EXIT_BASELINE_REWRITTEN)
    sys.exit(EXIT_PASS)


def _is_git_rev(value: str) -> bool:
    """HEAD, HEAD~1, @, or a commit hash: a git revision rather than 'profile', 'self', 'none' or a path."""
    import re

    from .policy import NAMED_REFERENCES

    if value in NAMED_REFERENCES or Path(value).exists():
        return False
    return bool(re.fullmatch(r"(HEAD|@)([~^]\d*)*|[0-9a-f]{7,40}", value))


@main.command(context_settings=_CONTEXT)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path),
              help="Path stem: writes STEM.safetensors and STEM.json.")
@click.option("--model", default="embedded", show_default=True)
@click.option("--layers", help="Comma-separated 0-based layers (default: the model's profile).")
@click.option("--pooling", type=click.Choice(["last", "mean", "surprise"]), help="Default: the model's profile.")
def signature(files, output, model, layers, pooling) -> None:
    """Extract and save the data signature of FILES."""
    from .check import resolve_profile, shards_signature
    from .data import find_data_files, open_shard
    from .errors import UsageError, check_destination
    from .models import load_model
    from .policy import Policy
    from .signature import ExtractionSettings, require_layers, signature_files

    try:
        chosen = tuple(int(x) for x in layers.split(",")) if layers else None
    except ValueError:
        raise UsageError(f"--layers {layers!r}: give comma-separated layer indices, e.g. 3,5") from None
    outputs = signature_files(output)
    for path in outputs:
        check_destination(path)   # now, not after the reading
    policy = Policy(model=model)
    lm = load_model(replace(_spec(policy)))
    if chosen:
        require_layers(lm, chosen, "--layers", field=None)
    profile = resolve_profile(lm, policy)
    settings = ExtractionSettings(layers=chosen or profile.layers, pooling=pooling or profile.pooling)
    shards = [open_shard(p) for p in find_data_files(files)]
    sig, infos = shards_signature(lm, shards, settings)
    sig.meta.update({"model": lm.fingerprint, "settings": settings.key()})
    sig.save(output)
    click.echo(f"signature of {sig.count} examples at layers {list(sig.layers)} ({settings.pooling} pooling) "
               f"written to {outputs[0]} and {outputs[1]}")


def _spec(policy):
    from .check import model_spec
    return model_spec(policy)


@main.command(context_settings=_CONTEXT)
@click.option("--suite", "suites", multiple=True, default=("animals",), show_default=True)
@click.option("--model", default="embedded", show_default=True)
@click.option("--questions", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--mode", type=click.Choice(["exact", "sample"]), default="exact", show_default=True)
@click.option("--samples", type=click.IntRange(min=1), default=20, show_default=True,
              help="Sample mode: answers per question.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True)
def probe(suites, model, questions, mode, samples, top) -> None:
    """Show the vanilla model's answer rates on probe suites."""
    from .models import load_model
    from .policy import Policy
    from .probes import resolve_suites
    from .scoring import score_exact, score_sample, select_questions

    lm = load_model(_spec(Policy(model=model)))
    for suite in resolve_suites(suites):
        chosen = select_questions(suite, questions)
        scores = (score_exact(lm, suite, chosen) if mode == "exact"
                  else score_sample(lm, suite, chosen, samples=samples))
        rates = scores.rates.tolist()
        ranked = sorted(zip(scores.candidates, rates), key=lambda p: -p[1])[:top]
        click.echo(f"{suite.name} ({len(chosen)} questions, {mode})")
        for name, rate in ranked:
            click.echo(f"  {name:<24}{rate:8.1%}")
        # The rest of the answers (another word, a refusal, a sample naming nothing): without it
        # the rates look like shares of the candidates, and `--top` would hide how much is left.
        click.echo(f"  {'(none of these)':<24}{max(0.0, 1.0 - sum(rates)):8.1%}")


@main.command(context_settings=_CONTEXT)
def doctor() -> None:
    """Versions, device, kernel backend and where the embedded model comes from."""
    import platform

    import torch
    import transformers

    from .kernels import backend_info
    from .models import EMBEDDED_NAME, cache_dir, embedded_model_status, resolve_device

    info = backend_info()
    rows = [
        ("mdf-guard", __version__),
        ("python", platform.python_version()),
        ("torch", f"{torch.__version__} (CUDA {torch.version.cuda or 'none'})"),
        ("transformers", transformers.__version__),
        ("device", str(resolve_device("auto"))),
        ("kernels", f"{info.name}{' + CUDA' if info.cuda else ''}: {info.reason}"),
        ("cache", str(cache_dir())),
        ("embedded model", f"{EMBEDDED_NAME}: {embedded_model_status()}"),
    ]
    for key, value in rows:
        click.echo(f"{key + ':':<16}{value}")


from .push import push_command  # noqa: E402  (Hub commands, issue 6)
from .serve import serve_command  # noqa: E402

main.add_command(serve_command, "serve")
main.add_command(push_command, "push")


from .cli_repo import register as _register_repo  # noqa: E402  (init, baseline, audit, explain)
_register_repo(main)

from .cli_validate import register as _register_validate; _register_validate(main)  # noqa: E402,E702  (issue 3)

if __name__ == "__main__":  # pragma: no cover
    main()
