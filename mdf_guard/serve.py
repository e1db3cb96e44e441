"""`mdf-guard serve`: the Hub webhook bot, a FastAPI app under uvicorn.

    POST /webhook   a Hub delivery: secret, size and payload checked; a dataset push is
                    answered 202 at once and queued (503 + Retry-After when the queue is full)
    GET  /healthz   liveness: worker thread, queue depth, model state
    GET  /          status page of recent jobs (GET /jobs: the same as JSON)

One worker thread runs the jobs one at a time and holds the model, so the model is
loaded once and never shared between threads. Jobs are keyed by repo + pushed sha: a
key already queued, running, waiting or done is not run again (the Hub retries and
replays deliveries). A job the Hub breaks off (a transient HubError: a 5xx, 429, a
timeout) waits and runs again, after RETRY_DELAYS, since the Hub never redelivers a push
it was answered 202 for; its report is keyed by the sha, so a re-run edits rather than
duplicates it. A job that raises anything else, or the Hub's error once its attempts
are spent, is recorded with its error, its key is released so a later delivery can
retry it, and the worker goes on with the next job.

The job itself (`HubCheckRunner`): list the files that changed between `oldSha` and
`newSha` (tree listing, compared by LFS sha256 or git blob id), download only the
changed data files at `newSha` (and their previous revision at `oldSha`), check each
one against its previous revision where it has one, under the bot's policy overlaid
with the repo's own `.mdf-guard.yaml`, and post the report: a comment on the pull
request for `refs/pr/N`, else a comment in one discussion per repo.
"""

# No `from __future__ import annotations`: FastAPI reads the route handlers' annotations
# (`request: Request`, imported inside create_app so that the CLI does not need FastAPI).
import collections
import heapq
import hmac
import html
import json
import logging
import math
import os
import tempfile
import threading
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Protocol

import click

from .errors import MdfGuardError, UsageError

log = logging.getLogger("mdf_guard.serve")

KiB, MiB, GiB = 1024, 1024 ** 2, 1024 ** 3
SECRET_HEADER = "X-Webhook-Secret"
SECRET_ENV = "WEBHOOK_SECRET"
DISCUSSION_TITLE = "mdf-guard: behavioural risk report"
POLICY_FILE = ".mdf-guard.yaml"
MAX_POLICY_BYTES = 64 * KiB
COMMENT_ROWS = 5           # top rows listed for a failing file (the Markdown report shows 5)
# Waits before the 2nd, 3rd and 4th attempt of a job the Hub broke off. huggingface_hub has
# already retried most calls for seconds by then; these ride out an incident of ~10 minutes
# (the Hub does not redeliver), and a job's re-runs stay few: each downloads and checks again.
RETRY_DELAYS = (30.0, 120.0, 480.0)

# ---------------------------------------------------------------------------- jobs


@dataclass
class Job:
    """One push to check: a repo, a ref, and the commit range it moved over."""

    id: int
    repo_id: str
    private: bool
    ref: str
    old_sha: str | None
    new_sha: str
    received: float
    status: str = "queued"             # queued, running, waiting (for a retry), done, error
    verdict: str | None = None         # pass, fail, error, skipped (set when done)
    summary: str = ""
    comment_url: str | None = None
    started: float | None = None
    finished: float | None = None
    deliveries: int = 1                # how many deliveries asked for this push
    new_ref: bool = False              # the ref was created; old_sha is then main's head (or None)
    attempt: int = 1                   # the run this is (or, while waiting, the run to come)
    retry_at: float | None = None      # when a waiting job runs again (wall clock)

    @property
    def key(self) -> tuple[str, str]:
        return (self.repo_id, self.new_sha)

    @property
    def pr_number(self) -> int | None:
        from .webhook import RefUpdate
        return RefUpdate(self.ref, None, self.new_sha).pr_number

    def public(self) -> dict[str, Any]:
        """What the status page shows: a private repo's name, ref and links are withheld."""
        hidden = self.private
        return {"id": self.id, "repo": "(private repo)" if hidden else self.repo_id,
                "ref": None if hidden else self.ref, "old_sha": None if hidden else self.old_sha,
                "new_sha": None if hidden else self.new_sha, "status": self.status, "verdict": self.verdict,
                "summary": "" if hidden else self.summary, "comment_url": None if hidden else self.comment_url,
                "received": self.received, "started": self.started, "finished": self.finished,
                "queue_seconds": _round(self.started - self.received) if self.started else None,
                "run_seconds": _round(self.finished - self.started) if self.finished and self.started else None,
                "deliveries": self.deliveries, "attempt": self.attempt, "retry_at": self.retry_at}


@dataclass(frozen=True)
class JobOutcome:
    verdict: str                 # pass, fail, error (the data or policy could not be read), skipped
    summary: str
    comment_url: str | None = None


