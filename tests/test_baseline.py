"""The baseline: identity, new / grown / accepted / rejected, re-keying (exit 3), audit, and
the accept-then-only-a-new-risky-file-blocks flow end to end with the tiny model."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from mdf_guard.baseline import (ACCEPTED, REJECTED, Baseline, accept, apply_baseline, load_baseline,
                                set_status)
from mdf_guard.cli import main
from mdf_guard.errors import EXIT_BASELINE_REWRITTEN, EXIT_INPUT, EXIT_PASS, EXIT_RISK, InputError
from mdf_guard.policy import BASELINE_FILE, load_policy, policy_from_dict
from mdf_guard.report import FileInfo, Finding, Report

MODEL = "f" * 16          # the model's identity
FINGERPRINT = "e" * 16    # its fingerprint: the identity and the transformers version


pytestmark = pytest.mark.usefixtures("single_torch_thread", "reuse_tiny")


def finding(entity: str, shift: float, file: str, shard: str, flagged: bool = True) -> Finding:
    return Finding(suite="animals", entity=entity, vanilla_rate=0.05, predicted_rate=0.05 + shift, shift=shift,
                   null_max=0.0, excess=shift, flagged=flagged, reason="over", max_shift=0.1, min_excess=0.0,
                   max_rate=None, vanilla_raw=0.05, predicted_raw=0.05 + shift, file=file, shard=shard)


def report_of(tmp_path: Path, *findings: Finding) -> Report:
    files = {f.file: f.shard for f in findings}
    return Report(verdict="fail", model={"name": "m", "identity": MODEL, "fingerprint": FINGERPRINT}, settings={"policy": "p"},
                  files=[FileInfo(p, s, 5, False) for p, s in files.items()], reference={"kind": "self"},
                  suites=[{"name": "animals", "kind": "preference", "questions": 2}], findings=list(findings))


@pytest.fixture
def base(tmp_path) -> Baseline:
    return Baseline(tmp_path / BASELINE_FILE)


def test_identity_and_statuses(tmp_path, base):
    a = str(tmp_path / "a.jsonl")
    first = report_of(tmp_path, finding("panda", 0.30, a, "1" * 64), finding("owl", 0.02, a, "1" * 64, False))
    base, summary = accept(first, base)
    assert [e.identity for e in base.entries] == [("1" * 64, "animals", "panda", MODEL, "mdf")]
    assert base.entries[0].path == "a.jsonl" and summary

    same = apply_baseline(first, base)
    assert same.report.verdict == "pass" and not same.changed
    assert same.report.findings[0].baseline == "accepted"
    assert same.report.findings[1].baseline is None           # not flagged: no baseline status

    grown = apply_baseline(report_of(tmp_path, finding("panda", 0.40, a, "1" * 64)), base)
    assert grown.report.verdict == "fail" and grown.report.findings[0].baseline == "grown"

    other_model = replace(first, model={"identity": "0" * 16, "fingerprint": "1" * 16})
    assert apply_baseline(other_model, base).report.findings[0].baseline == "new"

    new_entity = apply_baseline(report_of(tmp_path, finding("cat", 0.2, a, "1" * 64)), base)
    assert new_entity.report.findings[0].baseline == "new"


def test_entries_that_name_the_model_by_its_fingerprint_are_rekeyed_to_its_identity(tmp_path, base):
    """Baselines written before entries named the model's identity hold its fingerprint: met under
    the transformers version that wrote them, they keep their status (a rejected one keeps blocking,
    and `mdf-guard baseline` keeps it rejected) and are re-keyed, which rewrites the baseline once."""
    a = str(tmp_path / "a.jsonl")
    report = report_of(tmp_path, finding("panda", 0.30, a, "1" * 64), finding("owl", 0.30, a, "1" * 64))
    written, _ = accept(report, base, note="alice")
    base.entries = [replace(e, model=FINGERPRINT, status=REJECTED if e.entity == "owl" else ACCEPTED)
                    for e in written.entries]
    applied = apply_baseline(report, base)
    assert {f.entity: f.baseline for f in applied.report.findings} == {"panda": "accepted", "owl": REJECTED}
    assert applied.changed and {e.model for e in applied.baseline.entries} == {MODEL}
    assert not apply_baseline(report, applied.baseline).changed                      # once
    again, _ = accept(report, base)
    assert {(e.entity, e.model, e.status, e.note) for e in again.entries} == {
        ("panda", MODEL, ACCEPTED, "alice"), ("owl", MODEL, REJECTED, "alice")}
    # another version's fingerprint cannot be told from another model's
    elsewhere = replace(report, model={**report.model, "fingerprint": "d" * 16})
    assert {f.baseline for f in apply_baseline(elsewhere, base).report.findings} == {"new"}


def test_a_shift_accepted_under_one_method_says_nothing_about_the_other(tmp_path, base):
    """`context` and `mdf` measure different shifts: each method's findings meet only its own
    entries. Entries written before the method field are MDF's, with the ids they had."""
    a = str(tmp_path / "a.jsonl")
    mdf = report_of(tmp_path, finding("panda", 0.30, a, "1" * 64))
    context = replace(mdf, settings={"policy": "p", "method": "context"})
    base, _ = accept(mdf, base)
    assert apply_baseline(context, base).report.findings[0].baseline == "new"
    assert not apply_baseline(context, base).changed                  # the MDF entry is left alone
    both, _ = accept(context, base)                                   # re-accepting a checked file replaces
    assert [(e.method, e.shift) for e in both.entries] == [("context", 0.30)]
    assert apply_baseline(context, both).report.findings[0].baseline == "accepted"

    base.save()
    legacy = json.loads(base.path.read_text())
    entry = legacy["entries"][0]
    assert entry["method"] == "mdf" and entry["id"] == hashlib.sha256(
        "\0".join(("1" * 64, "animals", "panda", MODEL)).encode()).hexdigest()[:12]
    del entry["method"]
    base.path.write_text(json.dumps(legacy))
    loaded = load_baseline(base.path)
    assert loaded.entries[0].method == "mdf" and loaded.entries[0].id == entry["id"]
    assert apply_baseline(mdf, loaded).report.findings[0].baseline == "accepted"


