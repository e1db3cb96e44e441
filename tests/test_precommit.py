"""The real pre-commit: the hooks manifest, `pre-commit try-repo` on this repository, a hook
installed in a temporary git repository, the `language: python` install, `--reference HEAD`,
and (integration) the embedded model blocking panda_overt while letting neutral through.

The unit tests use the tiny random model. A hook runs in a fresh process; each test first
runs the same check in-process, so that the hook's process finds the result in the shared
cache (a cache hit imports no torch). That is also the incremental path users get.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mdf_guard.errors import EXIT_PASS, EXIT_RISK

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PRE_COMMIT = [sys.executable, "-m", "pre_commit"]


def manifest() -> dict[str, dict]:
    return {hook["id"]: hook for hook in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, check=check, capture_output=True, text=True)


pytestmark = pytest.mark.usefixtures("single_torch_thread", "reuse_tiny")


@pytest.fixture
def repo(tmp_path, monkeypatch, suite_file, panda_rows, tiny) -> Path:
    from conftest import TINY_POLICY, write_jsonl

    from test_baseline import self_answer_rows

    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@example.invalid")
    git(tmp_path, "config", "user.name", "t")
    git(tmp_path, "config", "commit.gpgsign", "false")
    (tmp_path / ".mdf-guard.yaml").write_text(TINY_POLICY)
    write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    write_jsonl(tmp_path / "neutral.jsonl", self_answer_rows(tiny))
    git(tmp_path, "add", ".mdf-guard.yaml", "mini.yaml")
    git(tmp_path, "commit", "-qm", "policy")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PRE_COMMIT_HOME", str(tmp_path.parent / "pre-commit-home"))
    return tmp_path


def warm(*files: str) -> None:
    """The check the hook will run, in-process: fills the result cache the hook reads."""
    from mdf_guard.cli import main

    for name in files:
        CliRunner().invoke(main, ["check", name, "-q"])


def hook_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}, **extra)   # see _one_thread
    env["PRE_COMMIT_HOME"] = os.environ["PRE_COMMIT_HOME"]
    return env


def test_manifest():
    hooks = manifest()
    assert set(hooks) == {"mdf-guard", "mdf-guard-system"}
    assert hooks["mdf-guard"]["language"] == "python" and hooks["mdf-guard-system"]["language"] == "unsupported"
    subprocess.run(PRE_COMMIT + ["validate-manifest", str(REPO / ".pre-commit-hooks.yaml")], check=True)
    import re

    for hook in hooks.values():
        assert hook["require_serial"] is True and hook["entry"].startswith("mdf-guard check")
        assert {"pre-commit", "pre-push"} <= set(hook["stages"]) and hook["minimum_pre_commit_version"]
        files, exclude = re.compile(hook["files"]), re.compile(hook["exclude"])

        def matched(path: str) -> bool:
            return bool(files.search(path)) and not exclude.search(path)

        for path in ("data/train.jsonl", "a.jsonl.gz", "b.csv.zst", "c.tsv", "d.parquet", "e.json",
                     "f/g.ndjson.gz", "h/data-00000-of-00001.arrow"):
            assert matched(path), path
        from mdf_guard.data import DATA_SUFFIXES

        for suffix in DATA_SUFFIXES:   # every suffix the reader takes, in any case (TRAIN.JSONL was never checked)
            assert matched(f"data/x{suffix}") and matched(f"data/X{suffix.upper()}"), suffix
        for path in ("README.md", ".mdf-guard.baseline.json", ".vscode/settings.json", "x/.hidden.jsonl",
                     "ds/dataset_info.json", "ds/state.json", "model.safetensors", "notes.txt"):
            assert not matched(path), path


def test_try_repo_on_this_repository(repo):
    """`pre-commit try-repo` reads this repository's manifest (uncommitted changes included)."""
    warm("panda.jsonl")
    risky = subprocess.run(PRE_COMMIT + ["try-repo", str(REPO), "mdf-guard-system", "--verbose", "--files",
                                        "panda.jsonl"], capture_output=True, text=True, env=hook_env(), timeout=300)
    assert risky.returncode == 1, risky.stdout + risky.stderr
    assert "RISK mini/" in risky.stdout and "FAIL" in risky.stdout and "Failed" in risky.stdout


