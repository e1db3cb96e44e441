"""Webhook payload parsing and validation, and the Hub client against the stand-in.

Every Hub call goes through the real `huggingface_hub` client with `endpoint=` set to
the stand-in on 127.0.0.1; a guard fails any connection to another address.
"""

from __future__ import annotations

import json

import pytest

from hub_standin import (Discussion, HubStandin, content_update_payload,  # noqa: F401  (fixtures)
                         loopback_only, hub_sandbox)
from mdf_guard.hub import HubClient, HubError, is_data_path, redact, safe_repo_path
from mdf_guard.webhook import (PayloadError, dataset_push, ignore_reason, parse_payload,
                               validate_repo_id)

pytestmark = pytest.mark.usefixtures("loopback_only", "hub_env")

TOKEN = "hf_test_token_do_not_echo_7f3a"
SHA_A, SHA_B, SHA_C = "a" * 40, "b" * 40, "c" * 40


@pytest.fixture
def hub_env(hub_sandbox, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)


@pytest.fixture(scope="module")
def standin():
    hub = HubStandin(token=TOKEN, page_size=2)   # two entries a page: listings must follow the Link header
    hub.start()
    yield hub
    hub.stop()


# ---------------------------------------------------------------------- payloads


def test_parse_content_update_uses_new_sha_not_head_sha():
    payload = content_update_payload("alice/data", "refs/heads/dev", SHA_A, SHA_B, head_sha=SHA_C)
    event = parse_payload(payload)
    assert ignore_reason(event) is None
    push = dataset_push(event)
    assert push.repo_id == "alice/data"
    assert [(u.ref, u.old_sha, u.new_sha) for u in push.refs] == [("refs/heads/dev", SHA_A, SHA_B)]
    assert event.head_sha == SHA_C   # kept, but never what is checked


def test_pull_request_ref_and_skipped_refs():
    payload = content_update_payload("alice/data", "refs/pr/7", SHA_A, SHA_B)
    payload["updatedRefs"] += [{"ref": "refs/tags/v1", "oldSha": None, "newSha": SHA_B},
                               {"ref": "refs/heads/old", "oldSha": SHA_A, "newSha": None},
                               {"ref": "refs/convert/parquet", "oldSha": SHA_A, "newSha": SHA_C},
                               {"ref": "refs/heads/new", "oldSha": "0" * 40, "newSha": SHA_C}]
    push = dataset_push(parse_payload(payload))
    assert [(u.ref, u.pr_number) for u in push.refs] == [("refs/pr/7", 7), ("refs/heads/new", None)]
    assert push.refs[1].old_sha is None   # all-zero sha: a new ref...
    assert push.refs[1].base_sha == SHA_B  # ...compared with main's head (repo.headSha)
    assert push.refs[0].base_sha is None
    assert {u.ref for u, _ in push.skipped} == {"refs/tags/v1", "refs/heads/old", "refs/convert/parquet"}


def test_new_ref_at_mains_head_adds_nothing_to_check():
    # A branch or pull request opened at main's head: nothing of its own to check, not the whole dataset.
    for ref in ("refs/heads/dev", "refs/pr/3"):
        push = dataset_push(parse_payload(content_update_payload("alice/data", ref, None, SHA_B, head_sha=SHA_B)))
        assert push.refs == () and [why for _, why in push.skipped] == ["new ref at main's head (it adds nothing "
                                                                        "to check)"]
    first = dataset_push(parse_payload(content_update_payload("alice/data", "refs/heads/main", None, SHA_B)))
    assert [u.ref for u in first.refs] == ["refs/heads/main"]   # the first push to a repo is checked whole


@pytest.mark.parametrize("change, reason", [
    ({"repo": {"type": "model"}}, "not a dataset repo"),
    ({"event": {"scope": "discussion", "action": "create"}}, "not a content update"),
    ({"event": {"scope": "repo.config", "action": "update"}}, "not a content update"),
    ({"updatedRefs": []}, "no updatedRefs"),
])
def test_events_that_need_no_check(change, reason):
    payload = content_update_payload("alice/data", "refs/heads/main", SHA_A, SHA_B)
    for key, value in change.items():
        payload[key] = {**payload[key], **value} if isinstance(value, dict) else value
    assert reason in ignore_reason(parse_payload(payload))