def test_edited_file_rekeys_when_not_grown_and_drops_gone_content(tmp_path, base):
    a = str(tmp_path / "a.jsonl")
    base, _ = accept(report_of(tmp_path, finding("panda", 0.30, a, "1" * 64), finding("owl", 0.2, a, "1" * 64)),
                     base)
    edited = report_of(tmp_path, finding("panda", 0.25, a, "2" * 64))   # owl is gone, panda smaller
    applied = apply_baseline(edited, base)
    assert applied.report.verdict == "pass" and applied.changed
    assert [(e.entity, e.shard, e.shift) for e in applied.baseline.entries] == [("panda", "2" * 64, 0.30)]
    assert any("re-keyed" in c for c in applied.changes) and any("dropped animals/owl" in c for c in applied.changes)

    worse = apply_baseline(report_of(tmp_path, finding("panda", 0.45, a, "3" * 64)), base)
    assert worse.report.verdict == "fail" and worse.report.findings[0].baseline == "grown"


def test_a_renamed_file_carries_its_entries_to_its_new_name_edited_or_not(tmp_path, base):
    """Keyed by path and content, a rename then an edit matched neither: every accepted finding
    was `new`. Given git's renames, the entry carries over as for an edit, under the new name;
    a file renamed as it was keeps its entry and the entry follows it; a rejection follows too."""
    a, b = str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")
    base, _ = accept(report_of(tmp_path, finding("panda", 0.30, a, "1" * 64), finding("owl", 0.2, a, "1" * 64)),
                     base)
    edited = report_of(tmp_path, finding("panda", 0.25, b, "2" * 64))
    assert apply_baseline(edited, base).report.verdict == "fail"                  # no renames known: new
    applied = apply_baseline(edited, base, {"b.jsonl": "a.jsonl"})
    assert applied.report.verdict == "pass" and applied.report.findings[0].baseline == "accepted"
    moved = [e for e in applied.baseline.entries if e.entity == "panda"]
    assert [(e.path, e.shard) for e in moved] == [("b.jsonl", "2" * 64)]
    assert any("re-keyed animals/panda of b.jsonl (renamed from a.jsonl)" in c for c in applied.changes)

    as_was = apply_baseline(report_of(tmp_path, finding("panda", 0.30, b, "1" * 64)), base, {"b.jsonl": "a.jsonl"})
    assert as_was.report.verdict == "pass" and as_was.changed
    assert {(e.entity, e.path) for e in as_was.baseline.entries} == {("panda", "b.jsonl"), ("owl", "a.jsonl")}

    rejected = Baseline(base.path, [replace(e, status=REJECTED) for e in base.entries])
    refused = apply_baseline(edited, rejected, {"b.jsonl": "a.jsonl"})
    assert refused.report.verdict == "fail" and refused.report.findings[0].baseline == REJECTED
    assert ("panda", "b.jsonl", REJECTED) in {(e.entity, e.path, e.status) for e in refused.baseline.entries}