class JobRunner(Protocol):
    """Runs one job in the worker thread.

    Raising a transient HubError puts the job back in line for another attempt; raising
    anything else marks it as errored, its key released for a later delivery.
    """

    def __call__(self, job: Job) -> JobOutcome: ...


class QueueFull(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"queue full; retry after {retry_after}s")
        self.retry_after = retry_after


class JobBoard:
    """The bounded queue, the jobs waiting for a retry, the dedupe memory and the history
    of recent jobs, under one lock."""

    def __init__(self, capacity: int, history: int = 200, memory: int = 10_000,
                 retry_delays: tuple[float, ...] = RETRY_DELAYS) -> None:
        if capacity < 1:
            raise ValueError("queue capacity must be at least 1")
        self.capacity = capacity
        self.retry_delays = tuple(retry_delays)
        self._cond = threading.Condition()
        self._pending: collections.deque[Job] = collections.deque()
        self._waiting: list[tuple[float, int, Job]] = []   # a heap of (due, by time.monotonic; id; job)
        self._by_key: collections.OrderedDict[tuple[str, str], Job] = collections.OrderedDict()
        self._memory = memory
        self._recent: collections.deque[Job] = collections.deque(maxlen=history)
        self._next_id = 1
        self._closed = False
        self._mean_seconds = 10.0      # running estimate of a job's duration, for Retry-After
        self.running: Job | None = None
        self.counts = collections.Counter()

    def submit(self, repo_id: str, private: bool, refs) -> list[tuple[Job, bool]]:
        """Queue one job per ref, all or none; returns (job, is_new) pairs.

        A push already queued, running or done is not queued again (its job is returned
        with is_new False). Raises QueueFull if the new jobs do not all fit, so that a
        delivery is either wholly accepted or wholly refused (the sender retries it).
        """
        now = time.time()
        with self._cond:
            if self._closed:
                raise QueueFull(self.retry_after())
            result: list[tuple[Job, bool]] = []
            fresh: list[Job] = []
            for update in refs:
                key = (repo_id, update.new_sha)
                known = next((j for j in fresh if j.key == key), None) or self._by_key.get(key)
                if known is not None and known.status != "error":
                    result.append((known, False))
                    continue
                job = Job(id=0, repo_id=repo_id, private=private, ref=update.ref,
                          old_sha=update.old_sha or update.base_sha, new_sha=update.new_sha, received=now,
                          new_ref=update.old_sha is None)
                fresh.append(job)
                result.append((job, True))
            if len(self._pending) + len(fresh) > self.capacity:
                self.counts["refused"] += 1
                raise QueueFull(self.retry_after(len(fresh)))
            for job, is_new in result:
                if not is_new:
                    job.deliveries += 1
            for job in fresh:
                job.id = self._next_id
                self._next_id += 1
                self._pending.append(job)
                self._recent.append(job)
                self._remember(job)
            self.counts["accepted"] += len(fresh)
            self.counts["duplicates"] += len(result) - len(fresh)
            if fresh:
                self._cond.notify_all()
            return result

    @property
    def max_attempts(self) -> int:
        return len(self.retry_delays) + 1

    @property
    def closed(self) -> bool:
        return self._closed

    def take(self, timeout: float) -> Job | None:
        """The next queued job (now running), or None after `timeout` or once closed."""
        with self._cond:
            self._queue_due()
            if not self._pending and not self._closed:
                self._cond.wait(self._wait_for(timeout))
                self._queue_due()
            if not self._pending:
                return None
            job = self._pending.popleft()
            job.status, job.started = "running", time.time()
            self.running = job
            return job

    def finish(self, job: Job, outcome: JobOutcome | None, error: str | None = None) -> None:
        with self._cond:
            job.finished = time.time()
            if outcome is not None:
                job.status, job.verdict, job.summary, job.comment_url = (
                    "done", outcome.verdict, outcome.summary, outcome.comment_url)
                self.counts["done"] += 1
            else:
                job.status, job.verdict, job.summary = "error", "error", error or "failed"
                self.counts["errors"] += 1
            duration = job.finished - (job.started or job.finished)
            self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * max(duration, 0.01)
            if self.running is job:
                self.running = None
            self._cond.notify_all()

    def retry_later(self, job: Job, error: str) -> float | None:
        """Put a job the Hub broke off back in line after its next delay; returns the delay.

        None when the job has had all its attempts or the board is closed: the caller then
        finishes it as an error. A retry is not counted against the queue's capacity when
        it is due: its push was accepted (answered 202) and the Hub will not deliver it again.
        """
        with self._cond:
            if self._closed or job.attempt >= self.max_attempts:
                return None
            delay = self.retry_delays[job.attempt - 1]
            job.status, job.summary, job.attempt = "waiting", error, job.attempt + 1
            job.retry_at = time.time() + delay
            heapq.heappush(self._waiting, (time.monotonic() + delay, job.id, job))
            self.counts["retries"] += 1
            if self.running is job:
                self.running = None
            self._cond.notify_all()
            return delay

    def retry_after(self, extra: int = 1) -> int:
        """Seconds until there is probably room: the queue ahead times the mean job time."""
        ahead = len(self._pending) + extra - self.capacity
        return int(min(600, max(1, math.ceil(self._mean_seconds * max(ahead, 1)))))

    def close(self) -> list[Job]:
        """Take no more jobs; returns those that will not run, queued or waiting for a retry.

        The queue lives in memory, so they are lost with the process: the waiting ones are
        recorded as errors here (never retried), and the caller logs them all.
        """
        with self._cond:
            self._closed = True
            waiting = [job for _, _, job in sorted(self._waiting)]
            self._waiting.clear()
            for job in waiting:
                job.status, job.verdict, job.retry_at = "error", "error", None
                job.summary += f" (attempt {job.attempt} of {self.max_attempts} not run: the bot stopped)"
                self.counts["errors"] += 1
            self._cond.notify_all()
            return list(self._pending) + waiting

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued, running or waiting for a retry (for tests and the load test)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self.running is not None or self._waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            return {"queued": len(self._pending), "capacity": self.capacity, "waiting": len(self._waiting),
                    "max_attempts": self.max_attempts, "running": self.running.id if self.running else None,
                    "counts": dict(self.counts), "jobs": [j.public() for j in reversed(self._recent)]}

    def _remember(self, job: Job) -> None:
        self._by_key[job.key] = job
        self._by_key.move_to_end(job.key)
        while len(self._by_key) > self._memory:
            oldest_key, oldest = next(iter(self._by_key.items()))
            if oldest.status in ("queued", "running", "waiting"):
                break   # never forget a job that has not finished
            del self._by_key[oldest_key]

    def _queue_due(self) -> None:
        """Move the retries that are due to the end of the queue (none once closed)."""
        now = time.monotonic()
        while self._waiting and self._waiting[0][0] <= now and not self._closed:
            _, _, job = heapq.heappop(self._waiting)
            job.status, job.retry_at = "queued", None
            self._pending.append(job)

    def _wait_for(self, timeout: float) -> float:
        """How long take() may sleep: `timeout`, or less when a retry falls due sooner."""
        if not self._waiting:
            return timeout
        return max(0.0, min(timeout, self._waiting[0][0] - time.monotonic()))


