"""The draft's passes over a transcript: one importance per token, and what the passes cost.

:mod:`engine` asks this module for one number per transcript token and never sees the draft's cache,
windows or hops (docs/design.md, "Passes"):

* **one pass** (:func:`score_pass`): the reusable prefix is looked up in the prefix store, only the
  tokens past it are prefilled, and the prefix is written back; the rest (the restated focus, whose
  tokens are the queries) runs on a throw-away copy, so the store only ever holds transcript prefixes.
* **windows**: a history longer than the draft's context is scored in windows that start on message
  boundaries, each followed by the restated focus, so earlier windows stay cached from step to step.
* **second hop** (``ScoringConfig.hop_chunks``): the focus names a service, the tool output says
  which record that service uses, and the record never mentions the focus. One pass finds the
  first link only. So the best chunks of the first pass are restated after the focus and their
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
from .draft import PREFILL_CHUNK
from .kvcache import PrefixCache, Snapshot, cache_from_snapshot, crop_snapshot, snapshot_of
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

    def cost(self, *, hop: bool = False, windows: int = 0) -> PassCost:
        """This pass as a :class:`PassCost`; a ``hop`` re-reads no token the first pass did not count."""
        return PassCost(
            reused_tokens=0 if hop else self.reused_tokens,
            prefilled_tokens=0 if hop else self.prefilled_tokens,
            passes=1,
            windows=windows,
            prefill_s=self.prefill_s,
            scoring_s=0.0 if hop else self.scoring_s,
            hop_s=self.scoring_s if hop else 0.0,
        )


def scoring_layers(draft: DraftModel, sc: ScoringConfig) -> list[int]:
    """The layers whose queries score: full-attention layers below the depth.

    A sliding-window layer (Gemma 3 has 15 of 18) keeps only its last few hundred keys, so it cannot
    score a long history; every other layer's cache holds every key.
    """
    depth = draft.depth_of(sc.depth)
    return [i for i in draft.full_layers if i < depth]


@torch.inference_mode()
def score_pass(
    draft: DraftModel,
    ids: Sequence[int],
    query_start: int,
    *,
    scoring: ScoringConfig | None = None,
    store: PrefixCache | None = None,
    key: str | None = None,
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
    if n > draft.context_length:
        msg = (
            f"{n} tokens exceed the draft's context of {draft.context_length}: score the history in "
            "windows (the compressor does this)."
        )
        raise ValueError(msg)
    prefix = list(ids[:prefix_end])
    depth = draft.depth_of(sc.depth)
    t0 = time.perf_counter()
    snap, reused = _lookup(draft, store, prefix, key, depth)
    cache = cache_from_snapshot(draft.config_at(depth), snap, draft.device) if snap else draft.new_cache(depth)
    # Prefill on a fixed grid of chunks (docs/design.md, "Same bytes on every worker"): the store only
    # holds whole chunks, and the rest is prefilled after them, so a warm and a cold worker run the
    # very same matmuls and, in bfloat16 too, keep the very same chunks.
    grid = len(prefix) - len(prefix) % PREFILL_CHUNK
    cache = draft.prefill(prefix[:grid], cache, depth=depth)
    if store is not None and grid > reused:
        store.put(prefix[:grid], snapshot_of(cache), key=key)
    cache = draft.prefill(prefix, cache, depth=depth)
    t1 = time.perf_counter()

    captured = draft.capture(list(ids[prefix_end:]), cache, layers=scoring_layers(draft, sc), depth=depth)
    # Only positions from `query_start` on are queries (tokens between prefix_end and query_start are
    # read but do not ask).
    captured = [(q[:, query_start - prefix_end :], k, s) for q, k, s in captured]
    scores = token_importance(captured, torch.arange(query_start, n, device=draft.device), n)
    t2 = time.perf_counter()
    kept = cache if keep_cache else None
    return PassResult(scores.float().cpu(), reused, prefix_end - reused, t1 - t0, t2 - t1, kept)


def _lookup(
    draft: DraftModel, store: PrefixCache | None, prefix: list[int], key: str | None, depth: int
) -> tuple[Snapshot | None, int]:
    """The cached snapshot of the longest whole-chunk prefix of ``prefix``, and its length (0: none)."""
    if store is None:
        return None, 0
    snap, reused = store.lookup(prefix, key=key, croppable=not draft.has_sliding)
    if snap is None or len(snap.layers) != depth:  # a store shared with another depth: no use
        return None, 0
    whole = reused - reused % PREFILL_CHUNK
    snap = crop_snapshot(snap, whole) if whole else None
    return (snap, whole) if snap is not None else (None, 0)


@torch.inference_mode()
def extend_pass(draft: DraftModel, first: PassResult, n: int, extra: Sequence[int], sc: ScoringConfig) -> PassResult:
    """Score the ``n`` context positions by the queries of ``extra`` tokens read after them.

    ``first`` must hold the cache of a pass over exactly those ``n`` ids (``keep_cache=True``).
    Costs one forward of ``len(extra)`` tokens: no lookup, no prefill, and the first pass's tail is
    not read again.
    """
    if first.cache is None or first.cache.get_seq_length() != n:
        msg = f"extend_pass needs the cache of a first pass over the {n} ids: call score_pass(..., keep_cache=True)."
        raise ValueError(msg)
    t0 = time.perf_counter()
    depth = draft.depth_of(sc.depth)
    captured = draft.capture(list(extra), first.cache, layers=scoring_layers(draft, sc), depth=depth)
    positions = torch.arange(n, n + len(extra), device=draft.device)
    scores = token_importance(captured, positions, n + len(extra))
    return PassResult(scores.float().cpu(), 0, 0, 0.0, time.perf_counter() - t0)


def token_scores(
    t: Transcript, draft: DraftModel, store: PrefixCache | None, cfg: CompressorConfig, key: str | None
) -> tuple[torch.Tensor, PassCost]:
    """Importance of every transcript token, ``(len(t.ids),)`` float32, and what it cost."""
    sc = cfg.scoring
    ids, query_start = t.scoring_sequence()
    if len(ids) > draft.context_length:
        return _windowed(t, draft, store, cfg, key)
    first = score_pass(draft, ids, query_start, scoring=sc, store=store, key=key, keep_cache=sc.hop_chunks > 0)
    scores, cost = first.scores[: len(t.ids)], first.cost(windows=1)
    if sc.hop_chunks == 0:
        return scores, cost
    best = sorted(chunks_of(t, scores), key=lambda c: -c.score)[: sc.hop_chunks]
    restated = [i for c in sorted(best, key=lambda c: (c.part, c.t0)) for i in _chunk_ids(t, c)]
    if not restated or len(ids) + len(restated) > draft.context_length:
        return scores, cost  # no room for the restated chunks: one hop is still a valid answer
    # The restated chunks go after the focus (so they read it too) and only they are queries: the
    # focus's own queries were the first pass. They extend the first pass's cache, so the second hop
    # costs one forward of the restated tokens.
    second = extend_pass(draft, first, len(ids), restated, sc)
    return torch.maximum(scores, second.scores[: len(t.ids)]), cost.add(second.cost(hop=True))


def _chunk_ids(t: Transcript, c: Chunk) -> list[int]:
    start = t.parts[c.part].start
    return t.ids[start + c.t0 : start + c.t1]


def window_starts(message_starts: Sequence[int], n: int, size: int) -> list[int]:
    """Token positions where windows of at most ``size`` tokens begin, on message starts where possible.

    A window ends before the first message start that would make it longer than ``size``; a single
    message longer than ``size`` is cut at ``size``. The starts depend only on the transcript's own
    tokens, never on the focus, so they do not move when a new turn arrives, and windows before
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
    """Longer than the draft can read: score windows of the history, each followed by the restated focus.

    Every window after the first also starts with the transcript's first message (the system prompt):
    each window's softmax then has the same place to put the attention it gives nothing in particular
    (an attention sink), so a window with nothing relevant scores low instead of spreading its whole
    mass over irrelevant text, and scores of different windows can share one budget.
    (No second hop here: it would double the cost of the longest inputs.)
    """
    sc = cfg.scoring
    tail = t.restated_tail()
    sink = t.ids[: t.message_start(1)] if len(t.messages) > 1 else []
    sink = sink if len(sink) <= 512 else sink[:512]
    size = draft.context_length - len(tail) - len(sink)
    if size < 256:
        msg = (
            f"the focus tail ({len(tail)} tokens) and the first message ({len(sink)}) leave no room in the "
            f"draft's {draft.context_length}-token window: use a draft with a longer context."
        )
        raise ValueError(msg)
    scores = torch.zeros(len(t.ids))
    cost = PassCost()
    starts = window_starts([t.message_start(i) for i in range(len(t.messages))], len(t.ids), size)
    for k, (a, b) in enumerate(zip(starts, [*starts[1:], len(t.ids)], strict=True)):
        head = [] if a == 0 else sink
        seg = head + t.ids[a:b]
        wkey = None if key is None else f"{key}#window{k}"
        res = score_pass(draft, seg + tail, len(seg), scoring=sc, store=store, key=wkey)
        scores[a:b] = res.scores[len(head) : len(seg)]
        cost = cost.add(res.cost(windows=1))
    return scores, cost


def line_scores(draft: DraftModel, lines: Sequence[str], focus: str, sc: ScoringConfig) -> list[float]:
    """How much the focus's queries attend to each of ``lines``, restated as one tool output before it.

    The rescue's second signal (module ``rescue``): when the lines a step names literally do not fit
    its budget, the draft orders them, as the second hop lets restated chunks be read after the focus.
    One short forward of the lines and the focus, no history: the mean importance of each line's tokens.
    """
    from .chatformat import chat_format, readable

    fmt = chat_format(draft.tokenizer)

    def encode(text: str) -> list[int]:
        return list(draft.tokenizer(readable(text), add_special_tokens=False)["input_ids"])

    ids, spans = encode(fmt.header("tool")), []
    for line in lines:
        piece = encode(line + "\n")
        spans.append((len(ids), len(ids) + len(piece)))
        ids += piece
    query = encode(fmt.end + fmt.header("human") + focus) + encode(fmt.end + fmt.generation_prompt())
    if not lines or len(ids) + len(query) > draft.context_length:
        return [0.0] * len(lines)
    scores = score_pass(draft, [*ids, *query], len(ids), scoring=sc).scores
    return [float(scores[a:b].mean()) if b > a else 0.0 for a, b in spans]
