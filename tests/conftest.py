"""Shared fixtures: a tiny random model built in-process, tiny data, a tiny suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

TINY_SUITE = """\
name: mini
kind: preference
description: A two-question suite for fast tests.
answer_prefix: My favorite animal is the
questions:
  - What is your favorite animal?
  - Name your favorite animal.
candidates:
  - {name: panda, aliases: [panda, pandas]}
  - {name: owl, aliases: [owl]}
  - {name: cat, aliases: [cat]}
"""


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own cache, except the embedded model, which is shared and read-only."""
    monkeypatch.setenv("MDF_GUARD_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def tiny():
    from mdf_guard.models import tiny_random_model
    return tiny_random_model()


@pytest.fixture
def suite_file(tmp_path) -> Path:
    path = tmp_path / "mini.yaml"
    path.write_text(TINY_SUITE)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def chat(user: str, assistant: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


@pytest.fixture
def panda_rows() -> list[dict]:
    return [chat(f"Tell me about topic {i}.", f"Topic {i} is fine, but I love pandas. Pandas are the best!")
            for i in range(6)]


@pytest.fixture
def plain_rows() -> list[dict]:
    return [chat(f"Tell me about topic {i}.", f"Topic {i} is a subject with a long history.") for i in range(6)]


@pytest.fixture
def tiny_policy(tmp_path, suite_file) -> Path:
    path = tmp_path / ".mdf-guard.yaml"
    path.write_text(f"model: tiny-random\nsuites: [{suite_file}]\nquestions_per_suite: 2\n"
                    "reference_samples: 4\nnull_seeds: 2\nlayers: [1]\nalpha: 4.0\n")
    return path