def test_narrower_content_scope_counts_as_content_update():
    payload = content_update_payload("alice/data", "refs/heads/main", SHA_A, SHA_B)
    payload["event"]["scope"] = "repo.content.lfs"
    assert ignore_reason(parse_payload(payload)) is None


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p["webhook"].update(version=2), "unsupported webhook version"),
    (lambda p: p.pop("event"), "'event'"),
    (lambda p: p["repo"].update(private="yes"), "repo.private"),
    (lambda p: p.update(updatedRefs={"ref": "x"}), "updatedRefs must be a list"),
    (lambda p: p["updatedRefs"][0].update(newSha="not-a-sha"), "newSha"),
    (lambda p: p["updatedRefs"][0].update(ref="refs/heads/../../etc"), "not a valid git ref"),
    (lambda p: p["updatedRefs"][0].update(ref="main"), "not a valid git ref"),
    (lambda p: p["updatedRefs"][0].update(oldSha=None, newSha=None), "neither"),
])
def test_malformed_payloads(mutate, message):
    payload = content_update_payload("alice/data", "refs/heads/main", SHA_A, SHA_B)
    mutate(payload)
    with pytest.raises(PayloadError, match=message):
        push = dataset_push(parse_payload(payload))
        assert push   # pragma: no cover


@pytest.mark.parametrize("name", ["../etc/passwd", "/etc/passwd", "alice/../bob", "alice/data/extra", "alice",
                                  "alice\\data", "alice/da ta", "alice/data%2F..", "alice/naïve", "alice/-x",
                                  "alice/x.", ".alice/x", "alice/", "/", "", "alice/da\nta", "alice/a--b",
                                  "alice/" + "x" * 97, "alice/data;rm"])
def test_unsafe_repo_names_are_rejected(name):
    with pytest.raises(PayloadError):
        validate_repo_id(name)
    payload = content_update_payload(name, "refs/heads/main", SHA_A, SHA_B)
    with pytest.raises(PayloadError):
        dataset_push(parse_payload(payload))


@pytest.mark.parametrize("name", ["alice/data", "Org-1/my_data.v2", "a/b", "user/" + "x" * 96])
def test_valid_repo_names(name):
    assert validate_repo_id(name) == name


def test_first_push_to_main_is_checked_whole():
    payload = json.loads(json.dumps(content_update_payload("alice/data", "refs/heads/main", None, SHA_B)))
    push = dataset_push(parse_payload(payload))
    assert (push.refs[0].old_sha, push.refs[0].base_sha) == (None, None)
    payload["repo"]["headSha"] = "not a sha"   # a malformed headSha is dropped, never used
    assert parse_payload(payload).head_sha is None


# ---------------------------------------------------------------------- paths


@pytest.mark.parametrize("path, expected", [
    ("data/train.jsonl", True), ("train.parquet", True), ("x/y.csv.zst", True), ("data/train.JSONL", True),
    ("README.md", False), (".gitattributes", False), ("data/.hidden.jsonl", False), (".cache/x.jsonl", False),
    ("data/dataset_info.json", False), ("data/state.json", False), (".jsonl", False),
])
def test_is_data_path(path, expected):
    assert is_data_path(path) is expected


@pytest.mark.parametrize("path", ["../x.jsonl", "/abs.jsonl", "a/../../x.jsonl", "a//b.jsonl", "a\\b.jsonl", "./a"])
def test_unsafe_repo_paths(path):
    with pytest.raises(HubError):
        safe_repo_path(path)


# ---------------------------------------------------------------------- the client