class Worker:
    """The single thread that runs jobs; it survives any job's failure."""

    def __init__(self, board: JobBoard, runner: JobRunner, redact: Callable[[str], str]) -> None:
        self.board, self.runner, self.redact = board, runner, redact
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mdf-guard-worker", daemon=True)
        self.model_state = "not loaded"

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the running job; the jobs left behind are logged, as no delivery will bring them back."""
        self._stop.set()
        for job in self.board.close():
            log.warning("job %d (%s %s@%s, %s) not run: the bot stopped; replay the push's delivery to check it",
                        job.id, _shown(job), job.ref, job.new_sha[:12],
                        "queued" if job.status == "queued" else f"waiting for attempt {job.attempt}")
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        warm = getattr(self.runner, "warm", None)
        if warm is not None:
            self.model_state = "loading"
            try:
                warm()
                self.model_state = "ready"
            except Exception as err:   # the first job retries the load and reports the error
                self.model_state = f"failed: {self.redact(_one_line(err))}"
                log.error("model load failed: %s", self.model_state)
        else:
            self.model_state = "ready"
        while not self._stop.is_set():
            job = self.board.take(timeout=0.5)
            if job is None:
                continue
            log.info("job %d: checking %s %s@%s", job.id, _shown(job), job.ref, job.new_sha[:12])
            try:
                outcome = self.runner(job)
            except Exception as err:
                message = self.redact(f"{type(err).__name__}: {_one_line(err)}")
                if _transient(err):
                    self._retry_or_give_up(job, message)
                else:
                    log.error("job %d failed: %s", job.id, message)
                    self.board.finish(job, None, message)
            else:
                log.info("job %d: %s (%s)", job.id, outcome.verdict, self.redact(outcome.summary))
                self.board.finish(job, outcome)

    def _retry_or_give_up(self, job: Job, message: str) -> None:
        """The Hub broke the job off: run it again after a delay, or record the error once its
        attempts are spent (or the bot is stopping), its key released as for any failure."""
        attempt = job.attempt
        delay = self.board.retry_later(job, message)
        if delay is not None:
            log.warning("job %d: attempt %d of %d broken off by the Hub (%s); next attempt in %gs",
                        job.id, attempt, self.board.max_attempts, message, delay)
            return
        why = "the bot is stopping" if self.board.closed else f"gave up after {attempt} attempts"
        log.error("job %d failed: %s (%s)", job.id, message, why)
        self.board.finish(job, None, f"{message} ({why})" if self.board.max_attempts > 1 else message)


def _transient(err: BaseException) -> bool:
    """Whether a job failed on the Hub's passing trouble (5xx, 429, a timeout), so that it is
    worth running again: not on the repo (404, 403, its policy or data) nor on a bug."""
    from .hub import HubError
    return isinstance(err, HubError) and err.transient


# ---------------------------------------------------------------------------- the app


@dataclass(frozen=True)
class ServeConfig:
    secret: bytes
    queue_size: int = 64
    max_body_bytes: int = 1 * MiB
    history: int = 200
    retry_delays: tuple[float, ...] = RETRY_DELAYS   # seconds before each re-run of a job the Hub broke off


def create_app(config: ServeConfig, runner: JobRunner, redact: Callable[[str], str] | None = None):
    """The FastAPI app: routes, and a worker started and stopped with the app's lifespan."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.requests import ClientDisconnect

    from .hub import redact as redact_token
    from .webhook import PayloadError, dataset_push, ignore_reason, parse_payload

    if not config.secret:
        raise UsageError("the webhook secret is empty")
    redact = redact or redact_token
    board = JobBoard(config.queue_size, history=config.history, retry_delays=config.retry_delays)
    worker = Worker(board, runner, redact)

    @asynccontextmanager
    async def lifespan(app):
        worker.start()
        try:
            yield
        finally:
            worker.stop()

    app = FastAPI(title="mdf-guard bot", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.board, app.state.worker = board, worker

    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.post("/webhook")
    async def webhook(request: Request):
        given = request.headers.get(SECRET_HEADER)
        if given is None:
            return error(401, f"missing {SECRET_HEADER} header")
        # Header values arrive as latin-1 text; compare the raw bytes in constant time.
        if not hmac.compare_digest(given.encode("latin-1", "replace"), config.secret):
            return error(403, f"wrong {SECRET_HEADER}")
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return error(400, "invalid Content-Length")
            if int(declared) > config.max_body_bytes:
                return error(413, f"body over {config.max_body_bytes} bytes")
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > config.max_body_bytes:
                    return error(413, f"body over {config.max_body_bytes} bytes")
        except ClientDisconnect:   # the sender gave up mid-body; it will deliver again
            return error(400, "client disconnected before the body was complete")
        try:
            data = json.loads(bytes(body))
        except (ValueError, UnicodeDecodeError):
            return error(400, "body is not valid JSON")
        except RecursionError:
            return error(400, "body is not valid JSON: nested too deeply")
        try:
            event = parse_payload(data)
            reason = ignore_reason(event)
            if reason is not None:
                return JSONResponse({"status": "ignored", "reason": reason}, status_code=200)
            push = dataset_push(event)
        except PayloadError as err:
            return error(400, str(err))
        skipped = [{"ref": u.ref, "reason": why} for u, why in push.skipped]
        if not push.refs:
            return JSONResponse({"status": "ignored", "reason": "no branch or pull request ref to check",
                                 "skipped": skipped}, status_code=200)
        try:
            queued = board.submit(push.repo_id, push.private, push.refs)
        except QueueFull as full:
            return error(503, "queue full, retry later", headers={"Retry-After": str(full.retry_after)})
        jobs = [{"id": job.id, "ref": job.ref, "sha": job.new_sha, "duplicate": not new} for job, new in queued]
        any_new = any(new for _, new in queued)
        return JSONResponse({"status": "accepted" if any_new else "duplicate", "jobs": jobs, "skipped": skipped},
                            status_code=202 if any_new else 200)

    @app.get("/healthz")
    async def healthz():
        snap = board.snapshot()
        alive = worker.alive()
        body = {"status": "ok" if alive else "worker stopped", "worker_alive": alive,
                "model": worker.model_state, "queued": snap["queued"], "capacity": snap["capacity"],
                "waiting": snap["waiting"], "running": snap["running"], "counts": snap["counts"]}
        return JSONResponse(body, status_code=200 if alive else 503)

    @app.get("/jobs")
    async def jobs():
        return JSONResponse(board.snapshot())

    @app.get("/", response_class=HTMLResponse)
    async def status_page():
        return HTMLResponse(_status_html(board.snapshot(), worker))

    return app


def _status_html(snap: dict[str, Any], worker: Worker) -> str:
    esc = html.escape
    rows = []
    for job in snap["jobs"]:
        link = (f'<a href="{esc(job["comment_url"], quote=True)}">report</a>' if job["comment_url"] else "")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(job["received"]))
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in (
            job["id"], esc(when), esc(job["repo"]), esc(job["ref"] or ""), esc((job["new_sha"] or "")[:12]),
            esc(_status_text(job, snap["max_attempts"])), esc(job["verdict"] or ""),
            esc(str(job["run_seconds"] or "")),
            esc(job["summary"]), link)) + "</tr>")
    header = "".join(f"<th>{h}</th>" for h in ("#", "received (UTC)", "repo", "ref", "sha", "status",
                                                  "verdict", "seconds", "summary", ""))
    counts = ", ".join(f"{k} {v}" for k, v in sorted(snap["counts"].items())) or "none yet"
    return ("<!doctype html><html><head><meta charset='utf-8'><title>mdf-guard bot</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
            "<h1>mdf-guard bot</h1>"
            f"<p>worker: {'running' if worker.alive() else 'stopped'}; model: {esc(worker.model_state)}; "
            f"queue: {snap['queued']}/{snap['capacity']}; waiting for a retry: {snap['waiting']}; "
            f"jobs: {esc(counts)}</p>"
            f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            "</body></html>")


