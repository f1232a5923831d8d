"""One compression, start to end: transcript -> passes -> chunks -> budget -> rebuild.

This is the glue between the parts; the LangChain faces reach it through
``SpecPrefillCompressor.compress`` and never touch tensors (docs/design.md, "Data flow"). Errors are
not handled here: the compressor applies ``on_error``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass

from langchain_core.messages import BaseMessage

from .budget import fit
from .config import CompressorConfig
from .draft import DraftModel
from .focus import focus_text, mention_text
from .kvcache import PrefixCache
from .mentions import key_terms, mark_mentions
from .passes import token_scores
from .policy import compressible_mask
from .selection import chunks_of
from .stats import CompressionResult, CompressionStats, PassCost
from .targets import TargetCounter
from .transcript import Transcript

log = logging.getLogger("specprefill_langchain")


@dataclass(frozen=True)
class Call:
    """What one compression reads besides the messages (the faces' side of ``engine.compress``)."""

    only: Collection[int] | None = None  # indices that may be compressed (the policy still applies)
    target_extra: Sequence[BaseMessage] = ()  # what the target also reads: counted, never compressed
    key: str | None = None  # the thread, for O(1) KV-cache lookup
    focus: str | None = None  # the focus text, when the caller saw more than these messages (else derived)


def unread_messages(messages: Sequence[BaseMessage], max_chars: int) -> frozenset[int]:
    """Messages too long for the draft to read in one call: they are sent whole (docs/design.md, "Policy")."""
    unread = frozenset(i for i, m in enumerate(messages) if len(m.text) > max_chars)
    for i in sorted(unread):
        m = messages[i]
        log.warning(
            "message %d (%s, id=%s) holds %d characters, more than max_input_chars=%d: sent whole, not read",
            i, type(m).__name__, m.id, len(m.text), max_chars,
        )  # fmt: skip
    return unread


def _check_size(messages: Sequence[BaseMessage], unread: frozenset[int], cfg: CompressorConfig) -> None:
    chars = sum(len(m.text) for i, m in enumerate(messages) if i not in unread)
    if chars > cfg.max_input_chars:
        msg = (
            f"the messages hold {chars:,} characters, more than max_input_chars={cfg.max_input_chars:,} "
            "(the draft would take too long to read them). Trim huge tool outputs at the tool, or raise "
            "max_input_chars; with on_error='passthrough' they pass through unchanged."
        )
        raise ValueError(msg)


def transcript_of(messages: Sequence[BaseMessage], draft: DraftModel, cfg: CompressorConfig, call: Call) -> Transcript:
    """The draft's view of ``messages``: what may be compressed, and the focus of its queries."""
    unread = unread_messages(messages, cfg.max_input_chars)
    _check_size(messages, unread, cfg)
    mask = compressible_mask(messages, cfg.policy, call.only)
    scored = frozenset(i for i, ok in enumerate(mask) if ok and i not in unread)
    focus = call.focus if call.focus is not None else focus_text(messages, cfg.scoring.focus, scored)
    return Transcript(messages, draft.tokenizer, cfg.policy, only=scored, focus=focus, unread=unread)


def _skip_reason(t: Transcript, cfg: CompressorConfig, target: TargetCounter | None, call: Call) -> str | None:
    """Why compression would not pay (the input then passes through), or None."""
    n = t.compressible_tokens
    if n == 0:
        return "nothing compressible"
    if n < cfg.policy.min_compressible_tokens:
        return f"below threshold ({n} < {cfg.policy.min_compressible_tokens} compressible draft tokens)"
    if cfg.keep_ratio < 1.0:
        return None
    limit = cfg.max_target_tokens
    size = target.count(t.messages, extra=call.target_extra) if target is not None and limit else len(t.ids)
    return "keep_ratio=1.0 and within budget" if limit is None or size <= limit else None


def compress(
    messages: Sequence[BaseMessage],
    draft: DraftModel,
    cfg: CompressorConfig,
    *,
    store: PrefixCache | None = None,
    target: TargetCounter | None = None,
    call: Call = Call(),
) -> CompressionResult:
    """Compress ``messages``: the draft scores, selection keeps the best chunks within the budget."""
    started = time.perf_counter()
    original = list(messages)
    t = transcript_of(original, draft, cfg, call)
    reason = _skip_reason(t, cfg, target, call)
    if reason is not None:
        stats = _stats(t, cfg, target, call, original, t.compressible_tokens, PassCost(), started, reason)
        return CompressionResult(original, stats, original, t, {})
    scores, cost = token_scores(t, draft, store, cfg, call.key)
    chunks = chunks_of(t, scores)
    if cfg.selection.keep_mentions:
        chunks = mark_mentions(t, chunks, key_terms(mention_text(original, cfg.scoring.focus, t.focus_text())))
    budget = round(cfg.keep_ratio * t.compressible_tokens)
    gap = cfg.selection.gap_marker
    fitted = fit(t, chunks, budget, gap, cfg.max_target_tokens, target, call.target_extra)
    stats = _stats(t, cfg, target, call, fitted.messages, fitted.kept_tokens, cost, started, None)
    return CompressionResult(fitted.messages, stats, original, t, fitted.kept)


def _stats(
    t: Transcript,
    cfg: CompressorConfig,
    target: TargetCounter | None,
    call: Call,
    out: list[BaseMessage],
    kept_tokens: int,
    cost: PassCost,
    started: float,
    reason: str | None,
) -> CompressionStats:
    """The one place a compression's stats are built."""
    tokens_out = kept_tokens + len(t.ids) - t.compressible_tokens
    target_in = target_out = None
    if target is not None:
        target_in = target.count(t.messages, extra=call.target_extra)
        target_out = target_in if reason is not None else target.count(out, extra=call.target_extra)
    limit = cfg.max_target_tokens
    return CompressionStats(
        draft_tokens_in=len(t.ids),
        draft_tokens_out=tokens_out,
        compressible_tokens=t.compressible_tokens,
        compressible_kept=kept_tokens,
        target_tokens_in=target_in,
        target_tokens_out=target_out,
        target_budget_exceeded=limit is not None and (tokens_out if target_out is None else target_out) > limit,
        ratio=tokens_out / len(t.ids) if t.ids else 1.0,
        **asdict(cost),
        total_s=time.perf_counter() - started,
        passthrough=reason is not None,
        reason=reason,
        unread=len(t.unread),
        cache_key=call.key,
    )
