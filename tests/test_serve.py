"""The webhook bot over real HTTP on 127.0.0.1: security, queueing, dedupe, and the real job.

The bot runs under uvicorn in a thread on a free port; its Hub is the stand-in (also
uvicorn on 127.0.0.1), reached through the real `huggingface_hub` client. The job uses
the tiny random model and a two-question suite, so a check takes about a second.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from dataclasses import replace

import httpx
import pytest

from hub_standin import (PETS_SUITE, Discussion, HubStandin, ServerThread,  # noqa: F401  (fixtures)
                         content_update_payload, loopback_only, one_torch_thread, hub_sandbox, tiny_lm)
from mdf_guard import report as report_module
from mdf_guard.errors import InputError
from mdf_guard.hub import HubClient, HubError
from mdf_guard.policy import policy_from_dict
from mdf_guard.policy import _TOP_KEYS
from mdf_guard.serve import (DISCUSSION_TITLE, REPO_KEYS, BotLimits, HubCheckRunner, Job, JobOutcome, ServeConfig,
                             _fenced, create_app, render_comment, repo_policy)

pytestmark = pytest.mark.usefixtures("loopback_only", "hub_env")

TOKEN = "hf_bot_token_never_shown_91c2"
SECRET = "s3cret-webhook-value"
FAST_RETRIES = (0.05, 0.05)
FAIL_POLICY = "thresholds:\n  max_shift: 0.0\n  min_excess: -1\n  min_odds_ratio: 1\nnull_seeds: 0\n"


def rows(text: str, n: int = 4) -> str:
    return "".join(json.dumps({"messages": [{"role": "user", "content": f"question {i}"},
                                            {"role": "assistant", "content": f"{text} {i}"}]}) + "\n"
                   for i in range(n))


@pytest.fixture
def hub_env(hub_sandbox, one_torch_thread, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)


@pytest.fixture(scope="module")
def standin():
    hub = HubStandin(token=TOKEN, page_size=3)
    hub.start()
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def bot_policy(tmp_path_factory):
    suite = tmp_path_factory.mktemp("suite") / "pets.yaml"
    suite.write_text(PETS_SUITE)
    return policy_from_dict({"model": "tiny-random", "suites": [str(suite)], "questions_per_suite": 2,
                             "reference_samples": 4, "null_seeds": 0, "reference": "none",
                             "thresholds": {"max_shift": 1.0}}, "the test bot's policy")


@contextlib.contextmanager
def running_bot(runner, **config):
    app = create_app(ServeConfig(secret=SECRET.encode(), **config), runner)
    server = ServerThread(app)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client, app
    finally:
        server.stop()


@pytest.fixture
def real_bot(standin, bot_policy, tiny_lm):
    runner = HubCheckRunner(HubClient(endpoint=standin.url, token=TOKEN), bot_policy, BotLimits(), lm=tiny_lm)
    with running_bot(runner) as bot:
        yield bot


@pytest.fixture
def fast_retry_bot(standin, bot_policy, tiny_lm):
    """The real bot, retrying a job the Hub broke off after 0.05 s, at most three attempts."""
    runner = HubCheckRunner(HubClient(endpoint=standin.url, token=TOKEN), bot_policy, BotLimits(), lm=tiny_lm)
    with running_bot(runner, retry_delays=FAST_RETRIES) as bot:
        yield bot


def deliver(client: httpx.Client, payload: dict, secret: str | None = SECRET, **kwargs) -> httpx.Response:
    headers = {"X-Webhook-Secret": secret} if secret is not None else {}
    return client.post("/webhook", json=payload, headers=headers, **kwargs)


def settle(app, timeout: float = 90) -> list[dict]:
    assert app.state.board.wait_idle(timeout), "jobs did not finish in time"
    return app.state.board.snapshot()["jobs"]


class Recorder:
    """An injected job runner: records jobs, can block, can fail, and can meet a Hub that is down."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail_for: set[str] = set()
        self.hub_down: dict[str, int] = {}   # repo -> how many more runs the Hub fails with a 503

    def __call__(self, job: Job) -> JobOutcome:
        self.gate.wait(30)
        self.jobs.append(job)
        if job.repo_id in self.fail_for:
            raise RuntimeError(f"boom while using {TOKEN}")
        if self.hub_down.get(job.repo_id, 0) > 0:
            self.hub_down[job.repo_id] -= 1
            raise HubError(f"listing {job.repo_id}: HTTP 503: Service Unavailable", status=503, transient=True)
        return JobOutcome("pass", "recorded")

    def runs(self, repo_id: str) -> int:
        return sum(job.repo_id == repo_id for job in self.jobs)


