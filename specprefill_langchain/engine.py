"""One compression, start to end: transcript -> draft importance -> chunks -> budget -> rebuild.

This is the glue between the parts; the LangChain faces (:mod:`compressor`, :mod:`langgraph`,
:mod:`middleware`) call :func:`compress` and never touch tensors.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from langchain_core.messages import AIMessage, BaseMessage

from . import scoring
from .config import CompressorConfig
from .draft import DraftModel
from .kvcache import PrefixCache
from .passes import Chunk, chunks_of, token_scores
from .transcript import Transcript


@dataclass
class CompressionStats:
    """What one compression did and cost. Token counts are draft tokens unless named ``target_``."""

    draft_tokens_in: int = 0
    draft_tokens_out: int = 0
    compressible_tokens: int = 0
    compressible_kept: int = 0
    target_tokens_in: int | None = None
    target_tokens_out: int | None = None
    ratio: float = 1.0  # draft_tokens_out / draft_tokens_in
    reused_tokens: int = 0  # prefix tokens the draft did not recompute (KV cache hits)
    prefilled_tokens: int = 0
    windows: int = 0  # draft passes (more than one when the history exceeds the draft's context)
    prefill_s: float = 0.0
    scoring_s: float = 0.0
    total_s: float = 0.0
    passthrough: bool = False
    reason: str | None = None  # why the input passed through unchanged
    error: str | None = None  # the draft's failure, when on_error="passthrough"
    cache_key: str | None = None

    @property
    def kept_fraction(self) -> float:
        """Share of the compressible draft tokens that was kept."""
        return self.compressible_kept / self.compressible_tokens if self.compressible_tokens else 1.0

    @property
    def reuse_fraction(self) -> float:
        """Share of the prefix the draft took from its KV cache instead of recomputing."""
        seen = self.reused_tokens + self.prefilled_tokens
        return self.reused_tokens / seen if seen else 0.0

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


def _count_target(target: Any, messages: Sequence[BaseMessage]) -> int | None:
    if target is None:
        return None
    return int(target.get_num_tokens_from_messages(list(messages)))


def _select(t: Transcript, chunks: list[Chunk], budget: int, neighbors: int) -> dict[int, list[tuple[int, int]]]:
    """Char spans to keep per compressible part, within ``budget`` draft tokens."""
    lengths = torch.tensor([c.t1 - c.t0 for c in chunks], dtype=torch.long)
    keep = scoring.select_chunks(torch.tensor([c.score for c in chunks]), lengths, budget)
    if neighbors:
        # Spend what is left of the budget on the chunk right after a kept one, best first: an
        # answer often sits on the line after the line that matched the question.
        left = budget - int(lengths[keep].sum())
        for j in sorted(range(len(chunks) - 1), key=lambda j: -chunks[j].score):
            nxt = j + 1
            same = chunks[nxt].part == chunks[j].part
            if keep[j] and same and not keep[nxt] and lengths[nxt] <= min(left, neighbors):
                keep[nxt] = True
                left -= int(lengths[nxt])
    kept: dict[int, list[tuple[int, int]]] = {}
    for c, k in zip(chunks, keep.tolist(), strict=True):
        kept.setdefault(c.part, [])
        if k:
            kept[c.part].append(t.parts[c.part].char_span(c.t0, c.t1))
    return kept


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
            texts.append(json.dumps(calls, ensure_ascii=False, default=str))
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


def compress(
    messages: Sequence[BaseMessage],
    draft: DraftModel,
    cfg: CompressorConfig,
    *,
    store: PrefixCache | None = None,
    target: Any = None,
    key: str | None = None,
) -> CompressionResult:
    """Compress ``messages`` (no error handling here: the caller applies ``on_error``)."""
    t_start = time.perf_counter()
    stats = CompressionStats(cache_key=key)
    original = list(messages)
    chars = sum(len(m.text) for m in original)
    if chars > cfg.max_input_chars:
        msg = (
            f"the messages hold {chars:,} characters, more than max_input_chars={cfg.max_input_chars:,} "
            "(the draft would take too long to read them). Trim huge tool outputs at the tool, or raise "
            "max_input_chars; with on_error='passthrough' they pass through unchanged."
        )
        raise ValueError(msg)
    _check_encodable(original)
    t = Transcript(original, draft.tokenizer, cfg.policy)
    stats.draft_tokens_in = stats.draft_tokens_out = len(t.ids)
    stats.compressible_tokens = stats.compressible_kept = t.compressible_tokens

    def done(out: list[BaseMessage], kept: dict[int, list[tuple[int, int]]], reason: str | None) -> CompressionResult:
        stats.passthrough = reason is not None
        stats.reason = reason
        stats.ratio = stats.draft_tokens_out / stats.draft_tokens_in if stats.draft_tokens_in else 1.0
        if target is not None:
            stats.target_tokens_in = _count_target(target, original)
            stats.target_tokens_out = stats.target_tokens_in if out is original else _count_target(target, out)
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
    full_target = _count_target(target, original) if cfg.max_target_tokens else None
    if cfg.keep_ratio >= 1.0 and (
        cfg.max_target_tokens is None or (full_target or len(t.ids)) <= cfg.max_target_tokens
    ):
        return done(original, {}, "keep_ratio=1.0 and within budget")

    scores = token_scores(t, draft, store, cfg, key, stats)
    chunks = chunks_of(t, scores, cfg.selection.chunk_tokens)
    budget = round(cfg.keep_ratio * t.compressible_tokens)
    kept = _select(t, chunks, budget, cfg.selection.keep_neighbors)
    out = t.rebuild(kept, cfg.selection.gap_marker)
    if cfg.max_target_tokens is not None:
        # Shrink the draft-token budget until the target's own count fits (a few rounds at most).
        for _ in range(8):
            count = _count_target(target, out) if target is not None else _kept_tokens(t, kept, chunks)
            if count <= cfg.max_target_tokens or budget <= 0:
                break
            per_draft = (full_target or len(t.ids)) / max(1, len(t.ids))
            budget -= math.ceil((count - cfg.max_target_tokens) / per_draft) + cfg.selection.chunk_tokens // 2
            kept = _select(t, chunks, max(0, budget), 0)
            out = t.rebuild(kept, cfg.selection.gap_marker)
    stats.compressible_kept = _kept_tokens(t, kept, chunks) - (len(t.ids) - t.compressible_tokens)
    stats.draft_tokens_out = stats.compressible_kept + (len(t.ids) - t.compressible_tokens)
    return done(out, kept, None)


def _kept_tokens(t: Transcript, kept: dict[int, list[tuple[int, int]]], chunks: list[Chunk]) -> int:
    """Draft tokens of the output: protected tokens plus those of the kept chunks."""
    spans = {(pi, a, b) for pi, ss in kept.items() for a, b in ss}
    n = sum(c.t1 - c.t0 for c in chunks if (c.part, *t.parts[c.part].char_span(c.t0, c.t1)) in spans)
    return n + len(t.ids) - t.compressible_tokens