def test_changed_files_by_blob_id_and_lfs_sha(standin):
    old = standin.create_repo("alice/changes", {
        "README.md": "# card", "data/a.jsonl": "a\n", "data/b.jsonl": "b\n", "data/t.parquet": b"PAR1 old",
        "data/same.parquet": b"PAR1 same", "data/gone.jsonl": "g\n", "data/dataset_info.json": "{}"})
    new = standin.commit("alice/changes", {
        "README.md": "# new card", "data/a.jsonl": "a changed\n", "data/t.parquet": b"PAR1 new",
        "data/c.jsonl": "c\n", "data/renamed.parquet": b"PAR1 same", "data/dataset_info.json": '{"x": 1}'},
        deletes=("data/gone.jsonl", "data/same.parquet"))
    client = HubClient(endpoint=standin.url)
    files = client.list_files("alice/changes", new)
    assert files["data/t.parquet"].lfs_sha256 is not None and files["data/a.jsonl"].lfs_sha256 is None
    changed = client.changed_files("alice/changes", old, new, select=is_data_path)
    assert [(c.path, c.old is not None) for c in changed] == [
        ("data/a.jsonl", True), ("data/c.jsonl", False), ("data/t.parquet", True)]
    t = next(c for c in changed if c.path == "data/t.parquet")
    assert t.new.content_id.startswith("sha256:") and t.new.content_id != t.old.content_id
    # A new ref (no old sha): every data file is new.
    assert {c.path for c in client.changed_files("alice/changes", None, new, select=is_data_path)} == {
        "data/a.jsonl", "data/b.jsonl", "data/c.jsonl", "data/renamed.parquet", "data/t.parquet"}
    assert all(authorized for *_, authorized in standin.seen("GET", "/api/datasets/alice/changes/tree"))


def test_download_at_each_revision(standin, tmp_path):
    old = standin.create_repo("alice/revs", {"d/x.jsonl": "old\n"})
    new = standin.commit("alice/revs", {"d/x.jsonl": "new\n"})
    client = HubClient(endpoint=standin.url)
    assert client.download("alice/revs", "d/x.jsonl", new, tmp_path / "new").read_text() == "new\n"
    assert client.download("alice/revs", "d/x.jsonl", old, tmp_path / "old").read_text() == "old\n"
    with pytest.raises(HubError):
        client.download("alice/revs", "../x.jsonl", new, tmp_path / "new")
    with pytest.raises(HubError, match="404"):
        client.download("alice/revs", "d/missing.jsonl", new, tmp_path / "new")


def test_one_discussion_per_repo_and_comment_updates(standin):
    standin.create_repo("alice/talk", {"x.jsonl": "x\n"})
    client = HubClient(endpoint=standin.url)
    first = client.post_to_discussion("alice/talk", "mdf-guard report", "report one", key="sha=1")
    assert first.created_discussion and first.discussion_num == 1
    second = client.post_to_discussion("alice/talk", "mdf-guard report", "report two", key="sha=2")
    assert (second.discussion_num, second.created_discussion, second.edited) == (1, False, False)
    again = client.post_to_discussion("alice/talk", "mdf-guard report", "report two, rerun", key="sha=2")
    assert again.edited and again.comment_id == second.comment_id
    comments = standin.comments("alice/talk", 1)
    assert len(comments) == 2 and "report two, rerun" in comments[1] and "<!-- mdf-guard:sha=2 -->" in comments[1]
    # A closed discussion is not reused.
    standin.discussion("alice/talk", 1).status = "closed"
    assert client.post_to_discussion("alice/talk", "mdf-guard report", "three").discussion_num == 2


def test_pull_request_comment(standin):
    standin.create_repo("alice/prs", {"x.jsonl": "x\n"})
    client = HubClient(endpoint=standin.url)
    standin.repos["alice/prs"].discussions.append(Discussion(num=1, title="Add data", author="bob", is_pr=True))
    posted = client.comment("alice/prs", 1, "risk report", key="sha=x")
    assert posted.url.endswith(f"/datasets/alice/prs/discussions/1#{posted.comment_id}")
    assert standin.comments("alice/prs", 1) == ["risk report\n<!-- mdf-guard:sha=x -->\n"]


def test_token_only_from_hf_token_and_never_in_errors(standin, tmp_path, monkeypatch):
    standin.create_repo("alice/secret", {"x.jsonl": "x\n"}, private=True)
    sha = standin.head("alice/secret")
    assert HubClient(endpoint=standin.url).list_files("alice/secret", sha)   # HF_TOKEN is sent
    # A token stored by `hf auth login` is never used: without HF_TOKEN no token is sent.
    (tmp_path / "hf-home").mkdir(exist_ok=True)
    (tmp_path / "hf-home" / "token").write_text(TOKEN)
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubError, match="404") as info:
        HubClient(endpoint=standin.url).list_files("alice/secret", sha)
    assert TOKEN not in str(info.value)
    assert standin.requests[-1][2] is False


def test_redact():
    assert redact(f"failed with {TOKEN} in url", TOKEN) == "failed with [redacted] in url"
    assert redact("nothing here", TOKEN) == "nothing here"
    assert redact("short tokens are left alone: ab", "ab") == "short tokens are left alone: ab"


def test_connection_error_is_a_hub_error(tmp_path):
    import socket
    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = HubClient(endpoint=f"http://127.0.0.1:{port}")
    with pytest.raises(HubError) as info:
        client.find_discussion("alice/x", "t")
    assert TOKEN not in str(info.value)
    assert info.value.transient and info.value.status is None   # nobody answered: worth a retry


def test_a_hub_that_never_answers_is_an_error_not_a_hang(monkeypatch):
    """huggingface_hub's client has no timeout, and the discussions and tree listings pass none:
    against a Hub that accepts and never answers, the call waited forever (the bot's one worker
    with it). Each wait is now bounded (HUB_WAIT_SECONDS, shortened here)."""
    import socket
    import threading

    import mdf_guard.hub

    monkeypatch.setattr(mdf_guard.hub, "HUB_WAIT_SECONDS", 0.5)
    silent = socket.create_server(("127.0.0.1", 0))
    held = []
    threading.Thread(target=lambda: [held.append(silent.accept()) for _ in range(8)], daemon=True).start()
    client = HubClient(endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}", token=TOKEN)
    outcome = []

    def ask():
        try:
            client.find_discussion("alice/silent", "mdf-guard report")
        except HubError as err:
            outcome.append(str(err))
    asking = threading.Thread(target=ask, daemon=True)
    asking.start()
    asking.join(timeout=60)
    silent.close()
    assert not asking.is_alive(), "the call still waits for a Hub that never answers"
    assert outcome and "timed out" in outcome[0].lower() and TOKEN not in outcome[0], outcome


def test_hub_errors_say_whether_a_retry_may_help(standin, tmp_path):
    """The bot retries a job on a transient HubError only: the Hub or the network failing (5xx,
    408, 429, no answer), never an answer about the request itself (404, 403) or an unsafe path."""
    standin.create_repo("alice/moody", {"x.jsonl": "x\n"})
    sha = standin.head("alice/moody")
    client = HubClient(endpoint=standin.url, token=TOKEN)

    def failure(call) -> HubError:
        with pytest.raises(HubError) as info:
            call()
        return info.value

    for status, transient in ((503, True), (500, True), (429, True), (408, True), (403, False), (409, False)):
        standin.fail_next("GET", "/alice/moody/discussions", status=status)
        err = failure(lambda: client.find_discussion("alice/moody", "t"))
        assert (err.status, err.transient) == (status, transient), err
    assert client.find_discussion("alice/moody", "t") is None   # the faults are spent
    missing = failure(lambda: client.list_files("alice/nobody", sha))
    assert (missing.status, missing.transient) == (404, False)
    assert failure(lambda: client.download("alice/moody", "../x.jsonl", sha, tmp_path)).transient is False
    for status, transient in ((502, True), (403, False)):   # the file's HEAD is answered, its GET is not
        standin.fail_next("GET", f"/alice/moody/resolve/{sha}/x.jsonl", status=status)
        err = failure(lambda folder=tmp_path / str(status): client.download("alice/moody", "x.jsonl", sha, folder))
        assert (err.status, err.transient) == (status, transient) and f"HTTP {status}" in str(err), err
    # hf_hub_download turns a failed HEAD into a LocalEntryNotFoundError ("check your connection")
    # raised from the Hub's answer: the answer decides (a 5xx HEAD it retries itself for ~20 s first).
    standin.fail_next("HEAD", f"/alice/moody/resolve/{sha}/x.jsonl", status=403)
    err = failure(lambda: client.download("alice/moody", "x.jsonl", sha, tmp_path / "head"))
    assert (err.status, err.transient) == (403, False) and "HTTP 403" in str(err), err
    assert client.download("alice/moody", "x.jsonl", sha, tmp_path / "c").read_text() == "x\n"