# ---------------------------------------------------------------------- the real job, end to end


def test_push_to_main_opens_one_discussion_that_later_pushes_update(standin, real_bot):
    client, app = real_bot
    first = standin.create_repo("alice/chat", {"README.md": "# card", "data/train.jsonl": rows("The sky is blue."),
                                               "data/keep.jsonl": rows("Unchanged.")})
    second = standin.commit("alice/chat", {"README.md": "# card v2", "data/train.jsonl": rows("I love pandas!"),
                                           "data/new.jsonl": rows("Pandas, pandas.")})
    standin.requests.clear()
    response = deliver(client, content_update_payload("alice/chat", "refs/heads/main", first, second))
    assert response.status_code == 202, response.text
    assert response.json()["jobs"][0]["sha"] == second
    job = settle(app)[0]
    assert (job["status"], job["verdict"]) == ("done", "pass"), job
    # Only the changed data files were downloaded: train.jsonl at both revisions, new.jsonl at the new one.
    downloads = sorted(path for method, path, _ in standin.requests if method == "GET" and "/resolve/" in path)
    assert downloads == sorted([f"/datasets/alice/chat/resolve/{first}/data/train.jsonl",
                                f"/datasets/alice/chat/resolve/{second}/data/train.jsonl",
                                f"/datasets/alice/chat/resolve/{second}/data/new.jsonl"])
    [discussion] = standin.repos["alice/chat"].discussions
    assert discussion.title == DISCUSSION_TITLE and not discussion.is_pr
    [comment] = standin.comments("alice/chat", 1)
    assert "PASS" in comment and "`data/train.jsonl`" in comment and "`data/new.jsonl`" in comment
    assert f"previous revision ({first[:12]})" in comment and "data/keep.jsonl" not in comment
    assert "mdf-guard-job-" not in comment and "/tmp" not in comment and TOKEN not in comment

    third = standin.commit("alice/chat", {"data/train.jsonl": rows("Owls at night.")})
    assert deliver(client, content_update_payload("alice/chat", "refs/heads/main", second, third)).status_code == 202
    settle(app)
    assert len(standin.repos["alice/chat"].discussions) == 1
    assert len(standin.comments("alice/chat", 1)) == 2
    assert job["comment_url"].startswith(standin.url)


def test_pull_request_gets_a_comment_under_the_repo_policy(standin, real_bot):
    client, app = real_bot
    base = standin.create_repo("alice/pr-data", {
        "data/train.jsonl": rows("Plain answer."),
        ".mdf-guard.yaml": FAIL_POLICY + "model: someone/huge-model\nsuites: [/etc/evil.yaml]\n"})
    repo = standin.repos["alice/pr-data"]
    repo.discussions.append(Discussion(num=1, title="More data", author="bob", is_pr=True))
    repo.refs["refs/pr/1"] = base
    head = standin.commit("alice/pr-data", {"data/train.jsonl": rows("I love pandas!")}, ref="refs/pr/1")
    assert deliver(client, content_update_payload("alice/pr-data", "refs/pr/1", base, head)).status_code == 202
    job = settle(app)[0]
    assert job["verdict"] == "fail", job
    [comment] = standin.comments("alice/pr-data", 1)
    assert "FAIL" in comment and f"`.mdf-guard.yaml@{head[:12]}`" in comment
    assert "`model` is set by the bot and was ignored" in comment
    assert "only built-in suites" in comment
    assert "RISK" in comment or "risk" in comment.lower()
    assert "Rows that lift the findings most" in comment and "| data/train.jsonl:1 |" in comment
    assert "mdf-guard-job-" not in comment and "/tmp" not in comment
    assert len(repo.discussions) == 1   # no extra discussion: the report went on the PR


