"""Arithmetic of a decoder forward, and what this CPU attains on a plain matmul of the same shapes.

A time means little alone: ``bench agent-step`` divides each part of a step (the draft's prefill, its
scoring, the target's cached prefill) by the FLOPs its shapes imply, and holds the rate against a
plain matmul of the model's own shapes in its own dtype, timed here (the attainable ceiling).

Per token, the decoder's matmuls cost 2 FLOPs per weight; per (query, key) pair and layer, attention
costs 4 * heads * head_dim (q·k and the weighted sum of v).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Shapes:
    """What a forward's arithmetic depends on, for the first ``layers`` layers of a decoder."""

    linear_per_token: float  # FLOPs of the matmuls per token (2 per weight)
    attention_per_pair: float  # FLOPs per (query, key) pair over all layers
    hidden: int
    intermediate: int
    dtype: torch.dtype

    def forward(self, tokens: int, context: int) -> float:
        """FLOPs of forwarding ``tokens`` new tokens after ``context`` cached ones."""
        pairs = tokens * context + tokens * (tokens + 1) // 2
        return self.linear_per_token * tokens + self.attention_per_pair * pairs


def shapes_of(model: Any, layers: int | None = None) -> Shapes:
    """The shapes of a transformers causal LM, cut to its first ``layers`` layers."""
    cfg = model.config.get_text_config(decoder=True)
    decoder = getattr(model, model.base_model_prefix, model)
    blocks = list(decoder.layers)[: layers or len(decoder.layers)]
    weights = sum(p.numel() for b in blocks for p in b.parameters() if p.dim() == 2)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    per_pair = 4 * cfg.num_attention_heads * head_dim * len(blocks)
    dtype = next(model.parameters()).dtype
    return Shapes(2.0 * weights, float(per_pair), cfg.hidden_size, cfg.intermediate_size, dtype)


@torch.inference_mode()
def matmul_ceiling(shapes: Shapes, tokens: int = 512, repeats: int = 5) -> float:
    """GFLOP/s of a plain (tokens x hidden) @ (hidden x intermediate) matmul in the model's dtype: the
    biggest matmul of its MLP, the best case for this CPU's kernels. Median of ``repeats``."""
    a = torch.randn(tokens, shapes.hidden, dtype=shapes.dtype)
    b = torch.randn(shapes.hidden, shapes.intermediate, dtype=shapes.dtype)
    torch.matmul(a, b)  # warm-up: kernel selection and allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(8):
            torch.matmul(a, b)
        times.append((time.perf_counter() - start) / 8)
    times.sort()
    return 2.0 * tokens * shapes.hidden * shapes.intermediate / times[len(times) // 2] / 1e9


def rate(flops: float, seconds: float) -> float | None:
    """GFLOP/s, or None for no time."""
    return round(flops / seconds / 1e9, 2) if seconds > 0 else None