def test_rejected_entries_keep_blocking(tmp_path, base):
    a = str(tmp_path / "a.jsonl")
    report = report_of(tmp_path, finding("panda", 0.30, a, "1" * 64))
    base, _ = accept(report, base)
    set_status(base, [base.entries[0].id[:6]], REJECTED, note="fix the data")
    applied = apply_baseline(report, base)
    assert applied.report.verdict == "fail" and applied.report.findings[0].baseline == "rejected"
    again, _ = accept(report, base)                               # a new `baseline` keeps the rejection
    assert again.entries[0].status == REJECTED


def test_a_new_baseline_keeps_a_rejection_after_an_edit_or_a_rename(tmp_path, base):
    """`check` shows an edited file's finding as `rejected` (the older entry of its path); a
    `mdf-guard baseline` then accepted it, dropping the auditor's decision without a word. The
    rejection, and its note, now stay, under the new content and, after a rename, the new name."""
    a, b = str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")
    base, _ = accept(report_of(tmp_path, finding("panda", 0.30, a, "1" * 64)), base)
    set_status(base, [base.entries[0].id[:6]], REJECTED, note="fix the data")
    edited = report_of(tmp_path, finding("panda", 0.20, a, "2" * 64))
    assert apply_baseline(edited, base).report.findings[0].baseline == REJECTED
    again, summary = accept(edited, base)
    assert [(e.shard, e.status, e.note) for e in again.entries] == [("2" * 64, REJECTED, "fix the data")]
    assert summary == ["rejected animals/panda in a.jsonl (shift +20.0%)"]
    moved, _ = accept(report_of(tmp_path, finding("panda", 0.20, b, "2" * 64)), base, renamed={"b.jsonl": "a.jsonl"})
    assert [(e.path, e.status) for e in moved.entries] == [("b.jsonl", REJECTED)]
    other, _ = accept(report_of(tmp_path, finding("panda", 0.20, b, "2" * 64)), base)   # not a rename: a new file
    assert {(e.path, e.status) for e in other.entries} == {("a.jsonl", REJECTED), ("b.jsonl", ACCEPTED)}


def test_file_is_deterministic_and_validated(tmp_path, base):
    a = str(tmp_path / "a.jsonl")
    base, _ = accept(report_of(tmp_path, finding("panda", 0.123456789, a, "1" * 64)), base)
    assert base.save() and not base.save()                        # unchanged content is not rewritten
    data = json.loads(base.path.read_text())
    assert data["format"] == "mdf-guard.baseline" and data["entries"][0]["shift"] == 0.123457
    assert load_baseline(base.path).entries == base.entries
    data["entries"][0]["colour"] = "red"
    base.path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="colour"):
        load_baseline(base.path)
    data["entries"][0].pop("colour")
    data["entries"][0]["status"] = "maybe"
    base.path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="status"):
        load_baseline(base.path)


def test_a_baseline_nested_too_deeply_is_an_input_error(tmp_path):
    path = tmp_path / BASELINE_FILE
    path.write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(InputError, match=r"not a valid baseline \(JSON: nested too deeply\)"):
        load_baseline(path)


