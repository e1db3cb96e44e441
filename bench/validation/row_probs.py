"""Each row's steered answers, kept per row, so that a rule over them is fitted without a model run.

The row mixture's records (`row_mixture.py`) keep only the mixture's sums, so every new rule
over rows meant another hour of probing. A diagnostic on `kennedy_dose0.3` (2026-12-06,
reserve3, seen) showed why a per-row view matters: at α 4 the 38 Kennedy rows keep a median
0.1 % of the politics answer mass, yet 33 % of what they still answer is Kennedy; the
template rows keep 0.0 % and name Kennedy 0.5 % of the time. The mixture with a vanilla
prior shrinks that suite to nothing. Whether a rule can use the conditional answer without
the silent suites' false findings is a question for these files, not for more probing.

Writes OUT_DIR/<file stem>.npz: for each suite, `<suite>/vanilla` [questions, candidates]
(the vanilla model's raw candidate probabilities per question) and `<suite>/a<α>` [rows,
candidates] (row i asked question i mod 4 with α·Δ_i added to layer 10's output, exactly as
`row_mixture.per_row_probs`), and `meta` (JSON: dataset, sha256, rows, each suite's
candidate names, the reading's and each α's probing seconds). `read_probs` gives the meta
with the arrays under "probs", a record `first_step_fit.records_for` reads as it reads JSON. Prints only timings, so that a
reserve can be run before its rule is fixed without its numbers being seen.

    OMP_NUM_THREADS=1 python bench/validation/row_probs.py THREADS OUT_DIR ALPHAS FILES...
    python bench/validation/row_probs.py records RECORD_DIR FILES.npz...

The second form writes the row mixture's record of each file (`row_mixture.py`'s format, its
α only), so that `row_mixture_prior.py` scores sets whose rows were probed only here.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from _diagnostics import row_deltas  # first: it puts the repository on sys.path
from row_mixture import QUESTIONS, SUITES, mixture_shift, per_row_probs, write_record
from mdf_guard.data import read_conversations
from mdf_guard.models import ModelSpec, load_model
from mdf_guard.policy import Policy
from mdf_guard.predict import vanilla_scores
from mdf_guard.probes import resolve_suites
from mdf_guard.scoring import select_questions
from mdf_guard.validate import dataset_sha256


def read_probs(path: Path) -> dict:
    """One file written by this script: its meta record, with the arrays under "probs"."""
    with np.load(path) as archive:
        return {**json.loads(str(archive["meta"])), "probs": {k: archive[k] for k in archive.files if k != "meta"}}


def per_row(vanilla: np.ndarray, rows: int) -> np.ndarray:
    """Row i's vanilla probabilities: those of question i mod questions, the question it was asked."""
    return vanilla[np.arange(rows) % len(vanilla)]


def mixture_record(record: dict) -> dict:
    """The row mixture's record of these rows: per α, each candidate's m(c) − v(c) and each
    suite's answer mass, as `row_mixture.main` computes them from the same probabilities."""
    scales = {}
    for alpha, seconds in record["probing_seconds"].items():
        shifts, mass = [], {}
        for suite, names in record["candidates"].items():
            injected = record["probs"][f"{suite}/a{alpha}"].astype(np.float64)
            vanilla = per_row(record["probs"][f"{suite}/vanilla"].astype(np.float64), len(injected))
            shift = mixture_shift(injected, vanilla)
            mass[suite] = float(injected.sum() / vanilla.sum())
            shifts += [[suite, name, float(s)] for name, s in zip(names, shift, strict=True)]
        scales[alpha] = {"shifts": shifts, "answer_mass": mass, "seconds": seconds}
    return {"dataset": record["dataset"], "sha256": record["sha256"], "rows": record["rows"],
            "reading_seconds": record["reading_seconds"], "scales": scales}


def write_records(record_dir: str, *files: str) -> None:
    """Adds each file's record to RECORD_DIR (`row_mixture.write_record` keeps the α already there)."""
    Path(record_dir).mkdir(parents=True, exist_ok=True)
    for path in map(Path, files):
        write_record(Path(record_dir) / f"{path.stem}.json", mixture_record(read_probs(path)))


def main(threads: str, out_dir: str, alphas: str, *files: str) -> None:
    torch.set_num_threads(int(threads))
    alphas = [float(a) for a in alphas.split(",")]
    lm = load_model(ModelSpec(name="embedded"))
    suites = resolve_suites(list(SUITES))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for path in map(Path, files):
        start = time.time()
        deltas = row_deltas(lm, list(read_conversations(path)), Policy(reference="self"))
        meta = {"dataset": path.name, "sha256": dataset_sha256([path]), "rows": len(deltas),
                "reading_seconds": round(time.time() - start, 1), "probing_seconds": {},
                "candidates": {s.name: [c.name for c in s.candidates] for s in suites}}
        arrays = {}
        for suite in suites:
            questions = select_questions(suite, QUESTIONS)
            arrays[f"{suite.name}/vanilla"] = vanilla_scores(lm, suite, questions).probs.numpy().astype(np.float32)
        for alpha in alphas:
            began = time.time()
            for suite in suites:
                probs = per_row_probs(lm, suite, select_questions(suite, QUESTIONS), deltas, alpha)
                arrays[f"{suite.name}/a{alpha:g}"] = probs.numpy().astype(np.float32)
            meta["probing_seconds"][f"{alpha:g}"] = round(time.time() - began, 1)
        np.savez_compressed(out / f"{path.stem}.npz", meta=np.array(json.dumps(meta)), **arrays)
        print(f"{path.stem}: reading {meta['reading_seconds']:.0f} s, probing "
              f"{' '.join(f'a{k} {v:.0f} s' for k, v in meta['probing_seconds'].items())}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "records":
        write_records(*sys.argv[2:])
    else:
        main(*sys.argv[1:])