def _status_text(job: dict[str, Any], max_attempts: int) -> str:
    """A job's status, with its attempt once it has had more than one (or waits for one)."""
    if job["retry_at"] is not None:
        when = time.strftime("%H:%M:%S", time.gmtime(job["retry_at"]))
        return f"waiting: attempt {job['attempt']} of {max_attempts} at {when} UTC"
    return job["status"] + (f" (attempt {job['attempt']} of {max_attempts})" if job["attempt"] > 1 else "")


# ---------------------------------------------------------------------------- the job


@dataclass(frozen=True)
class BotLimits:
    """What one push may ask of the bot; beyond, the report says to run mdf-guard locally."""

    max_files: int = 32
    max_file_bytes: int = 1 * GiB
    max_total_bytes: int = 4 * GiB


# The only policy keys a repo may set. Every other key (the model and its calibration,
# baselines, any path) is the bot's: it holds one model and reads no local path a repo
# names. An allowlist, so that a key added to the policy later is the bot's by default.
REPO_KEYS = ("suites", "reference", "reference_samples", "questions_per_suite", "null_seeds", "seed", "thresholds")
_THRESHOLD_FIELDS = {"max_shift": "max_shift", "max_rate": "max_rate", "min_excess": "min_excess",
                     "min_odds_ratio": "min_odds_ratio",
                     "suites": "suite_limits", "entities": "entity_limits"}