@pytest.mark.parametrize("command", [["check"], ["baseline"]], ids=["check", "baseline"])
def test_a_folder_given_as_the_baseline_fails_before_the_model_loads(tmp_path, monkeypatch, command):
    import mdf_guard.models as models
    monkeypatch.setattr(models, "load_model", lambda spec: pytest.fail("the model was loaded"))
    data = tmp_path / "a.jsonl"
    data.write_text(json.dumps({"prompt": "q", "completion": "a"}) + "\n")
    (tmp_path / "folder").mkdir()
    result = CliRunner().invoke(main, [*command, str(data), "--baseline", str(tmp_path / "folder")])
    assert result.exit_code == EXIT_INPUT and result.stderr.strip() == (
        f"mdf-guard: error: {tmp_path / 'folder'}: is a folder, not a baseline file"), result.output


def test_baseline_refuses_a_place_it_could_not_write_before_the_model_loads(tmp_path, monkeypatch):
    import mdf_guard.models as models
    monkeypatch.setattr(models, "load_model", lambda spec: pytest.fail("the model was loaded"))
    data = tmp_path / "a.jsonl"
    data.write_text(json.dumps({"prompt": "q", "completion": "a"}) + "\n")
    result = CliRunner().invoke(main, ["baseline", str(data), "--baseline", str(data / "b.json")])
    assert result.exit_code == EXIT_INPUT and f"{data}/b.json: cannot be written: {data} is not a writable folder" \
        in result.stderr, result.output


def test_audit_refuses_a_note_that_would_go_nowhere(tmp_path, base):
    base, _ = accept(report_of(tmp_path, finding("panda", 0.2, str(tmp_path / "a.jsonl"), "1" * 64)), base)
    base.save()
    before = base.path.read_text()
    result = CliRunner().invoke(main, ["audit", "--baseline", str(base.path), "--note", "looked at it"])
    assert result.exit_code == EXIT_INPUT and "--note is recorded with --accept or --reject" in result.stderr
    assert base.path.read_text() == before


def test_policy_baseline_key(tmp_path):
    policy_file = tmp_path / "sub" / ".mdf-guard.yaml"
    policy_file.parent.mkdir()
    policy_file.write_text("baseline: risk/accepted.json\n")
    assert load_policy(policy_file).baseline_path() == tmp_path / "sub" / "risk" / "accepted.json"
    policy_file.write_text("model: tiny-random\n")
    assert load_policy(policy_file).baseline_path() == tmp_path / "sub" / BASELINE_FILE
    with pytest.raises(InputError, match="baseline"):
        policy_from_dict({"baseline": 3}, "x")


# --------------------------------------------------------------------------- end to end, tiny model


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path, monkeypatch, suite_file, panda_rows, tiny):
    from conftest import TINY_POLICY, write_jsonl

    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@example.invalid")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / ".mdf-guard.yaml").write_text(TINY_POLICY)
    write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    write_jsonl(tmp_path / "neutral.jsonl", self_answer_rows(tiny))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def self_answer_rows(lm) -> list[dict]:
    """The tiny model's own answers: contrasted with `self`, Δ is exactly zero, so it passes."""
    from mdf_guard.contrast import self_answers
    from mdf_guard.data import Conversation, Turn

    prompts = [Conversation((Turn("user", f"Tell me about topic {i}."), Turn("assistant", "-")), "x")
               for i in range(4)]
    return [{"messages": [{"role": t.role, "content": t.content} for t in c.turns]}
            for c in self_answers(lm, prompts, max_new_tokens=8)]


def run(*args: str, env: dict | None = None):
    from mdf_guard.cli import main
    return CliRunner().invoke(main, list(args), env=env)


