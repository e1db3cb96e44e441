"""`mdf-guard push` (check, then upload only if it passes) and the git pre-push hook.

Uploads go through the real `huggingface_hub` client to the Hub stand-in on 127.0.0.1.
The last test runs the whole loop: a guarded push opens a pull request on the stand-in,
the stand-in delivers the webhook to the bot, and the bot reports on that pull request.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hub_standin import (PETS_SUITE, HubStandin, ServerThread, loopback_only,  # noqa: F401  (fixtures)
                         one_torch_thread, hub_sandbox, tiny_lm)
from mdf_guard.cli import main

pytestmark = pytest.mark.usefixtures("loopback_only", "hub_env")

TOKEN = "hf_push_token_not_for_logs_55d1"
REPO_ROOT = Path(__file__).resolve().parents[1]
HOOK = REPO_ROOT / "hooks" / "pre-push"
PASS = {"max_shift": 1.0}
FAIL = {"max_shift": 0.0, "min_excess": -1, "min_odds_ratio": 1}


@pytest.fixture
def hub_env(hub_sandbox, one_torch_thread, monkeypatch, tiny_lm):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    import mdf_guard.check
    monkeypatch.setattr(mdf_guard.check, "load_model", lambda spec: tiny_lm)   # build the tiny model once


@pytest.fixture(scope="module")
def standin():
    hub = HubStandin(token=TOKEN)
    hub.start()
    yield hub
    hub.stop()


def dataset(tmp_path: Path, thresholds: dict, name: str = "ds") -> Path:
    folder = tmp_path / name
    (folder / "data").mkdir(parents=True)
    (tmp_path / "pets.yaml").write_text(PETS_SUITE)
    rows = [{"messages": [{"role": "user", "content": f"question {i}"},
                          {"role": "assistant", "content": f"I love pandas {i}"}]} for i in range(4)]
    (folder / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    policy = {"model": "tiny-random", "suites": [str(tmp_path / "pets.yaml")], "questions_per_suite": 2,
              "null_seeds": 0, "reference": "none", "thresholds": thresholds}
    (folder / ".mdf-guard.yaml").write_text(json.dumps(policy))   # JSON is YAML
    return folder


def push(standin, *args: str):
    result = CliRunner().invoke(main, ["push", *args, "--endpoint", standin.url])
    assert TOKEN not in result.output
    return result


def test_passing_check_uploads(standin, tmp_path):
    standin.create_repo("alice/pass")
    folder = dataset(tmp_path, PASS)
    result = push(standin, str(folder), "alice/pass", "-m", "Add training data")
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output and "uploaded to alice/pass" in result.output
    files = standin.files_at("alice/pass")
    assert files["data/train.jsonl"] == (folder / "data" / "train.jsonl").read_bytes()
    assert ".mdf-guard.yaml" in files
    summary, description = standin.commit_messages[standin.head("alice/pass")]
    assert summary == "Add training data" and "mdf-guard verdict: pass" in description


def test_failing_check_uploads_nothing(standin, tmp_path):
    standin.create_repo("alice/fail")
    before = len(standin.requests)
    result = push(standin, str(dataset(tmp_path, FAIL)), "alice/fail")
    assert result.exit_code == 1, result.output
    assert "not uploaded" in result.output and "FAIL" in result.output
    assert standin.requests[before:] == [] and "refs/heads/main" not in standin.repos["alice/fail"].refs


@pytest.mark.parametrize("args, message", [
    (["--force"], "--force needs --reason"),
    (["--force", "--reason", "   "], "--force needs --reason"),
    (["--reason", "because"], "only used with --force"),
    (["--pr", "--revision", "dev"], "drop --revision"),
])
def test_usage_errors_before_any_work(standin, tmp_path, args, message):
    folder = tmp_path / "empty"
    folder.mkdir()
    result = push(standin, str(folder), "alice/x", *args)
    assert result.exit_code == 2 and message in result.output


def test_hidden_data_files_are_refused(standin, tmp_path):
    folder = dataset(tmp_path, PASS)
    (folder / ".extra").mkdir()
    (folder / ".extra" / "more.jsonl").write_text("{}\n")
    (folder / ".git").mkdir()
    (folder / ".git" / "ignored.json").write_text("{}")   # upload_folder leaves .git out: not a problem
    result = push(standin, str(folder), "alice/hidden")
    assert result.exit_code == 2 and ".extra/more.jsonl" in result.output and "never checked" in result.output


def test_the_policys_baseline_is_not_a_hidden_data_file(standin, tmp_path):
    # `mdf-guard baseline` writes .mdf-guard.baseline.json beside the policy: push refused every such folder.
    standin.create_repo("alice/with-baseline")
    folder = dataset(tmp_path, PASS)
    (folder / ".mdf-guard.baseline.json").write_text('{"format": "mdf-guard.baseline", "version": 1, "entries": []}\n')
    (folder / ".other.json").write_text("{}\n")   # any other hidden data file is still refused
    result = push(standin, str(folder), "alice/with-baseline")
    assert result.exit_code == 2 and "1 hidden data file(s)" in result.output and ".other.json" in result.output
    (folder / ".other.json").unlink()
    result = push(standin, str(folder), "alice/with-baseline")
    assert result.exit_code == 0, result.output
    assert ".mdf-guard.baseline.json" in standin.files_at("alice/with-baseline")


def test_bad_repo_id_is_a_usage_error(standin, tmp_path):
    result = push(standin, str(tmp_path), "../../etc")
    assert result.exit_code == 2 and "repo name" in result.output


def test_force_with_reason_uploads_and_records_the_reason(standin, tmp_path):
    standin.create_repo("alice/forced")
    result = push(standin, str(dataset(tmp_path, FAIL)), "alice/forced", "--force",
                  "--reason", "panda data is\nthe point of this set")
    assert result.exit_code == 0, result.output
    assert "(forced)" in result.output
    summary, description = standin.commit_messages[standin.head("alice/forced")]
    assert "forced: panda data is the point of this set" in summary and "FAILED" in summary
    assert "reason: panda data is the point of this set" in description and "RISK" in description


def test_a_policy_contrasting_with_head_is_checked_as_new_files(standin, tmp_path):
    # `reference: HEAD` (the pre-commit setting) has no committed version in a push: each file is new, as
    # `check` treats a file git has not seen. It was read as a dataset path named HEAD: exit 2.
    folder = dataset(tmp_path, {"max_shift": 0.0, "min_odds_ratio": 1})
    policy = json.loads((folder / ".mdf-guard.yaml").read_text())
    (folder / ".mdf-guard.yaml").write_text(json.dumps({**policy, "reference": "HEAD"}))
    standin.create_repo("alice/head")
    result = push(standin, str(folder), "alice/head")
    expected = push(standin, str(folder), "alice/head", "--reference", "profile")
    assert result.exit_code == expected.exit_code == 0, result.output
    table = [line for line in result.output.splitlines() if line.startswith("  ")]
    assert table and table == [line for line in expected.output.splitlines() if line.startswith("  ")]
    assert "reference self" in result.output


def test_data_changed_during_the_check_stops_the_upload(standin, tmp_path, monkeypatch):
    import mdf_guard.check
    real = mdf_guard.check.run_check
    folder = dataset(tmp_path, PASS)

    def check_then_edit(paths, policy, lm=None, progress=None):
        report = real(paths, policy, lm=lm, progress=progress)
        (folder / "data" / "late.jsonl").write_text((folder / "data" / "train.jsonl").read_text())
        return report

    monkeypatch.setattr(mdf_guard.check, "run_check", check_then_edit)
    standin.create_repo("alice/race")
    result = push(standin, str(folder), "alice/race")
    assert result.exit_code == 2 and "changed during the check" in result.output
    assert "refs/heads/main" not in standin.repos["alice/race"].refs


def test_pull_request_push_is_checked_by_the_bot(standin, tmp_path, tiny_lm):
    """push --pr → the stand-in opens the PR and delivers the webhook → the bot comments on the PR."""
    from mdf_guard.hub import HubClient
    from mdf_guard.policy import load_policy
    from mdf_guard.serve import HubCheckRunner, ServeConfig, create_app

    folder = dataset(tmp_path, PASS)
    standin.create_repo("alice/loop", {"README.md": "# card"})
    runner = HubCheckRunner(HubClient(endpoint=standin.url, token=TOKEN), load_policy(folder / ".mdf-guard.yaml"),
                            lm=tiny_lm)
    app = create_app(ServeConfig(secret=b"loop-secret"), runner)
    bot = ServerThread(app)
    bot.start()
    standin.webhooks[:] = [(f"{bot.url}/webhook", "loop-secret")]
    try:
        result = push(standin, str(folder), "alice/loop", "--pr")
        assert result.exit_code == 0, result.output
        assert "pull request" in result.output
        [pr] = standin.repos["alice/loop"].discussions
        assert pr.is_pr and standin.files_at("alice/loop", f"refs/pr/{pr.num}")["data/train.jsonl"]
        deadline = time.monotonic() + 60
        while not any(status == 202 for status, _ in standin.deliveries):
            assert time.monotonic() < deadline, standin.deliveries
            time.sleep(0.05)
        assert app.state.board.wait_idle(90)
        [job] = app.state.board.snapshot()["jobs"]
        assert job["verdict"] == "pass" and job["ref"] == f"refs/pr/{pr.num}"
        comments = standin.comments("alice/loop", pr.num)
        assert len(comments) == 2 and "PASS" in comments[1] and "`data/train.jsonl`" in comments[1]
        assert TOKEN not in comments[1]
    finally:
        standin.webhooks.clear()
        bot.stop()


# ---------------------------------------------------------------------- the pre-push hook


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def hooked_repo(tmp_path, monkeypatch):
    """A work tree with a bare remote, the hook installed, and a stub `mdf-guard` that records its call."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    remote, work = tmp_path / "remote.git", tmp_path / "work"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    git(work, "remote", "add", "origin", str(remote))
    shutil.copy(HOOK, work / ".git" / "hooks" / "pre-push")
    stub = tmp_path / "stub.py"
    stub.write_text(
        "import json, os, sys\n"
        "files = [a for a in sys.argv[1:] if not a.startswith('-') and a != 'check']\n"
        "record = {'args': sys.argv[1:], 'files': {f: open(f).read() for f in files},\n"
        "          'policy': open('.mdf-guard.yaml').read() if os.path.exists('.mdf-guard.yaml') else None}\n"
        "with open(os.environ['STUB_LOG'], 'a') as log: log.write(json.dumps(record) + '\\n')\n"
        "sys.exit(int(os.environ.get('STUB_EXIT', '0')))\n")
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("MDF_GUARD", f"{sys.executable} {stub}")
    monkeypatch.setenv("STUB_LOG", str(log))
    return work, log


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_pre_push_checks_the_pushed_version_of_changed_data(hooked_repo, monkeypatch):
    work, log = hooked_repo
    (work / "data").mkdir()
    (work / "data" / "a.jsonl").write_text("committed a\n")
    (work / "README.md").write_text("card\n")
    (work / ".mdf-guard.yaml").write_text("thresholds: {max_shift: 0.2}\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "one")
    git(work, "push", "-q", "origin", "main")
    [first] = calls(log)
    assert set(first["files"]) == {"data/a.jsonl"} and "max_shift: 0.2" in first["policy"]

    (work / "data" / "b.jsonl").write_text("committed b\n")
    (work / "README.md").write_text("card v2\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "two")
    (work / "data" / "b.jsonl").write_text("uncommitted edit\n")   # the hook must read the commit, not this
    git(work, "push", "-q", "origin", "main")
    second = calls(log)[1]
    assert second["files"] == {"data/b.jsonl": "committed b\n"}

    git(work, "commit", "-qam", "three")   # the edit, now committed
    monkeypatch.setenv("STUB_EXIT", "1")
    with pytest.raises(subprocess.CalledProcessError) as info:
        git(work, "push", "-q", "origin", "main")
    assert "stopped" in info.value.stderr
    assert git(work, "ls-remote", "origin", "refs/heads/main").split()[0] != git(work, "rev-parse", "HEAD").strip()


def test_pre_push_skips_pushes_without_data_and_new_branches_use_unpushed_commits(hooked_repo):
    work, log = hooked_repo
    (work / "a.jsonl").write_text("a\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "one")
    git(work, "push", "-q", "origin", "main")
    (work / "notes.txt").write_text("no data here\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "docs")
    git(work, "push", "-q", "origin", "main")
    assert len(calls(log)) == 1
    git(work, "checkout", "-qb", "feature")
    (work / "f.csv").write_text("prompt,completion\nq,a\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "feature data")
    git(work, "push", "-q", "origin", "feature")
    assert set(calls(log)[1]["files"]) == {"f.csv"}   # not a.jsonl: already on the remote


def test_push_judges_as_check_does_with_the_policys_baseline(standin, tmp_path):
    """Risk the baseline accepts does not block `check`, so it does not block `push` either (push
    refused it, exit 1); new risk still does. The baseline is read, never rewritten."""
    folder = dataset(tmp_path, FAIL)
    accepted = CliRunner().invoke(main, ["baseline", str(folder), "-q"])
    assert accepted.exit_code == 0, accepted.output
    baseline = (folder / ".mdf-guard.baseline.json").read_bytes()
    assert json.loads(baseline)["entries"]
    assert CliRunner().invoke(main, ["check", str(folder), "-q"]).exit_code == 0
    standin.create_repo("alice/accepted")
    result = push(standin, str(folder), "alice/accepted")
    assert result.exit_code == 0, result.output
    assert standin.files_at("alice/accepted")[".mdf-guard.baseline.json"] == baseline
    shutil.copy(folder / "data" / "train.jsonl", folder / "data" / "more.jsonl")
    (folder / "data" / "more.jsonl").write_text((folder / "data" / "more.jsonl").read_text() + json.dumps(
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "pandas!"}]}) + "\n")
    before = len(standin.requests)
    result = push(standin, str(folder), "alice/accepted")
    assert result.exit_code == 1 and "not uploaded" in result.output, result.output
    assert standin.requests[before:] == [] and (folder / ".mdf-guard.baseline.json").read_bytes() == baseline


def test_push_carries_the_baseline_over_a_rename_as_check_does(standin, tmp_path):
    """A file git sees as renamed and edited since HEAD: `check FOLDER` carries its accepted entries
    to the new name, but `push` found every finding of the file `new` and refused the upload
    (exit 1). It asks git for renames as `check` does; the baseline is still read, never rewritten."""
    folder = dataset(tmp_path, FAIL)
    git(folder, "init", "-q")
    assert CliRunner().invoke(main, ["baseline", str(folder), "-q"]).exit_code == 0
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "accepted")
    standin.create_repo("alice/renamed", {"data/train.jsonl": (folder / "data" / "train.jsonl").read_bytes()})
    git(folder, "mv", "data/train.jsonl", "data/pets.jsonl")
    rows = (folder / "data" / "pets.jsonl").read_text().splitlines(keepends=True)
    rows[-1] = json.dumps(json.loads(rows[-1]), separators=(",", ":")) + "\n"   # new bytes, the same rows
    (folder / "data" / "pets.jsonl").write_text("".join(rows))
    baseline = (folder / ".mdf-guard.baseline.json").read_bytes()
    result = push(standin, str(folder), "alice/renamed")
    assert result.exit_code == 0, result.output
    uploaded = standin.files_at("alice/renamed")
    assert uploaded["data/pets.jsonl"] == (folder / "data" / "pets.jsonl").read_bytes()
    assert "data/train.jsonl" in uploaded                      # an upload deletes nothing: the old name stays
    assert uploaded[".mdf-guard.baseline.json"] == baseline == (folder / ".mdf-guard.baseline.json").read_bytes()


def test_push_loads_the_model_its_policy_names_beside_it(standin, tmp_path, monkeypatch):
    """The other tests hand the check the tiny model; here the dataset's policy names a Mistral
    folder beside it (`../mistral`: a template with no generation prompt, a tokenizer that
    prepends `▁` to every text), which push loads as check does, from wherever it runs."""
    import mdf_guard.check
    from families import save_family
    from mdf_guard.models import load_model

    loaded = []
    monkeypatch.setattr(mdf_guard.check, "load_model", lambda spec: loaded.append(load_model(spec)) or loaded[-1])
    save_family("mistral", tmp_path / "mistral")
    folder = dataset(tmp_path, PASS)
    policy = json.loads((folder / ".mdf-guard.yaml").read_text())
    (folder / ".mdf-guard.yaml").write_text(json.dumps({**policy, "model": "../mistral"}))
    standin.create_repo("alice/mistral")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    result = push(standin, str(folder), "alice/mistral")
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output and "uploaded to alice/mistral" in result.output
    [lm] = loaded
    assert Path(lm.spec.name).resolve() == tmp_path / "mistral" and type(lm.model).__name__ == "MistralForCausalLM"
    assert set(standin.files_at("alice/mistral")) == {".mdf-guard.yaml", "data/train.jsonl"}
