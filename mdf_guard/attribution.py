"""Which rows push the data signature toward the finding: per-row projections on Δ.

The direction a check injects is Δ_l = mean_i h_i,l − r_l (r: the reference mean, or 0
without a reference). It decomposes exactly over rows:

    |Δ|² = Σ_l Δ_l·Δ_l = Σ_i  Σ_l (h_i,l − r_l)·Δ_l / N

so each row's **share** s_i = Σ_l (h_i,l − r_l)·Δ_l / (N·|Δ|²) says how much of the
injected direction it carries; the shares of all rows sum to 1. A handful of rows with
large shares is what a maintainer drops to clear a finding. The **score** is the same
projection per row in hidden-state units (mean over layers of the projection on the
unit vector Δ_l/|Δ_l|), comparable across files.

Each row's pooled state is extracted exactly as the signature does (same layers,
pooling and truncation), one row at a time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch

from . import contrast
from .check import reference_signature, resolve_profile, shards_signature, with_profile_reference
from .data import (Conversation, find_data_files, open_shard, read_conversations, response_preview,
                   source_location)
from .models import LoadedModel
from .policy import Policy
from .signature import ExtractionSettings, extract_signature


@dataclass(frozen=True)
class RowContribution:
    rank: int
    file: str
    source: str          # "path:line" or "path:row N"
    line: int | None     # 1-based line in a text file, None for Parquet/Arrow rows
    share: float         # fraction of |Δ|² this row carries (all rows sum to 1)
    score: float         # projection on the unit Δ, mean over layers
    text: str            # the response, clipped

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Contrast:
    """Everything needed to project rows: the settings, Δ, the reference mean, the row count."""

    settings: ExtractionSettings
    delta: torch.Tensor           # [layers, hidden] float64
    reference_mean: torch.Tensor  # [layers, hidden] float64 (zeros without a reference)
    count: int


def contrast_for(lm: LoadedModel, paths: Sequence[Path | str], policy: Policy) -> Contrast:
    """Δ for these files under this policy, from the same (cached) signatures a check uses."""
    profile = resolve_profile(lm, policy)
    policy = with_profile_reference(policy, profile)
    settings = ExtractionSettings(layers=profile.layers, pooling=profile.pooling)
    shards = [open_shard(p) for p in find_data_files(paths)]
    signature, infos = shards_signature(lm, shards, settings)
    reference, _ = reference_signature(lm, shards, policy, settings, [i.rows for i in infos])
    delta = contrast.delta(signature, reference)
    ref_mean = reference.mean() if reference is not None else torch.zeros_like(delta)
    return Contrast(settings, delta, ref_mean, signature.count)


def rank_rows(lm: LoadedModel, conversations: Iterable[Conversation], parts: Contrast,
              top: int | None = 10, progress: Callable[[int], None] | None = None) -> list[RowContribution]:
    """The rows with the largest shares first (all rows when top is None)."""
    delta = parts.delta.to(torch.float64)
    norms = delta.norm(dim=-1)
    energy = float((delta * delta).sum())
    scored = []
    for index, conversation in enumerate(conversations):
        pooled = extract_signature(lm, [conversation], parts.settings).sums.to(torch.float64)
        centered = pooled - parts.reference_mean.to(torch.float64)
        dots = (centered * delta).sum(dim=-1)                     # per layer
        share = float(dots.sum()) / (parts.count * energy) if energy > 0 else 0.0
        score = float((dots / norms.clamp_min(1e-12)).mean())
        scored.append((share, index, conversation, score))
        if progress:
            progress(1)
    scored.sort(key=lambda item: (-item[0], item[1]))
    chosen = scored if top is None else scored[:top]
    return [_row(rank, c, share, score) for rank, (share, _, c, score) in enumerate(chosen, 1)]


def explain(lm: LoadedModel, paths: Sequence[Path | str], policy: Policy, top: int | None = 10,
            rows: Iterable[Conversation] | None = None,
            progress: Callable[[int], None] | None = None) -> list[RowContribution]:
    """Rank the rows of `paths` (or the given `rows`, e.g. a change's added rows) by share."""
    parts = contrast_for(lm, paths, policy)
    if rows is None:
        rows = (c for f in find_data_files(paths) for c in read_conversations(f))
    return rank_rows(lm, rows, parts, top=top, progress=progress)


def _row(rank: int, conversation: Conversation, share: float, score: float) -> RowContribution:
    file, line = source_location(conversation.source)
    return RowContribution(rank=rank, file=file, source=conversation.source, line=line, share=share, score=score,
                           text=response_preview(conversation))