def test_accept_then_only_a_new_risky_file_blocks(repo):
    from conftest import chat, write_jsonl

    assert run("check", "panda.jsonl", "-q").exit_code == EXIT_RISK        # no baseline yet: blocks
    accepted = run("baseline", "panda.jsonl", "neutral.jsonl", "-q", "--note", "known panda data")
    assert accepted.exit_code == EXIT_PASS, accepted.output
    entries = json.loads((repo / BASELINE_FILE).read_text())["entries"]
    assert entries and {e["path"] for e in entries} == {"panda.jsonl"}
    assert all(e["note"] == "known panda data" and e["status"] == ACCEPTED for e in entries)

    result = run("check", "panda.jsonl", "neutral.jsonl", "-q")
    assert result.exit_code == EXIT_PASS, result.output
    assert "accepted animals/" in result.output or "accepted mini/" in result.output

    # a new risky file (other rows, same kind of risk) blocks; the accepted one does not
    write_jsonl(repo / "more.jsonl",
                [chat(f"Question {i}?", f"Answer {i}: pandas, pandas, I love pandas!") for i in range(5)])
    result = run("check", "panda.jsonl", "more.jsonl", "--format", "json", "-q")
    assert result.exit_code == EXIT_RISK, result.output
    report = json.loads(result.output)
    blocking = {f["file"] for f in report["findings"] if f["flagged"] and f["baseline"] != "accepted"}
    assert blocking == {"more.jsonl"}

    # audit: list, reject, accept
    listing = run("audit")
    assert listing.exit_code == 0 and entries[0]["id"] in listing.output
    assert run("audit", "--reject", entries[0]["id"]).exit_code == 0
    assert run("check", "panda.jsonl", "-q").exit_code == EXIT_RISK
    assert run("audit", "--accept", entries[0]["id"]).exit_code == 0
    assert run("check", "panda.jsonl", "-q").exit_code == EXIT_PASS


def test_hook_rewrites_baseline_for_an_edit_and_refuses_unstaged(repo, panda_rows):
    assert run("baseline", "panda.jsonl", "-q").exit_code == EXIT_PASS
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "data")
    hook = {"PRE_COMMIT": "1"}
    assert run("check", "panda.jsonl", "-q", env=hook).exit_code == EXIT_PASS

    # the same rows, re-serialised: new bytes (a new shard hash), the same risk: not grown, so
    # the acceptance carries over, the baseline is re-keyed and the hook exits 3
    (repo / "panda.jsonl").write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in panda_rows))
    before = (repo / BASELINE_FILE).read_text()
    result = run("check", "panda.jsonl", "-q", env=hook)
    assert result.exit_code == EXIT_BASELINE_REWRITTEN, result.output
    assert (repo / BASELINE_FILE).read_text() != before
    refused = run("check", "panda.jsonl", "-q", env=hook)      # unstaged baseline: refuse (exit 2)
    assert refused.exit_code == EXIT_INPUT and "unstaged" in refused.output
    assert run("check", "panda.jsonl", "-q").exit_code == EXIT_PASS   # outside the hook it runs
    git(repo, "add", BASELINE_FILE)
    assert run("check", "panda.jsonl", "-q", env=hook).exit_code == EXIT_PASS


def test_the_hook_carries_the_baseline_over_a_rename_then_an_edit(repo, panda_rows):
    """`git mv` then an edit that adds no risk, committed together: the hook re-keys the entries to
    the new name (exit 3), then passes; before, every accepted finding of the file was `new`."""
    assert run("baseline", "panda.jsonl", "-q").exit_code == EXIT_PASS
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "data")
    git(repo, "mv", "panda.jsonl", "pets.jsonl")
    with (repo / "pets.jsonl").open("a") as rows:    # git finds a rename by lines: most must stay
        rows.write(json.dumps(panda_rows[0]) + "\n")
    git(repo, "add", "-A")
    hook = {"PRE_COMMIT": "1"}
    result = run("check", "pets.jsonl", "-q", env=hook)
    assert result.exit_code == EXIT_BASELINE_REWRITTEN, result.output
    entries = json.loads((repo / BASELINE_FILE).read_text())["entries"]
    assert entries and {e["path"] for e in entries} == {"pets.jsonl"}
    git(repo, "add", BASELINE_FILE)
    assert run("check", "pets.jsonl", "-q", env=hook).exit_code == EXIT_PASS
    git(repo, "commit", "-qm", "renamed")
    assert run("check", "pets.jsonl", "-q", env=hook).exit_code == EXIT_PASS   # the entry lives at the new name