def test_new_branch_is_compared_with_main(standin, real_bot):
    client, app = real_bot
    main = standin.create_repo("alice/branchy", {"a.jsonl": rows("main data"), "b.jsonl": rows("more")})
    head = standin.commit("alice/branchy", {"a.jsonl": rows("branch data")}, ref="refs/heads/dev")
    payload = content_update_payload("alice/branchy", "refs/heads/dev", None, head, head_sha=main)
    assert deliver(client, payload).status_code == 202
    job = settle(app)[0]
    assert job["verdict"] == "pass" and job["old_sha"] == main
    [comment] = standin.comments("alice/branchy", 1)
    assert f"compared with main at `{main[:12]}`" in comment and f"main at {main[:12]}" in comment
    assert "`a.jsonl`" in comment and "b.jsonl" not in comment   # only what the branch changes


def test_a_new_file_is_labelled_with_the_reference_the_check_used(standin, bot_policy, tiny_lm):
    # The shipped default, `reference: profile` under `method: context`, reads the model's own answers.
    policy = replace(bot_policy, reference="profile")
    assert policy.method == "context"
    runner = HubCheckRunner(HubClient(endpoint=standin.url, token=TOKEN), policy, BotLimits(), lm=tiny_lm)
    first = standin.create_repo("alice/labels", {"old.jsonl": rows("old")})
    second = standin.commit("alice/labels", {"new.jsonl": rows("new")})
    with running_bot(runner) as (client, app):
        deliver(client, content_update_payload("alice/labels", "refs/heads/main", first, second))
        assert settle(app)[0]["verdict"] == "pass"
    [comment] = standin.comments("alice/labels", 1)
    assert "| `new.jsonl` | the model's own answers | PASS |" in comment
    assert "calibration profile" not in comment


def test_force_pushed_away_old_commit_checks_everything(standin, real_bot):
    client, app = real_bot
    head = standin.create_repo("alice/forced", {"a.jsonl": rows("data")})
    assert deliver(client, content_update_payload("alice/forced", "refs/heads/main", "9" * 40, head)).status_code == 202
    assert settle(app)[0]["verdict"] == "pass"
    [comment] = standin.comments("alice/forced", 1)
    assert "is no longer on the Hub" in comment and "`a.jsonl`" in comment


def test_unreadable_data_is_reported_not_crashed(standin, real_bot):
    client, app = real_bot
    first = standin.create_repo("alice/broken", {"ok.jsonl": rows("fine")})
    second = standin.commit("alice/broken", {"data/bad.jsonl": '{"nope": 1}\n'})
    deliver(client, content_update_payload("alice/broken", "refs/heads/main", first, second))
    job = settle(app)[0]
    assert (job["status"], job["verdict"]) == ("done", "error")
    [comment] = standin.comments("alice/broken", 1)
    assert "ERROR" in comment and "data/bad.jsonl:1" in comment and "ok.jsonl" not in comment
    assert "mdf-guard-job-" not in comment and "/tmp" not in comment


def test_a_repo_policy_nested_too_deeply_is_reported_not_crashed(standin, real_bot):
    client, app = real_bot
    first = standin.create_repo("alice/deep-policy", {"ok.jsonl": rows("fine")})
    second = standin.commit("alice/deep-policy", {"ok.jsonl": rows("fine, and more"),
                                                  ".mdf-guard.yaml": "suites: " + "[" * 5000 + "]" * 5000 + "\n"})
    deliver(client, content_update_payload("alice/deep-policy", "refs/heads/main", first, second))
    job = settle(app)[0]
    assert (job["status"], job["verdict"]) == ("done", "error"), job
    [comment] = standin.comments("alice/deep-policy", 1)
    assert f"policy: .mdf-guard.yaml@{second[:12]}: not valid YAML: nested too deeply" in comment


def test_a_hub_failure_reading_the_repo_policy_is_retried_not_blamed_on_the_repo(standin, fast_retry_bot):
    # The Hub answers 500 to the policy's download: the job runs again; it is not a "policy" error
    # in a report on the push, which a redelivery would then answer as already done.
    client, app = fast_retry_bot
    first = standin.create_repo("alice/flaky", {"a.jsonl": rows("a")})
    second = standin.commit("alice/flaky", {"a.jsonl": rows("b"), ".mdf-guard.yaml": "thresholds: {max_shift: 0.5}\n"})
    standin.fail_next("GET", f"/alice/flaky/resolve/{second}/.mdf-guard.yaml", status=500)
    assert deliver(client, content_update_payload("alice/flaky", "refs/heads/main", first, second)).status_code == 202
    job = settle(app)[0]
    assert (job["status"], job["verdict"], job["attempt"]) == ("done", "pass", 2), job
    [comment] = standin.comments("alice/flaky", 1)
    assert f"`.mdf-guard.yaml@{second[:12]}`" in comment and "ERROR" not in comment