_CAPPED = ("questions_per_suite", "reference_samples", "null_seeds")


def repo_policy(base, data: Any, source: str):
    """The bot's policy overlaid with a repo's `.mdf-guard.yaml`; returns (policy, notes).

    A repo sets its own thresholds, suites (built-in ones only), reference mode
    (`self` or `none`) and seed (REPO_KEYS). It cannot change the model or its
    calibration, name local paths, or ask for more questions, samples or null seeds
    than the bot's policy: such keys are ignored and listed in the notes. Invalid
    values and unknown keys are an InputError, reported on the push.
    """
    from .errors import InputError
    from .policy import _TOP_KEYS, NAMED_REFERENCES, Policy, policy_from_dict
    from .probes import BUILTIN_SUITES

    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(source, "a policy is a mapping of keys to values")
    notes = []
    values = dict(data)
    known = _TOP_KEYS   # the policy file's own top-level keys
    for key in list(values):
        if key in known and key not in REPO_KEYS:   # unknown keys stay: policy_from_dict names the typo
            values.pop(key)
            notes.append(f"`{key}` is set by the bot and was ignored")
    if "suites" in values:
        wanted = values["suites"] if isinstance(values["suites"], list) else [values["suites"]]
        kept = [s for s in wanted if isinstance(s, str) and s in BUILTIN_SUITES]
        if len(kept) != len(wanted):
            notes.append(f"only built-in suites ({', '.join(BUILTIN_SUITES)}) can be used by the bot; "
                         f"ignored: {', '.join(str(s) for s in wanted if s not in kept)}")
        values["suites"] = kept or list(base.suites)
    if "reference" in values and values["reference"] not in NAMED_REFERENCES:
        notes.append("`reference` may only be `profile`, `self` or `none` for the bot (a changed file is always "
                     "contrasted with its previous revision)")
        values.pop("reference")
    parsed = policy_from_dict(values, source)
    thresholds = data.get("thresholds") if isinstance(data.get("thresholds"), dict) else {}
    set_here = {f.name for f in fields(Policy) if f.name in values} | {
        name for key, name in _THRESHOLD_FIELDS.items() if key in thresholds}
    merged = replace(parsed, **{f.name: getattr(base, f.name) for f in fields(Policy)
                                if f.name not in set_here and f.name != "source"})
    for key in _CAPPED:
        limit, asked = getattr(base, key), getattr(merged, key)
        if limit is not None and (asked is None or asked > limit):
            merged = replace(merged, **{key: limit})
            notes.append(f"`{key}` capped at the bot's {limit}")
    return merged, notes