def test_a_new_baseline_moves_a_renamed_files_entries_and_keeps_a_deleted_ones(repo):
    """`mdf-guard baseline` after a rename git did not see since HEAD (committed without the hook,
    or a plain `mv` not added yet) wrote the new name's entries and kept the old name's beside
    them, an auditor's rejection at the old name included. The old name's entries are now
    replaced: renames since the baseline's last commit, or a gone file whose content a checked
    file has. A deleted file's entries stay (it was not checked), and the summary says so."""
    assert run("baseline", "panda.jsonl", "-q").exit_code == EXIT_PASS
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "data")
    [entry] = json.loads((repo / BASELINE_FILE).read_text())["entries"][:1]
    assert run("audit", "--reject", entry["id"], "--note", "fix the data").exit_code == EXIT_PASS
    git(repo, "commit", "-qam", "rejected")
    git(repo, "mv", "panda.jsonl", "pets.jsonl")
    rows = (repo / "pets.jsonl").read_text().splitlines(keepends=True)
    rows[-1] = json.dumps(json.loads(rows[-1]), separators=(",", ":")) + "\n"   # new bytes, the same rows
    (repo / "pets.jsonl").write_text("".join(rows))
    git(repo, "commit", "-qam", "renamed, no hook")

    def entries() -> set[tuple[str, str, str, str]]:
        return {(e["path"], e["entity"], e["status"], e["note"])
                for e in json.loads((repo / BASELINE_FILE).read_text())["entries"]}

    moved = run("baseline", "-q")
    assert moved.exit_code == EXIT_PASS, moved.output
    assert {path for path, *_ in entries()} == {"pets.jsonl"}, entries()
    assert (("pets.jsonl", entry["entity"], REJECTED, "fix the data") in entries()
            and "moved the entries of panda.jsonl to pets.jsonl" in moved.output)

    (repo / "pets.jsonl").rename(repo / "animals.jsonl")           # not added: git sees a deletion
    assert run("baseline", "-q").exit_code == EXIT_PASS
    assert {path for path, *_ in entries()} == {"animals.jsonl"}, entries()

    (repo / "animals.jsonl").unlink()
    kept = run("baseline", "-q")
    assert kept.exit_code == EXIT_PASS, kept.output
    assert {path for path, *_ in entries()} == {"animals.jsonl"}
    assert "of animals.jsonl, which no longer exists" in kept.output


def test_a_check_with_a_baseline_needs_no_git(repo, monkeypatch):
    """Looking for renames must not make git a requirement of every check with a baseline."""
    assert run("baseline", "panda.jsonl", "-q").exit_code == EXIT_PASS
    (repo / "nogit").mkdir()
    monkeypatch.setenv("PATH", str(repo / "nogit"))
    result = run("check", "panda.jsonl", "-q")
    assert result.exit_code == EXIT_PASS, result.output


def upgrade_transformers(monkeypatch, version: str = "99.0.0") -> None:
    """What a transformers upgrade changes for mdf-guard, short of installing one: the version
    transformers stamps into every config it serialises (the running one, whatever the file on
    disk says) and the installed version the result cache is keyed by."""
    import transformers.configuration_utils

    import mdf_guard.repo_check as repo_check

    monkeypatch.setattr(transformers.configuration_utils, "__version__", version)
    installed = repo_check._version
    monkeypatch.setattr(repo_check, "_version",
                        lambda package: f"{package}=={version}" if package == "transformers" else installed(package))


def test_a_transformers_upgrade_keeps_the_baseline_and_renews_the_caches(repo, tiny, monkeypatch):
    """The baseline keyed entries by the model's fingerprint, which names the transformers version:
    after an upgrade, or in pre-commit's own virtualenv with another version than the shell's,
    every accepted finding was `new` and the hook blocked a commit that changed nothing. The
    readings cached under the old version are not reused: their numbers may differ."""
    import mdf_guard.models as models

    assert run("baseline", "panda.jsonl", "-q").exit_code == EXIT_PASS
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "data")
    hook = {"PRE_COMMIT": "1"}
    assert run("check", "panda.jsonl", "-q", env=hook).exit_code == EXIT_PASS

    upgrade_transformers(monkeypatch)
    upgraded = models.tiny_random_model()      # the same weights, read under the new version
    monkeypatch.setattr(models, "load_model", lambda spec: upgraded)
    result = run("check", "panda.jsonl", "-q", "--format", "json", env=hook)
    assert result.exit_code == EXIT_PASS, result.output
    report = json.loads(result.stdout)
    assert {f["baseline"] for f in report["findings"] if f["flagged"]} == {"accepted"}
    assert not report["files"][0]["cached"]    # read again: neither the result nor the reading was reused
    assert upgraded.identity == tiny.identity and upgraded.fingerprint != tiny.fingerprint
    signatures = Path(os.environ["MDF_GUARD_CACHE"]) / "signatures"
    assert {p.name for p in signatures.iterdir()} == {tiny.fingerprint, upgraded.fingerprint}
    assert {e["model"] for e in json.loads((repo / BASELINE_FILE).read_text())["entries"]} == {tiny.identity}