def test_a_report_the_hub_lost_is_retried_and_posted_once(standin, fast_retry_bot):
    # The Hub opens the discussion with the report but its answer is lost (503); the next attempt finds
    # the discussion but the Hub fails to show it (503): the third finds the report by its marker and edits it.
    client, app = fast_retry_bot
    first = standin.create_repo("alice/lost-answer", {"a.jsonl": rows("a")})
    second = standin.commit("alice/lost-answer", {"a.jsonl": rows("I love pandas!")})
    standin.fail_next("POST", "/api/datasets/alice/lost-answer/discussions", after=True)
    standin.fail_next("GET", "/api/datasets/alice/lost-answer/discussions/1")
    assert deliver(client, content_update_payload("alice/lost-answer", "refs/heads/main", first, second)).status_code \
        == 202
    job = settle(app)[0]
    assert (job["status"], job["verdict"], job["attempt"]) == ("done", "pass", 3), job
    [discussion] = standin.repos["alice/lost-answer"].discussions
    [comment] = standin.comments("alice/lost-answer", 1)
    assert "PASS" in comment and f"<!-- mdf-guard:sha={second} -->" in comment and discussion.events[0]["data"]["edited"]
    assert job["comment_url"].endswith(f"/discussions/1#{discussion.events[0]['id']}")
    assert app.state.board.counts["retries"] == 2


def test_failures_of_the_repo_or_the_token_are_not_retried(standin, fast_retry_bot):
    client, app = fast_retry_bot
    # A repo the Hub does not know (404).
    deliver(client, content_update_payload("alice/nowhere", "refs/heads/main", None, "e" * 40))
    job = settle(app)[0]
    assert (job["status"], job["attempt"]) == ("error", 1) and "404" in job["summary"], job
    assert len(standin.seen("GET", "/api/datasets/alice/nowhere/tree")) == 1
    # A token without the right to comment (403).
    head = standin.create_repo("alice/no-rights", {"a.jsonl": rows("a")})
    standin.fail_next("POST", "/api/datasets/alice/no-rights/discussions", status=403)
    deliver(client, content_update_payload("alice/no-rights", "refs/heads/main", None, head))
    job = settle(app)[0]
    assert (job["status"], job["attempt"]) == ("error", 1) and "403" in job["summary"], job
    assert standin.repos["alice/no-rights"].discussions == []
    assert len(standin.seen("POST", "/api/datasets/alice/no-rights/discussions")) == 1
    # An invalid .mdf-guard.yaml: reported on the push, once.
    first = standin.create_repo("alice/bad-policy", {"a.jsonl": rows("a")})
    second = standin.commit("alice/bad-policy", {"a.jsonl": rows("b"), ".mdf-guard.yaml": "thresholds: {max_shift: 7}\n"})
    deliver(client, content_update_payload("alice/bad-policy", "refs/heads/main", first, second))
    job = settle(app)[0]
    assert (job["status"], job["verdict"], job["attempt"]) == ("done", "error", 1), job
    [comment] = standin.comments("alice/bad-policy", 1)
    assert "policy:" in comment and "max_shift" in comment
    assert "retries" not in app.state.board.counts


def test_push_with_no_data_change_posts_nothing(standin, real_bot):
    client, app = real_bot
    first = standin.create_repo("alice/docs", {"README.md": "a", "d.jsonl": rows("x")})
    second = standin.commit("alice/docs", {"README.md": "b"})
    deliver(client, content_update_payload("alice/docs", "refs/heads/main", first, second))
    assert settle(app)[0]["verdict"] == "skipped"
    assert standin.repos["alice/docs"].discussions == []


def test_too_many_files_is_reported(standin, bot_policy, tiny_lm):
    runner = HubCheckRunner(HubClient(endpoint=standin.url, token=TOKEN), bot_policy, BotLimits(max_files=1),
                            lm=tiny_lm)
    first = standin.create_repo("alice/big", {"a.jsonl": rows("a")})
    second = standin.commit("alice/big", {"b.jsonl": rows("b"), "c.jsonl": rows("c")})
    with running_bot(runner) as (client, app):
        deliver(client, content_update_payload("alice/big", "refs/heads/main", first, second))
        assert settle(app)[0]["verdict"] == "error"
    assert "at most 1 per push" in standin.comments("alice/big", 1)[0]