@dataclass
class FileResult:
    path: str
    reference: str                 # "previous revision" or the policy's reference mode
    report: Any = None             # a Report, or None when the file could not be checked
    error: str | None = None

    @property
    def verdict(self) -> str:
        return "error" if self.report is None else self.report.verdict


class HubCheckRunner:
    """The real job: changed files → download → check against the old revision → report on the Hub."""

    def __init__(self, hub, policy, limits: BotLimits = BotLimits(), lm=None,
                 discussion_title: str = DISCUSSION_TITLE, workdir: Path | None = None) -> None:
        self.hub, self.policy, self.limits, self.lm = hub, policy, limits, lm
        self.discussion_title, self.workdir = discussion_title, workdir

    def warm(self) -> None:
        """Load the model (in the worker thread, before the first job)."""
        self._model()

    def _model(self):
        if self.lm is None:
            from .check import model_spec
            from .models import load_model
            self.lm = load_model(model_spec(self.policy))
        return self.lm

    def __call__(self, job: Job) -> JobOutcome:
        from .hub import HubError, diff_trees, is_data_path

        new_files = self.hub.list_files(job.repo_id, job.new_sha)
        old_files, gone = self._old_files(job)
        changed = diff_trees(old_files, new_files, select=is_data_path)
        if not changed:
            return JobOutcome("skipped", "no data files changed")
        too_big = self._over_limits(changed)
        with tempfile.TemporaryDirectory(prefix="mdf-guard-job-", dir=self.workdir) as tmp:
            root = Path(tmp)
            scrub = _scrubber(root)
            results: list[FileResult] = []
            notes: list[str] = []
            policy_source = "the bot's policy"
            try:
                policy, notes, policy_source = self._policy_for(job, new_files, root)
            except HubError:
                raise   # the Hub's failure, not the repo's: the worker runs the job again if it was transient
            except MdfGuardError as err:
                policy = None
                results = [FileResult(c.path, "-", error=f"policy: {scrub(str(err))}") for c in changed]
            if policy is not None and too_big:
                results = [FileResult(c.path, "-", error=too_big) for c in changed]
            elif policy is not None:
                lm = self._model()
                for change in changed:
                    results.append(self._check_file(job, change, policy, lm, root, scrub))
            if gone:
                notes.insert(0, f"the previous commit {job.old_sha[:12]} is no longer on the Hub (a force push?): "
                                "every data file was checked as new")
            text = render_comment(job, results, policy_source, notes)
            verdict = _overall(results)
            if job.pr_number is not None:
                posted = self.hub.comment(job.repo_id, job.pr_number, text, key=f"sha={job.new_sha}")
            else:
                posted = self.hub.post_to_discussion(job.repo_id, self.discussion_title, text,
                                                     key=f"sha={job.new_sha}")
        counts = collections.Counter(r.verdict for r in results)
        summary = f"{len(results)} data file(s): " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
        return JobOutcome(verdict, summary, posted.url)

    def _old_files(self, job: Job):
        """The tree at the old commit, and whether that commit is gone (force-pushed away)."""
        from .hub import HubError

        if not job.old_sha:
            return {}, False
        try:
            return self.hub.list_files(job.repo_id, job.old_sha), False
        except HubError as err:
            if err.status != 404:   # the new tree was just listed, so a 404 means the old commit is gone
                raise
            return {}, True

    def _over_limits(self, changed) -> str | None:
        total = sum(c.new.size + (c.old.size if c.old else 0) for c in changed)
        biggest = max(max(c.new.size, c.old.size if c.old else 0) for c in changed)
        if len(changed) > self.limits.max_files:
            return f"{len(changed)} changed data files; the bot checks at most {self.limits.max_files} per push"
        if biggest > self.limits.max_file_bytes or total > self.limits.max_total_bytes:
            return (f"{_size(total)} to download (largest file {_size(biggest)}); the bot's limits are "
                    f"{_size(self.limits.max_file_bytes)} per file and {_size(self.limits.max_total_bytes)} per push")
        return None

    def _policy_for(self, job: Job, files, root: Path):
        import yaml

        from .errors import InputError

        entry = files.get(POLICY_FILE)
        if entry is None:   # named so in the report too, not by the operator's path to it
            return replace(self.policy, source="the bot's policy"), [], "the bot's policy"
        source = f"{POLICY_FILE}@{job.new_sha[:12]}"
        if entry.size > MAX_POLICY_BYTES:
            raise InputError(source, f"policy file over {MAX_POLICY_BYTES} bytes")
        path = self.hub.download(job.repo_id, POLICY_FILE, job.new_sha, root / "policy")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise InputError(source, f"not valid YAML: {_one_line(err)}") from None
        except RecursionError:
            raise InputError(source, "not valid YAML: nested too deeply") from None
        policy, notes = repo_policy(self.policy, data, source)
        return replace(policy, source=f"the repo's {source}"), notes, f"the repo's `{source}`"

    def _check_file(self, job: Job, change, policy, lm, root: Path, scrub) -> FileResult:
        from .check import run_check, with_context_reference
        from .policy import IN_CONTEXT
        from .repo_check import attribute_rows

        new_path = self.hub.download(job.repo_id, change.path, job.new_sha, root / "new")
        if change.old is not None and job.old_sha:
            old_path = self.hub.download(job.repo_id, change.path, job.old_sha, root / "old")
            policy = replace(policy, reference=str(old_path))
            reference = (f"main at {job.old_sha[:12]}" if job.new_ref
                         else f"previous revision ({job.old_sha[:12]})")
        else:   # named as the check runs it: under `method: context`, `profile` (the default) is `self`
            used = with_context_reference(policy) if policy.method == IN_CONTEXT else policy
            reference = {"self": "the model's own answers", "none": "none (raw signature)",
                         "profile": "the calibration profile's contrast"}.get(used.reference, used.reference)
        try:
            report = run_check([new_path], policy, lm=lm)
            if report.flagged:      # the rows to look at first, only where there is something to fix
                report.attribution = attribute_rows(lm, [new_path], policy, report, COMMENT_ROWS)
        except MdfGuardError as err:
            return FileResult(change.path, reference, error=scrub(str(err)))
        _relabel(report, root, job)
        return FileResult(change.path, reference, report=report)


