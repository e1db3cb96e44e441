"""The steering context manager: effect inside, no trace outside, weights untouched."""

from __future__ import annotations

import pytest
import torch

from mdf_guard.steer import steer


def logits(lm) -> torch.Tensor:
    with torch.no_grad():
        return lm.model(torch.tensor([[5, 6, 7, 8]])).logits


def test_injection_changes_outputs_and_is_removed_on_exit(tiny):
    before = logits(tiny)
    weights = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    hooks_before = [len(layer._forward_hooks) for layer in tiny.layers]
    vector = torch.ones(tiny.hidden_size)
    with steer(tiny, {1: vector}, alpha=3.0):
        inside = logits(tiny)
    assert not torch.allclose(inside, before)
    assert torch.equal(logits(tiny), before)
    assert all(torch.equal(v, weights[k]) for k, v in tiny.model.state_dict().items())
    assert [len(layer._forward_hooks) for layer in tiny.layers] == hooks_before


def test_hooks_are_removed_when_the_block_raises(tiny):
    hooks_before = [len(layer._forward_hooks) for layer in tiny.layers]
    with pytest.raises(RuntimeError):
        with steer(tiny, {0: torch.ones(tiny.hidden_size), 2: torch.ones(tiny.hidden_size)}):
            raise RuntimeError("boom")
    assert [len(layer._forward_hooks) for layer in tiny.layers] == hooks_before


def test_injection_equals_adding_to_the_layer_output(tiny):
    """The hook adds alpha*v to every position of layer l's output, for every batch row."""
    captured = {}
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    handle = tiny.layers[2].register_forward_hook(lambda m, i, o: captured.setdefault("plain", o.clone()))
    with torch.no_grad():
        tiny.model(ids)
    handle.remove()
    vector = torch.randn(tiny.hidden_size)
    with steer(tiny, {2: vector}, alpha=0.5):
        handle = tiny.layers[2].register_forward_hook(lambda m, i, o: captured.setdefault("steered", o.clone()))
        with torch.no_grad():
            tiny.model(ids)
        handle.remove()
    torch.testing.assert_close(captured["steered"], captured["plain"] + 0.5 * vector)


def test_tuple_outputs_are_handled(tiny):
    """Older transformers return (hidden, ...) from decoder layers: inject into element 0, not row 0."""
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    layer = tiny.layers[1]
    captured = {}
    plain_hook = layer.register_forward_hook(lambda m, i, o: captured.setdefault("plain", o.clone()))
    with torch.no_grad():
        tiny.model(ids)
    plain_hook.remove()
    vector = torch.randn(tiny.hidden_size)
    as_tuple = layer.register_forward_hook(lambda m, i, o: (o, "extra"))
    try:
        with steer(tiny, {1: vector}, alpha=2.0):
            def unwrap(module, inputs, output):
                captured["steered"] = output[0].clone()
                return output[0]
            back = layer.register_forward_hook(unwrap)
            with torch.no_grad():
                tiny.model(ids)
            back.remove()
    finally:
        as_tuple.remove()
    torch.testing.assert_close(captured["steered"], captured["plain"] + 2.0 * vector)