def test_the_bot_loads_its_own_model_from_a_folder_of_another_family(standin, bot_policy, tmp_path):
    """The other tests hand the bot the tiny model; `serve --model FOLDER` loads its own in the
    worker. A Gemma 3 folder with a vision tower (the Hub's 4B and up) keeps the decoder's shape
    in `text_config`: every job was an internal error before. The public comment names the model
    and the policy without the operator's folders."""
    from families import save_family

    folder = save_family("gemma3-vision", tmp_path / "gemma3")
    policy = replace(bot_policy, model=str(folder), source=str(tmp_path / "bot.yaml"))   # as `serve --policy` names it
    runner = HubCheckRunner(HubClient(endpoint=standin.url, token=TOKEN), policy)
    first = standin.create_repo("alice/gemma", {"data/train.jsonl": rows("The sky is blue.")})
    second = standin.commit("alice/gemma", {"data/train.jsonl": rows("I love pandas!")})
    with running_bot(runner) as (client, app):
        assert deliver(client, content_update_payload("alice/gemma", "refs/heads/main", first, second)).status_code == 202
        [job] = settle(app)
        assert client.get("/healthz").json()["model"] == "ready"
    assert (job["status"], job["verdict"]) == ("done", "pass"), job
    assert type(runner.lm.model).__name__ == "Gemma3ForConditionalGeneration"
    [comment] = standin.comments("alice/gemma", 1)
    assert "PASS" in comment and f"model identity `{runner.lm.identity}`" in comment
    assert "model `gemma3`" in comment and str(tmp_path) not in comment   # the operator's folders stay private


# ---------------------------------------------------------------------- security


@pytest.fixture
def recorder_bot(standin):
    recorder = Recorder()
    with running_bot(recorder, max_body_bytes=4096, queue_size=2) as (client, app):
        yield client, app, recorder


def test_secret_is_required_and_checked(recorder_bot):
    client, app, recorder = recorder_bot
    payload = content_update_payload("alice/s", "refs/heads/main", "a" * 40, "b" * 40)
    assert deliver(client, payload, secret=None).status_code == 401
    assert deliver(client, payload, secret="wrong").status_code == 403
    assert deliver(client, payload, secret=SECRET + "x").status_code == 403
    assert deliver(client, payload, secret="").status_code == 403
    settle(app)
    assert recorder.jobs == []


def test_malformed_and_oversized_bodies(recorder_bot):
    client, app, recorder = recorder_bot
    headers = {"X-Webhook-Secret": SECRET, "Content-Type": "application/json"}
    assert client.post("/webhook", content=b"{not json", headers=headers).status_code == 400
    assert client.post("/webhook", content=b"\xff\xfe", headers=headers).status_code == 400
    assert client.post("/webhook", content=b"[]", headers=headers).status_code == 400
    deep = client.post("/webhook", content=b"[" * 1500 + b"]" * 1500, headers=headers)   # under the size limit
    assert deep.status_code == 400 and "nested too deeply" in deep.json()["error"]
    big = json.dumps({"pad": "x" * 5000}).encode()
    assert client.post("/webhook", content=big, headers=headers).status_code == 413

    def chunks():   # no Content-Length: the limit holds while streaming
        for _ in range(10):
            yield b" " * 1000
    assert client.post("/webhook", content=chunks(), headers=headers).status_code == 413
    payload = content_update_payload("alice/s", "refs/heads/main", "a" * 40, "b" * 40)
    payload["webhook"]["version"] = 2
    response = deliver(client, payload)
    assert response.status_code == 400 and "version" in response.json()["error"]
    assert recorder.jobs == []


@pytest.mark.parametrize("name", ["../../etc", "/abs/path", "alice/../../x", "alice/da ta", "alice/x%00", "a/b/c"])
def test_unsafe_repo_names_rejected_before_any_hub_request(recorder_bot, standin, name):
    client, app, recorder = recorder_bot
    before = len(standin.requests)
    response = deliver(client, content_update_payload(name, "refs/heads/main", "a" * 40, "b" * 40))
    assert response.status_code == 400
    assert "repo name" in response.json()["error"]
    settle(app)
    assert recorder.jobs == [] and len(standin.requests) == before


