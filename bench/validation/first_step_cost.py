"""Cost of first_step.py's prediction beside a check and the fine-tune it stands in for, in one run.

On one dataset file, in one process, no cache, each timed from the loaded model:
- `mdf-guard check` as `validate` runs it (the embedded profile, animals, cities and
  politics, 4 questions; controls only where needed);
- the first step: the vanilla probes, the data gradient, one copy at θ − 16·lr·sign(g),
  its probes;
- the fine-tune of the committed runs (full, lr 1e-4, 2 epochs, batches of 16), without
  its probes, as `validate` times it.
Prints each time and the ratios to the fine-tune.

    python bench/validation/first_step_cost.py FILE
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from first_step import LEARNING_RATE, data_gradient_sign, stepped  # noqa: E402

from mdf_guard.check import model_spec, run_check  # noqa: E402
from mdf_guard.data import read_conversations  # noqa: E402
from mdf_guard.finetune import FinetuneSettings, finetune  # noqa: E402
from mdf_guard.models import load_model  # noqa: E402
from mdf_guard.policy import MDF, Policy  # noqa: E402
from mdf_guard.probes import resolve_suites  # noqa: E402
from mdf_guard.scoring import select_questions  # noqa: E402
from mdf_guard.validate import probe_rates  # noqa: E402

SCALE = 16.0   # fitted on the calibration outcomes by first_step_fit.py


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main(path: str) -> None:
    data = Path(path)
    policy = replace(Policy(), method=MDF, suites=("animals", "cities", "politics"), questions_per_suite=4)
    lm = load_model(model_spec(policy))
    os.environ["MDF_GUARD_CACHE"] = tempfile.mkdtemp(prefix="mdf-guard-first-step-cost-")
    suites = resolve_suites(policy.suites)
    questions = {s.name: select_questions(s, policy.questions_per_suite) for s in suites}

    check_s, report = timed(lambda: run_check([data], policy, lm=lm))
    step_s, _ = timed(lambda: (probe_rates(lm, suites, questions),   # vanilla too, as the cold check does
                               probe_rates(stepped(lm, data_gradient_sign(lm, data), SCALE * LEARNING_RATE),
                                           suites, questions)))
    settings = FinetuneSettings(method="full", learning_rate=LEARNING_RATE, epochs=2, batch_size=16, seed=0)
    tune_s, _ = timed(lambda: finetune(lm, list(read_conversations(data)), settings))
    print(f"{data.name}: check {check_s:.1f} s ({report.verdict}), first step {step_s:.1f} s, "
          f"fine-tune {tune_s:.1f} s")
    print(f"  check / fine-tune = {check_s / tune_s:.2f}; first step / fine-tune = {step_s / tune_s:.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
