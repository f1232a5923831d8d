"""What one compression did and cost (:class:`CompressionStats`), and its result.

Plain dataclasses: printable in a notebook, ``to_dict()`` for the ``specprefill_stats`` callback
event (so the numbers show in LangSmith traces and ``astream_events``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.messages import BaseMessage

if TYPE_CHECKING:
    from .transcript import Transcript


@dataclass
class PassCost:
    """What the draft's passes over one transcript cost. Token counts are draft tokens."""

    reused_tokens: int = 0  # prefix tokens taken from the KV cache instead of recomputed
    prefilled_tokens: int = 0
    passes: int = 0  # forward passes that scored (windows, second hop)
    windows: int = 0  # windows of the history (more than one past the draft's context)
    prefill_s: float = 0.0
    scoring_s: float = 0.0

    def add(self, other: PassCost) -> PassCost:
        """The sum of two costs (a new object; neither is changed)."""
        return PassCost(
            self.reused_tokens + other.reused_tokens,
            self.prefilled_tokens + other.prefilled_tokens,
            self.passes + other.passes,
            self.windows + other.windows,
            self.prefill_s + other.prefill_s,
            self.scoring_s + other.scoring_s,
        )


@dataclass
class CompressionStats:
    """What one compression did and cost. Token counts are draft tokens unless named ``target_``."""

    draft_tokens_in: int = 0
    draft_tokens_out: int = 0
    compressible_tokens: int = 0
    compressible_kept: int = 0
    target_tokens_in: int | None = None
    target_tokens_out: int | None = None
    target_budget_exceeded: bool = False  # max_target_tokens could not be met (protected text alone is over)
    ratio: float = 1.0  # draft_tokens_out / draft_tokens_in
    reused_tokens: int = 0  # prefix tokens the draft did not recompute (KV cache hits)
    prefilled_tokens: int = 0
    windows: int = 0  # windows of the history (more than one when it exceeds the draft's context)
    passes: int = 0  # scoring passes of the draft (windows plus the second hop)
    prefill_s: float = 0.0
    scoring_s: float = 0.0
    total_s: float = 0.0
    passthrough: bool = False
    reason: str | None = None  # why the input passed through unchanged
    error: str | None = None  # the draft's failure, when on_error="passthrough"
    cache_key: str | None = None
    mode: str = "per_step"  # "stable": messages decided once, reused byte for byte
    frozen_reused: int = 0  # stable mode: messages whose earlier decided form was reused
    newly_compressed: int = 0  # stable mode: messages compressed in this call

    @property
    def kept_fraction(self) -> float:
        """Share of the compressible draft tokens that was kept."""
        return self.compressible_kept / self.compressible_tokens if self.compressible_tokens else 1.0

    @property
    def reuse_fraction(self) -> float:
        """Share of the prefix the draft took from its KV cache instead of recomputing."""
        seen = self.reused_tokens + self.prefilled_tokens
        return self.reused_tokens / seen if seen else 0.0

    def record(self, cost: PassCost) -> None:
        """Add the cost of the draft's passes."""
        self.reused_tokens += cost.reused_tokens
        self.prefilled_tokens += cost.prefilled_tokens
        self.windows += cost.windows
        self.passes += cost.passes
        self.prefill_s += cost.prefill_s
        self.scoring_s += cost.scoring_s

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kept_fraction"] = round(self.kept_fraction, 4)
        d["reuse_fraction"] = round(self.reuse_fraction, 4)
        return d


@dataclass
class CompressionResult:
    """The compressed messages, the stats, and what was kept (for :meth:`explain`)."""

    messages: list[BaseMessage]
    stats: CompressionStats
    original: list[BaseMessage] = field(default_factory=list)
    transcript: Transcript | None = None
    kept: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # part index -> char spans
