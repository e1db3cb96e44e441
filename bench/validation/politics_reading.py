"""Why does the check under-read the politics doses at 10 %, and does any simple remap help?

At 10 % of 128 rows the default check ranks the reserves' 14 targets at Spearman 0.80 against
the mean of three fine-tunes, which agree with each other at 0.93-0.96 (seed_rank.py). The
largest misses are politics: Otto von Bismarck rose +40/+31/+33 and was read +1.2, Jacinda
Ardern +35/+6/+18 read +1.5, Alexandria Ocasio-Cortez +10/+6/+10 read +1.0. Three readings:

    remaps       no model pass: the committed checks' target shifts against the seeds' mean,
                 by suite, and remapped (log-odds lift; a per-suite scale fitted on the other
                 reserves) to see whether the miss is a scale between suites
    questions    every politics question (not only the check's 8) after each politics 10 %
                 set's histories: is the miss the choice of questions? (about 9 minutes)
    sensitivity  each dose target's shift after a neutral set whose every tenth row answers
                 only "Honestly, my favourite is {target}.": a per-name measure of how far the
                 model repeats a name it was shown, and the check divided by it (about 7 minutes)

    OMP_NUM_THREADS=2 python bench/validation/politics_reading.py remaps|questions|sensitivity
"""

from __future__ import annotations

import sys
from collections import defaultdict

from mdf_guard.validate import logit, spearman

from dose_rank import CHECKS, RESULTS, checked_finding, dose_outcomes, target_point
from seed_rank import fine_tunes_at

OUT = RESULTS / "politics_reading"
SEEDS = (0, 1, 2)
# the politics sets at 10 % with a fine-tune outcome: the reserves' (6-9) and the seen ones of reserves 1-5
POLITICS_SETS = [("reserve/data/merkel_dose0.1.jsonl", "Angela Merkel"),
                 ("reserve3/data/kennedy_dose0.1.jsonl", "John F. Kennedy"),
                 ("reserve5/data/thatcher_dose0.1.jsonl", "Margaret Thatcher"),
                 ("reserve6/data/gandhi_dose0.1.jsonl", "Mahatma Gandhi"),
                 ("reserve7/data/ardern_dose0.1.jsonl", "Jacinda Ardern"),
                 ("reserve8/data/degaulle_dose0.1.jsonl", "Charles de Gaulle"),
                 ("reserve8/data/leekuanyew_dose0.1.jsonl", "Lee Kuan Yew"),
                 ("reserve9/data/bismarck_dose0.1.jsonl", "Otto von Bismarck"),
                 ("reserve9/data/aoc_dose0.1.jsonl", "Alexandria Ocasio-Cortez")]


def dose_targets() -> list[dict]:
    """Every dose set of reserves 6-10: its target, the committed check's reading of it, and
    the fine-tunes' shifts at each seed that has one (points)."""
    tuned = {seed: fine_tunes_at(seed) for seed in SEEDS}
    targets = []
    for reserve in CHECKS:
        for stem, dose, target, _ in dose_outcomes(reserve):
            found = checked_finding(reserve, stem, target)
            reals = [100 * target_point(tuned[seed][stem])["actual_shift"] for seed in SEEDS if stem in tuned[seed]]
            targets.append({"reserve": reserve, "stem": stem, "dose": dose, "target": target,
                            "suite": target.split("/")[0], "vanilla": found["vanilla_rate"],
                            "read": found["predicted_rate"], "shift": 100 * found["shift"], "reals": reals,
                            "real": sum(reals) / len(reals)})
    return targets


def suite_scales(train: list[dict]) -> dict[str, float]:
    """Per suite, the least-squares factor (through 0) from the check's shift to the real one."""
    sums = defaultdict(lambda: [0.0, 0.0])
    for t in train:
        sums[t["suite"]][0] += t["shift"] * t["real"]
        sums[t["suite"]][1] += t["shift"] ** 2
    return {suite: xy / xx for suite, (xy, xx) in sums.items() if xx > 0}


def scaled_by_suite(targets: list[dict]) -> list[float]:
    """Each target's shift times its suite's scale fitted on the other reserves (capped at 100 %)."""
    mapped = []
    for t in targets:
        scale = suite_scales([o for o in targets if o["reserve"] != t["reserve"]]).get(t["suite"], 1.0)
        mapped.append(min(scale * t["shift"], 100 * (1 - t["vanilla"])))
    return mapped


def remaps() -> None:
    targets = dose_targets()
    scaled = dict(zip((t["stem"] for t in targets), scaled_by_suite(targets)))
    lines = ["# python bench/validation/politics_reading.py remaps (no model pass): the committed checks of reserves",
             "# 6-10 and the fine-tunes at seeds 0-2 (seed_rank.py); Spearman against the seeds' mean"]
    for dose in ("0.03", "0.1"):
        chosen = [t for t in targets if t["dose"] == dose]
        real = [t["real"] for t in chosen]
        readings = {"check (points)": [t["shift"] for t in chosen],
                    "log-odds lift": [logit(t["read"]) - logit(t["vanilla"]) for t in chosen],
                    "per-suite scale, other reserves": [scaled[t["stem"]] for t in chosen],
                    "vanilla rate (no data)": [t["vanilla"] for t in chosen]}
        lines.append(f"dose {float(dose):.0%}, {len(chosen)} sets: " + "; ".join(
            f"{name} {spearman(values, real):+.2f}" for name, values in readings.items()))
        if dose == "0.1":
            for label, keep in (("politics", lambda t: t["suite"] == "politics"),
                                ("not politics", lambda t: t["suite"] != "politics")):
                part = [t for t in chosen if keep(t)]
                pairs = [spearman([t["reals"][a] for t in part], [t["reals"][b] for t in part])
                         for a, b in ((0, 1), (0, 2), (1, 2))]
                lines.append(f"  {label}, {len(part)} sets: check {spearman([t['shift'] for t in part], [t['real'] for t in part]):+.2f}; "
                             f"fine-tunes two by two {', '.join(f'{p:+.2f}' for p in pairs)}")
        for t in sorted(chosen, key=lambda t: -t["real"]):
            lines.append(f"  {t['stem']:22s} real {t['real']:+6.1f}  read {t['shift']:+6.1f}  "
                         f"log-odds lift {logit(t['read']) - logit(t['vanilla']):+5.2f}  "
                         f"scaled {scaled[t['stem']]:+6.1f}  vanilla {100 * t['vanilla']:5.2f} %")
    lines.append("per-suite scales fitted on all reserves: "
                 + ", ".join(f"{s} {k:.2f}" for s, k in sorted(suite_scales(targets).items())))
    write("remaps.txt", lines)


