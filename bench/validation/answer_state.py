"""Where the rows' effect in context lives: can a residual-stream vector carry it?

Why: the in-context baseline hears a 10 % dose that every injected MDF line misses
(README: "The rows in context"). If what the rows do in context were a state of the
residual stream at the answer position, an injection could carry it, and a better Δ would
close the gap. This measures it directly, per history and question, with nothing averaged
that could wash it out:

- a history: one of the set's 32-row chunks (file order, system turns dropped), as
  `incontext.context_rates` builds it; the target's suite's first 4 questions after it;
- h_l(history, q) and h_l(q): the residual after decoder layer l at the prompt's last
  token (the one that predicts the answer) with and without the history;
- patched at l: the prompt without the history, with h_l(history, q) − h_l(q) added at
  layer l's output at that one position, and nowhere else (exact activation patching of
  the answer state, the most any vector at layer l can carry for that question);
- the number printed: the probability of the target's first answer token after the
  suite's answer prefix, averaged over histories and questions (vanilla, in context, and
  patched at each layer).

    OMP_NUM_THREADS=2 python bench/validation/answer_state.py LAYERS FILE=SUITE/ENTITY...

LAYERS: comma-separated decoder layers below the last, e.g. 5,10,15,20,25,28 (the model's
last hidden state is read after its final norm, so it is no residual to patch).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mdf_guard.data import read_conversations  # noqa: E402
from mdf_guard.incontext import CHUNK_ROWS, as_history  # noqa: E402
from mdf_guard.models import LoadedModel, ModelSpec, load_model  # noqa: E402
from mdf_guard.probes import ProbeSuite, resolve_suites  # noqa: E402
from mdf_guard.scoring import _prompt_ids, select_questions  # noqa: E402

QUESTIONS = 4


def last_position(lm: LoadedModel, ids: list[int], token: int, patch: tuple[int, torch.Tensor] | None = None
                  ) -> tuple[float, list[torch.Tensor]]:
    """P(token) at the prompt's last position, and every layer's residual there; `patch`
    (layer, vector) adds the vector at that layer's output, at that position only."""
    handle = None
    if patch is not None:
        layer, vector = patch

        def hook(module, inputs, output):
            hidden = output if isinstance(output, torch.Tensor) else output[0]
            hidden[:, -1] += vector.to(hidden.dtype)
            return output

        handle = lm.layers[layer].register_forward_hook(hook)
    try:
        with torch.inference_mode():
            out = lm.model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    finally:
        if handle is not None:
            handle.remove()
    prob = float(out.logits[0, -1].float().softmax(-1)[token])
    return prob, [h[0, -1] for h in out.hidden_states[1:]]   # hidden_states[0] is the embedding


def first_token(lm: LoadedModel, entity: str) -> int:
    """The target's first token where it follows the answer prefix (" fox" after "... is the")."""
    return lm.tokenizer(" " + entity, add_special_tokens=False).input_ids[0]


def measure(lm: LoadedModel, path: Path, suite: ProbeSuite, entity: str, layers: list[int]) -> dict[str, float]:
    token = first_token(lm, entity)
    rows = list(read_conversations(path))
    sums: dict[str, float] = {}
    count = 0
    for start in range(0, len(rows), CHUNK_ROWS):
        history = as_history(rows[start: start + CHUNK_ROWS])
        for question in select_questions(suite, QUESTIONS):
            bare_ids, in_context_ids = _prompt_ids(lm, suite, question), _prompt_ids(lm, suite, question, history)
            bare, bare_states = last_position(lm, bare_ids, token)
            in_context, context_states = last_position(lm, in_context_ids, token)
            values = {"vanilla": bare, "in context": in_context}
            for layer in layers:
                patch = (layer, context_states[layer] - bare_states[layer])
                values[f"patched at {layer}"] = last_position(lm, bare_ids, token, patch)[0]
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + value
            count += 1
    return {key: total / count for key, total in sums.items()}


def main(layers: str, *targets: str) -> None:
    torch.set_num_threads(2)
    lm = load_model(ModelSpec(name="embedded"))
    chosen = [int(layer) for layer in layers.split(",")]
    if max(chosen) >= lm.num_layers - 1:
        raise SystemExit(f"layers must be below {lm.num_layers - 1}: the last hidden state is after the final norm")
    print(f"P(target's first answer token) at the answer position, % (mean over {CHUNK_ROWS}-row histories x "
          f"{QUESTIONS} questions); patched at l: the history's change of the residual after layer l, added "
          "there at that position only")
    for target in targets:
        file, suite_entity = target.split("=")
        suite_name, entity = suite_entity.split("/")
        suite = resolve_suites([suite_name])[0]
        result = measure(lm, Path(file), suite, entity, chosen)
        print(f"{Path(file).stem} ({entity}): " + ", ".join(f"{k} {100 * v:.1f}" for k, v in result.items()),
              flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