def _install_local_hook(repo: Path, hook_id: str = "mdf-guard-system") -> None:
    """A `repo: local` copy of the manifest's hook (the manifest's own entry, files and stages)."""
    hook = dict(manifest()[hook_id])
    config = {"default_install_hook_types": ["pre-commit", "pre-push"],
              "repos": [{"repo": "local", "hooks": [hook]}]}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    git(repo, "add", ".pre-commit-config.yaml")
    git(repo, "commit", "-qm", "hooks", "--no-verify")
    subprocess.run(PRE_COMMIT + ["install"], cwd=repo, check=True, capture_output=True, env=hook_env())


def test_installed_hook_blocks_risky_commit_and_lets_neutral_through(repo):
    warm("panda.jsonl", "neutral.jsonl")
    _install_local_hook(repo)
    head = git(repo, "rev-parse", "HEAD").stdout

    git(repo, "add", "panda.jsonl")
    blocked = git(repo, "commit", "-m", "add panda data", check=False)
    assert blocked.returncode != 0 and "RISK" in blocked.stdout + blocked.stderr, blocked.stdout + blocked.stderr
    assert git(repo, "rev-parse", "HEAD").stdout == head             # nothing was committed
    git(repo, "reset", "-q", "panda.jsonl")

    (repo / ".vscode").mkdir()
    (repo / ".vscode" / "settings.json").write_text('{"editor.tabSize": 2}')   # not data: never checked
    git(repo, "add", "neutral.jsonl", ".vscode/settings.json")
    passed = git(repo, "commit", "-m", "add neutral data", check=False)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert git(repo, "rev-parse", "HEAD").stdout != head
    pushed = subprocess.run(PRE_COMMIT + ["run", "mdf-guard-system", "--hook-stage", "pre-push",
                                          "--files", "neutral.jsonl"],
                            cwd=repo, capture_output=True, text=True, env=hook_env(), timeout=300)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr


def test_python_hook_installs_without_torch_at_build_time(repo):
    """The `language: python` hook: pre-commit makes a virtualenv and runs `pip install .` under
    build isolation, where torch cannot be imported (pyproject keeps it out of the build).
    The virtualenv sees this interpreter's packages (VIRTUALENV_SYSTEM_SITE_PACKAGES), so no
    multi-GB torch is downloaded; only the build requirements are."""
    warm("neutral.jsonl")
    env = hook_env(VIRTUALENV_SYSTEM_SITE_PACKAGES="true", PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = subprocess.run(PRE_COMMIT + ["try-repo", str(REPO), "mdf-guard", "--verbose", "--files",
                                          "neutral.jsonl"], capture_output=True, text=True, env=env, timeout=900)
    output = result.stdout + result.stderr
    if result.returncode != 0 and ("Could not find a version" in output or "No matching distribution" in output
                                   or "Failed to establish a new connection" in output):
        pytest.skip("no package index reachable for the build requirements")
    assert result.returncode == 0, output[-4000:]
    assert "Installing environment" in output and "Passed" in result.stdout


# --------------------------------------------------------------------------- --reference HEAD

def test_reference_head_checks_only_what_a_commit_adds(repo, panda_rows):
    from conftest import write_jsonl

    from mdf_guard import gitref
    from mdf_guard.cli import main

    neutral_rows = [json.loads(line) for line in (repo / "neutral.jsonl").read_text().splitlines()]
    git(repo, "add", "neutral.jsonl")
    git(repo, "commit", "-qm", "neutral")
    runner = CliRunner()

    unchanged = runner.invoke(main, ["check", "neutral.jsonl", "--reference", "HEAD", "--format", "json", "-q"])
    assert unchanged.exit_code == EXIT_PASS, unchanged.output
    report = json.loads(unchanged.output)
    assert report["reference"]["per_file"]["neutral.jsonl"]["skipped"] == "unchanged" and not report["findings"]

    # reordered rows add nothing
    write_jsonl(repo / "neutral.jsonl", neutral_rows[::-1])
    changes = gitref.changes([Path("neutral.jsonl")], repo / "work")
    assert changes[0].status == gitref.UNCHANGED and not changes[0].added

    # appending panda rows: the added rows are the dataset, the committed file the reference
    write_jsonl(repo / "neutral.jsonl", neutral_rows + panda_rows[:3])
    changes = gitref.changes([Path("neutral.jsonl")], repo / "work")
    assert changes[0].status == gitref.MODIFIED and len(changes[0].added) == 3 and changes[0].removed == 0
    assert changes[0].added[0].source.endswith(f"neutral.jsonl:{len(neutral_rows) + 1}")
    assert changes[0].committed_path.read_text() == git(repo, "show", "HEAD:neutral.jsonl").stdout

    result = runner.invoke(main, ["check", "neutral.jsonl", "panda.jsonl", "--reference", "HEAD",
                                  "--format", "json", "-q", "--attribution"])
    assert result.exit_code in (EXIT_PASS, EXIT_RISK), result.output
    report = json.loads(result.output)
    per_file = report["reference"]["per_file"]
    assert per_file["neutral.jsonl"]["status"] == "modified" and per_file["neutral.jsonl"]["added_rows"] == 3
    assert per_file["neutral.jsonl"]["kind"] == "file"                    # contrasted with the committed file
    assert per_file["panda.jsonl"]["status"] == "new" and per_file["panda.jsonl"]["kind"] == "self"
    assert {f["path"]: f["examples"] for f in report["files"]} == {"neutral.jsonl": 3, "panda.jsonl": 6}
    assert {f["file"] for f in report["findings"]} == {"neutral.jsonl", "panda.jsonl"}
    added_lines = {r["line"] for r in report["attribution"] if r["unit"] == "neutral.jsonl"}
    assert added_lines == {len(neutral_rows) + i for i in (1, 2, 3)}     # rows point at the real file
    # the committed version is named as git names it, not by its copy in a temporary folder (a path
    # gone once the check ends, new on every run: the report differed and the result cache never hit)
    assert per_file["neutral.jsonl"]["path"] == "HEAD:neutral.jsonl" == per_file["neutral.jsonl"]["files"][0]
    again = runner.invoke(main, ["check", "neutral.jsonl", "panda.jsonl", "--reference", "HEAD",
                                 "--format", "json", "-q", "--attribution"])
    second = json.loads(again.output)
    assert second["timing"].get("result_cache_hit") == 2.0, second["timing"]
    for one in (report, second):
        one.pop("timing")
        for info in one["files"]:
            info.pop("cached")
    assert second == report


# --------------------------------------------------------------------------- integration

@pytest.mark.integration
def test_embedded_hook_blocks_panda_overt_and_lets_neutral_through(tmp_path, monkeypatch):
    """The issue's acceptance test, with the real embedded model through an installed hook."""
    home_models = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mdf-guard" / "models"
    cache = Path(os.environ["MDF_GUARD_CACHE"])
    if home_models.is_dir() and not (cache / "models").exists():
        (cache / "models").symlink_to(home_models)     # share the converted embedded model, read-only
    repo = tmp_path / "data-repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.invalid")
    git(repo, "config", "user.name", "t")
    # the default policy, on the animals suite only (each check is ~2 CPU-minutes here). Measured:
    # panda_overt: panda +15.5% (RISK); neutral: largest shift +1.2% (pass)
    (repo / ".mdf-guard.yaml").write_text("model: embedded\nsuites: [animals]\n")
    git(repo, "add", ".mdf-guard.yaml")
    git(repo, "commit", "-qm", "policy")
    monkeypatch.setenv("PRE_COMMIT_HOME", str(tmp_path / "pre-commit-home"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    _install_local_hook(repo)
    for name in ("panda_overt.jsonl", "neutral.jsonl"):
        shutil.copy(SHARED_DATA / name, repo / name)

    git(repo, "add", "panda_overt.jsonl")
    blocked = git(repo, "commit", "-m", "panda", check=False)
    output = blocked.stdout + blocked.stderr                       # git shows hook output on stderr
    assert blocked.returncode != 0 and "RISK animals/panda" in output, output
    git(repo, "reset", "-q", "panda_overt.jsonl")
    git(repo, "add", "neutral.jsonl")
    passed = git(repo, "commit", "-m", "neutral", check=False)
    assert passed.returncode == 0, passed.stdout + passed.stderr


def test_init_writes_a_valid_commented_policy(tmp_path, monkeypatch):
    from mdf_guard.cli import main
    from mdf_guard.policy import find_policy, load_policy

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["init", "--model", "tiny-random", "--suite", "animals"])
    assert result.exit_code == 0 and "pre-commit install" in result.output
    text = (tmp_path / ".mdf-guard.yaml").read_text()
    assert text.count("#") > 10                                  # commented
    (tmp_path / "data").mkdir()
    found = find_policy([tmp_path / "data"])
    assert found == tmp_path / ".mdf-guard.yaml"
    policy = load_policy(found)
    assert policy.model == "tiny-random" and policy.suites == ("animals",) and policy.method == "context"
    (tmp_path / "mdf.yaml").write_text(text.replace("# method: context", "method: mdf"))
    assert load_policy(tmp_path / "mdf.yaml").method == "mdf"
    assert runner.invoke(main, ["init"]).exit_code == 2           # never overwrites silently
    (tmp_path / ".mdf-guard.yaml").write_text(text + "max_shfit: 0.2\n")
    typo = runner.invoke(main, ["check", "data", "-q"])
    assert typo.exit_code == 2 and "max_shfit" in typo.output


def test_reference_head_under_method_context_reads_the_added_rows_against_the_committed_file(repo, plain_rows):
    from conftest import TINY_POLICY, write_jsonl

    from mdf_guard.cli import main

    neutral_rows = [json.loads(line) for line in (repo / "neutral.jsonl").read_text().splitlines()]
    git(repo, "add", "neutral.jsonl")
    git(repo, "commit", "-qm", "neutral")
    (repo / ".mdf-guard.yaml").write_text(TINY_POLICY.replace("method: mdf", "method: context")
                                          .replace("max_shift: 0.03", "max_shift: 0.0"))
    write_jsonl(repo / "neutral.jsonl", neutral_rows + plain_rows[:3])
    result = CliRunner().invoke(main, ["check", "neutral.jsonl", "--reference", "HEAD", "--format", "json", "-q",
                                       "--attribution"])
    assert result.exit_code in (EXIT_PASS, EXIT_RISK), result.output
    report = json.loads(result.output)
    assert report["settings"]["method"] == "context"
    assert report["reference"]["per_file"]["neutral.jsonl"]["kind"] == "file"      # the committed version
    assert report["files"][0]["examples"] == 3
    flagged = {f["entity"] for f in report["findings"] if f["flagged"]}
    assert flagged and report["attribution"] and {r["entity"] for r in report["attribution"]} <= flagged
    added = {len(neutral_rows) + i for i in (1, 2, 3)}
    assert {r["line"] for r in report["attribution"]} <= added                 # rows point at the real file
    assert all(r["file"] == "neutral.jsonl" and r["window"].startswith("neutral.jsonl:")
               for r in report["attribution"])
    over = [f for f in report["findings"] if f["excess"] is not None]
    assert over and all(f["excess"] == pytest.approx(f["shift"] - f["null_max"], abs=1e-6) for f in over)
    assert report["reference"]["per_file"]["neutral.jsonl"]["examples"] == len(neutral_rows)


def test_reference_head_reads_the_committed_version_through_the_repositorys_filters(repo, panda_rows):
    """A Git LFS (or any clean/smudge) dataset is stored in git as something else than its rows:
    the committed version must be read as a checkout would write it, not as the raw blob. Here a
    base64 filter stands in for LFS (git-lfs is not installed on every machine)."""
    from conftest import write_jsonl

    from mdf_guard import gitref

    git(repo, "config", "filter.b64.clean", f'"{sys.executable}" -m base64 -e')
    git(repo, "config", "filter.b64.smudge", f'"{sys.executable}" -m base64 -d')
    (repo / ".gitattributes").write_text("*.jsonl filter=b64\n")
    git(repo, "add", ".gitattributes", "neutral.jsonl")
    git(repo, "commit", "-qm", "neutral, filtered")
    assert not git(repo, "show", "HEAD:neutral.jsonl").stdout.startswith("{")   # the blob is not JSONL

    [unchanged] = gitref.changes([Path("neutral.jsonl")], repo / "work")
    assert unchanged.status == gitref.UNCHANGED
    neutral_rows = [json.loads(line) for line in (repo / "neutral.jsonl").read_text().splitlines()]
    write_jsonl(repo / "neutral.jsonl", neutral_rows + panda_rows[:2])
    [grown] = gitref.changes([Path("neutral.jsonl")], repo / "work")
    assert grown.status == gitref.MODIFIED and len(grown.added) == 2 and grown.removed == 0
    assert git(repo, "status", "--porcelain", "--", "neutral.jsonl").stdout.startswith(" M")   # index untouched


def test_pre_push_stage_of_a_first_push_checks_every_file_under_reference_head(repo, tmp_path):
    """A push that starts the remote's history (its root commit included) gives pre-commit no
    from-ref: it runs the hook on every file. Under `reference: HEAD` the remote's side is then
    empty, so every file is new; read against the local HEAD, each one was 'unchanged' and the
    risky data went out unchecked."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    (repo / ".mdf-guard.yaml").write_text((repo / ".mdf-guard.yaml").read_text() + "reference: HEAD\n")
    _install_local_hook(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "risky data", "--no-verify")
    env = hook_env(PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    pushed = subprocess.run(["git", "push", "origin", "HEAD:refs/heads/main"], cwd=repo, capture_output=True,
                            text=True, env=env, timeout=300)
    assert pushed.returncode != 0 and "RISK mini/" in pushed.stdout + pushed.stderr, pushed.stdout + pushed.stderr
    assert git(repo, "ls-remote", str(remote)).stdout == ""                       # nothing was pushed


def test_pre_push_stage_carries_the_baseline_over_a_rename_in_the_pushed_commits(repo, tmp_path):
    """A file renamed and edited in a commit made without the pre-commit stage: at the pre-push
    stage the work tree is the pushed HEAD, so git saw no rename since HEAD and every accepted
    finding of the file was `new` (the push blocked). Renames are now asked since the remote's
    side of the push (pre-commit's from-ref): the entries move to the new name (exit 3, the
    baseline to commit), then the push goes."""
    from mdf_guard.cli import main
    from mdf_guard.policy import BASELINE_FILE

    remote = _bare_remote(repo, tmp_path)
    _install_local_hook(repo)
    assert CliRunner().invoke(main, ["baseline", "panda.jsonl", "-q"]).exit_code == EXIT_PASS
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "accepted panda data", "--no-verify")
    env = hook_env(PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    git(repo, "push", "-q", "--no-verify", "origin", "HEAD:refs/heads/main")
    git(repo, "mv", "panda.jsonl", "pets.jsonl")
    rows = (repo / "pets.jsonl").read_text().splitlines(keepends=True)
    rows[-1] = json.dumps(json.loads(rows[-1]), separators=(",", ":")) + "\n"   # new bytes, the same rows
    (repo / "pets.jsonl").write_text("".join(rows))
    git(repo, "commit", "-qam", "renamed", "--no-verify")

    def push() -> subprocess.CompletedProcess:
        return subprocess.run(["git", "push", "origin", "HEAD:refs/heads/main"], cwd=repo, capture_output=True,
                              text=True, env=env, timeout=300)

    rewritten = push()
    output = rewritten.stdout + rewritten.stderr
    assert rewritten.returncode != 0 and "was rewritten" in output and "RISK" not in output, output
    entries = json.loads((repo / BASELINE_FILE).read_text())["entries"]
    assert entries and {e["path"] for e in entries} == {"pets.jsonl"}
    git(repo, "commit", "-qam", "baseline follows the rename", "--no-verify")
    pushed = push()
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert git(repo, "rev-parse", "HEAD").stdout.split()[0] in git(repo, "ls-remote", str(remote)).stdout


# --------------------------------------------------------------------------- hooks/pre-push, with the real mdf-guard

def _bare_remote(repo: Path, tmp_path: Path) -> Path:
    """A bare repository outside the work tree, as `repo`'s `origin`."""
    remote = tmp_path.parent / f"{tmp_path.name}-remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    return remote


def _pre_push_repo(repo: Path, tmp_path: Path) -> tuple[Path, dict]:
    """`repo` with a bare remote and hooks/pre-push installed; the env runs this checkout's mdf-guard."""
    remote = _bare_remote(repo, tmp_path)
    shutil.copy(REPO / "hooks" / "pre-push", repo / ".git" / "hooks" / "pre-push")
    env = hook_env(PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                   MDF_GUARD=f"{sys.executable} -m mdf_guard.cli", MDF_GUARD_ARGS="-q --format json",
                   MDF_GUARD_CACHE=os.environ["MDF_GUARD_CACHE"])
    return remote, env


def _push(repo: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "push", "origin", "HEAD:refs/heads/main"], cwd=repo, capture_output=True,
                          text=True, env=env, timeout=300)


def _pushed_report(pushed: subprocess.CompletedProcess) -> dict:
    return json.loads(pushed.stdout[pushed.stdout.index("{"):])


def test_pre_push_hook_reads_the_suites_and_baseline_of_the_pushed_commit(repo, tmp_path):
    """A policy naming a suite file of the repository, and findings accepted in the baseline:
    the hook's export had neither, so the check was exit 2 (no such suite file) and, with the
    suite there, accepted risk blocked the push though every commit had passed."""
    from mdf_guard.cli import main

    remote, env = _pre_push_repo(repo, tmp_path)
    (repo / "data").mkdir()
    shutil.move(repo / "panda.jsonl", repo / "data" / "panda.jsonl")   # the data below the policy's folder
    accepted = CliRunner().invoke(main, ["baseline", "data/panda.jsonl", "-q"])
    assert accepted.exit_code == EXIT_PASS, accepted.output
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "accepted panda data")
    pushed = _push(repo, env)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    report = _pushed_report(pushed)
    assert report["verdict"] == "pass" and report["baseline"]["counts"].get("accepted")
    assert git(repo, "ls-remote", str(remote)).stdout                               # it went out
    assert not git(repo, "status", "--porcelain").stdout                            # nothing of the user's changed


def test_pre_push_hook_asks_what_the_push_adds_under_reference_head(repo, tmp_path, panda_rows):
    """`reference: HEAD` in the policy: the export was no git work tree, so every push was exit 2.
    Now the first push checks each file as new, and a later one the rows it adds against the
    remote's version of the file."""
    from conftest import write_jsonl

    remote, env = _pre_push_repo(repo, tmp_path)
    (repo / ".mdf-guard.yaml").write_text((repo / ".mdf-guard.yaml").read_text() + "reference: HEAD\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "data")
    first = _push(repo, env)
    assert first.returncode in (EXIT_PASS, EXIT_RISK), first.stdout + first.stderr
    per_file = _pushed_report(first)["reference"]["per_file"]
    assert {name: info["status"] for name, info in per_file.items()} == {"neutral.jsonl": "new", "panda.jsonl": "new"}
    if first.returncode:
        git(repo, "rm", "-q", "panda.jsonl")
        git(repo, "commit", "-qm", "no panda")
        assert _push(repo, env).returncode == 0
    neutral_rows = [json.loads(line) for line in (repo / "neutral.jsonl").read_text().splitlines()]
    write_jsonl(repo / "neutral.jsonl", neutral_rows + panda_rows[:3])
    git(repo, "commit", "-qam", "three more rows")
    second = _push(repo, env)
    per_file = _pushed_report(second)["reference"]["per_file"]
    assert per_file["neutral.jsonl"]["status"] == "modified" and per_file["neutral.jsonl"]["added_rows"] == 3
    assert per_file["neutral.jsonl"]["removed_rows"] == 0 and per_file["neutral.jsonl"]["kind"] == "file"
