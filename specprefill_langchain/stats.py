"""What one compression did and cost (:class:`CompressionStats`), and its result.

Frozen dataclasses: a stats object is built once, where its numbers are known (``engine`` for a
compression, ``step`` adds what an agent step decided with :meth:`CompressionStats.for_step`, which
returns a new object), and never changed afterwards. Printable in a notebook; ``to_dict()`` is the
payload of the ``specprefill_stats`` callback event (LangSmith traces, ``astream_events``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from langchain_core.messages import BaseMessage

if TYPE_CHECKING:
    from .transcript import Transcript


@dataclass(frozen=True)
class PassCost:
    """What the draft's passes over one transcript cost. Token counts are draft tokens."""

    reused_tokens: int = 0  # prefix tokens taken from the KV cache instead of recomputed
    prefilled_tokens: int = 0
    passes: int = 0  # forward passes that scored (windows, second hop)
    windows: int = 0  # windows of the history (more than one past the draft's context)
    prefill_s: float = 0.0
    scoring_s: float = 0.0  # the focus's queries: capture and importance
    hop_s: float = 0.0  # the second hop: the restated chunks' forward and importance

    def add(self, other: PassCost) -> PassCost:
        """The sum of two costs (a new object; neither is changed)."""
        return PassCost(
            self.reused_tokens + other.reused_tokens,
            self.prefilled_tokens + other.prefilled_tokens,
            self.passes + other.passes,
            self.windows + other.windows,
            self.prefill_s + other.prefill_s,
            self.scoring_s + other.scoring_s,
            self.hop_s + other.hop_s,
        )


@dataclass(frozen=True)
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
    # The draft's passes (a PassCost, flattened so that the event and a notebook read them directly).
    reused_tokens: int = 0  # prefix tokens the draft did not recompute (KV cache hits)
    prefilled_tokens: int = 0
    passes: int = 0  # scoring passes of the draft (windows plus the second hop)
    windows: int = 0  # windows of the history (more than one when it exceeds the draft's context)
    prefill_s: float = 0.0
    scoring_s: float = 0.0
    hop_s: float = 0.0
    total_s: float = 0.0
    passthrough: bool = False
    reason: str | None = None  # why the input passed through unchanged
    error: str | None = None  # the draft's failure, when on_error="passthrough"
    unread: int = 0  # messages sent whole without the draft reading them (too long, invalid text)
    cache_key: str | None = None
    # What an agent step decided (module ``step``); a plain compression leaves the defaults.
    mode: str = "per_step"  # "stable": messages decided once, reused byte for byte
    frozen_reused: int = 0  # stable mode: tool results whose earlier decided form was reused
    newly_compressed: int = 0  # stable mode: tool results compressed in this step
    decided_whole: int = 0  # stable mode: tool results decided whole for good (unreadable, recall outputs, failures)
    rescues: int = 0  # stable mode: lines of earlier outputs brought back in this step
    rescued_chars: int = 0

    @property
    def kept_fraction(self) -> float:
        """Share of the compressible draft tokens that was kept."""
        return self.compressible_kept / self.compressible_tokens if self.compressible_tokens else 1.0

    @property
    def reuse_fraction(self) -> float:
        """Share of the prefix the draft took from its KV cache instead of recomputing."""
        seen = self.reused_tokens + self.prefilled_tokens
        return self.reused_tokens / seen if seen else 0.0

    @classmethod
    def failed(cls, error: BaseException, *, cache_key: str | None, total_s: float = 0.0) -> CompressionStats:
        """The stats of a compression that failed and passed its input through (``on_error="passthrough"``)."""
        text = f"{type(error).__name__}: {error}"
        return cls(passthrough=True, reason="error", error=text, cache_key=cache_key, total_s=total_s)

    def for_step(
        self,
        *,
        mode: str,
        frozen_reused: int = 0,
        newly_compressed: int = 0,
        decided_whole: int = 0,
        rescues: int = 0,
        rescued_chars: int = 0,
        total_s: float | None = None,
    ) -> CompressionStats:
        """These stats as one agent step's: a new object with what the step decided (and its whole time)."""
        return replace(
            self,
            mode=mode,
            frozen_reused=frozen_reused,
            newly_compressed=newly_compressed,
            decided_whole=decided_whole,
            rescues=rescues,
            rescued_chars=rescued_chars,
            total_s=self.total_s if total_s is None else total_s,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kept_fraction"] = round(self.kept_fraction, 4)
        d["reuse_fraction"] = round(self.reuse_fraction, 4)
        return d


@dataclass(frozen=True)
class CompressionResult:
    """The compressed messages, the stats, and what was kept (for :meth:`explain`)."""

    messages: list[BaseMessage]
    stats: CompressionStats
    original: list[BaseMessage] = field(default_factory=list)
    transcript: Transcript | None = None
    kept: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # part index -> char spans
