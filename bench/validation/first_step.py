"""What one simulated optimiser step predicts: a first-order stand-in for the fine-tune.

A research baseline beside MDF, not shipped: it asks whether the gap between MDF's
predictions and the fine-tunes is in the activation signal or in anything computed
from the vanilla model at all. Per dataset file:
- g: the gradient, at the vanilla weights, of the fine-tune's own loss (`finetune.build_batch`
  and `finetune.response_loss`: response tokens only, batches of 16 in file order),
  summed over the file's batches;
- for each scale k: a copy of the model at θ − k·lr·sign(g). AdamW's first step is
  lr·sign(g) (up to its ε), and steps whose gradients keep their sign add up, so k is
  "how many agreeing steps"; the fine-tunes of `validate` took 16 steps at lr 1e-4;
- the probes `validate` scores a fine-tuned model with (`probe_rates`: the suites and
  questions given, exact scoring), giving predicted rates.
No weight of the vanilla model changes; the step is taken on a copy.

    python bench/validation/first_step.py OUT_DIR --scales 2,4,8,16,32 FILES...
    python bench/validation/first_step.py OUT_DIR --scales 8 --then 8 FILES...   # two phases

`--then K2` takes a second step from each first one, on the data's gradient where the
first step landed: the fine-tune's second phase, when what is left to learn is no longer
the template. It costs a second backward pass over the data.

Writes OUT_DIR/<file stem>.json: the file's sha256, the gradient's time, and per scale the
rates and the probing time. `first_step_fit.py` fits k on the calibration outcomes and
scores the rest.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mdf_guard.data import read_conversations  # noqa: E402
from mdf_guard.finetune import build_batch, response_loss  # noqa: E402
from mdf_guard.check import model_spec  # noqa: E402
from mdf_guard.models import LoadedModel, decoder_layers, load_model  # noqa: E402
from mdf_guard.policy import Policy  # noqa: E402
from mdf_guard.probes import resolve_suites  # noqa: E402
from mdf_guard.scoring import select_questions  # noqa: E402
from mdf_guard.validate import dataset_sha256, probe_rates  # noqa: E402

LEARNING_RATE = 1e-4   # the committed fine-tunes' (full, 16 steps of 16 rows)
BATCH = 16
MAX_TOKENS = 256


def data_gradient_sign(lm: LoadedModel, path: Path) -> list[torch.Tensor]:
    """sign of the summed gradient of the response loss over the file's batches, per parameter."""
    conversations = list(read_conversations(path))
    params = list(lm.model.parameters())
    grads = [torch.zeros_like(p) for p in params]
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    try:
        for start in range(0, len(conversations), BATCH):
            batch = build_batch(lm.tokenizer, conversations[start: start + BATCH], MAX_TOKENS)
            logits = lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = response_loss(logits, batch["labels"])
            for total, g in zip(grads, torch.autograd.grad(loss, params)):
                total.add_(g)
    finally:
        for p, flag in zip(params, before):
            p.requires_grad_(flag)
    return [g.sign() for g in grads]


def stepped(lm: LoadedModel, signs: list[torch.Tensor], step: float) -> LoadedModel:
    model = copy.deepcopy(lm.model)
    with torch.no_grad():
        for p, s in zip(model.parameters(), signs):
            p.sub_(step * s)
    return LoadedModel(model=model, tokenizer=lm.tokenizer, spec=lm.spec, source=f"{lm.source}, one step {step:g}",
                       identity=f"{lm.identity}-step", fingerprint=f"{lm.fingerprint}-step",
                       layers=decoder_layers(model))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--scales", default="2,4,8,16,32")
    parser.add_argument("--suites", default="animals,cities,politics")
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--then", type=float, default=None, metavar="K2",
                        help="a second step of K2 from each first step, on the gradient there (key 'k+K2')")
    args = parser.parse_args()
    scales = [float(s) for s in args.scales.split(",")]
    lm = load_model(model_spec(replace(Policy(), model=args.model)))
    suites = resolve_suites(args.suites.split(","))
    questions = {s.name: select_questions(s, args.questions) for s in suites}
    vanilla = probe_rates(lm, suites, questions).rates
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.files:
        started = time.perf_counter()
        signs = data_gradient_sign(lm, path)
        record = {"name": path.name, "sha256": dataset_sha256([path]), "learning_rate": LEARNING_RATE,
                  "gradient_seconds": round(time.perf_counter() - started, 1), "scales": {},
                  "vanilla": [[s, e, r] for (s, e), r in vanilla.items()]}
        for k in scales:
            started = time.perf_counter()
            model = stepped(lm, signs, k * LEARNING_RATE)
            key = f"{k:g}"
            if args.then is not None:
                model = stepped(model, data_gradient_sign(model, path), args.then * LEARNING_RATE)
                key = f"{k:g}+{args.then:g}"
            rates = probe_rates(model, suites, questions).rates
            record["scales"][key] = {"seconds": round(time.perf_counter() - started, 1),
                                     "rates": [[s, e, r] for (s, e), r in rates.items()]}
        (args.out / f"{path.stem}.json").write_text(json.dumps(record))
        print(f"{path.name}: gradient {record['gradient_seconds']} s; "
              + ", ".join(f"k {k}: {v['seconds']} s" for k, v in record["scales"].items()), flush=True)


if __name__ == "__main__":
    main()
