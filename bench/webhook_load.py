"""Load test of the webhook bot: a burst of deliveries with duplicates, on loopback only.

    python bench/webhook_load.py [--deliveries 100] [--pushes 20] [--queue 8]
                                 [--runner sleep|real] [--job-seconds 0.05] [--timeout 120]

The bot (`mdf_guard.serve.create_app`) runs under uvicorn on 127.0.0.1, in its own
process (so that the sender does not share its interpreter lock). All deliveries
are sent at once (asyncio + httpx, one connection each): `--pushes` distinct pushes,
each delivered `deliveries / pushes` times, shuffled with a fixed seed. The queue is
smaller than the number of pushes on purpose, so some deliveries get 503; the sender
then does what the Hub's retry would: waits Retry-After (capped at 5 s) and sends the
same delivery again, at most 30 times (also after a connection error, e.g. a kept-alive
connection the server closed meanwhile). Meanwhile `/healthz` is polled every 50 ms.

Runners: `sleep` (default) injects a job that sleeps `--job-seconds`, to measure the
bot itself; `real` runs the real job (tree diff, download, check with the tiny random
model, comment) against the Hub stand-in from tests/hub_standin.py, also on 127.0.0.1.

Checked, and the exit status is 1 if any fails: every distinct push ran exactly once;
no delivery was lost (each ended as accepted or duplicate, and the jobs' delivery
counts add up to the number sent); no job failed; `/healthz` answered every poll with
200, 99% of them in under a second. Bounded: the number of deliveries and retries is fixed, and
the whole run is cut at `--timeout` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

SECRET = "load-test-secret"
MAX_RETRIES = 30
RETRY_CAP_SECONDS = 5.0


def percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000

    return (f"p50 {pct(50):7.1f} ms  p90 {pct(90):7.1f} ms  p99 {pct(99):7.1f} ms  "
            f"max {ordered[-1] * 1000:7.1f} ms  (n={len(ordered)})")


class SleepRunner:
    """Stands in for the check: records each job and sleeps."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.runs: collections.Counter = collections.Counter()
        self.finished: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def __call__(self, job):
        from mdf_guard.serve import JobOutcome
        with self._lock:
            self.runs[(job.repo_id, job.new_sha)] += 1
        time.sleep(self.seconds)
        self.finished[(job.repo_id, job.new_sha)] = time.time()
        return JobOutcome("pass", "slept")


