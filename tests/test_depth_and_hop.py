"""Early-layer scoring and the cheaper second hop, on the real SmolLM2 draft."""

from __future__ import annotations

import inspect
import json.decoder

import pytest
import torch

from specprefill_langchain import CompressorConfig, ScoringConfig, SpecPrefillCompressor
from specprefill_langchain.passes import extend_pass, score_pass, scoring_layers
from tests.transcripts import agent_transcript

pytestmark = pytest.mark.real


def _ids(draft, n: int) -> list[int]:
    return draft.tokenizer(inspect.getsource(json.decoder) * 3, add_special_tokens=False)["input_ids"][:n]


def test_a_shallow_stack_computes_exactly_the_first_layers(smol):
    ids = _ids(smol, 200)
    full, part = smol.prefill(ids), smol.prefill(ids, depth=10)
    assert len(full.layers) == 30 and len(part.layers) == 10  # the layers after 10 never ran
    for i in range(10):
        assert torch.equal(full.layers[i].keys, part.layers[i].keys)
        assert torch.equal(full.layers[i].values, part.layers[i].values)
    assert len(smol.prefill(ids).layers) == 30  # the full model is untouched by the shallow copy


def test_depth_picks_the_layers_that_score(smol):
    assert smol.depth_of(1.0) == 30 and smol.depth_of(0.5) == 15 and smol.depth_of(12) == 12
    assert scoring_layers(smol, ScoringConfig(depth=0.5)) == list(range(15))
    for bad in (0, -0.5, 31, True):
        with pytest.raises(ValueError, match="depth"):
            smol.depth_of(bad)
    with pytest.raises(ValueError, match="depth"):
        ScoringConfig(depth=0)


def test_shallow_scoring_still_finds_the_needle_and_costs_less(smol):
    sc_full, sc_half = ScoringConfig(depth=1.0), ScoringConfig(depth=0.5)
    ids = _ids(smol, 1500)
    needle = smol.tokenizer("\nThe launch code is PURPLE-MONKEY-42.\n", add_special_tokens=False)["input_ids"]
    ids = ids[:700] + needle + ids[700:]
    tail = smol.tokenizer("<|im_start|>user\nWhat is the launch code?<|im_end|>\n", add_special_tokens=False)[
        "input_ids"
    ]
    full = score_pass(smol, ids + tail, len(ids), scoring=sc_full)
    half = score_pass(smol, ids + tail, len(ids), scoring=sc_half)
    where = slice(700, 700 + len(needle))
    for res in (full, half):
        rank = (res.scores[: len(ids)] > res.scores[where].max()).sum()
        assert rank <= 0.05 * len(ids)  # the needle's best token is in the top 5 % either way


def test_the_hop_extends_the_first_pass_instead_of_re_reading_it(smol):
    ids = _ids(smol, 600)
    restated = ids[100:140]
    first = score_pass(smol, ids, 560, keep_cache=True)
    cheap = extend_pass(smol, first, len(ids), restated, ScoringConfig())
    again = score_pass(smol, [*ids, *restated], len(ids), prefix_end=560)
    torch.testing.assert_close(cheap.scores[: len(ids)], again.scores[: len(ids)], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="keep_cache"):
        extend_pass(smol, score_pass(smol, ids, 560), len(ids), restated, ScoringConfig())


def test_the_hop_refuses_a_cache_of_another_length(smol):
    ids = _ids(smol, 600)
    first = score_pass(smol, ids, 560, keep_cache=True)
    with pytest.raises(ValueError, match="first pass over the 500 ids"):
        extend_pass(smol, first, 500, ids[100:140], ScoringConfig())
    with pytest.raises(ValueError, match="keep_cache=True"):
        extend_pass(smol, score_pass(smol, ids, 560), len(ids), ids[100:140], ScoringConfig())


def test_compressor_at_default_depth_keeps_structure(smol):
    msgs = agent_transcript(chars=5000)
    out = SpecPrefillCompressor(draft=smol, config=CompressorConfig(keep_ratio=0.3)).compress(msgs)
    assert not out.stats.passthrough and [m.id for m in out.messages] == [m.id for m in msgs]
    assert 0.2 <= out.stats.kept_fraction <= 0.4