def _relabel(report, root: Path, job: Job) -> None:
    """Replace the job's temporary paths in a report with repo paths (and the old revision's sha),
    and a local model's path with its name: the comment is public, the operator's folders are not."""
    if str(report.model.get("source", "")).startswith(("local folder", "GGUF file")):
        name = Path(str(report.model.get("name", ""))).name
        report.model = {**report.model, "name": name, "source": f"the bot's model {name}"}
    new_prefix, old_prefix = str(root / "new") + os.sep, str(root / "old") + os.sep
    for i, info in enumerate(report.files):
        report.files[i] = replace(info, path=info.path.replace(new_prefix, ""))
    ref = dict(report.reference)
    old = f"@{(job.old_sha or '')[:12]}"
    if isinstance(ref.get("path"), str):
        ref["path"] = ref["path"].replace(old_prefix, "") + (old if ref["path"].startswith(old_prefix) else "")
    if isinstance(ref.get("files"), list):
        ref["files"] = [f.replace(old_prefix, "") + old if f.startswith(old_prefix) else f for f in ref["files"]]
    report.reference = ref
    for row in report.attribution:
        for key in ("file", "source", "window"):
            if isinstance(row.get(key), str):
                row[key] = row[key].replace(new_prefix, "")


def _scrubber(root: Path) -> Callable[[str], str]:
    def scrub(text: str) -> str:
        text = text.replace(str(root / "new") + os.sep, "").replace(str(root / "old") + os.sep, "(previous) ")
        return text.replace(str(root / "policy") + os.sep, "").replace(str(root), "(job)")
    return scrub


def _overall(results: list[FileResult]) -> str:
    verdicts = {r.verdict for r in results}
    return "fail" if "fail" in verdicts else "error" if "error" in verdicts else "pass"


# ---------------------------------------------------------------------------- the comment


def render_comment(job: Job, results: list[FileResult], policy_source: str, notes: list[str]) -> str:
    """The Markdown posted on the Hub for one push."""
    from . import report as report_module

    verdict = _overall(results)
    headline = {"pass": "PASS: no predicted behaviour shift over policy",
                "fail": "FAIL: predicted behaviour shift over policy",
                "error": "ERROR: some data could not be checked"}[verdict]
    if job.old_sha is None:
        old = "(new ref)"
    elif job.new_ref:
        old = f"(new ref; compared with main at `{job.old_sha[:12]}`)"
    else:
        old = f"`{job.old_sha[:12]}`"
    lines = [f"## mdf-guard {headline}", "",
             f"Push to `{_plain(job.ref)}`: {old} → `{job.new_sha[:12]}`; "
             f"{len(results)} changed data file(s); policy: {policy_source}.", ""]
    for note in notes:
        lines.append(f"> note: {_plain(note)}")
    if notes:
        lines.append("")
    lines += ["| file | contrasted with | verdict |", "|---|---|---|"]
    for r in results:
        detail = r.verdict.upper()
        if r.report is not None and r.report.flagged:
            detail += f" ({len(r.report.flagged)} finding(s))"
        lines.append(f"| {_code(r.path)} | {_plain(r.reference)} | {detail} |")
    lines.append("")
    markdown = "markdown" in getattr(report_module, "FORMATS", ())
    for r in results:
        lines.append(f"<details{' open' if r.verdict != 'pass' else ''}><summary>{html.escape(r.path)}</summary>")
        lines.append("")
        if r.report is None:
            lines.append(_fenced(r.error or "not checked"))
        elif markdown:
            lines.append(report_module.render(r.report, "markdown"))
        else:
            lines.append(_fenced(report_module.render(r.report, "text", color=False)))
        lines += ["", "</details>", ""]
    lines.append("<sub>Predicted by mdf-guard before any training: a forecast, not a measurement. "
                 "Thresholds live in the repo's `.mdf-guard.yaml`.</sub>")
    return "\n".join(lines) + "\n"