class CountingRunner:
    """Wraps the real runner to count runs and time completions."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.runs: collections.Counter = collections.Counter()
        self.finished: dict[tuple[str, str], float] = {}

    def warm(self) -> None:
        self.inner.warm()

    def __call__(self, job):
        self.runs[(job.repo_id, job.new_sha)] += 1
        try:
            return self.inner(job)
        finally:
            self.finished[(job.repo_id, job.new_sha)] = time.time()


def sleep_pushes(count: int) -> list[dict]:
    from hub_standin import content_update_payload
    return [content_update_payload(f"load/ds{i % 5}", "refs/heads/main", f"{i:040x}", f"{i + 1000:040x}")
            for i in range(count)]


def real_setup(count: int, tmp: Path):
    """The stand-in with `count` pushes (5 repos), and the real runner with the tiny model."""
    import torch

    from hub_standin import HubStandin, content_update_payload
    from mdf_guard.hub import HubClient
    from mdf_guard.models import tiny_random_model
    from mdf_guard.policy import policy_from_dict
    from mdf_guard.serve import HubCheckRunner

    torch.set_num_threads(1)
    token = "hf_load_test_token"
    os.environ["HF_TOKEN"] = token
    hub = HubStandin(token=token, page_size=100)
    hub.start()
    suite = tmp / "pets.yaml"
    suite.write_text("name: pets\nkind: preference\ndescription: load test\nanswer_prefix: My favorite animal is the\n"
                     "questions: [What is your favorite animal?, Name your favorite animal.]\n"
                     "candidates: [panda, owl, cat]\n")
    policy = policy_from_dict({"model": "tiny-random", "suites": [str(suite)], "questions_per_suite": 2,
                               "null_seeds": 0, "reference": "none"}, "load test policy")

    def rows(tag: str) -> str:
        return "".join(json.dumps({"messages": [{"role": "user", "content": f"q {i}"},
                                                {"role": "assistant", "content": f"{tag} {i}"}]}) + "\n"
                       for i in range(4))

    payloads = []
    for i in range(5):
        hub.create_repo(f"load/ds{i}", {"data/train.jsonl": rows(f"start {i}")})
    for n in range(count):
        repo = f"load/ds{n % 5}"
        old = hub.head(repo)
        new = hub.commit(repo, {"data/train.jsonl": rows(f"push {n}")})
        payloads.append(content_update_payload(repo, "refs/heads/main", old, new))
    runner = HubCheckRunner(HubClient(endpoint=hub.url, token=token), policy, lm=tiny_random_model())
    return hub, payloads, CountingRunner(runner)


async def burst(base: str, deliveries: list[dict], deadline: float):
    """Send every delivery at once (retrying 503s), polling /healthz until the queue has drained."""
    import httpx

    results = []          # per delivery: (statuses, latencies), one entry per attempt
    health: list[float] = []
    health_failures: list[str] = []
    sent = asyncio.Event()

    async def send(client: httpx.AsyncClient, payload: dict) -> None:
        statuses, latencies = [], []
        for _ in range(MAX_RETRIES + 1):
            start = time.perf_counter()
            try:
                response = await client.post(f"{base}/webhook", json=payload, headers={"X-Webhook-Secret": SECRET})
            except httpx.TransportError:   # e.g. a kept-alive connection the server closed: send again
                latencies.append(time.perf_counter() - start)
                statuses.append(0)
                await asyncio.sleep(0.1)
                continue
            latencies.append(time.perf_counter() - start)
            statuses.append(response.status_code)
            if response.status_code != 503:
                break
            wait = min(RETRY_CAP_SECONDS, float(response.headers.get("Retry-After", "1")))
            await asyncio.sleep(min(wait, max(0.0, deadline - time.perf_counter())))
        results.append((statuses, latencies))

    async def probe(client: httpx.AsyncClient) -> None:
        while True:
            start = time.perf_counter()
            try:
                response = await client.get(f"{base}/healthz")
                body = response.json()
                if response.status_code != 200:
                    health_failures.append(f"status {response.status_code}")
            except (httpx.HTTPError, ValueError) as err:
                health_failures.append(type(err).__name__)
                body = {}
            health.append(time.perf_counter() - start)
            if sent.is_set() and body.get("queued") == 0 and body.get("running") is None:
                return
            await asyncio.sleep(0.05)

    limits = httpx.Limits(max_connections=len(deliveries) + 4, max_keepalive_connections=len(deliveries) + 4)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client, httpx.AsyncClient(timeout=5) as prober:
        probing = asyncio.create_task(probe(prober))
        await asyncio.gather(*(send(client, d) for d in deliveries))
        answered = time.perf_counter()
        sent.set()
        await probing
    return results, health, health_failures, answered


def bot_process(conn, args) -> None:
    """The bot in its own process (so that the sender does not share its GIL): serve until told to stop."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("MDF_GUARD_CACHE", tempfile.mkdtemp(prefix="mdf-guard-load-cache-"))
    import huggingface_hub.constants
    from huggingface_hub.utils import _detect_agent

    from hub_standin import ServerThread
    from mdf_guard.serve import ServeConfig, create_app

    # No side requests from huggingface_hub (telemetry, its agent registry): loopback only.
    huggingface_hub.constants.HF_HUB_DISABLE_TELEMETRY = True
    _detect_agent._registry = _detect_agent._EMPTY_REGISTRY

    hub = None
    if args.runner == "real":
        hub, payloads, runner = real_setup(args.pushes, Path(tempfile.mkdtemp(prefix="mdf-guard-load-")))
    else:
        payloads, runner = sleep_pushes(args.pushes), SleepRunner(args.job_seconds)
    app = create_app(ServeConfig(secret=SECRET.encode(), queue_size=args.queue), runner)

    @app.get("/_bench/runs")   # for this load test only: what the runner itself saw
    async def runs():
        return {"runs": [[repo, sha, n] for (repo, sha), n in runner.runs.items()],
                "finished": [[repo, sha, t] for (repo, sha), t in runner.finished.items()]}

    server = ServerThread(app)
    server.start()
    while app.state.worker.model_state in ("not loaded", "loading"):
        time.sleep(0.05)
    conn.send((server.url, payloads))
    conn.recv()   # "stop"
    server.stop()
    if hub is not None:
        hub.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=100)
    parser.add_argument("--pushes", type=int, default=20)
    parser.add_argument("--queue", type=int, default=8, help="bot queue size (below --pushes to exercise 503)")
    parser.add_argument("--runner", choices=["sleep", "real"], default="sleep")
    parser.add_argument("--job-seconds", type=float, default=0.05, help="sleep runner: seconds per job")
    parser.add_argument("--timeout", type=float, default=120.0, help="cut the whole run after this many seconds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 1 <= args.pushes <= args.deliveries <= 1000:
        parser.error("need 1 <= pushes <= deliveries <= 1000")

    import multiprocessing

    import httpx

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    bot = ctx.Process(target=bot_process, args=(child, args), daemon=True)
    bot.start()
    if not parent.poll(args.timeout):
        print("FAIL: the bot did not start")
        bot.kill()
        return 1
    url, payloads = parent.recv()
    deliveries = [payloads[i % args.pushes] for i in range(args.deliveries)]
    random.Random(args.seed).shuffle(deliveries)
    print(f"bot on {url} (own process); {args.deliveries} deliveries of {args.pushes} distinct pushes; "
          f"queue {args.queue}; runner {args.runner}"
          + (f" ({args.job_seconds * 1000:.0f} ms/job)" if args.runner == "sleep" else " (tiny random model)"))

    started, started_wall = time.perf_counter(), time.time()
    deadline = started + args.timeout
    try:
        results, health, health_failures, answered = asyncio.run(
            asyncio.wait_for(burst(url, deliveries, deadline), timeout=args.timeout))
        drained = time.perf_counter()
        with httpx.Client(base_url=url, timeout=10) as client:
            snapshot = client.get("/jobs").json()
            seen = client.get("/_bench/runs").json()
    except TimeoutError:
        print(f"FAIL: not finished within {args.timeout:.0f} s")
        return 1
    finally:
        parent.send("stop")
        bot.join(30)
        if bot.is_alive():
            bot.kill()

    server_jobs = snapshot["jobs"]
    statuses = collections.Counter(s for seq, _ in results for s in seq)
    final = collections.Counter(seq[-1] for seq, _ in results)
    retries = sum(len(seq) - 1 for seq, _ in results)
    latencies = [x for _, lat in results for x in lat]
    first_try = [lat[0] for _, lat in results]
    ran = {(repo, sha): n for repo, sha, n in seen["runs"]}
    distinct = {(p["repo"]["name"], p["updatedRefs"][0]["newSha"]) for p in payloads}
    push_done = [t - started_wall for _, _, t in seen["finished"]]
    idle = snapshot["queued"] == 0 and snapshot["running"] is None

    print(f"responses: {dict(sorted(statuses.items()))} (0: connection error, sent again); "
          f"final per delivery: {dict(sorted(final.items()))}; retries: {retries}")
    print(f"delivery latency (every request): {percentiles(latencies)}")
    print(f"delivery latency (first attempt): {percentiles(first_try)}")
    print(f"push checked after (from burst start): {percentiles(push_done)}")
    print(f"/healthz latency during the burst: {percentiles(health)}; failures: {len(health_failures)}")
    print(f"burst sent and answered in {answered - started:.2f} s; all jobs done in {drained - started:.2f} s; "
          f"{len(server_jobs)} jobs")

    checks = {
        "every distinct push checked exactly once": set(ran) == distinct and all(n == 1 for n in ran.values()),
        "no delivery lost (each accepted or duplicate)": sum(final[s] for s in (200, 202)) == len(deliveries),
        "job delivery counts add up": sum(j["deliveries"] for j in server_jobs) == len(deliveries),
        "no job failed": all(j["status"] == "done" for j in server_jobs) and len(server_jobs) == len(distinct),
        "queue drained": idle,
        "/healthz always 200, p99 < 1 s": (not health_failures and bool(health)
                                          and sorted(health)[int(0.99 * (len(health) - 1))] < 1.0),
    }
    ok = True
    for name, passed in checks.items():
        print(f"  {'ok  ' if passed else 'FAIL'} {name}")
        ok &= passed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