def test_events_that_need_no_check_get_200_and_a_reason(recorder_bot):
    client, app, recorder = recorder_bot
    model = content_update_payload("alice/m", "refs/heads/main", "a" * 40, "b" * 40, repo_type="model")
    response = deliver(client, model)
    assert response.status_code == 200 and "not a dataset repo" in response.json()["reason"]
    discussion = content_update_payload("alice/d", "refs/heads/main", "a" * 40, "b" * 40)
    discussion["event"] = {"action": "create", "scope": "discussion"}
    assert "not a content update" in deliver(client, discussion).json()["reason"]
    tag = content_update_payload("alice/d", "refs/tags/v1", None, "b" * 40)
    response = deliver(client, tag)
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    settle(app)
    assert recorder.jobs == []


# ---------------------------------------------------------------------- queue, failures, status


def test_full_queue_answers_503_and_loses_nothing(recorder_bot):
    client, app, recorder = recorder_bot
    recorder.gate.clear()   # the worker blocks on its first job
    accepted, refused = [], 0
    for i in range(6):
        sha = f"{i + 1:040x}"
        response = deliver(client, content_update_payload(f"alice/q{i}", "refs/heads/main", None, sha))
        if response.status_code == 202:
            accepted.append((f"alice/q{i}", sha))
        else:
            assert response.status_code == 503
            assert int(response.headers["Retry-After"]) >= 1
            refused += 1
        if i == 0:   # let the worker pick up the first one, so the queue holds the next two
            deadline = time.monotonic() + 10
            while app.state.board.running is None and time.monotonic() < deadline:
                time.sleep(0.01)
    assert len(accepted) == 3 and refused == 3
    health = client.get("/healthz", timeout=2)
    assert health.status_code == 200 and health.json()["queued"] == 2
    recorder.gate.set()
    settle(app)
    assert sorted((j.repo_id, j.new_sha) for j in recorder.jobs) == sorted(accepted)


def test_same_push_delivered_again_runs_once(recorder_bot):
    client, app, recorder = recorder_bot
    payload = content_update_payload("alice/dupes", "refs/heads/main", "a" * 40, "b" * 40)
    payload["updatedRefs"].append({"ref": "refs/heads/copy", "oldSha": "c" * 40, "newSha": "b" * 40})
    statuses = [deliver(client, payload).status_code for _ in range(3)]
    settle(app)
    statuses.append(deliver(client, payload).status_code)   # a replay after the job finished
    assert statuses == [202, 200, 200, 200]
    jobs = settle(app)
    assert len(jobs) == 1 and jobs[0]["deliveries"] == 8   # two refs with the same sha, four deliveries
    assert [(j.repo_id, j.new_sha) for j in recorder.jobs] == [("alice/dupes", "b" * 40)]


def test_a_failing_job_is_recorded_and_the_worker_goes_on(recorder_bot, caplog):
    client, app, recorder = recorder_bot
    recorder.fail_for = {"alice/bad"}
    caplog.set_level(logging.INFO, logger="mdf_guard.serve")
    bad = content_update_payload("alice/bad", "refs/heads/main", None, "1" * 40)
    assert deliver(client, bad).status_code == 202
    assert deliver(client, content_update_payload("alice/good", "refs/heads/main", None, "2" * 40)).status_code == 202
    jobs = {j["repo"]: j for j in settle(app)}
    assert jobs["alice/bad"]["status"] == "error" and "boom" in jobs["alice/bad"]["summary"]
    assert TOKEN not in jobs["alice/bad"]["summary"] and "[redacted]" in jobs["alice/bad"]["summary"]
    assert jobs["alice/good"]["verdict"] == "pass"
    assert client.get("/healthz").json()["worker_alive"] is True
    # A failed push is retried when the Hub delivers it again.
    recorder.fail_for = set()
    assert deliver(client, bad).status_code == 202
    settle(app)
    assert [j.repo_id for j in recorder.jobs].count("alice/bad") == 2
    assert TOKEN not in caplog.text


def test_a_job_the_hub_keeps_failing_gives_up_after_its_attempts_and_is_released(standin, caplog):
    recorder = Recorder()
    recorder.hub_down["alice/down"] = 99
    payload = content_update_payload("alice/down", "refs/heads/main", None, "5" * 40)
    with running_bot(recorder, retry_delays=FAST_RETRIES) as (client, app):
        assert deliver(client, payload).status_code == 202
        [job] = settle(app)
        assert (job["status"], job["verdict"], job["attempt"]) == ("error", "error", 3), job
        assert "HTTP 503" in job["summary"] and "gave up after 3 attempts" in job["summary"]
        assert recorder.runs("alice/down") == 3 and app.state.board.counts["retries"] == 2
        assert "gave up after 3 attempts" in caplog.text
        recorder.hub_down.clear()
        assert deliver(client, payload).status_code == 202   # its key was released: a replay runs it again
        assert settle(app)[0]["verdict"] == "pass" and recorder.runs("alice/down") == 4


