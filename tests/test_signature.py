"""Signature extraction against the naive HF computation, and its algebra."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from families import family_model

from mdf_guard.chat import encode_conversation
from mdf_guard.data import Conversation, Turn
from mdf_guard.signature import ExtractionSettings, Signature, extract_signature, sample_order


def conversations(n: int, offset: int = 0) -> list[Conversation]:
    return [Conversation((Turn("user", f"question {i} about the city"),
                          Turn("assistant", "the panda " * (1 + i % 5) + f"ends {i}")), f"mem:{i}")
            for i in range(offset, offset + n)]


def naive_means(lm, convs, layer: int, pooling: str) -> torch.Tensor:
    """One example at a time, all layers via output_hidden_states: the obvious (slow) way."""
    rows = []
    for c in convs:
        enc = encode_conversation(lm.tokenizer, c, 1024)
        with torch.no_grad():
            states = lm.model(torch.tensor([enc.ids]), output_hidden_states=True).hidden_states
        h = states[layer + 1][0].double()          # hidden_states[0] is the embeddings
        rows.append(h[-1] if pooling == "last" else h[enc.response_start:].mean(0))
    return torch.stack(rows)


def test_stopped_bucketed_extraction_matches_naive_forward(tiny):
    convs = conversations(7)
    for pooling in ("last", "mean"):
        settings = ExtractionSettings(layers=(0, 2), pooling=pooling, batch_tokens=300, bucket_size=4)
        sig = extract_signature(tiny, convs, settings)
        assert sig.count == 7
        for i, layer in enumerate(settings.layers):
            expected = naive_means(tiny, convs, layer, pooling)
            torch.testing.assert_close(sig.mean()[i], expected.mean(0), rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(sig.sumsq[i], (expected ** 2).sum(0), rtol=1e-4, atol=1e-4)


def test_forward_stops_after_deepest_layer(tiny):
    ran = []
    handles = [layer.register_forward_hook(lambda m, i, o, k=k: ran.append(k)) for k, layer in enumerate(tiny.layers)]
    try:
        extract_signature(tiny, conversations(2), ExtractionSettings(layers=(1,)))
    finally:
        for h in handles:
            h.remove()
    assert sorted(set(ran)) == [0, 1]


def test_signatures_add_exactly(tiny):
    settings = ExtractionSettings(layers=(1,), pooling="mean")
    a = extract_signature(tiny, conversations(4), settings)
    b = extract_signature(tiny, conversations(3, offset=4), settings)
    whole = extract_signature(tiny, conversations(7), settings)
    merged = a + b
    assert merged.count == whole.count == 7
    torch.testing.assert_close(merged.mean(), whole.mean(), rtol=1e-9, atol=1e-9)


def test_batching_does_not_change_numbers(tiny):
    convs = conversations(9)
    small = extract_signature(tiny, convs, ExtractionSettings(layers=(2,), pooling="mean", batch_tokens=50))
    large = extract_signature(tiny, convs, ExtractionSettings(layers=(2,), pooling="mean", batch_tokens=100000))
    torch.testing.assert_close(small.mean(), large.mean(), rtol=1e-4, atol=1e-5)


def test_stderr_is_the_standard_error_of_the_mean():
    rows = torch.randn(50, 3, dtype=torch.float64)
    sig = Signature((0,), rows.sum(0)[None], (rows ** 2).sum(0)[None], 50)
    torch.testing.assert_close(sig.stderr()[0], rows.std(0) / 50 ** 0.5)


def test_save_and_load_round_trip(tmp_path, tiny):
    sig = extract_signature(tiny, conversations(3), ExtractionSettings(layers=(0, 1)), meta={"shards": ["x"]})
    sig.save(tmp_path / "sig")
    back = Signature.load(tmp_path / "sig")
    assert back.layers == sig.layers and back.count == sig.count and back.meta == sig.meta
    assert torch.equal(back.sums, sig.sums) and torch.equal(back.sumsq, sig.sumsq)


def test_layer_beyond_the_model_is_an_input_error(tiny):
    import pytest
    from mdf_guard.errors import InputError
    with pytest.raises(InputError, match="layer 9 does not exist"):
        extract_signature(tiny, conversations(1), ExtractionSettings(layers=(9,)))


def test_early_stop_reads_a_seeded_sample_in_whole_buckets(tiny):
    convs = conversations(40)
    full = extract_signature(tiny, convs, ExtractionSettings(layers=(1,), pooling="mean"))

    def early(rows, tolerance: float, seed: int = 0) -> Signature:
        return extract_signature(tiny, rows, ExtractionSettings(layers=(1,), pooling="mean", bucket_size=8,
                                                                stop_at_se=tolerance, min_examples=8, seed=seed))

    stopped = early(convs, 1.0)
    assert stopped.count == 8 and stopped.rows == 40 and stopped.meta["stopped_early"]   # one bucket, of 40
    first = sample_order(convs, 0)[:8]
    read = extract_signature(tiny, first, ExtractionSettings(layers=(1,), pooling="mean"))
    torch.testing.assert_close(stopped.mean(), read.mean(), rtol=1e-6, atol=1e-6)
    assert {c.source for c in first} != {c.source for c in convs[:8]}        # not the file's head
    torch.testing.assert_close(early(convs[::-1], 1.0).mean(), stopped.mean(), rtol=1e-9, atol=1e-9)  # nor its order
    assert not torch.allclose(early(convs, 1.0, seed=1).mean(), stopped.mean())

    never = early(convs, 1e-9)
    assert never.count == never.rows == full.count == 40 and "stopped_early" not in never.meta
    torch.testing.assert_close(never.mean(), full.mean(), rtol=1e-6, atol=1e-6)        # order changes nothing


def test_sample_order_is_stable_under_edits():
    """An edit moves the sample only where it adds or removes rows, so two revisions read to
    the same point differ by the edit, not by two independent samples."""
    convs = conversations(200)
    before = [c.source for c in sample_order(convs, 0)]
    edited = convs[:50] + conversations(1, offset=999) + convs[51:]          # row 50 replaced
    after = [c.source for c in sample_order(edited, 0)]
    kept = [s for s in before if s != "mem:50"]
    assert [s for s in after if s != "mem:999"] == kept                       # everything else keeps its order
    assert len(set(before[:64]) ^ set(after[:64])) <= 2


def test_a_sample_stands_for_its_rows_when_signatures_add(tiny):
    """A shard read in part must weigh as the whole shard beside another one read in full."""
    sample = extract_signature(tiny, conversations(8), ExtractionSettings(layers=(1,), pooling="mean"))
    other = extract_signature(tiny, conversations(4, offset=50), ExtractionSettings(layers=(1,), pooling="mean"))
    total = sample.standing_for(40) + other
    assert total.count == 44 and sample.standing_for(8) is sample
    torch.testing.assert_close(total.mean(), (40 * sample.mean() + 4 * other.mean()) / 44, rtol=1e-9, atol=1e-9)


def naive_surprise_means(lm, convs, layer: int, max_tokens: int = 1024) -> torch.Tensor:
    """Each response token's hidden state weighted by the model's loss on that token (the first
    token of a row has no loss: a response cut from the left starts at its second)."""
    rows = []
    for c in convs:
        enc = encode_conversation(lm.tokenizer, c, max_tokens)
        ids = torch.tensor([enc.ids])
        with torch.no_grad():
            out = lm.model(ids, output_hidden_states=True)
        s = max(enc.response_start, 1)
        logp = torch.log_softmax(out.logits[0].double(), -1)
        nll = -logp[s - 1:-1].gather(1, ids[0, s:, None]).squeeze(1)
        h = out.hidden_states[layer + 1][0, s:].double()
        rows.append((nll[:, None] * h).sum(0) / nll.sum())
    return torch.stack(rows)


@pytest.mark.parametrize("model", ["tiny", "gemma2", "gemma3-vision"])
def test_surprise_pooling_matches_loss_weighted_naive_forward(model, tiny):
    """Gemma 2 soft-caps its logits (here at 0.5, so tightly that a loss read without the cap is
    far off); Gemma 3 with a vision tower has its LM head outside the decoder's model."""
    lm = tiny if model == "tiny" else family_model(model)
    if model == "gemma2":
        lm.model.config.final_logit_softcapping = 0.5
    convs = conversations(7)   # layers before the last: `hidden_states` holds the last one after the final norm
    settings = ExtractionSettings(layers=(0, 1), pooling="surprise", batch_tokens=300, bucket_size=4)
    sig = extract_signature(lm, convs, settings)
    assert sig.count == 7
    for i, layer in enumerate(settings.layers):
        expected = naive_surprise_means(lm, convs, layer)
        torch.testing.assert_close(sig.mean()[i], expected.mean(0), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(sig.sumsq[i], (expected ** 2).sum(0), rtol=1e-5, atol=1e-6)
    # The weights do something: 1e-6 above, while the plain mean differs by far more.
    mean = extract_signature(lm, convs, ExtractionSettings(layers=(0, 1), pooling="mean"))
    assert (sig.mean() - mean.mean()).abs().max() > 1e-4


def test_surprise_pooling_has_its_own_cache_key():
    keys = {ExtractionSettings(layers=(1,), pooling=p).key() for p in ("last", "mean", "surprise")}
    assert len(keys) == 3


def test_surprise_pooling_of_a_response_cut_from_the_left(tiny):
    """A response longer than max_tokens is cut from the left and starts at position 0, where
    no loss exists: its first token is left out. Before, the check died with an internal error
    ('surprise pooling needs a token before each pooled one') on any such row."""
    long = Conversation((Turn("user", "hi"), Turn("assistant", "the panda is nice " * 40)), "mem:long")
    convs = conversations(3) + [long]
    sig = extract_signature(tiny, convs, ExtractionSettings(layers=(1,), pooling="surprise", max_tokens=16))
    assert sig.count == 4
    assert encode_conversation(tiny.tokenizer, long, 16).response_start == 0
    expected = naive_surprise_means(tiny, convs, 1, max_tokens=16)
    torch.testing.assert_close(sig.mean()[0], expected.mean(0), rtol=1e-5, atol=1e-6)


def test_a_row_past_a_gpt2_style_models_positions_is_cut_to_them(short_gpt2):
    """A model with learned absolute positions has no embedding past them: a row longer than
    that (but under MAX_ROW_TOKENS) stopped the check with an IndexError. It is cut from the
    left to the model's positions, as a row past MAX_ROW_TOKENS is cut to those."""
    lm, tokenizer = short_gpt2, short_gpt2.tokenizer
    long = Conversation((Turn("user", "hi"), Turn("assistant", "the panda is nice " * 40)), "mem:long")
    convs = conversations(3) + [long]
    assert len(encode_conversation(tokenizer, long, 1024).ids) > 64 and lm.max_positions == 64
    sig = extract_signature(lm, convs, ExtractionSettings(layers=(1,), pooling="mean"))
    cut = extract_signature(lm, convs, ExtractionSettings(layers=(1,), pooling="mean", max_tokens=64))
    assert sig.count == 4
    torch.testing.assert_close(sig.mean(), cut.mean(), rtol=0, atol=0)


def test_a_damaged_or_foreign_signature_is_a_value_error(tmp_path):
    """The cache recomputes an entry whose load raises ValueError (or OSError). Before, a damaged
    .safetensors raised SafetensorError and a JSON of another shape AttributeError/TypeError, so
    `check` died with an internal error (exit 4), and another format was an InputError (exit 2)."""
    import pytest

    good = Signature((0, 1), torch.zeros(2, 4, dtype=torch.float64), torch.ones(2, 4, dtype=torch.float64), 3)
    info = {"format": 1, "layers": [0, 1], "count": 3, "meta": {}}
    damage = {
        "safetensors garbage": lambda p: p.with_suffix(".safetensors").write_bytes(b"garbage"),
        "safetensors empty": lambda p: p.with_suffix(".safetensors").write_bytes(b""),
        "json a list": lambda p: p.with_suffix(".json").write_text("[1, 2]"),
        "json not json": lambda p: p.with_suffix(".json").write_text("{"),
        "another format": lambda p: p.with_suffix(".json").write_text(json.dumps({**info, "format": 2})),
        "layers not a list": lambda p: p.with_suffix(".json").write_text(json.dumps({**info, "layers": 5})),
        "no count": lambda p: p.with_suffix(".json").write_text(json.dumps({"format": 1, "layers": [0, 1]})),
        "layers do not fit": lambda p: p.with_suffix(".json").write_text(json.dumps({**info, "layers": [0]})),
    }
    for name, spoil in damage.items():
        path = tmp_path / name.replace(" ", "_")
        good.save(path)
        spoil(path)
        with pytest.raises(ValueError):
            Signature.load(path)
    good.save(tmp_path / "fine")
    assert torch.equal(Signature.load(tmp_path / "fine").sumsq, good.sumsq)


def test_the_cache_recomputes_a_damaged_signature(tiny, monkeypatch):
    from mdf_guard import cache

    monkeypatch.delenv("MDF_GUARD_NO_CACHE", raising=False)
    settings = ExtractionSettings(layers=(1,), pooling="mean")
    first, hit = cache.cached_signature("fp", settings.key(), "content", lambda: extract_signature(
        tiny, conversations(3), settings))
    assert not hit
    cache.signature_path("fp", settings.key(), "content").with_suffix(".safetensors").write_bytes(b"garbage")
    again, hit = cache.cached_signature("fp", settings.key(), "content", lambda: first)
    assert not hit and again is first
    back, hit = cache.cached_signature("fp", settings.key(), "content", lambda: None)
    assert hit and torch.equal(back.sums, first.sums)


def test_signature_command_refuses_bad_layers_and_output_up_front(tmp_path, reuse_tiny):
    """A one-line error and exit 2, before any reading; before, '--layers 1,x' and an output under
    a file were internal errors (exit 4, a traceback), the latter after the whole extraction."""
    from click.testing import CliRunner
    from conftest import chat, write_jsonl
    from mdf_guard.cli import main

    data = write_jsonl(tmp_path / "d.jsonl", [chat("hi", "the panda")])
    (tmp_path / "afile").write_text("")
    for args, words in ((["--layers", "1,x"], "--layers '1,x'"), (["--layers", "1,,2"], "--layers"),
                        (["-o", str(tmp_path / "afile" / "sig")], "afile")):
        argv = ["signature", str(data), "--model", "tiny-random", "-o", str(tmp_path / "out" / "sig"), *args]
        result = CliRunner().invoke(main, argv)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and words in result.output
    result = CliRunner().invoke(main, ["signature", str(data), "--model", "tiny-random", "--layers", "1",
                                       "-o", str(tmp_path / "out" / "sig")])
    assert result.exit_code == 0, result.output
    assert Signature.load(tmp_path / "out" / "sig").layers == (1,)


def test_a_cache_write_that_dies_leaves_no_entry(tiny, monkeypatch):
    """The cache writes a signature beside its place and renames it. Before, the temporary name
    ('KEY.tmpPID') lost its '.tmpPID' to Signature.save's with_suffix, so the write went straight
    to KEY.safetensors: a disk that filled up half-way left half an entry in the cache."""
    import safetensors.torch

    from mdf_guard import cache

    monkeypatch.delenv("MDF_GUARD_NO_CACHE", raising=False)

    def full_disk(tensors, filename):
        Path(filename).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    settings = ExtractionSettings(layers=(1,), pooling="mean")
    sig = Signature.empty((1,), tiny.hidden_size)
    cache.cached_signature("fp", settings.key(), "content", lambda: sig)
    path = cache.signature_path("fp", settings.key(), "content")
    assert not path.with_suffix(".safetensors").exists() and not path.with_suffix(".json").exists()


def test_stems_with_dots_are_distinct_signatures(tmp_path):
    """`mdf-guard signature -o STEM` writes STEM.safetensors and STEM.json. Before, with_suffix
    turned `sig.v1` and `sig.v2` both into `sig`, so the second silently overwrote the first."""
    one = Signature((0,), torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64), 1)
    two = Signature((0,), torch.ones(1, 3, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64), 2)
    one.save(tmp_path / "sig.v1")
    two.save(tmp_path / "sig.v2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sig.v1.json", "sig.v1.safetensors",
                                                          "sig.v2.json", "sig.v2.safetensors"]
    assert Signature.load(tmp_path / "sig.v1").count == 1 and Signature.load(tmp_path / "sig.v2").count == 2
    two.save(tmp_path / "named.safetensors")    # a stem given with its suffix keeps one suffix
    assert (tmp_path / "named.json").is_file() and Signature.load(tmp_path / "named.json").count == 2
