"""One compression, start to end: transcript -> passes -> chunks -> budget -> rebuild.

This is the glue between the parts; the LangChain faces (:mod:`compressor`, :mod:`langgraph`,
:mod:`middleware`) call :func:`compress` and never touch tensors (docs/design.md, "Data flow").
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Sequence

from langchain_core.messages import AIMessage, BaseMessage

from .chatformat import safe_json
from .config import CompressorConfig
from .draft import DraftModel
from .kvcache import PrefixCache
from .mentions import key_terms, mark_mentions
from .passes import token_scores
from .query import build_query, mention_text
from .selection import KeptSpans, chunks_of, kept_spans
from .stats import CompressionResult, CompressionStats
from .targets import TargetCounter
from .transcript import Transcript


def _check_encodable(messages: Sequence[BaseMessage]) -> None:
    """Fail with a clear message on text the tokenizer cannot take (lone surrogates).

    Without this the tokenizer raises a bare ``TypeError: TextEncodeInput must be ...`` from deep
    inside its Rust binding, which names neither the message nor the fix.
    """
    for i, m in enumerate(messages):
        blocks = [m.content] if isinstance(m.content, str) else m.content
        texts = [b if isinstance(b, str) else b.get("text") for b in blocks if isinstance(b, str | dict)]
        texts += [getattr(m, "name", None) or ""]
        if isinstance(m, AIMessage) and m.tool_calls:
            calls = [[c["name"], c["args"]] for c in m.tool_calls]
            texts.append(safe_json(calls))
        for text in texts:
            if not isinstance(text, str):
                continue
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as err:
                msg = (
                    f"message {i} ({type(m).__name__}) holds text that is not valid Unicode "
                    f"({err.reason} at character {err.start}: {text[err.start : err.end]!r}), which no "
                    "tokenizer can read. It usually comes from bytes decoded with errors='surrogateescape': "
                    "decode tool output with errors='replace' instead."
                )
                raise ValueError(msg) from None


def _check_size(messages: Sequence[BaseMessage], cfg: CompressorConfig) -> None:
    chars = sum(len(m.text) for m in messages)
    if chars > cfg.max_input_chars:
        msg = (
            f"the messages hold {chars:,} characters, more than max_input_chars={cfg.max_input_chars:,} "
            "(the draft would take too long to read them). Trim huge tool outputs at the tool, or raise "
            "max_input_chars; with on_error='passthrough' they pass through unchanged."
        )
        raise ValueError(msg)


def compress(
    messages: Sequence[BaseMessage],
    draft: DraftModel,
    cfg: CompressorConfig,
    *,
    store: PrefixCache | None = None,
    target: TargetCounter | None = None,
    key: str | None = None,
    only: Collection[int] | None = None,
    exclude_from_query: Collection[int] = (),
    target_extra: Sequence[BaseMessage] = (),
) -> CompressionResult:
    """Compress ``messages`` (no error handling here: the caller applies ``on_error``).

    ``only``: indices of the messages that may be compressed (the policy still applies); default all.
    ``exclude_from_query``: messages that must not be restated in a ``"step"`` query (the ones being
    decided; by default every compressible message).
    ``target_extra``: what the target reads besides ``messages`` (a system prompt kept apart, tool
    schemas as text): counted in the target-token budget and stats, never compressed.
    """
    t_start = time.perf_counter()
    stats = CompressionStats(cache_key=key)
    original = list(messages)
    _check_size(original, cfg)
    _check_encodable(original)
    allowed = None if only is None else frozenset(only)
    t = Transcript(original, draft.tokenizer, cfg.policy, only=allowed)
    excluded = set(exclude_from_query) | {p.message for p in t.compressible_parts}
    t.query = build_query(original, cfg.scoring.query, excluded)
    stats.draft_tokens_in = stats.draft_tokens_out = len(t.ids)
    stats.compressible_tokens = stats.compressible_kept = t.compressible_tokens

    def done(out: list[BaseMessage], kept: KeptSpans, reason: str | None) -> CompressionResult:
        stats.passthrough = reason is not None
        stats.reason = reason
        stats.ratio = stats.draft_tokens_out / stats.draft_tokens_in if stats.draft_tokens_in else 1.0
        if target is not None:
            stats.target_tokens_in = target.count(original, extra=target_extra)
            stats.target_tokens_out = (
                stats.target_tokens_in if out is original else target.count(out, extra=target_extra)
            )
            if cfg.max_target_tokens is not None:
                stats.target_budget_exceeded = stats.target_tokens_out > cfg.max_target_tokens
        stats.total_s = time.perf_counter() - t_start
        return CompressionResult(out, stats, original, t, kept)

    if t.compressible_tokens == 0:
        return done(original, {}, "nothing compressible")
    if t.compressible_tokens < cfg.policy.min_compressible_tokens:
        return done(
            original,
            {},
            f"below threshold ({t.compressible_tokens} < "
            f"{cfg.policy.min_compressible_tokens} compressible draft tokens)",
        )
    full_target = target.count(original, extra=target_extra) if target is not None and cfg.max_target_tokens else None
    if cfg.keep_ratio >= 1.0 and (
        cfg.max_target_tokens is None or (full_target or len(t.ids)) <= cfg.max_target_tokens
    ):
        return done(original, {}, "keep_ratio=1.0 and within budget")

    scores, cost = token_scores(t, draft, store, cfg, key)
    stats.record(cost)
    chunks = chunks_of(t, scores, cfg.selection.chunk_tokens)
    if cfg.selection.keep_mentions:
        chunks = mark_mentions(t, chunks, key_terms(mention_text(original, cfg.scoring.query, t.question())))
    budget = round(cfg.keep_ratio * t.compressible_tokens)
    kept, kept_n = kept_spans(t, chunks, budget, cfg.selection.keep_neighbors)
    out = t.rebuild(kept, cfg.selection.gap_marker)
    if cfg.max_target_tokens is not None:
        # Shrink the draft-token budget until the target's own count fits (a few rounds at most).
        # The counter caches per message, so each round counts only the messages that changed.
        protected = len(t.ids) - t.compressible_tokens
        extra = target.count([], extra=target_extra) - target.overhead if target is not None and target_extra else 0
        for _ in range(8):
            count = target.count(out, extra=target_extra) if target is not None else protected + kept_n
            if count <= cfg.max_target_tokens or budget <= 0:
                break
            # Target tokens per draft token of the messages (the extra is not in the draft's ids).
            per_draft = ((full_target - extra) if full_target else len(t.ids)) / max(1, len(t.ids))
            budget -= math.ceil((count - cfg.max_target_tokens) / per_draft) + cfg.selection.chunk_tokens // 2
            kept, kept_n = kept_spans(t, chunks, max(0, budget), cfg.selection.keep_neighbors)
            out = t.rebuild(kept, cfg.selection.gap_marker)
        stats.target_budget_exceeded = (
            target.count(out, extra=target_extra) if target is not None else protected + kept_n
        ) > (cfg.max_target_tokens)
    stats.compressible_kept = kept_n
    stats.draft_tokens_out = kept_n + (len(t.ids) - t.compressible_tokens)
    return done(out, kept, None)