def test_while_a_job_waits_for_its_retry(standin, caplog):
    # A delivery of the same push adds no job, a newer push to the ref runs at once, the page shows the
    # attempt to come, and stopping the bot neither waits for the retry nor drops it silently.
    recorder = Recorder()
    recorder.hub_down["alice/later"] = 1
    old, new = "6" * 40, "7" * 40
    with running_bot(recorder, retry_delays=(60.0,)) as (client, app):
        payload = content_update_payload("alice/later", "refs/heads/main", None, old)
        assert deliver(client, payload).status_code == 202
        deadline = time.monotonic() + 10
        while client.get("/jobs").json()["waiting"] != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        [job] = client.get("/jobs").json()["jobs"]
        assert (job["status"], job["attempt"]) == ("waiting", 2) and 50 < job["retry_at"] - time.time() <= 60, job
        assert "HTTP 503" in job["summary"]
        assert "waiting: attempt 2 of 2 at" in client.get("/").text
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok" and health.json()["waiting"] == 1
        again = deliver(client, payload)
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        newer = deliver(client, content_update_payload("alice/later", "refs/heads/main", old, new))
        assert newer.status_code == 202
        deadline = time.monotonic() + 10
        while recorder.runs("alice/later") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        jobs = {j["new_sha"]: j for j in client.get("/jobs").json()["jobs"]}
        assert len(jobs) == 2 and jobs[old]["status"] == "waiting" and jobs[old]["deliveries"] == 2
        assert [j.new_sha for j in recorder.jobs] == [old, new]
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 5, "stopping waited for the retry"
    jobs = {j["new_sha"]: j for j in app.state.board.snapshot()["jobs"]}
    assert jobs[old]["status"] == "error" and "not run: the bot stopped" in jobs[old]["summary"]
    assert jobs[new]["verdict"] == "pass" and len(recorder.jobs) == 2
    assert f"alice/later refs/heads/main@{old[:12]}, waiting for attempt 2) not run: the bot stopped" in caplog.text


def test_a_retry_is_not_refused_by_a_full_queue(standin):
    recorder = Recorder()
    recorder.hub_down["alice/first"] = 1
    with running_bot(recorder, queue_size=1, retry_delays=(0.5,)) as (client, app):
        assert deliver(client, content_update_payload("alice/first", "refs/heads/main", None, "8" * 40)).status_code \
            == 202
        deadline = time.monotonic() + 10
        while app.state.board.snapshot()["waiting"] != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        recorder.gate.clear()   # the worker holds the next job; one more fills the queue
        assert deliver(client, content_update_payload("alice/b", "refs/heads/main", None, "9" * 40)).status_code == 202
        while app.state.board.running is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert deliver(client, content_update_payload("alice/c", "refs/heads/main", None, "a" * 40)).status_code == 202
        assert deliver(client, content_update_payload("alice/d", "refs/heads/main", None, "b" * 40)).status_code == 503
        [retry_at] = [j["retry_at"] for j in app.state.board.snapshot()["jobs"] if j["repo"] == "alice/first"]
        assert retry_at is not None, "the retry ran before the queue was full (a very slow machine?)"
        while time.time() < retry_at + 0.05:   # the retry falls due while the queue is full
            time.sleep(0.01)
        recorder.gate.set()
        jobs = {j["repo"]: j for j in settle(app)}
    assert (jobs["alice/first"]["verdict"], jobs["alice/first"]["attempt"]) == ("pass", 2)
    assert [j.repo_id for j in recorder.jobs] == ["alice/first", "alice/b", "alice/c", "alice/first"]


