"""The tiny randomly initialised draft for fast mechanics (tests/conftest.py and scripts/fuzz.py)."""

from __future__ import annotations

from typing import Any


def tiny_draft(tokenizer: Any) -> Any:
    """A 2-layer random llama behind a real tokenizer (SmolLM2's): fast, and tokenizes like the real draft."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from specprefill_langchain import DraftModel

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
    )
    return DraftModel(LlamaForCausalLM(cfg), tokenizer, name="tiny-random")
