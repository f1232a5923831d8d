"""The draft's passes over a transcript: one importance per token, and what the passes cost.

:mod:`engine` asks this module for one number per transcript token and never sees the draft's cache,
windows or hops (docs/design.md, "Passes"):

* **one pass** (:func:`score_pass`): the reusable prefix is looked up in the prefix store, only the
  tokens past it are prefilled, and the prefix is written back; the rest (the queries, any look-ahead)
  runs on a throw-away copy, so the store only ever holds transcript prefixes.
* **windows**: a history longer than the draft's context is scored in windows that start on message
  boundaries, each followed by the restated question, so earlier windows stay cached from step to step.
* **second hop** (``ScoringConfig.hop_chunks``): the question names a service, the tool output says
  which record that service uses, and the record never mentions the question. One pass finds the
  first link only. So the best chunks of the first pass are restated after the question and their
  tokens become the queries of a second pass: their attention finds what *they* point to. The two
  passes combine by maximum, so the second can only add to what the first found.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .config import CompressorConfig, ScoringConfig
from .kvcache import PrefixCache, Snapshot, cache_from_snapshot, snapshot_of
from .scoring import token_importance
from .selection import Chunk, chunks_of
from .stats import PassCost

if TYPE_CHECKING:
    from .draft import DraftModel
    from .transcript import Transcript


@dataclass
class PassResult:
    """Per-token importance of one scoring pass, and what it cost."""

    scores: torch.Tensor  # (n_context,) float32
    reused_tokens: int
    prefilled_tokens: int
    prefill_s: float
    scoring_s: float
    # The pass's own cache after its forward (prefix + tail + look-ahead), when asked for: a second
    # hop extends it instead of re-reading the tail.
    cache: Any = field(default=None, repr=False)

    def cost(self, *, count_tokens: bool = True, windows: int = 0) -> PassCost:
        """This pass as a :class:`PassCost` (tokens left out when an earlier pass counted them)."""
        return PassCost(
            reused_tokens=self.reused_tokens if count_tokens else 0,
            prefilled_tokens=self.prefilled_tokens if count_tokens else 0,
            passes=1,
            windows=windows,
            prefill_s=self.prefill_s,
            scoring_s=self.scoring_s,
        )


def scoring_layers(draft: DraftModel, sc: ScoringConfig) -> list[int]:
    """The layers whose queries score: full-attention layers (their cache holds every key) below the depth."""
    depth = draft.depth_of(sc.depth)
    layers = draft.full_layers if sc.layers == "auto" else range(draft.n_layers)
    return sorted(i for i in set(layers) & set(draft.full_layers) if i < depth)


@torch.inference_mode()
def score_pass(
    draft: DraftModel,
    ids: Sequence[int],
    query_start: int,
    *,
    scoring: ScoringConfig | None = None,
    store: PrefixCache | None = None,
    key: str | None = None,
    chunk: int = CompressorConfig.prefill_chunk,
    prefix_end: int | None = None,
    keep_cache: bool = False,
) -> PassResult:
    """Score every position of ``ids`` by the attention of the queries at ``query_start:``.

    ``ids[:prefix_end]`` (default: up to ``query_start``) is the reusable prefix: it is looked up in
    (and written back to) ``store``, so a transcript that only grew since the last call prefills
    only its new tokens. Everything after it runs on a cache that the store never sees
    (``keep_cache``: returned in the result, for a second hop to extend).
    """
    sc = scoring or ScoringConfig()
    n = len(ids)
    if not 0 < query_start < n:
        msg = f"query_start={query_start} must lie inside the {n} ids (at least one context token)."
        raise ValueError(msg)
    prefix_end = query_start if prefix_end is None else prefix_end
    if not 0 < prefix_end <= query_start:
        msg = f"prefix_end={prefix_end} must lie in [1, query_start={query_start}]."
        raise ValueError(msg)
    if n + sc.lookahead > draft.context_length:
        msg = (
            f"{n} tokens (+{sc.lookahead} look-ahead) exceed the draft's context of "
            f"{draft.context_length}: score the history in windows (the compressor does this)."
        )
        raise ValueError(msg)
    prefix = list(ids[:prefix_end])
    depth = draft.depth_of(sc.depth)
    t0 = time.perf_counter()
    snap: Snapshot | None = None
    reused = 0
    if store is not None:
        snap, reused = store.lookup(prefix, key=key, croppable=not draft.has_sliding)
        if snap is not None and len(snap.layers) != depth:  # a store shared with another depth: no use
            snap, reused = None, 0
    cache = cache_from_snapshot(draft.config_at(depth), snap, draft.device) if snap else draft.new_cache(depth)
    cache = draft.prefill(prefix, cache, chunk=chunk, depth=depth)
    if store is not None:
        store.put(prefix, snapshot_of(cache), key=key)
    t1 = time.perf_counter()

    captured = draft.capture(
        list(ids[prefix_end:]), cache, layers=scoring_layers(draft, sc), lookahead=sc.lookahead, depth=depth
    )
    # Only positions from `query_start` on are queries (tokens between prefix_end and query_start are
    # read but do not ask); every look-ahead step is a query too.
    captured = [(q[:, query_start - prefix_end :], k, s) for q, k, s in captured]
    positions = torch.arange(query_start, n + sc.lookahead, device=draft.device)
    scores = token_importance(
        captured,
        positions,
        n,
        pool_kernel=sc.pool_kernel,
        layer_reduce=sc.layer_reduce,
        head_reduce=sc.head_reduce,
        query_reduce=sc.query_reduce,
    )
    t2 = time.perf_counter()
    kept = cache if keep_cache else None
    return PassResult(scores.float().cpu(), reused, prefix_end - reused, t1 - t0, t2 - t1, kept)


@torch.inference_mode()
def extend_pass(draft: DraftModel, first: PassResult, n: int, extra: Sequence[int], sc: ScoringConfig) -> PassResult:
    """Score the ``n`` context positions by the queries of ``extra`` tokens read after them.

    ``first`` must hold the cache of a pass over those ``n`` ids (``keep_cache=True``); look-ahead
    tokens past ``n`` are cropped first. Costs one forward of ``len(extra)`` tokens: no lookup, no
    prefill, and the first pass's tail is not read again.
    """
    if first.cache is None:
        msg = "extend_pass needs the first pass's cache: call score_pass(..., keep_cache=True)."
        raise ValueError(msg)
    t0 = time.perf_counter()
    cache = first.cache
    if cache.get_seq_length() > n:
        # A negative count removes that many tokens: transformers 5.24 refuses the positive (absolute
        # length) form that 5.23 also took, and both take this one.
        cache.crop(n - cache.get_seq_length())
    depth = draft.depth_of(sc.depth)
    captured = draft.capture(list(extra), cache, layers=scoring_layers(draft, sc), depth=depth)
    positions = torch.arange(n, n + len(extra), device=draft.device)
    scores = token_importance(
        captured,
        positions,
        n + len(extra),
        pool_kernel=sc.pool_kernel,
        layer_reduce=sc.layer_reduce,
        head_reduce=sc.head_reduce,
        query_reduce=sc.query_reduce,
    )
    return PassResult(scores.float().cpu(), 0, 0, 0.0, time.perf_counter() - t0)


def token_scores(
    t: Transcript, draft: DraftModel, store: PrefixCache | None, cfg: CompressorConfig, key: str | None
) -> tuple[torch.Tensor, PassCost]:
    """Importance of every transcript token, ``(len(t.ids),)`` float32, and what it cost."""
    sc = cfg.scoring
    ids, query_start = t.scoring_sequence(sc)
    limit = draft.context_length - sc.lookahead
    if len(ids) > limit:
        return _windowed(t, draft, store, cfg, key)
    # A sliding-window draft cannot crop look-ahead tokens off its cache: its hop re-reads the tail.
    croppable = sc.lookahead == 0 or not draft.has_sliding
    first = score_pass(
        draft, ids, query_start, scoring=sc, store=store, key=key, chunk=cfg.prefill_chunk, keep_cache=croppable
    )
    scores, cost = first.scores[: len(t.ids)], first.cost(windows=1)
    if sc.hop_chunks == 0:
        return scores, cost
    best = sorted(chunks_of(t, scores, cfg.selection.chunk_tokens), key=lambda c: -c.score)[: sc.hop_chunks]
    restated = [i for c in sorted(best, key=lambda c: (c.part, c.t0)) for i in _chunk_ids(t, c)]
    if not restated or len(ids) + len(restated) > limit:
        return scores, cost  # no room for the restated chunks: one hop is still a valid answer
    # The restated chunks go after the query (so they read it too) and only they are queries: the
    # query's own queries were the first pass. They extend the first pass's cache, so the second hop
    # costs one forward of the restated tokens.
    if croppable:
        second = extend_pass(draft, first, len(ids), restated, sc)
    else:
        second = score_pass(
            draft,
            [*ids, *restated],
            len(ids),
            scoring=sc,
            store=store,
            key=key,
            chunk=cfg.prefill_chunk,
            prefix_end=query_start,
        )
    return torch.maximum(scores, second.scores[: len(t.ids)]), cost.add(second.cost(count_tokens=False))


def _chunk_ids(t: Transcript, c: Chunk) -> list[int]:
    start = t.parts[c.part].start
    return t.ids[start + c.t0 : start + c.t1]


def window_starts(message_starts: Sequence[int], n: int, size: int) -> list[int]:
    """Token positions where windows of at most ``size`` tokens begin, on message starts where possible.

    A window ends before the first message start that would make it longer than ``size``; a single
    message longer than ``size`` is cut at ``size``. The starts depend only on the transcript's own
    tokens, never on the question, so they do not move when a new turn arrives, and windows before
    the last stay byte-identical (cached) from step to step.
    """
    if size < 1:
        msg = f"window size={size} must be at least 1 token."
        raise ValueError(msg)
    bounds = sorted({s for s in message_starts if 0 < s < n})
    starts, pos = [0], 0
    while n - pos > size:
        fits = [s for s in bounds if pos < s <= pos + size]
        pos = fits[-1] if fits else pos + size
        starts.append(pos)
    return starts


def _windowed(
    t: Transcript, draft: DraftModel, store: PrefixCache | None, cfg: CompressorConfig, key: str | None
) -> tuple[torch.Tensor, PassCost]:
    """Longer than the draft can read: score windows of the history, each followed by the restated question.

    Every window after the first also starts with the transcript's first message (the system prompt):
    each window's softmax then has the same place to put the attention it gives nothing in particular
    (an attention sink), so a window with nothing relevant scores low instead of spreading its whole
    mass over irrelevant text, and scores of different windows can share one budget.
    (No second hop here: it would double the cost of the longest inputs.)
    """
    sc = cfg.scoring
    tail = t.restated_tail(sc)
    sink = t.ids[: t.message_start(1)] if len(t.messages) > 1 else []
    sink = sink if len(sink) <= 512 else sink[:512]
    size = draft.context_length - sc.lookahead - len(tail) - len(sink)
    if size < 256:
        msg = (
            f"the question tail ({len(tail)} tokens) and the first message ({len(sink)}) leave no room in the "
            f"draft's {draft.context_length}-token window: lower scoring.max_question_tokens."
        )
        raise ValueError(msg)
    scores = torch.zeros(len(t.ids))
    cost = PassCost()
    starts = window_starts([t.message_start(i) for i in range(len(t.messages))], len(t.ids), size)
    for k, (a, b) in enumerate(zip(starts, [*starts[1:], len(t.ids)], strict=True)):
        head = [] if a == 0 else sink
        seg = head + t.ids[a:b]
        wkey = None if key is None else f"{key}#window{k}"
        res = score_pass(draft, seg + tail, len(seg), scoring=sc, store=store, key=wkey, chunk=cfg.prefill_chunk)
        scores[a:b] = res.scores[len(head) : len(seg)]
        cost = cost.add(res.cost(windows=1))
    return scores, cost
