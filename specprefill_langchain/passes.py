"""The draft's passes over a transcript: per-token importance, in one window or several, in one hop or two.

:mod:`engine` asks this module for one number per transcript token and never sees the draft's
windows or hops:

* **windows**: a history longer than the draft's context is scored in fixed windows, each followed
  by the restated question, so earlier windows stay cached from step to step.
* **second hop** (``ScoringConfig.hop_chunks``): the question names a service, the tool output says
  which record that service uses, and the record never mentions the question. One pass finds the
  first link only. So the best chunks of the first pass are restated after the question and their
  tokens become the queries of a second pass: their attention finds what *they* point to. The two
  passes combine by maximum, so the second can only add to what the first found.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from . import scoring
from .config import CompressorConfig

if TYPE_CHECKING:
    from .draft import DraftModel
    from .engine import CompressionStats
    from .kvcache import PrefixCache
    from .transcript import Transcript


@dataclass(frozen=True)
class Chunk:
    """A run of compressible tokens that is kept or dropped whole."""

    part: int  # index into Transcript.parts
    t0: int  # local token range within the part
    t1: int
    score: float


def chunks_of(t: Transcript, scores: torch.Tensor, chunk_tokens: int) -> list[Chunk]:
    """The compressible parts cut into structure-following chunks, each scored by its mean."""
    out = []
    for pi, part in enumerate(t.parts):
        if not part.compressible or part.n_tokens == 0:
            continue
        spans = scoring.make_chunks(torch.tensor(part.breaks), chunk_tokens)
        cs = scoring.chunk_scores(scores[part.start : part.end], spans)
        out += [Chunk(pi, a, b, float(s)) for (a, b), s in zip(spans, cs.tolist(), strict=True)]
    return out


def token_scores(
    t: Transcript,
    draft: DraftModel,
    store: PrefixCache | None,
    cfg: CompressorConfig,
    key: str | None,
    stats: CompressionStats,
) -> torch.Tensor:
    """Importance of every transcript token, (len(t.ids),) float32."""
    sc = cfg.scoring
    ids, query_start = t.scoring_sequence(sc)
    limit = draft.context_length - sc.lookahead
    if len(ids) > limit:
        return _windowed(t, draft, store, cfg, key, stats)
    scores = _pass(ids, query_start, draft, store, cfg, key, stats)[: len(t.ids)]
    stats.windows = 1
    if sc.hop_chunks == 0:
        return scores
    best = sorted(chunks_of(t, scores, cfg.selection.chunk_tokens), key=lambda c: -c.score)[: sc.hop_chunks]
    restated = [i for c in sorted(best, key=lambda c: (c.part, c.t0)) for i in _chunk_ids(t, c)]
    if not restated or len(ids) + len(restated) > limit:
        return scores  # no room for the restated chunks: one hop is still a valid answer
    # The restated chunks go after the question (so they read it too) and only they are queries:
    # the question's own queries were the first pass.
    second = _pass(
        [*ids, *restated], len(ids), draft, store, cfg, key, stats, prefix_end=query_start, count_tokens=False
    )[: len(t.ids)]
    return torch.maximum(scores, second)


def _chunk_ids(t: Transcript, c: Chunk) -> list[int]:
    start = t.parts[c.part].start
    return t.ids[start + c.t0 : start + c.t1]


def _pass(
    ids: list[int],
    query_start: int,
    draft: DraftModel,
    store: PrefixCache | None,
    cfg: CompressorConfig,
    key: str | None,
    stats: CompressionStats,
    *,
    prefix_end: int | None = None,
    count_tokens: bool = True,
) -> torch.Tensor:
    """One scoring pass; its cost goes into ``stats`` (its tokens too, unless it re-reads a prefix
    that an earlier pass of this call already counted)."""
    imp = draft.importance(
        ids,
        query_start,
        scoring_config=cfg.scoring,
        store=store,
        key=key,
        chunk=cfg.prefill_chunk,
        prefix_end=prefix_end,
    )
    if count_tokens:
        stats.reused_tokens += imp.reused_tokens
        stats.prefilled_tokens += imp.prefilled_tokens
    stats.prefill_s += imp.prefill_s
    stats.scoring_s += imp.scoring_s
    return imp.scores


def _windowed(
    t: Transcript,
    draft: DraftModel,
    store: PrefixCache | None,
    cfg: CompressorConfig,
    key: str | None,
    stats: CompressionStats,
) -> torch.Tensor:
    """Longer than the draft can read: score fixed windows of the history, each followed by the
    restated question. Window k always covers the same ids, so earlier windows hit the cache on the
    next step and only the last one grows. Scores of different windows are max-of-softmax values,
    so they stay comparable enough for one global budget. (No second hop here: it would double the
    cost of the longest inputs.)"""
    sc = cfg.scoring
    tail = t.restated_tail(sc)
    size = draft.context_length - sc.lookahead - len(tail)
    if size < 256:
        msg = (
            f"the question tail ({len(tail)} tokens) leaves no room in the draft's "
            f"{draft.context_length}-token window: lower scoring.max_question_tokens."
        )
        raise ValueError(msg)
    scores = torch.zeros(len(t.ids))
    for k in range(math.ceil(len(t.ids) / size)):
        seg = t.ids[k * size : (k + 1) * size]
        wkey = None if key is None else f"{key}#window{k}"
        scores[k * size : k * size + len(seg)] = _pass(seg + tail, len(seg), draft, store, cfg, wkey, stats)[: len(seg)]
        stats.windows += 1
    return scores