def _code(text: str) -> str:
    """Inline code in a table cell that no file name can break out of."""
    return "`" + _plain(text).replace("`", "'") + "`"


def _plain(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _fenced(text: str) -> str:
    """A code block whose fence is longer than any run of backticks inside it."""
    run = best = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        best = max(best, run)
    fence = "`" * max(3, best + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"


# ---------------------------------------------------------------------------- the command


def _read_secret(secret_file: Path | None) -> tuple[bytes, str]:
    if secret_file is not None:
        try:
            text = secret_file.read_text(encoding="utf-8").strip("\r\n")
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"cannot read --secret-file {secret_file}: {_one_line(err)}") from None
        source = f"--secret-file {secret_file}"
    else:
        text, source = os.environ.get(SECRET_ENV, ""), f"${SECRET_ENV}"
    if not text:
        raise UsageError(f"no webhook secret: set {SECRET_ENV} or pass --secret-file "
                         "(the bot refuses unauthenticated deliveries)")
    if not text.isascii() or not text.isprintable():
        raise UsageError(f"the webhook secret from {source} must be printable ASCII (as the Hub sends it)")
    return text.encode("ascii"), source


@click.command("serve", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0 in a container).")
@click.option("--port", default=7860, show_default=True, type=click.IntRange(0, 65535))
@click.option("--secret-file", type=click.Path(dir_okay=False, path_type=Path),
              help=f"File holding the webhook secret (default: ${SECRET_ENV}).")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The bot's policy: model, default suites and thresholds, and the most a repo's own "
                   "policy may ask for (questions, reference samples, null seeds).")
@click.option("--model", help="Override the policy's model.")
@click.option("--hub-endpoint", envvar="HF_ENDPOINT", help="Hub endpoint (default: huggingface_hub's).")
@click.option("--queue-size", default=64, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--max-body-bytes", default=1 * MiB, show_default=True, type=click.IntRange(1024))
@click.option("--max-files", default=BotLimits.max_files, show_default=True, type=click.IntRange(1))
@click.option("--max-total-bytes", default=BotLimits.max_total_bytes, show_default=True, type=click.IntRange(1))
@click.option("--discussion-title", default=DISCUSSION_TITLE, show_default=True)
@click.option("--threads", type=click.IntRange(1), help="torch CPU threads (default: torch's choice; 1 on a "
              "shared or busy CPU).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve_command(host, port, secret_file, policy_path, model, hub_endpoint, queue_size, max_body_bytes,
                  max_files, max_total_bytes, discussion_title, threads, log_level) -> None:
    """Run the Hub webhook bot: check every dataset push and report on the Hub."""
    import uvicorn

    from .hub import TOKEN_ENV, HubClient, token_from_env
    from .policy import Policy, load_policy

    secret, secret_source = _read_secret(secret_file)
    policy = load_policy(policy_path) if policy_path else Policy(source="the bot's default policy")
    if model:
        policy = replace(policy, model=model)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if threads:
        import torch
        torch.set_num_threads(threads)
    if token_from_env() is None:
        log.warning("%s is not set: the bot can read public repos but cannot post reports", TOKEN_ENV)
    hub = HubClient(endpoint=hub_endpoint)
    limits = BotLimits(max_files=max_files, max_file_bytes=min(BotLimits.max_file_bytes, max_total_bytes),
                       max_total_bytes=max_total_bytes)
    runner = HubCheckRunner(hub, policy, limits, discussion_title=discussion_title)
    app = create_app(ServeConfig(secret=secret, queue_size=queue_size, max_body_bytes=max_body_bytes), runner)
    log.info("secret from %s; model %s; hub %s; queue %d", secret_source, policy.model, hub.endpoint, queue_size)
    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=True)


# ---------------------------------------------------------------------------- helpers


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _shown(job: Job) -> str:
    return "(private repo)" if job.private else job.repo_id


def _round(value: float) -> float:
    return round(value, 3)


def _size(n: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