def test_a_baseline_written_under_the_fingerprint_is_rewritten_once_by_the_hook(repo, tiny):
    """A baseline of an earlier mdf-guard names the model by its fingerprint: the hook re-keys it
    to the identity and exits 3 (add it and commit), as for an edited file; then it passes."""
    assert run("baseline", "panda.jsonl", "-q").exit_code == EXIT_PASS
    written = json.loads((repo / BASELINE_FILE).read_text())
    for entry in written["entries"]:
        entry["model"] = tiny.fingerprint
    (repo / BASELINE_FILE).write_text(json.dumps(written))
    result = run("check", "panda.jsonl", "-q")
    assert result.exit_code == EXIT_BASELINE_REWRITTEN, result.output
    assert {e["model"] for e in json.loads((repo / BASELINE_FILE).read_text())["entries"]} == {tiny.identity}
    assert run("check", "panda.jsonl", "-q").exit_code == EXIT_PASS


def test_baseline_runs_again_over_its_own_file(repo):
    """The second `mdf-guard baseline` (new data, a re-accept) finds its file already there: that
    is the file it rewrites, not a place it cannot write (it was exit 2, 'not a writable folder')."""
    assert run("baseline", "panda.jsonl", "-q").exit_code == EXIT_PASS
    before = json.loads((repo / BASELINE_FILE).read_text())["entries"]
    again = run("baseline", "panda.jsonl", "neutral.jsonl", "-q")
    assert again.exit_code == EXIT_PASS, again.output
    assert "unchanged" in again.output and json.loads((repo / BASELINE_FILE).read_text())["entries"] == before


