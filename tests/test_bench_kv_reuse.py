"""The KV-reuse benchmark's FLOP ceiling, on hand-made numbers and a fake model (no weights loaded)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from specprefill_langchain.bench.runs.kv_reuse import flop_ceiling, flop_ratio


def test_flop_ratio_by_hand() -> None:
    # 4 tokens, 2 cached. Scratch: 4 tokens x 10 + pairs 1+2+3+4 = 10 -> 50.
    # Incremental: positions 2 and 3 forwarded, 2 x 10 + pairs 3+4 = 7 -> 27.
    assert flop_ratio(10, 1, history=2, total=4) == pytest.approx(50 / 27)


def test_flop_ratio_limits() -> None:
    assert flop_ratio(10, 1, history=0, total=100) == 1.0  # nothing cached: no saving
    # Without attention the ceiling is the token ratio; attention only lowers it.
    assert flop_ratio(10, 0, history=300, total=364) == pytest.approx(364 / 64)
    assert flop_ratio(10, 1, history=300, total=364) < 364 / 64
    with pytest.raises(ValueError, match="history"):
        flop_ratio(10, 1, history=5, total=5)


def test_question_tokens_count_in_both_arms() -> None:
    # 300 cached + 64 appended + 20 question tokens: both arms forward the question tail, so the
    # ceiling over everything forwarded is lower than one that leaves the question out.
    with_question = flop_ratio(1000, 10, history=300, total=384)
    without = flop_ratio(1000, 10, history=300, total=364)
    assert with_question < without
    assert with_question == pytest.approx((1000 * 384 + 10 * 384 * 385 // 2) / (1000 * 84 + 10 * 84 * (300 + 385) // 2))


def test_flop_ceiling_reads_the_model_shapes() -> None:
    layers = torch.nn.ModuleList([torch.nn.Linear(8, 16, bias=True) for _ in range(2)])
    cfg = SimpleNamespace(num_attention_heads=2, head_dim=4, hidden_size=8, num_hidden_layers=2)
    model = SimpleNamespace(
        decoder_layers=layers,
        model=SimpleNamespace(config=SimpleNamespace(get_text_config=lambda decoder: cfg)),
    )
    linear = 2 * 2 * 8 * 16  # 2 FLOPs per weight of every 2-d parameter (biases are left out)
    per_pair = 4 * 2 * 4 * 2  # 4 x heads x head_dim x layers
    assert flop_ceiling(model, 100, 164) == pytest.approx(flop_ratio(linear, per_pair, 100, 164))  # type: ignore[arg-type]