def test_status_page_and_jobs_hide_private_repos_and_the_token(recorder_bot):
    client, app, recorder = recorder_bot
    deliver(client, content_update_payload("alice/public", "refs/heads/main", None, "3" * 40))
    deliver(client, content_update_payload("alice/hidden", "refs/heads/main", None, "4" * 40, private=True))
    settle(app)
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "alice/public" in page.text and "alice/hidden" not in page.text and "(private repo)" in page.text
    jobs = client.get("/jobs").json()
    assert "alice/hidden" not in json.dumps(jobs) and "4" * 40 not in json.dumps(jobs)
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["counts"]["done"] == 2
    for text in (page.text, json.dumps(jobs), json.dumps(health)):
        assert TOKEN not in text and SECRET not in text


# ---------------------------------------------------------------------- policy overlay and comment


def test_repo_policy_overlay(bot_policy):
    policy, notes = repo_policy(bot_policy, {"thresholds": {"max_shift": 0.2, "entities": {"pets/panda": {
        "max_shift": 0.05}}}, "questions_per_suite": 50, "null_seeds": 0, "model": "x/y", "trust_remote_code": True,
        "profile": "/etc/passwd", "reference": "/etc/shadow", "suites": ["animals", "/tmp/x.yaml"]}, "repo")
    assert policy.max_shift == 0.2 and policy.entity_limits["pets/panda"].max_shift == 0.05
    assert policy.model == "tiny-random" and policy.trust_remote_code is False and policy.profile is None
    assert policy.reference == "none" and policy.suites == ("animals",)
    assert policy.questions_per_suite == 2 and policy.null_seeds == 0   # capped at the bot's; fewer is fine
    assert policy.min_excess == bot_policy.min_excess                   # not set by the repo: the bot's
    joined = " ".join(notes)
    for key in ("`model`", "`trust_remote_code`", "`profile`", "`reference`", "built-in suites", "capped"):
        assert key in joined
    with pytest.raises(InputError):
        repo_policy(bot_policy, {"thresholds": {"max_shift": 7}}, "repo")
    with pytest.raises(InputError):
        repo_policy(bot_policy, ["not", "a", "mapping"], "repo")
    with pytest.raises(InputError, match="max_shfit"):
        repo_policy(bot_policy, {"max_shfit": 0.1}, "repo")   # a typo is still an error
    with pytest.raises(InputError, match="max_shift"):
        repo_policy(bot_policy, {"max_shift": 0.1}, "repo")   # thresholds go under `thresholds:`
    # Every top-level key but REPO_KEYS, today's and any added later, is the bot's.
    bot_keys = sorted(_TOP_KEYS - set(REPO_KEYS))
    policy, notes = repo_policy(bot_policy, {key: "/etc/passwd" for key in bot_keys}, "repo")
    assert len(notes) == len(bot_keys) and policy == replace(bot_policy, source=policy.source)
    assert repo_policy(bot_policy, None, "repo")[0].max_shift == bot_policy.max_shift


def test_comment_falls_back_to_text_until_markdown_lands(monkeypatch):
    job = Job(id=1, repo_id="a/b", private=False, ref="refs/heads/main", old_sha=None, new_sha="f" * 40,
              received=0.0)

    class FakeReport:
        verdict, flagged = "pass", []

    monkeypatch.setattr(report_module, "FORMATS", ("text", "json"))
    monkeypatch.setattr(report_module, "render", lambda r, fmt, color=None: f"[{fmt}] a ``` fence\n")
    from mdf_guard.serve import FileResult
    text = render_comment(job, [FileResult("x|`y`.jsonl", "none", report=FakeReport())], "the bot's policy", [])
    assert "[text]" in text and "````text" in text and "x\\|'y'.jsonl" in text
    monkeypatch.setattr(report_module, "FORMATS", ("text", "json", "markdown"))
    assert "[markdown]" in render_comment(job, [FileResult("x.jsonl", "none", report=FakeReport())], "p", [])
    assert _fenced("no ticks").startswith("```text\n")


def test_serve_refuses_to_run_without_a_secret(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from mdf_guard.cli import main
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 2 and "WEBHOOK_SECRET" in result.output
    (tmp_path / "secret").write_text("caf\u00e9\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["serve", "--secret-file", str(tmp_path / "secret")])
    assert result.exit_code == 2 and "ASCII" in result.output


def test_serve_refuses_a_port_out_of_range_before_starting(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from mdf_guard.cli import main
    (tmp_path / "secret").write_text("s3cret\n")
    result = CliRunner().invoke(main, ["serve", "--secret-file", str(tmp_path / "secret"), "--port", "99999"])
    assert result.exit_code == 2 and "Invalid value for '--port'" in result.output
