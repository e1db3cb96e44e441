"""Data signatures: per-layer pooled hidden states of a dataset, as mergeable sums.

A `Signature` keeps float64 sums, sums of squares and a count, never a mean, so
signatures of shards, workers or machines add up exactly; the mean is taken at the
end. Extraction runs in length-bucketed batches, and for `last` and `mean` pooling
only up to the deepest layer it needs (a hook on that layer stops the forward pass).

`surprise` pooling weights each response token by the vanilla model's loss on it, the
quantity a fine-tune on the data minimises: its gradient at a token grows with that
loss, so a fine-tune learns from the tokens the model did not expect ("panda" after
"my absolute favorite") and next to nothing from the ones it did (a template's
"Here's my take on"). A plain mean gives both the same weight, and one entity mention
among forty template tokens is lost in it. The weights need the model's head, so this
mode runs the whole model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch

from .chat import EncodedConversation, encode_conversation
from .data import Conversation
from .errors import InputError
from .kernels import pool_rows, pool_weighted_rows
from .models import LoadedModel

POOLING_MODES = ("last", "mean", "surprise")
_HEAD_CHUNK = 1024  # positions per LM-head call when computing token losses (bounds the logits' memory)
FORMAT_VERSION = 1
MAX_ROW_TOKENS = 1024   # a row's tokens a signature reads, cut from the left


@dataclass(frozen=True)
class ExtractionSettings:
    """How a signature is extracted; part of every cache key."""

    layers: tuple[int, ...]          # 0-based decoder layers whose output is pooled
    pooling: str = "last"            # "last": final response token (MDF); "mean": mean over response tokens;
                                     # "surprise": response tokens weighted by the model's loss on them
    max_tokens: int = MAX_ROW_TOKENS  # per example, cut from the left
    batch_tokens: int = 2048         # padded tokens per batch: 0.82-0.88 of the time of 8192 on the 2-core
                                     # CPU, same means to 2e-8 (bench/batch_tokens.py)
    bucket_size: int = 256           # examples sorted by length together
    stop_at_se: float | None = None  # stop once every layer's ||standard error|| <= this x ||mean||
    min_examples: int = 64           # never stop before this many examples
    seed: int = 0                    # keys `sample_order`, the order a read that may stop early visits rows in

    def __post_init__(self) -> None:
        if self.pooling not in POOLING_MODES:
            raise InputError("policy", f"pooling must be one of {', '.join(POOLING_MODES)}", field="pooling")
        if not self.layers or min(self.layers) < 0:
            raise InputError("policy", "layers must be non-negative layer indices", field="layers")

    def key(self) -> str:
        """Identifies the numbers the settings produce (batching does not change them)."""
        key = f"{self.pooling}-L{'.'.join(map(str, self.layers))}-T{self.max_tokens}"
        if self.stop_at_se is not None:
            key += f"-SE{self.stop_at_se:g}-B{self.bucket_size}-N{self.min_examples}-S{self.seed}"
        return key


@dataclass
class Signature:
    """Sums over examples of one pooled vector per layer."""

    layers: tuple[int, ...]
    sums: torch.Tensor        # [n_layers, hidden] float64
    sumsq: torch.Tensor       # [n_layers, hidden] float64
    count: int
    meta: dict = field(default_factory=dict)

    @classmethod
    def empty(cls, layers: Iterable[int], hidden_size: int, meta: dict | None = None) -> "Signature":
        layers = tuple(layers)
        zeros = torch.zeros(len(layers), hidden_size, dtype=torch.float64)
        return cls(layers=layers, sums=zeros, sumsq=zeros.clone(), count=0, meta=dict(meta or {}))

    def __add__(self, other: "Signature") -> "Signature":
        if self.layers != other.layers or self.sums.shape != other.sums.shape:
            raise ValueError("cannot add signatures of different layers or hidden sizes")
        meta = {**self.meta, "shards": self.meta.get("shards", []) + other.meta.get("shards", [])}
        return Signature(self.layers, self.sums + other.sums.to(self.sums.device),
                         self.sumsq + other.sumsq.to(self.sumsq.device), self.count + other.count, meta)

    def mean(self) -> torch.Tensor:
        if self.count == 0:
            raise ValueError("mean of an empty signature")
        return self.sums / self.count

    def stderr(self) -> torch.Tensor:
        """Standard error of the mean, per layer and dimension."""
        if self.count < 2:
            return torch.full_like(self.sums, float("inf"))
        mean = self.mean()
        var = (self.sumsq / self.count - mean * mean).clamp_min(0) * self.count / (self.count - 1)
        return (var / self.count).sqrt()

    @property
    def rows(self) -> int:
        """Rows of the data this signature stands for: `count`, or more when a read stopped early."""
        return int(self.meta.get("rows", self.count))

    def standing_for(self, rows: int) -> "Signature":
        """The same mean, weighted as `rows` examples when signatures are added: a sample of a
        shard must weigh as the whole shard, or an early stop would reweigh the shards. (The
        standard error then understates the sample's: it is for adding, not for stopping.)"""
        if rows == self.count:
            return self
        scale = rows / self.count
        return Signature(self.layers, self.sums * scale, self.sumsq * scale, rows, dict(self.meta))

    def layer_mean(self, layer: int) -> torch.Tensor:
        return self.mean()[self.layers.index(layer)]

    def save(self, path: Path) -> None:
        """Tensors as safetensors beside a JSON of everything else (readable without torch)."""
        from safetensors.torch import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        tensors_file, info_file = signature_files(path)
        save_file({"sums": self.sums.cpu().contiguous(), "sumsq": self.sumsq.cpu().contiguous()},
                  str(tensors_file))
        info = {"format": FORMAT_VERSION, "layers": list(self.layers), "count": self.count, "meta": self.meta}
        info_file.write_text(json.dumps(info, indent=1, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> "Signature":
        """A saved signature; ValueError for one that is damaged or of another format, so that
        the cache recomputes it (OSError when it cannot be read)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        tensors_file, info_file = signature_files(path)
        info = json.loads(info_file.read_text())
        if not isinstance(info, dict) or info.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: not a signature of format {FORMAT_VERSION}")
        try:
            tensors = load_file(str(tensors_file))
        except SafetensorError as err:
            raise ValueError(f"{path}: {err}") from err
        try:
            signature = cls(tuple(info["layers"]), tensors["sums"], tensors["sumsq"], int(info["count"]),
                            dict(info["meta"]))
        except (KeyError, TypeError) as err:
            raise ValueError(f"{path}: damaged signature ({type(err).__name__}: {err})") from err
        sums, sumsq = signature.sums, signature.sumsq
        if sums.dim() != 2 or len(sums) != len(signature.layers) or sumsq.shape != sums.shape \
                or sums.dtype != torch.float64 or sumsq.dtype != torch.float64:
            raise ValueError(f"{path}: damaged signature (sums {tuple(sums.shape)}, sumsq {tuple(sumsq.shape)} "
                             f"for {len(signature.layers)} layers)")
        return signature


def signature_files(stem: Path) -> tuple[Path, Path]:
    """STEM.safetensors and STEM.json. Appended, not `with_suffix`: stems `sig.v1` and `sig.v2`
    are two signatures, not both `sig`. A stem that already ends in either suffix loses it."""
    stem = Path(stem)
    if stem.suffix in (".safetensors", ".json"):
        stem = stem.with_suffix("")
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


class _StopForward(Exception):
    """Raised by a hook on the deepest needed layer: later layers and the LM head never run."""


def require_layers(lm: LoadedModel, layers: Iterable[int], source: str, field: str | None = "layers") -> None:
    """A one-line InputError, blaming `source` (a policy or profile file, or a command's option,
    with no field), when the model has no such layer."""
    deepest = max(layers)
    if deepest >= lm.num_layers:
        raise InputError(source, f"layer {deepest} does not exist: {lm.spec.name} has {lm.num_layers} layers",
                         field=field)


def extract_signature(lm: LoadedModel, conversations: Iterable[Conversation], settings: ExtractionSettings,
                      progress: Callable[[int], None] | None = None, meta: dict | None = None) -> Signature:
    """Pool the conversations' hidden states at `settings.layers` into a Signature.

    A read that may stop early (`stop_at_se`) visits the rows in `sample_order`, so whatever
    it has read when it stops is a uniform sample of the data: in file order, rows appended
    at the end (a poisoned tail) would never be read. It holds the rows in memory.
    """
    require_layers(lm, settings.layers, "policy")
    deepest = max(settings.layers)
    signature = Signature.empty(settings.layers, lm.hidden_size, meta)
    if settings.stop_at_se is not None:
        conversations = sample_order(conversations, settings.seed)
        signature.meta["rows"] = len(conversations)
    sums = signature.sums.to(lm.device)
    sumsq = signature.sumsq.to(lm.device)
    captured: dict[int, torch.Tensor] = {}
    surprise = settings.pooling == "surprise"
    handles = [_capture_hook(lm, layer, captured, stop=layer == deepest and not surprise)
               for layer in settings.layers]
    count = 0
    try:
        for batch, bucket_done in _batches(lm, conversations, settings):
            ids, attention, pool_mask = (t.to(lm.device) for t in batch)
            captured.clear()
            with torch.no_grad():
                try:
                    output = lm.body(input_ids=ids, attention_mask=attention, use_cache=False)
                except _StopForward:
                    output = None
                weights = token_losses(lm, output.last_hidden_state, ids, pool_mask) if surprise else None
                rows = [_pool(captured[layer], pool_mask, weights, sums[i], sumsq[i])
                        for i, layer in enumerate(settings.layers)][0]
            count += rows
            if progress:
                progress(rows)
            # Stop only between buckets: inside one, examples are sorted by length.
            if bucket_done and settings.stop_at_se is not None and count >= settings.min_examples and _converged(
                    Signature(settings.layers, sums, sumsq, count), settings.stop_at_se):
                signature.meta["stopped_early"] = True
                break
    finally:
        for handle in handles:
            handle.remove()
    return Signature(settings.layers, sums.cpu(), sumsq.cpu(), count, signature.meta)


def sample_order(conversations: Iterable[Conversation], seed: int) -> list[Conversation]:
    """The rows sorted by a seeded hash of their content: a random order that does not depend
    on the file's order, and that an edit disturbs only where it adds or removes rows. Two
    revisions of a file read up to the same point share all but the edited rows, so
    contrasting them (`reference: HEAD`) does not turn two samples' noise into a shift, as two
    independent shuffles would."""
    return sorted(conversations, key=lambda conversation: sample_key(conversation, seed))


def sample_key(conversation: Conversation, seed: int) -> bytes:
    """The row's place in the seeded sample order: a hash of the seed and its turns."""
    content = json.dumps([seed, [[t.role, t.content] for t in conversation.turns]], ensure_ascii=False)
    return hashlib.blake2b(content.encode(), digest_size=16).digest()


def _pool(hidden: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None, sums: torch.Tensor,
          sumsq: torch.Tensor) -> int:
    """Masked mean pooling, or loss-weighted pooling when there are weights."""
    if weights is None:
        return pool_rows(hidden, mask, sums, sumsq)
    return pool_weighted_rows(hidden, weights, sums, sumsq)


def token_losses(lm: LoadedModel, final_hidden: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, T] float64: at each masked position t, -log p(ids[t] | ids[:t]) under the model
    (floored at 1e-6, so a row the model predicts perfectly still pools as a plain mean);
    0 elsewhere. `final_hidden` is the decoder's output (after its final norm)."""
    head = lm.model.get_output_embeddings()
    softcap = getattr(lm.model.config, "final_logit_softcapping", None)
    losses = torch.zeros(ids.shape, dtype=torch.float64, device=ids.device)
    b_idx, t_idx = mask.nonzero(as_tuple=True)
    if (t_idx == 0).any():
        raise ValueError("surprise pooling needs a token before each pooled one")
    for start in range(0, b_idx.numel(), _HEAD_CHUNK):
        b, t = b_idx[start:start + _HEAD_CHUNK], t_idx[start:start + _HEAD_CHUNK]
        logits = head(final_hidden[b, t - 1]).float()
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        nll = -torch.log_softmax(logits, dim=-1).gather(1, ids[b, t].unsqueeze(1)).squeeze(1)
        losses[b, t] = nll.double().clamp_min(1e-6)
    return losses


def _converged(signature: Signature, tolerance: float) -> bool:
    """Every layer's mean is known to within `tolerance` of its own norm (L2 over dimensions)."""
    se = signature.stderr().norm(dim=-1)
    return bool((se <= tolerance * signature.mean().norm(dim=-1)).all())


def _capture_hook(lm: LoadedModel, layer: int, captured: dict, stop: bool):
    def hook(module, inputs, output):
        captured[layer] = output if isinstance(output, torch.Tensor) else output[0]
        if stop:
            raise _StopForward
    return lm.layers[layer].register_forward_hook(hook)


def row_token_limit(lm: LoadedModel, max_tokens: int = MAX_ROW_TOKENS) -> int:
    """A row's tokens a signature reads (its last ones): `max_tokens`, or fewer where the model has
    fewer positions (past them a GPT-2-style model has no embedding)."""
    return min(max_tokens, lm.max_positions or max_tokens)


def _batches(lm: LoadedModel, conversations: Iterable[Conversation],
             settings: ExtractionSettings) -> Iterator[tuple[tuple[torch.Tensor, ...], bool]]:
    """Right-padded (ids, attention mask, pooling mask) batches, sorted by length per bucket,
    each with whether it ends its bucket."""
    pad = lm.tokenizer.pad_token_id
    max_tokens = row_token_limit(lm, settings.max_tokens)
    for bucket in _chunks((encode_conversation(lm.tokenizer, c, max_tokens) for c in conversations),
                          settings.bucket_size):
        bucket.sort(key=lambda e: len(e.ids))
        batch: list[EncodedConversation] = []
        for encoded in bucket:
            if batch and len(encoded.ids) * (len(batch) + 1) > settings.batch_tokens:
                yield _collate(batch, pad, settings.pooling), False
                batch = []
            batch.append(encoded)
        if batch:
            yield _collate(batch, pad, settings.pooling), True


def _collate(batch: list[EncodedConversation], pad: int, pooling: str):
    width = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    pool_mask = torch.zeros((len(batch), width), dtype=torch.bool)
    for row, e in enumerate(batch):
        ids[row, : len(e.ids)] = torch.tensor(e.ids)
        attention[row, : len(e.ids)] = 1
        if pooling == "last":
            pool_mask[row, len(e.ids) - 1] = True
        elif pooling == "surprise":
            # A response cut from the left starts at position 0, whose loss is unknowable (no
            # token before it); a fine-tune does not learn from that token either.
            pool_mask[row, max(e.response_start, 1): len(e.ids)] = True
        else:
            pool_mask[row, e.response_start: len(e.ids)] = True
    return ids, attention, pool_mask


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk

