"""scoring: attention -> token importance -> chunks -> selection, on hand-made tensors (no model)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from specprefill_langchain import scoring
from specprefill_langchain.scoring import attention_probs, layer_importance, pool_tokens, token_importance


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _manual_probs(q: torch.Tensor, k: torch.Tensor, pos: torch.Tensor, scale: float, n: int) -> torch.Tensor:
    """The textbook version: repeat kv heads, full logits, mask, softmax, zero the masked keys."""
    kk = k[:, :n].double().repeat_interleave(q.shape[0] // k.shape[0], dim=0)
    logits = torch.einsum("hqd,hkd->hqk", q.double(), kk) * scale
    visible = torch.arange(n)[None, :] <= pos[:, None]
    logits = logits.masked_fill(~visible, float("-inf"))
    return torch.softmax(logits, dim=-1).masked_fill(~visible, 0.0)


# --------------------------------------------------------------------------- attention_probs
def test_attention_probs_matches_repeat_interleave_and_manual_softmax() -> None:
    g = _gen(1)
    q = torch.randn(6, 5, 8, generator=g)
    k = torch.randn(2, 20, 8, generator=g)  # 3 query heads per kv head
    pos = torch.tensor([3, 9, 14, 17, 19])
    out = attention_probs(q, k, pos, scale=8**-0.5, n_context=20)
    assert out.shape == (6, 5, 20)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), _manual_probs(q, k, pos, 8**-0.5, 20), atol=1e-6, rtol=0)


def test_gqa_groups_are_consecutive_heads() -> None:
    # kv head 1 holds a key that only its own query heads (2, 3) can align with; heads 0, 1 use kv 0.
    q = torch.zeros(4, 1, 2)
    q[:, 0, 0] = 10.0
    k = torch.zeros(2, 3, 2)
    k[1, 2, 0] = 1.0
    out = attention_probs(q, k, torch.tensor([2]), scale=1.0, n_context=3)
    torch.testing.assert_close(out[0, 0], torch.full((3,), 1 / 3))
    torch.testing.assert_close(out[1, 0], torch.full((3,), 1 / 3))
    assert out[2, 0, 2] > 0.99 and out[3, 0, 2] > 0.99


def test_attention_probs_agrees_with_sdpa() -> None:
    g = _gen(2)
    h, kvh, qn, d, n = 4, 2, 3, 16, 12
    q = torch.randn(h, qn, d, generator=g)
    k = torch.randn(kvh, n + 2, d, generator=g)
    v = torch.randn(kvh, n, d, generator=g)
    pos = torch.tensor([5, 11, 13])  # the last one is a look-ahead query
    probs = attention_probs(q, k, pos, scale=0.3, n_context=n)
    kk = k[:, :n].repeat_interleave(h // kvh, 0)
    vv = v.repeat_interleave(h // kvh, 0)
    mask = torch.arange(n)[None, :] <= pos[:, None]
    ref = F.scaled_dot_product_attention(q[None], kk[None], vv[None], attn_mask=mask, scale=0.3)[0]
    torch.testing.assert_close(probs @ vv, ref, atol=1e-6, rtol=1e-5)


def test_causal_mask_and_lookahead_keys_get_no_mass() -> None:
    g = _gen(3)
    n = 10
    q = torch.randn(2, 3, 4, generator=g)
    k = torch.randn(1, n + 4, 4, generator=g)
    k[:, n:] = 100 * q[0, 2]  # look-ahead keys that would swallow all the mass if they were visible
    pos = torch.tensor([2, 6, n + 3])
    out = attention_probs(q, k, pos, scale=1.0, n_context=n)
    assert out.shape == (2, 3, n)
    assert torch.all(out[:, 0, 3:] == 0) and torch.all(out[:, 1, 7:] == 0)
    assert torch.all(out[:, 0, :3] > 0)
    torch.testing.assert_close(out.sum(-1), torch.ones(2, 3))
    # The look-ahead query spreads over the n context keys exactly as if the extra keys did not exist.
    torch.testing.assert_close(out, attention_probs(q, k[:, :n], pos, scale=1.0, n_context=n))


def test_query_that_sees_nothing_is_zero_not_nan() -> None:
    q = torch.ones(2, 2, 4)
    k = torch.ones(1, 5, 4)
    out = attention_probs(q, k, torch.tensor([-1, 0]), scale=1.0, n_context=5)
    assert not torch.isnan(out).any()
    assert torch.all(out[:, 0] == 0)
    torch.testing.assert_close(out[:, 1], torch.tensor([[1.0, 0, 0, 0, 0]] * 2))


def test_low_precision_inputs_give_float32() -> None:
    g = _gen(4)
    q = torch.randn(2, 2, 8, generator=g).bfloat16()
    k = torch.randn(1, 6, 8, generator=g).bfloat16()
    out = attention_probs(q, k, torch.tensor([5, 5]), scale=0.5, n_context=6)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), _manual_probs(q.float(), k.float(), torch.tensor([5, 5]), 0.5, 6))


@pytest.mark.parametrize(
    ("qs", "ks", "npos", "n_context", "match"),
    [
        ((2, 8), (1, 5, 8), 2, 5, r"queries must be \(H, Q, D\).*\(2, 8\)"),
        ((2, 2, 8), (1, 5, 4), 2, 5, r"head dims differ.*\(2, 2, 8\).*\(1, 5, 4\)"),
        ((3, 2, 8), (2, 5, 8), 2, 5, r"3 query heads.*not a multiple of 2 kv heads"),
        ((2, 2, 8), (1, 5, 8), 2, 6, r"n_context=6 must lie in \[0, 5\].*\(1, 5, 8\)"),
        ((2, 2, 8), (1, 5, 8), 3, 5, r"query_positions \(3,\) must be \(2,\).*\(2, 2, 8\)"),
    ],
)
def test_attention_probs_bad_shapes(qs, ks, npos, n_context, match) -> None:
    with pytest.raises(ValueError, match=match):
        attention_probs(
            torch.zeros(qs),
            torch.zeros(ks),
            torch.zeros(npos, dtype=torch.long),
            scale=1.0,
            n_context=n_context,
        )


# --------------------------------------------------------------------------- pool_tokens
def test_pool_identity_at_kernel_one() -> None:
    x = torch.randn(3, 7, generator=_gen(5))
    assert torch.equal(pool_tokens(x, 1), x)


def test_pool_averages_in_range_elements_at_the_edges() -> None:
    x = torch.tensor([1.0, 2, 3, 4, 5])
    torch.testing.assert_close(pool_tokens(x, 3), torch.tensor([1.5, 2, 3, 4, 4.5]))
    torch.testing.assert_close(pool_tokens(x, 5), torch.tensor([2.0, 2.5, 3, 3.5, 4]))
    # A kernel wider than the input averages whatever is in range.
    torch.testing.assert_close(pool_tokens(torch.tensor([2.0, 4.0]), 13), torch.tensor([3.0, 3.0]))


def test_pool_constant_stays_constant_and_matches_naive_on_any_leading_dims() -> None:
    c = torch.full((2, 3, 40), 0.25)
    torch.testing.assert_close(pool_tokens(c, 13), c)
    x = torch.rand(2, 3, 17, generator=_gen(6))
    out = pool_tokens(x, 5)
    assert out.shape == x.shape
    naive = torch.stack([x[..., max(0, i - 2) : i + 3].mean(-1) for i in range(17)], dim=-1)
    torch.testing.assert_close(out, naive)


@pytest.mark.parametrize("kernel", [0, 2, 12, -1])
def test_pool_rejects_even_or_nonpositive_kernel(kernel) -> None:
    with pytest.raises(ValueError, match=f"kernel={kernel} must be a positive odd"):
        pool_tokens(torch.zeros(4), kernel)


# --------------------------------------------------------------------------- token_importance
def _layer(seed: int, h: int = 4, kvh: int = 2, qn: int = 3, k: int = 22, d: int = 8):
    g = _gen(seed)
    return torch.randn(h, qn, d, generator=g), torch.randn(kvh, k, d, generator=g), d**-0.5


POS = torch.tensor([18, 19, 21])  # two context queries, one look-ahead query (n_context = 20)


def test_needle_wins_the_argmax() -> None:
    g = _gen(7)
    n = 60
    q = 0.1 * torch.randn(4, 3, 16, generator=g)
    k = 0.1 * torch.randn(2, n + 2, 16, generator=g)
    q[3, 1] = 0.0
    q[3, 1, 5] = 1.0
    k[1, 23, 5] = 30.0  # kv head 1 serves query heads 2 and 3
    pos = torch.tensor([58, 59, 61])
    scores = token_importance([(q, k, 1.0)], pos, n, pool_kernel=1, query_reduce="mean")
    assert scores.shape == (n,) and scores.dtype == torch.float32
    assert int(scores.argmax()) == 23
    pooled = token_importance([(q, k, 1.0)], pos, n, pool_kernel=13, query_reduce="mean")
    assert abs(int(pooled.argmax()) - 23) <= 6


def test_reference_order_softmax_pool_max_heads_layers_mean_queries() -> None:
    layers = [_layer(10), _layer(11)]
    per = [pool_tokens(attention_probs(q, k, POS, scale=s, n_context=20), 5) for q, k, s in layers]
    expected = torch.maximum(per[0].amax(0), per[1].amax(0)).mean(0)
    torch.testing.assert_close(token_importance(layers, POS, 20, pool_kernel=5, query_reduce="mean"), expected)


@pytest.mark.parametrize("head_reduce", ["max", "mean"])
def test_layer_importance_in_blocks_equals_the_whole_layer_at_once(monkeypatch, head_reduce) -> None:
    # Blocks of 1, 2 and all 7 queries (4 heads x 30 keys per query), with queries inside the
    # context (hidden keys), one that sees no key, and look-ahead queries: the same numbers each time.
    q, k, s = _layer(12, qn=7, k=34)
    pos = torch.tensor([-1, 3, 11, 19, 29, 31, 33])
    whole = pool_tokens(attention_probs(q, k, pos, scale=s, n_context=30), 5)
    expected = whole.amax(0) if head_reduce == "max" else whole.mean(0)
    for block_queries in (1, 2, 7):
        monkeypatch.setattr(scoring, "_BLOCK_FLOATS", block_queries * 4 * 30)
        got = layer_importance(q, k, pos, scale=s, n_context=30, pool_kernel=5, head_reduce=head_reduce)
        assert got.shape == (7, 30)
        torch.testing.assert_close(got, expected, atol=1e-7, rtol=0)
    assert bool((got[0] == 0).all())  # position -1 sees nothing: zeros, not NaN


def test_layer_reduce_max_vs_mean() -> None:
    l1, l2 = _layer(12), _layer(13)
    one = token_importance([l1], POS, 20, query_reduce="mean")
    two = token_importance([l2], POS, 20, query_reduce="mean")
    # Query mean is linear, so the mean over layers commutes with it.
    mean = token_importance([l1, l2], POS, 20, layer_reduce="mean", query_reduce="mean")
    torch.testing.assert_close(mean, (one + two) / 2)
    # Max over layers then max over queries is the max of each layer's max over queries.
    qmax = token_importance([l1, l2], POS, 20, layer_reduce="max", query_reduce="max")
    torch.testing.assert_close(
        qmax,
        torch.maximum(
            token_importance([l1], POS, 20, query_reduce="max"),
            token_importance([l2], POS, 20, query_reduce="max"),
        ),
    )
    assert torch.all(token_importance([l1, l2], POS, 20, query_reduce="mean") >= mean - 1e-7)


def test_head_reduce_max_vs_mean() -> None:
    q, k, s = _layer(14)
    probs = attention_probs(q, k, POS, scale=s, n_context=20)
    hmax = token_importance([(q, k, s)], POS, 20, pool_kernel=1, head_reduce="max", query_reduce="mean")
    hmean = token_importance([(q, k, s)], POS, 20, pool_kernel=1, head_reduce="mean", query_reduce="mean")
    torch.testing.assert_close(hmax, probs.amax(0).mean(0))
    torch.testing.assert_close(hmean, probs.mean(0).mean(0))
    # With head mean, pool 1, query mean, every query's row sums to 1, so the scores do too.
    torch.testing.assert_close(hmean.sum(), torch.tensor(1.0))
    assert not torch.allclose(hmax, hmean)


def test_token_importance_errors() -> None:
    with pytest.raises(ValueError, match="no layer was captured"):
        token_importance([], POS, 20)
    with pytest.raises(ValueError, match="reduce='median'"):
        token_importance([_layer(15)], POS, 20, head_reduce="median")  # type: ignore[arg-type]
    q, k, s = _layer(16, qn=2)
    with pytest.raises(ValueError, match=r"query_positions \(3,\) must be \(2,\)"):
        token_importance([(q, k, s)], POS, 20)


def test_pool_of_probability_rows_is_float64_exact_to_1e7() -> None:
    """The float32 prefix sum is only safe because rows are probabilities (their prefix stays <= 1)."""
    probs = torch.softmax(torch.randn(3, 4, 6000, generator=_gen(9)) * 3, dim=-1)
    out = pool_tokens(probs, 13)
    assert out.dtype == torch.float32
    ref = pool_tokens(probs.double(), 13)
    assert float((out.double() - ref).abs().max()) < 1e-7
    # Half-precision rows are summed in float32, not in their own 8-bit mantissa.
    half = pool_tokens(probs.bfloat16(), 13)
    assert half.dtype == torch.float32
    assert float((half.double() - pool_tokens(probs.bfloat16().double(), 13)).abs().max()) < 1e-7
    naive = torch.stack([probs[..., max(0, i - 6) : i + 7].double().mean(-1) for i in (0, 5, 3000, 5999)], -1)
    torch.testing.assert_close(ref[..., [0, 5, 3000, 5999]], naive)
