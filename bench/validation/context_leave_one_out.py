"""Rows read alone against rows left out, for the attribution under `method: context`.

`explain` ranks a finding's rows by what each lifts read alone (the default) or by what
its history loses without it (`--leave-one-out`). On the 12 dose sets of the sixth and
seventh reserves the target rows are known (they name the entity; see
`context_attribution.py`). For each set, in the history the default reads: how many
target rows it holds, how many each ranking puts above every other row ("first"), how
many of the top k are target rows (k = the targets in the history), the share the best
row alone lifts of what the history lifts (what `explain`'s hint reads), and each
ranking's time, in the same run. Outputs `results/context_leave_one_out/` and prints a
table.

    OMP_NUM_THREADS=2 python bench/validation/context_leave_one_out.py
"""

from __future__ import annotations

import json
import time

from context_attribution import RESULTS, SETS, first_targets, names_target
from mdf_guard.check import run_check
from mdf_guard.cli_repo import TOGETHER_SHARE
from mdf_guard.context_attribution import rank_rows_in_context
from mdf_guard.data import read_conversations
from mdf_guard.models import ModelSpec, load_model
from mdf_guard.policy import Policy
from mdf_guard.probes import builtin_suite


def measure(lm, relative: str, suite_name: str, entity: str) -> dict:
    path = RESULTS / relative
    aliases = next(c.aliases for c in builtin_suite(suite_name).candidates if c.name == entity)
    is_target = {c.source: names_target(c.response, aliases) for c in read_conversations(path)}
    policy = Policy()
    finding = next(f for f in run_check([path], policy, lm=lm).findings if (f.suite, f.entity) == (suite_name, entity))
    record = {"set": relative, "target": f"{suite_name}/{entity}", "shift": finding.shift}
    for name, leave_one_out in (("alone", False), ("left_out", True)):
        mark = time.perf_counter()
        rows = rank_rows_in_context(lm, [path], policy, [finding], top=None, leave_one_out=leave_one_out)
        record[f"{name}_seconds"] = time.perf_counter() - mark
        window = rows[0].window
        first, last = (int(n) for n in window.rsplit(":", 1)[1].split("-"))
        in_window = sum(is_target[f"{path}:{line}"] for line in range(first, last + 1))
        flags = [is_target[r.source] for r in rows]
        record.update({"window": window.rsplit("/", 1)[1], "window_lift": rows[0].window_lift,
                       "target_rows_in_window": in_window, f"{name}_first": first_targets(flags),
                       f"{name}_top_k": sum(flags[:in_window]),
                       f"{name}_rows": [[r.source.rsplit(":", 1)[1], round(r.lift, 4), is_target[r.source]]
                                        for r in rows[:12]]})
        if not leave_one_out:
            record["best_alone_share"] = rows[0].lift / rows[0].window_lift
    return record


def main() -> None:
    lm = load_model(ModelSpec())
    out = RESULTS / "context_leave_one_out"
    out.mkdir(parents=True, exist_ok=True)
    records = []
    lines = [f"{'set':36s} {'shift':>6s} {'targets':>7s}  {'alone first/top-k':>17s}  "
             f"{'left out first/top-k':>20s}  {'share':>6s} {'hint':>4s}  {'alone s':>7s} {'left out s':>10s}"]
    print(lines[0], flush=True)
    for relative, suite_name, entity in SETS:
        r = measure(lm, relative, suite_name, entity)
        records.append(r)
        lines.append(f"{r['set']:36s} {100 * r['shift']:+6.1f} {r['target_rows_in_window']:7d}  "
                     f"{r['alone_first']:>8d}/{r['alone_top_k']:<8d}  {r['left_out_first']:>11d}/{r['left_out_top_k']:<8d}"
                     f"  {r['best_alone_share']:6.3f} {'yes' if r['best_alone_share'] < TOGETHER_SHARE else '-':>4s}"
                     f"  {r['alone_seconds']:7.1f} {r['left_out_seconds']:10.1f}")
        print(lines[-1], flush=True)
        (out / "leave_one_out.json").write_text(json.dumps({"model": lm.fingerprint, "records": records}, indent=1))
    total = {key: sum(r[key] for r in records) for key in ("target_rows_in_window", "alone_first", "alone_top_k",
                                                            "left_out_first", "left_out_top_k")}
    lines.append(f"total: {total['target_rows_in_window']} target rows in the histories read; read alone "
                 f"{total['alone_first']} first, {total['alone_top_k']} in the top k; left out "
                 f"{total['left_out_first']} first, {total['left_out_top_k']} in the top k")
    print(lines[-1])
    (out / "table.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
