"""Inject vectors into a model's residual stream for the duration of a `with` block.

Like the steering-vectors library: forward hooks add alpha * v_l to the output of
decoder layer l, nothing touches the weights, and the hooks are removed on exit, also
when the block raises.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Mapping

import torch

from .kernels import inject_
from .models import LoadedModel


@contextmanager
def steer(lm: LoadedModel, vectors: Mapping[int, torch.Tensor], alpha: float = 1.0) -> Iterator[None]:
    """Add `alpha * vectors[l]` to decoder layer l's output at every position.

    Every position, prompt included, matches how the fine-tuned model would differ
    from the vanilla one: everywhere, not only while it answers.
    """
    handles = []
    try:
        for layer, vector in vectors.items():
            handles.append(lm.layers[layer].register_forward_hook(_adder(vector, alpha, lm)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _adder(vector: torch.Tensor, alpha: float, lm: LoadedModel):
    vector = vector.to(device=lm.device, dtype=torch.float32)

    def hook(module, inputs, output):
        # Decoder layers return a tensor in recent transformers and a tuple in older
        # ones; `output[0]` on a tensor would silently take batch row 0.
        hidden = output if isinstance(output, torch.Tensor) else output[0]
        inject_(hidden, None, alpha, vector)
        return output

    return hook
