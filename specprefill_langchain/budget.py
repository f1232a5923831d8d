"""The budget in *target* tokens (``max_target_tokens``): shrink the kept chunks until the target's count fits.

Selection spends a budget of *draft* tokens; a user's limit is in the target's tokens, counted by the
target's own counter (``targets.TargetCounter``, once per distinct message). The two tokenizers differ,
so the draft budget is lowered in a few rounds by the measured excess, each round converting target
tokens back to draft tokens at the transcript's own rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.messages import BaseMessage

from .selection import CHUNK_TOKENS, Chunk, KeptSpans, kept_spans
from .targets import TargetCounter
from .transcript import Transcript

# Rounds of shrinking: each lowers the budget by the excess plus half a chunk, so two or three rounds
# fit in practice; the cap bounds the counter calls of a pathological input (a provider's counter may
# be an API call).
MAX_ROUNDS = 8


@dataclass(frozen=True)
class Fitted:
    """What selection kept after the target budget was applied."""

    kept: KeptSpans
    kept_tokens: int  # draft tokens kept of the compressible text
    messages: list[BaseMessage]


def fit(
    t: Transcript,
    chunks: Sequence[Chunk],
    budget: int,
    gap_marker: str,
    max_target_tokens: int | None,
    target: TargetCounter | None,
    extra: Sequence[BaseMessage] = (),
) -> Fitted:
    """Keep the best chunks within ``budget`` draft tokens, then shrink until ``max_target_tokens`` fits.

    ``extra``: what the target reads besides the messages (system prompt, tool schemas): counted, never
    compressed. Without a target counter, draft tokens stand in for target tokens.
    """
    kept, kept_n = kept_spans(t, chunks, budget)
    out = t.rebuild(kept, gap_marker)
    if max_target_tokens is None:
        return Fitted(kept, kept_n, out)
    protected = len(t.ids) - t.compressible_tokens

    def count(messages: list[BaseMessage], kept_tokens: int) -> int:
        return target.count(messages, extra=extra) if target is not None else protected + kept_tokens

    rate = _target_per_draft(t, target, extra)
    for _ in range(MAX_ROUNDS):
        excess = count(out, kept_n) - max_target_tokens
        if excess <= 0 or budget <= 0:
            break
        budget -= math.ceil(excess / rate) + CHUNK_TOKENS // 2
        kept, kept_n = kept_spans(t, chunks, max(0, budget))
        out = t.rebuild(kept, gap_marker)
    return Fitted(kept, kept_n, out)  # may still be over: the protected text alone can exceed the budget


def _target_per_draft(t: Transcript, target: TargetCounter | None, extra: Sequence[BaseMessage]) -> float:
    """Target tokens per draft token of the messages (the extra is not in the draft's ids)."""
    if target is None or not t.ids:
        return 1.0
    own = target.count(t.messages) - target.overhead
    return max(own, 1) / len(t.ids)
