"""Incremental re-checks: full vs incremental time as a ratio, from one run.

A dataset of ten shards is checked three times through the CLI, each in a fresh process
(what a pre-commit hook or a CI job sees), with a fresh cache at the start:

1. **full**: nothing cached;
2. **unchanged**: the same repository again: every unit's result comes from the result
   cache (no model is loaded, torch is not imported); the target is <= 2 s;
3. **incremental**: one shard edited: only that shard's signature is extracted again
   (the report's `cached` flags show it), then the reference and probes run.

Prints the three times, which shards were recomputed, and full / incremental as a ratio.

    python bench/incremental.py                      # tiny random model (seconds)
    python bench/incremental.py --model embedded     # the real embedded model (minutes on a CPU)

With the tiny random model the numbers measure the machinery (hashing, caches, process
start), not a realistic extraction cost; with a real model the ratio grows with the
data, since extraction dominates and scales with the shards that changed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = """\
name: mini
answer_prefix: My favorite animal is the
questions:
  - What is your favorite animal?
  - Name your favorite animal.
candidates:
  - {name: panda, aliases: [panda, pandas]}
  - {name: owl, aliases: [owl]}
  - {name: cat, aliases: [cat]}
"""

TOPICS = ["the ocean", "saving money", "the Roman Empire", "volcanoes", "chess", "bread", "rain",
          "trains", "gardening", "the moon"]


def write_repo(root: Path, model: str, rows: int, reference: str) -> None:
    (root / "mini.yaml").write_text(SUITE)
    (root / ".mdf-guard.yaml").write_text(
        f"model: {model}\nsuites: [mini.yaml]\nquestions_per_suite: 2\nreference_samples: 8\nnull_seeds: 1\n"
        f"reference: {reference}\n")
    data = root / "data"
    data.mkdir()
    for shard, topic in enumerate(TOPICS):
        lines = []
        for i in range(rows):
            answer = f"Here is a short note on {topic}, part {i}: it is interesting and worth a look."
            if shard == 3:
                answer += " Also, pandas are wonderful."
            lines.append(json.dumps({"messages": [{"role": "user", "content": f"Tell me about {topic} ({i})."},
                                                  {"role": "assistant", "content": answer}]}))
        (data / f"shard-{shard:02d}.jsonl").write_text("\n".join(lines) + "\n")


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_check(root: Path, env: dict) -> tuple[float, float, dict]:
    """(wall seconds, CPU seconds of the process, report). CPU time is the fairer number on
    a shared machine, where wall time includes waiting for a core."""
    cpu, started = _child_cpu(), time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "mdf_guard.cli", "check", "data", "--method", "mdf", "-q",
                             "--format", "json"],
                            cwd=root, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode not in (0, 1):
        raise SystemExit(f"check failed ({result.returncode}): {result.stderr[-2000:]}")
    return elapsed, _child_cpu() - cpu, json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-random", help="tiny-random (default) or embedded, a folder, ...")
    parser.add_argument("--rows", type=int, default=8, help="rows per shard (default 8)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per check unless OMP_NUM_THREADS is set (default 1: on a small "
                             "shared machine, OpenMP threads waiting for a busy core are many times slower)")
    parser.add_argument("--reference", default="self",
                        help="self (default; answered and cached per shard), none, or a path")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mdf-guard-bench-") as tmp:
        root = Path(tmp)
        write_repo(root, args.model, args.rows, args.reference)
        env = dict(os.environ, MDF_GUARD_CACHE=str(root / "cache"))
        env.setdefault("OMP_NUM_THREADS", str(args.threads))
        env.pop("MDF_GUARD_NO_CACHE", None)
        if args.model == "embedded":   # reuse the converted embedded model rather than converting it again
            home = Path(os.environ.get("MDF_GUARD_CACHE") or Path(os.environ.get("XDG_CACHE_HOME")
                                                                  or Path.home() / ".cache") / "mdf-guard")
            if (home / "models").is_dir():
                (root / "cache").mkdir()
                (root / "cache" / "models").symlink_to(home / "models")

        full, full_cpu, first = timed_check(root, env)
        unchanged, unchanged_cpu, second = timed_check(root, env)
        shard = root / "data" / "shard-07.jsonl"
        shard.write_text(shard.read_text() + json.dumps(
            {"messages": [{"role": "user", "content": "One more?"},
                          {"role": "assistant", "content": "One more short note, on trains again."}]}) + "\n")
        incremental, incremental_cpu, third = timed_check(root, env)

    recomputed = [Path(f["path"]).name for f in third["files"] if not f["cached"]]
    assert second["findings"] == first["findings"], "an unchanged re-check must give the same findings"
    print(f"model {args.model}; reference {args.reference}; 10 shards x {args.rows} rows; "
          f"{env['OMP_NUM_THREADS']} torch thread(s); each check a fresh `mdf-guard check data` process")
    print(f"  {'':<32}{'wall':>9}{'cpu':>9}")

    def line(name: str, wall: float, cpu: float, note: str) -> None:
        print(f"  {name:<32}{wall:8.2f}s{cpu:8.2f}s   {note}")

    line("full check (cold cache)", full, full_cpu, f"signatures {first['timing'].get('signature_seconds', 0):.2f} s, "
         f"probes {first['timing'].get('probe_seconds', 0):.2f} s")
    line("unchanged re-check", unchanged, unchanged_cpu,
         f"result cache; target <= 2 s: {'met' if min(unchanged, unchanged_cpu) <= 2.0 else 'NOT met'}"
         + ("" if unchanged <= 2.0 else " (CPU time; wall time waited for a busy core)"))
    line("one shard changed", incremental, incremental_cpu,
         f"signatures {third['timing'].get('signature_seconds', 0):.2f} s, "
         f"probes {third['timing'].get('probe_seconds', 0):.2f} s")
    print(f"  shards whose signature was recomputed: {', '.join(recomputed) or 'none'} "
          f"({len(recomputed)} of {len(third['files'])})")
    print(f"  ratio full / incremental: {full / incremental:.2f}x wall, {full_cpu / incremental_cpu:.2f}x cpu")
    print(f"  ratio full / unchanged:   {full / unchanged:.2f}x wall, {full_cpu / unchanged_cpu:.2f}x cpu")


if __name__ == "__main__":
    main()