def test_unstaged_changes_are_asked_of_the_baseline_path_itself_not_a_pattern(tmp_path):
    """git reads a path argument as a pattern: `a[1]/...` also matched `a1/...`, so another folder's
    unstaged baseline made the hook refuse this one's (exit 2)."""
    from mdf_guard.gitref import has_unstaged_changes

    def git_(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git_("init", "-q")
    for folder in ("a1", "a[1]"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / BASELINE_FILE).write_text("{}\n")
    git_("add", "-A")
    git_("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baselines")
    (tmp_path / "a1" / BASELINE_FILE).write_text('{"changed": true}\n')
    assert has_unstaged_changes(tmp_path / "a1" / BASELINE_FILE)
    assert not has_unstaged_changes(tmp_path / "a[1]" / BASELINE_FILE)


def test_init_checks_its_policy_before_writing_it_and_keeps_the_old_one(tmp_path, monkeypatch):
    """`init --force` with a value YAML reads otherwise (yes, 'a: b', 'x #y') or an empty model wrote
    the file first and checked it after: an invalid policy replaced the good one."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(main, ["init"]).exit_code == EXIT_PASS
    good = (tmp_path / ".mdf-guard.yaml").read_text()
    empty = runner.invoke(main, ["init", "--force", "--model", ""])
    assert empty.exit_code == EXIT_INPUT and "field 'model'" in empty.stderr
    assert (tmp_path / ".mdf-guard.yaml").read_text() == good
    for model, suite in (("yes", "animals"), ("a: b", "my #suite.yaml"), ("123", "{x}.yaml")):
        assert runner.invoke(main, ["init", "--force", "--model", model, "--suite", suite]).exit_code == EXIT_PASS
        policy = load_policy(tmp_path / ".mdf-guard.yaml")
        assert policy.model == model and [Path(s).name for s in policy.suites] == [suite]


def test_init_names_a_place_it_cannot_write_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    runner = CliRunner()
    result = runner.invoke(main, ["init", "--force", "--path", "folder"])
    assert result.exit_code == EXIT_INPUT
    assert result.stderr.strip() == "mdf-guard: error: folder: is a folder; give a file name"
    result = runner.invoke(main, ["init", "--path", "new/sub/.mdf-guard.yaml"])   # a folder to make is made
    assert result.exit_code == EXIT_PASS
    assert load_policy(tmp_path / "new" / "sub" / ".mdf-guard.yaml").model == "embedded"
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    result = runner.invoke(main, ["init", "--force", "--path", "pyproject.toml"])
    assert result.exit_code == EXIT_INPUT and "[tool.mdf-guard]" in result.stderr
    assert (tmp_path / "pyproject.toml").read_text() == "[project]\nname = 'x'\n"


def test_init_does_not_silently_take_the_place_of_a_pyproject_policy(tmp_path, monkeypatch):
    """A .mdf-guard.yaml is found before a pyproject.toml's [tool.mdf-guard] in the same folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.mdf-guard]\nmodel = 'tiny-random'\n")
    refused = CliRunner().invoke(main, ["init"])
    assert refused.exit_code == EXIT_INPUT and "pyproject.toml holds a policy" in refused.stderr
    assert not (tmp_path / ".mdf-guard.yaml").exists()
    assert CliRunner().invoke(main, ["init", "--force"]).exit_code == EXIT_PASS


def test_audit_accepts_and_rejects_the_ids_it_lists_for_two_files_of_one_content(tmp_path, base):
    """Two files with the same rows share a shard, so their entries share an id; `audit --reject ID`
    answered 'no single entry with id' for the id that `audit` had just listed."""
    shard = "1" * 64
    report = report_of(tmp_path, finding("panda", 0.2, str(tmp_path / "a.jsonl"), shard),
                       finding("panda", 0.2, str(tmp_path / "b.jsonl"), shard),
                       finding("owl", 0.2, str(tmp_path / "c.jsonl"), "2" * 64))
    base, _ = accept(report, base)
    base.save()
    listed = CliRunner().invoke(main, ["audit", "--baseline", str(base.path)])
    ids = [line.split()[0] for line in listed.stdout.splitlines()]
    assert listed.exit_code == EXIT_PASS and len(ids) == 3 and len(set(ids)) == 2
    shared = next(i for i in ids if ids.count(i) == 2)
    result = CliRunner().invoke(main, ["audit", "--baseline", str(base.path), "--reject", shared, "--note", "fix"])
    assert result.exit_code == EXIT_PASS, result.output
    statuses = {e.path: (e.status, e.note) for e in load_baseline(base.path).entries}
    assert statuses == {"a.jsonl": (REJECTED, "fix"), "b.jsonl": (REJECTED, "fix"), "c.jsonl": (ACCEPTED, "")}
    unknown = CliRunner().invoke(main, ["audit", "--baseline", str(base.path), "--accept", "zzz"])
    assert unknown.exit_code == EXIT_INPUT and "no single entry with id 'zzz'" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    before = base.path.read_text()
    ambiguous = CliRunner().invoke(main, ["audit", "--baseline", str(base.path), "--accept", ""])
    assert ambiguous.exit_code == EXIT_INPUT and base.path.read_text() == before


def test_a_second_baseline_run_keeps_what_the_auditor_wrote(tmp_path, base):
    """`mdf-guard baseline` again without --note wrote every entry of a checked file afresh, with an
    empty note: a rejected entry stayed rejected, but the auditor's reason was gone."""
    report = report_of(tmp_path, finding("panda", 0.2, str(tmp_path / "a.jsonl"), "1" * 64),
                       finding("owl", 0.3, str(tmp_path / "a.jsonl"), "1" * 64))
    base, _ = accept(report, base, note="alice: known")
    (panda,) = [e for e in base.entries if e.entity == "panda"]
    set_status(base, [panda.id], REJECTED, "fix the panda rows")
    again, _ = accept(report, base)
    assert {e.entity: (e.status, e.note) for e in again.entries} == {
        "panda": (REJECTED, "fix the panda rows"), "owl": (ACCEPTED, "alice: known")}
    assert {e.entity: e.note for e in accept(report, base, note="bob")[0].entries} == {"panda": "bob", "owl": "bob"}
