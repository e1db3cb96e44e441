"""On-disk cache of signatures, vanilla probe scores and in-context readings.

Keys are content hashes: the model's fingerprint, the extraction settings and the
shard's sha256 (or a suite's fingerprint), so a re-check after a one-shard change
recomputes one shard, and nothing stale can be returned for changed input.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from .models import cache_dir
from .signature import Signature, signature_files


def enabled() -> bool:
    return os.environ.get("MDF_GUARD_NO_CACHE", "") not in ("1", "true", "yes")


def signature_path(model_fingerprint: str, settings_key: str, content_key: str) -> Path:
    return cache_dir() / "signatures" / model_fingerprint / settings_key / content_key


def cached_signature(model_fingerprint: str, settings_key: str, content_key: str,
                     compute: Callable[[], Signature]) -> tuple[Signature, bool]:
    """(signature, whether it came from the cache)."""
    path = signature_path(model_fingerprint, settings_key, content_key)
    if enabled() and all(f.is_file() for f in signature_files(path)):
        try:
            return Signature.load(path), True
        except (OSError, ValueError):   # Signature.load: ValueError for any damaged or foreign entry
            pass  # a torn or foreign entry is recomputed and overwritten
    signature = compute()
    if enabled():
        _write_or_warn(lambda: _atomic(lambda tmp: signature.save(tmp), path))
    return signature, False


def _atomic(write: Callable[[Path], None], path: Path) -> None:
    """Write a signature beside the target, then rename, so a killed run never leaves half an entry."""
    tmp = path.with_name(path.name + f"-tmp{os.getpid()}")
    write(tmp)
    for written, target in zip(signature_files(tmp), signature_files(path)):
        os.replace(written, target)


def cached_tensor(kind: str, key: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """A small tensor (e.g. vanilla probe probabilities) cached as JSON."""
    value, _ = cached_json(kind, key, lambda: compute().tolist())
    return torch.tensor(value, dtype=torch.float64)


def cached_json(kind: str, key: str, compute: Callable[[], Any]) -> tuple[Any, bool]:
    """A small JSON value cached under `kind/key.json`, and whether it came from the cache.
    Floats survive the round trip exactly (json writes their shortest repr), so a result
    from the cache equals a recomputed one."""
    path = cache_dir() / kind / f"{key}.json"
    if enabled() and path.is_file():
        try:
            return json.loads(path.read_text()), True
        except (OSError, ValueError):
            pass   # a torn or foreign entry is recomputed and overwritten
    value = compute()
    if enabled():
        _write_or_warn(lambda: _write_json(path, value))
    return value, False


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


_warned = False


def _write_or_warn(write: Callable[[], None]) -> None:
    """Run a cache write; if the disk refuses it (full, read-only, a file in the way), say so
    once and go on. The cache only saves time: a check whose result is computed must not
    fail, or read as a crash, because it could not be stored."""
    global _warned
    try:
        write()
    except OSError as err:
        if not _warned:
            _warned = True
            print(f"mdf-guard: warning: cannot write the cache at {cache_dir()} ({err.strerror or err}); "
                  "results are not cached (MDF_GUARD_CACHE names another folder)", file=sys.stderr)