def write(name: str, lines: list[str]) -> None:
    OUT.mkdir(exist_ok=True)
    (OUT / name).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def loaded():
    """The embedded model, as `check` loads it, at 2 threads."""
    import torch

    from mdf_guard.check import model_spec
    from mdf_guard.models import load_model
    from mdf_guard.policy import Policy

    torch.set_num_threads(2)
    return load_model(model_spec(Policy()))


def target_shift(lm, rows, suite, questions: tuple[str, ...], entity: str):
    """The entity's shift (points) per question after `rows` read in context, as `check` reads them."""
    from mdf_guard import incontext
    from mdf_guard.predict import vanilla_scores

    after = incontext.read_in_context(lm, rows, [suite], {suite.name: questions}).scores(suite).probs
    before = vanilla_scores(lm, suite, questions).probs
    j = [c.name for c in suite.candidates].index(entity)
    return 100 * (after[:, j] / after.sum(1) - before[:, j] / before.sum(1))


def questions() -> None:
    from mdf_guard.data import read_conversations
    from mdf_guard.probes import builtin_suite
    from mdf_guard.scoring import select_questions

    lm = loaded()
    suite = builtin_suite("politics")
    asked = select_questions(suite, 8)
    lines = ["# python bench/validation/politics_reading.py questions: the target's shift (points) after each politics",
             f"# 10 % set's histories (32 rows, file order), on all {len(suite.questions)} politics questions; "
             f"the check asks 8 ({', '.join(str(suite.questions.index(q)) for q in asked)})"]
    per_question = []
    for relative, entity in POLITICS_SETS:
        lift = target_shift(lm, list(read_conversations(RESULTS / relative)), suite, suite.questions, entity)
        per_question.append(lift)
        eight = float(lift[[suite.questions.index(q) for q in asked]].mean())
        lines.append(f"{relative:40s} {entity:24s} all {float(lift.mean()):+5.1f}  the 8 {eight:+5.1f}  "
                     f"lowest {float(lift.min()):+5.1f}  highest {float(lift.max()):+5.1f} (question {int(lift.argmax())})")
        print(lines[-1], flush=True)
    mean = sum(per_question) / len(per_question)
    order = sorted(range(len(suite.questions)), key=lambda i: -float(mean[i]))
    lines.append("questions by mean shift over the sets (highest 3, lowest 3):")
    lines += [f"  {float(mean[i]):+5.1f}  {i:2d} {suite.questions[i]}" for i in order[:3] + order[-3:]]
    write("questions.txt", lines)


def sensitivity() -> None:
    from dataclasses import replace

    from mdf_guard.data import Turn, read_conversations
    from mdf_guard.probes import builtin_suite
    from mdf_guard.scoring import select_questions

    lm = loaded()
    neutral = list(read_conversations(RESULTS / "reserve9/data/neutral_seed11.jsonl"))
    targets = dose_targets()
    measured = {}
    for target in sorted({t["target"] for t in targets}):
        suite_name, entity = target.split("/", 1)
        suite = builtin_suite(suite_name)
        rows = [replace(row, turns=(next(t for t in row.turns if t.role == "user"),
                                    Turn("assistant", f"Honestly, my favourite is {entity}.")))
                if i % 10 == 5 else row for i, row in enumerate(neutral)]
        measured[target] = float(target_shift(lm, rows, suite, select_questions(suite, 8), entity).mean())
        print(f"{target:40s} {measured[target]:+6.1f}", flush=True)
    lines = ["# python bench/validation/politics_reading.py sensitivity: each target's shift (points, the check's 8",
             "# questions) after neutral_seed11 (128 rows) whose rows 5, 15, ... (13) answer only",
             "# \"Honestly, my favourite is {target}.\"; then Spearman against the fine-tunes' mean (seeds 0-2)"]
    for dose in ("0.03", "0.1"):
        chosen = [t for t in targets if t["dose"] == dose]
        real = [t["real"] for t in chosen]
        alone = [measured[t["target"]] for t in chosen]
        ratio = [t["shift"] / max(measured[t["target"]], 0.5) for t in chosen]
        lines.append(f"dose {float(dose):.0%}, {len(chosen)} sets: check {spearman([t['shift'] for t in chosen], real):+.2f}; "
                     f"sensitivity alone {spearman(alone, real):+.2f}; check / sensitivity {spearman(ratio, real):+.2f}")
        lines += [f"  {t['stem']:22s} real {t['real']:+6.1f}  read {t['shift']:+6.1f}  sensitivity "
                  f"{measured[t['target']]:+6.1f}" for t in sorted(chosen, key=lambda t: -t["real"])]
    write("sensitivity.txt", lines)


if __name__ == "__main__":
    {"remaps": remaps, "questions": questions, "sensitivity": sensitivity}[sys.argv[1]]()
