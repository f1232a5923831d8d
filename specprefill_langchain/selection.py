"""Scored tokens -> chunks -> the chunks worth keeping within a budget -> kept character spans.

Pure functions over tensors and a transcript's token layout, no model (docs/design.md, "Selection"):

* :func:`make_chunks` cuts a text's tokens into runs of about ``chunk_tokens`` that end at the text's
  strongest boundaries (:mod:`boundaries`), so a line of code or a JSON record is kept or dropped whole;
* :func:`chunk_scores` scores each chunk by the mean of its tokens (the reference's choice);
* :func:`select_chunks` keeps the best chunks that fit the budget, deterministically;
* :func:`chunks_of` / :func:`kept_spans` do the same over every compressible part of a transcript;
  chunks marked by :mod:`mentions` (a rare term the query names verbatim) rank before all others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .boundaries import Cut

if TYPE_CHECKING:
    from .transcript import Transcript

KeptSpans = dict[int, list[tuple[int, int]]]  # part index -> sorted char spans kept in that part

# Target chunk length in draft tokens (the reference's 32). Chunks follow lines and records around it
# (make_chunks), and the length itself mattered little in the shared design's sweeps.
CHUNK_TOKENS = 32


def make_chunks(breaks: Tensor, target: int = CHUNK_TOKENS) -> list[tuple[int, int]]:
    """Cut [0, N) into consecutive (start, end) chunks that end at the text's strongest boundaries.

    ``breaks[i]`` is how good a place the gap after token i is to end a chunk, a
    :class:`~specprefill_langchain.boundaries.Cut` level (``NONE`` never, up to ``RECORD``). A chunk
    ends only at a word boundary (``SPACE`` or stronger) or at the end of the text, so the target
    never sees half a word: a run of tokens with no word boundary in it (a URL, base64, compact JSON,
    a long identifier) is kept or dropped whole.

    A chunk ends at the strongest boundary whose length lies in [max(1, target//2), 2*target], the
    one nearest ``target`` among equals (ties: shorter). Where that window holds no word boundary,
    the chunk runs on to the first one past it, and may be longer than 2*target. No cut leaves a
    last chunk shorter than target//2 (unless the whole text is). Chunks that follow lines and
    records are kept or dropped whole, so a signature or a JSON record is never split in two halves
    that must both win.
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
    # The end of a span counts as a line end: a tail of up to 2*target tokens is still split at a
    # line end nearer the target (so tails are no coarser than the rest), and a record end inside the
    # tail still wins, but prose with only word breaks ends in one piece at the span end.
    return int(Cut.LINE) if end == len(levels) else levels[end - 1]


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
        if level < Cut.SPACE:
            continue  # inside a word (or a character): never an end
        length = end - start
        key = (level, -abs(length - target), -length)
        if best is None or key > best_key:
            best, best_key = end, key
    if best is not None:
        return best
    # No word boundary in the window (a long URL, base64, a long identifier): the chunk runs on to
    # the first word boundary past it, and swallows the tail if that would leave a sliver.
    end = start + hi + 1
    while end < n and levels[end - 1] < Cut.SPACE:
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


# --------------------------------------------------------------------------- over a transcript
@dataclass(frozen=True)
class Chunk:
    """A run of compressible tokens that is kept or dropped whole."""

    part: int  # index into Transcript.parts
    t0: int  # local token range within the part
    t1: int
    score: float
    mention: int = 0  # holds a rare term the focus names verbatim (module mentions), rarer higher: ranks first

    @property
    def n_tokens(self) -> int:
        return self.t1 - self.t0


def chunks_of(t: Transcript, scores: Tensor, chunk_tokens: int = CHUNK_TOKENS) -> list[Chunk]:
    """The compressible parts cut into structure-following chunks, each scored by its mean.

    ``scores`` holds one importance per transcript token, ``(len(t.ids),)``.
    """
    if scores.dim() != 1 or scores.shape[0] < len(t.ids):
        msg = f"scores {tuple(scores.shape)} must be 1-D with one entry per transcript token ({len(t.ids)},)."
        raise ValueError(msg)
    out = []
    for pi, part in enumerate(t.parts):
        if not part.compressible or part.n_tokens == 0:
            continue
        spans = make_chunks(torch.tensor(part.breaks, dtype=torch.long), chunk_tokens)
        cs = chunk_scores(scores[part.start : part.end], spans)
        out += [Chunk(pi, a, b, float(s)) for (a, b), s in zip(spans, cs.tolist(), strict=True)]
    return out


def kept_spans(t: Transcript, chunks: Sequence[Chunk], budget: int) -> tuple[KeptSpans, int]:
    """Char spans to keep per compressible part within ``budget`` draft tokens, and the tokens kept."""
    lengths = torch.tensor([c.n_tokens for c in chunks], dtype=torch.long)
    # A mention outranks every score (chunk scores are means of attention probabilities, within [0, 1]),
    # and a rarer mention every commoner one.
    keep = select_chunks(torch.tensor([c.score + 2.0 * c.mention for c in chunks]), lengths, budget)
    kept: KeptSpans = {}
    for c, k in zip(chunks, keep.tolist(), strict=True):
        kept.setdefault(c.part, [])
        if k:
            kept[c.part].append(t.parts[c.part].char_span(c.t0, c.t1))
    return kept, int(lengths[keep].sum()) if len(chunks) else 0
