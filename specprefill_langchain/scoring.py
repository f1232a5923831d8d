"""Attention of the draft's queries -> importance of each token -> chunks worth keeping.

Pure tensor functions, no model: :mod:`draft` captures the query states of a few positions at every
layer, and this module turns them into one importance score per context token (DESIGN.md, part 4),
cuts the text into chunks that follow its structure and picks the best chunks within a budget
(part 5). Everything here is deterministic and testable with hand-made tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

Reduce = Literal["max", "mean"]

# The end of a span is always a boundary, counted as a line end: a tail of up to 2*target tokens is
# still split at a line end nearer the target (so tails are no coarser than the rest), and a record
# end inside the tail still wins, but prose with only word breaks ends in one piece at the span end.
_SPAN_END = 3


# --------------------------------------------------------------------------- attention
def _check_attention_shapes(queries: Tensor, keys: Tensor, query_positions: Tensor, n_context: int) -> None:
    if queries.dim() != 3 or keys.dim() != 3:
        msg = (
            f"queries must be (H, Q, D) and keys (KVH, K, D), got queries {tuple(queries.shape)} "
            f"and keys {tuple(keys.shape)}."
        )
        raise ValueError(msg)
    (h, q, d), (kvh, k, kd) = queries.shape, keys.shape
    if d != kd:
        msg = f"head dims differ: queries {tuple(queries.shape)} vs keys {tuple(keys.shape)}."
        raise ValueError(msg)
    if kvh == 0 or h % kvh != 0:
        msg = f"{h} query heads (queries {tuple(queries.shape)}) are not a multiple of {kvh} kv heads."
        raise ValueError(msg)
    if not 0 <= n_context <= k:
        msg = f"n_context={n_context} must lie in [0, {k}] (keys {tuple(keys.shape)})."
        raise ValueError(msg)
    if query_positions.shape != (q,):
        msg = f"query_positions {tuple(query_positions.shape)} must be ({q},) to match queries {tuple(queries.shape)}."
        raise ValueError(msg)


@torch.no_grad()
def attention_probs(queries: Tensor, keys: Tensor, query_positions: Tensor, *, scale: float, n_context: int) -> Tensor:
    """softmax(q·Kᵀ·scale) of each query over the context keys it may see: (H, Q, n_context) float32.

    A query at absolute position p sees key j iff j <= p and j < n_context; keys past the context are
    look-ahead tokens, whose attention would say nothing about what to keep. Invisible keys get an
    exact 0, and a query that sees no key gets a row of zeros (never NaN).
    """
    _check_attention_shapes(queries, keys, query_positions, n_context)
    h, q, d = queries.shape
    kvh = keys.shape[0]
    group = h // kvh
    # GQA: kv head g serves the query heads g*group .. (g+1)*group-1 (HF's repeat_kv). Folding those
    # heads into the query axis lets each kv head be used once, instead of materialising the repeated
    # keys (H×n×D), and the product lands directly in the (H, Q, n) output.
    qf = (queries.float() * scale).reshape(kvh, group * q, d)
    out = torch.empty(kvh, group * q, n_context, dtype=torch.float32, device=queries.device)
    for g in range(kvh):
        # One kv head at a time in float32: the only copy of the keys is n×D, never all heads at once.
        torch.matmul(qf[g], keys[g, :n_context].float().T, out=out[g])
    out = out.view(h, q, n_context)

    pos = query_positions.to(device=queries.device, dtype=torch.long)
    cols = torch.arange(n_context, device=queries.device)
    hidden = cols[None, :] > pos[:, None]  # (Q, n): keys in the query's future
    return _masked_softmax_(out, hidden)


def _masked_softmax_(logits: Tensor, hidden: Tensor) -> Tensor:
    """Softmax over the last dim, in place, with ``hidden`` entries excluded; empty rows become 0.

    In place so that the (H, Q, n) logits are the only tensor of that size. Subtracting the row max
    keeps exp() in range; a fully hidden row has max -inf, replaced by 0 so exp gives 0, not NaN.
    """
    logits.masked_fill_(hidden, float("-inf"))
    if logits.shape[-1] == 0:
        return logits
    row_max = logits.amax(dim=-1, keepdim=True)
    row_max.masked_fill_(torch.isinf(row_max), 0.0)
    logits.sub_(row_max).exp_()
    total = logits.sum(dim=-1, keepdim=True)
    return logits.div_(total.clamp_min_(torch.finfo(torch.float32).tiny))


# --------------------------------------------------------------------------- importance
def pool_tokens(x: Tensor, kernel: int) -> Tensor:
    """Average of each element with its (kernel-1)/2 neighbours on each side, along the last dim.

    Stride 1 and same length. At the edges only in-range neighbours count (no zero padding), so a
    token near the start of the context is not penalised for having fewer neighbours.
    """
    if kernel < 1 or kernel % 2 == 0:
        msg = f"pool kernel={kernel} must be a positive odd number (1 turns pooling off)."
        raise ValueError(msg)
    if kernel == 1 or x.shape[-1] == 0:
        return x
    # Window sums as differences of a prefix sum: O(N) per row, one cumsum and one subtraction, in
    # the input's own precision (4x faster than avg_pool1d, 30x faster than avg_pool1d with
    # count_include_pad=False). The rows here are attention probabilities (each row sums to at most
    # 1), so the prefix never exceeds 1 and float32 rounding stays below ~1e-7 absolute: far below
    # any score that could win a chunk, and identical for identical inputs.
    n, half = x.shape[-1], kernel // 2
    # At least float32: a bfloat16 prefix sum would lose everything past its 8 mantissa bits.
    xf = x if x.dtype in (torch.float32, torch.float64) else x.float()
    prefix = torch.empty((*xf.shape[:-1], n + 1), dtype=xf.dtype, device=x.device)
    prefix[..., 0] = 0
    torch.cumsum(xf, -1, out=prefix[..., 1:])
    out = torch.empty_like(xf)
    if n > 2 * half:  # the interior: two shifted slices of the prefix sum
        torch.sub(prefix[..., kernel:], prefix[..., : n + 1 - kernel], out=out[..., half : n - half])
        out[..., half : n - half].mul_(1.0 / kernel)
    # The edges average their in-range neighbours only (no zero padding).
    idx = torch.arange(n, device=x.device)
    edge = torch.cat([idx[: min(half, n)], idx[max(half, n - half) :]])
    lo, hi = (edge - half).clamp(min=0), (edge + half + 1).clamp(max=n)
    out[..., edge] = (prefix[..., hi] - prefix[..., lo]) / (hi - lo).to(xf.dtype)
    return out


def _reduce(x: Tensor, dim: int, how: Reduce) -> Tensor:
    if how == "max":
        return x.amax(dim=dim)
    if how == "mean":
        return x.mean(dim=dim)
    msg = f"reduce={how!r} is not valid: use 'max' or 'mean'."
    raise ValueError(msg)


@torch.no_grad()
def token_importance(
    layers: Sequence[tuple[Tensor, Tensor, float]],
    query_positions: Tensor,
    n_context: int,
    *,
    pool_kernel: int = 13,
    layer_reduce: Reduce = "max",
    head_reduce: Reduce = "max",
    query_reduce: Reduce = "mean",
) -> Tensor:
    """One importance score per context token, (n_context,) float32.

    ``layers`` holds (queries (H, Q, D), keys (KVH, K, D), scale) of each captured layer. The order
    follows the speculative-prefill reference: softmax, pool along keys, reduce heads and layers,
    then reduce queries. Layers are folded in one at a time (running max or sum), so only one
    layer's (H, Q, n) probabilities are alive at once.
    """
    if not layers:
        msg = "no layer was captured: token_importance needs at least one (queries, keys, scale) layer."
        raise ValueError(msg)
    for how in (layer_reduce, head_reduce, query_reduce):
        if how not in ("max", "mean"):
            msg = f"reduce={how!r} is not valid: use 'max' or 'mean'."
            raise ValueError(msg)
    acc: Tensor | None = None
    for queries, keys, scale in layers:
        probs = attention_probs(queries, keys, query_positions, scale=scale, n_context=n_context)
        per_layer = _reduce(pool_tokens(probs, pool_kernel), 0, head_reduce)  # (Q, n)
        del probs
        if acc is None:
            acc = per_layer
        elif per_layer.shape != acc.shape:
            msg = f"layers disagree on (Q, n_context): {tuple(acc.shape)} vs {tuple(per_layer.shape)}."
            raise ValueError(msg)
        elif layer_reduce == "max":
            acc = torch.maximum(acc, per_layer)
        else:
            acc = acc + per_layer
    assert acc is not None
    if layer_reduce == "mean":
        acc = acc / len(layers)
    return _reduce(acc, 0, query_reduce).float()


# --------------------------------------------------------------------------- chunks
def make_chunks(breaks: Tensor, target: int = 32) -> list[tuple[int, int]]:
    """Cut [0, N) into consecutive (start, end) chunks that end at the text's strongest boundaries.

    ``breaks[i]`` is how good a place the gap after token i is to end a chunk: 0 never (inside a
    character), 1 inside a word, 2 between words, 3 line end, 4 record end. A chunk ends at the
    strongest boundary whose length lies in [max(1, target//2), 2*target], the one nearest ``target``
    among equals (ties: shorter). Chunks that follow lines and records are kept or dropped whole,
    so a signature or a JSON record is never split in two halves that must both win.
    """
    if target < 1:
        msg = f"chunk target={target} must be at least 1 token."
        raise ValueError(msg)
    if breaks.dim() != 1:
        msg = f"breaks must be a 1-D tensor (N,), got shape {tuple(breaks.shape)}."
        raise ValueError(msg)
    if breaks.numel() == 0:
        return []  # checked before the dtype: torch.tensor(()) is float32
    if breaks.is_floating_point() or breaks.is_complex():
        msg = f"breaks must hold integer break levels, got dtype {breaks.dtype}."
        raise ValueError(msg)
    levels = breaks.tolist()
    n = len(levels)
    lo, hi = max(1, target // 2), 2 * target
    chunks: list[tuple[int, int]] = []
    start = 0
    while start < n:
        end = _best_end(levels, start, lo, hi, target)
        chunks.append((start, end))
        start = end
    return chunks


def _level(levels: list[int], end: int) -> int:
    """Strength of a cut right before token ``end`` (the span end is always a strong boundary)."""
    return _SPAN_END if end == len(levels) else levels[end - 1]


def _best_end(levels: list[int], start: int, lo: int, hi: int, target: int) -> int:
    n = len(levels)
    best: int | None = None
    best_key = (0, 0, 0)
    for end in range(min(start + lo, n), min(start + hi, n) + 1):
        # A cut that would leave a tail shorter than `lo` is not a choice: the tail would be a
        # sliver that scores on too few tokens. (Only a whole span shorter than `lo` may be short.)
        if end < n and n - end < lo:
            continue
        level = _level(levels, end)
        length = end - start
        key = (level, -abs(length - target), -length)
        if level >= 1 and (best is None or key > best_key):
            best, best_key = end, key
    if best is not None:
        return best
    # No allowed cut in the window (a long run of tokens that must stay together): cut at the first
    # allowed place past the hard limit, and swallow the tail if it would be a sliver.
    end = start + hi
    while end < n and levels[end - 1] == 0:
        end += 1
    return n if n - end < lo else end


def chunk_scores(token_scores: Tensor, chunks: Sequence[tuple[int, int]]) -> Tensor:
    """Mean score of each chunk's tokens, (C,) float32."""
    if token_scores.dim() != 1:
        msg = f"token_scores must be 1-D (N,), got shape {tuple(token_scores.shape)}."
        raise ValueError(msg)
    n = token_scores.shape[0]
    if not chunks:
        return torch.zeros(0, dtype=torch.float32, device=token_scores.device)
    bounds = torch.tensor(chunks, dtype=torch.long, device=token_scores.device)
    starts, ends = bounds[:, 0], bounds[:, 1]
    if bool(((starts < 0) | (ends > n) | (ends <= starts)).any()):
        msg = f"every chunk (start, end) must satisfy 0 <= start < end <= {n} (token_scores {(n,)})."
        raise ValueError(msg)
    # Prefix sums give every chunk's sum in one subtraction; float64 keeps small scores exact enough
    # after subtracting two large running totals.
    csum = torch.zeros(n + 1, dtype=torch.float64, device=token_scores.device)
    csum[1:] = token_scores.double().cumsum(0)
    return ((csum[ends] - csum[starts]) / (ends - starts)).float()


def select_chunks(scores: Tensor, lengths: Tensor, budget: int) -> Tensor:
    """Which chunks to keep, (C,) bool: best score first, each kept iff it still fits the budget.

    A chunk that does not fit is skipped, not a stopping point: a shorter, lower-scoring chunk may
    still use the rest of the budget. The sort is stable, so ties go to the earlier chunk.
    """
    if scores.dim() != 1 or lengths.shape != scores.shape:
        msg = f"scores {tuple(scores.shape)} and lengths {tuple(lengths.shape)} must be the same (C,) shape."
        raise ValueError(msg)
    if bool((lengths < 0).any()):
        msg = "chunk lengths must be >= 0."
        raise ValueError(msg)
    keep = torch.zeros(scores.shape, dtype=torch.bool)
    if budget <= 0:
        return keep.to(scores.device)
    # NaN would sort first and win; rank it last instead.
    ranked = torch.nan_to_num(scores.detach().float().cpu(), nan=float("-inf"))
    order = torch.sort(ranked, descending=True, stable=True).indices.tolist()
    sizes = lengths.detach().cpu().tolist()
    used = 0
    for i in order:
        if used + sizes[i] <= budget:
            keep[i] = True
            used += sizes[i]
    return keep.to(scores.device)
