"""Stable mode: each tool result's compressed form is decided once, then sent byte for byte forever.

Agent loops run against targets that cache their prefix (provider prompt caching, vLLM/llama.cpp
prefix caches), and a cache only hits on a byte-identical prefix. Compressing the whole history
again each step breaks it at the first changed message. So in stable mode (docs/design.md, "Stable
mode"):

* a tool result is decided when it arrives (``keep_recent=0``: scored against the request and the
  tool call that fetched it) or once ``keep_recent`` newer tool results exist (scored against the
  agent's current step, which may name what matters in it); its form is then frozen;
* the frozen forms live in the graph state (``FROZEN_KEY``), so they are checkpointed with the
  thread: any worker that resumes it sends the same bytes. The draft's KV cache is only a speed-up;
* the draft reads what the target reads (frozen forms, then the new messages in full), so each
  step prefills only what is new, and past the draft's context a bounded window of recent messages;
* human and AI text is never compressed here (compressing an old turn when a new one arrives would
  break the cache in the middle of the history).

A frozen form is ``{"digest": <hash of the original>, "content": <compressed content or None>}``
(``None``: decided to stay whole), keyed by the message id. A message whose original changed no
longer matches its digest and is decided again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from .chatformat import render_key
from .config import StableConfig
from .events import aemit_stats, emit_stats
from .policy import is_compressible
from .stats import CompressionResult

FROZEN_KEY = "specprefill"
Frozen = dict[str, dict[str, Any]]


def merge_frozen(left: Frozen | None, right: Frozen | None) -> Frozen:
    """The state reducer of the frozen forms: entries are only ever added (or re-decided)."""
    return {**(left or {}), **(right or {})}


def digest(m: BaseMessage) -> str:
    return hashlib.sha256(render_key(m).encode("utf-8", "surrogatepass")).hexdigest()[:24]


def ref_of(m: BaseMessage) -> str:
    """The key of a message's frozen form: its id, else (no id) the digest of its content."""
    return str(m.id) if m.id else f"sha:{digest(m)}"


def recall_ref(m: BaseMessage) -> str | None:
    """What the recall tool takes to find this output again: its tool call id."""
    return m.tool_call_id if isinstance(m, ToolMessage) else None


@dataclass
class Plan:
    """What one stable step does: the input as the target will read it, and what to decide now."""

    view: list[BaseMessage]  # decided messages in their frozen form, the rest as they are
    candidates: list[int]  # indices to decide in this step
    whole: list[int]  # candidates decided whole without the draft (too short to be worth it)


def apply_frozen(messages: Sequence[BaseMessage], frozen: Mapping[str, Any]) -> tuple[list[BaseMessage], set[int]]:
    """The messages with every matching frozen form in place, and the indices that were replaced."""
    out, decided = [], set()
    for i, m in enumerate(messages):
        entry = frozen.get(ref_of(m))
        if isinstance(entry, Mapping) and entry.get("digest") == digest(m):
            decided.add(i)
            content = entry.get("content")
            out.append(m if content is None else m.model_copy(update={"content": content}))
        else:
            out.append(m)
    return out, decided


def _new_since_last_call(messages: Sequence[BaseMessage]) -> int:
    """Index of the first message the target has not read yet (those after its latest AI message)."""
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], AIMessage):
            return i + 1
    return 0


def plan(messages: Sequence[BaseMessage], frozen: Mapping[str, Any], cfg: StableConfig, policy: Any) -> Plan:
    """Which tool results to decide now (docs/design.md, "When a message is compressed")."""
    view, decided = apply_frozen(messages, frozen)
    tools = [i for i, m in enumerate(messages) if isinstance(m, ToolMessage)]
    eligible = []
    for rank, i in enumerate(tools):
        newer = len(tools) - rank - 1
        if i in decided or newer < cfg.keep_recent or not is_compressible(messages, i, policy):
            continue
        eligible.append(i)
    if sum(len(m.text) for m in view) < cfg.trigger_chars:
        return Plan(view, [], [])  # below the trigger: nothing is decided yet, everything goes whole
    # Short results stay whole: deciding that never changes a byte, so it is free at any age.
    whole = [i for i in eligible if len(messages[i].text) < cfg.min_message_chars]
    eligible = [i for i in eligible if i not in whole]
    first_new = _new_since_last_call(messages)
    # A result the target has already read whole costs a cache break when it changes: break only
    # for a saving worth it (as Anthropic's clear_at_least). New results never cost a break.
    breaks = [i for i in eligible if i < first_new]
    saving = sum(len(messages[i].text) for i in breaks) * (1 - cfg.expected_keep)
    if breaks and saving < cfg.min_saving_chars:
        eligible = [i for i in eligible if i >= first_new]
    return Plan(view, eligible, whole)


def draft_window(view: Sequence[BaseMessage], keep: Sequence[int], max_chars: int) -> list[int]:
    """Indices of the messages the draft reads: the first message, then recent ones within ``max_chars``.

    The window starts at a message whose offset is a whole multiple of ``max_chars // 2``
    characters into the history, so it moves in jumps: between two jumps every step extends the
    same prefix and the draft's KV cache keeps hitting. ``keep`` (the candidates) are always inside.
    """
    n = len(view)
    offsets, total = [], 0
    for m in view:
        offsets.append(total)
        total += len(m.text)
    if total <= max_chars or n <= 2:
        return list(range(n))
    stride = max(1, max_chars // 2)
    grid = -(-(total - max_chars) // stride) * stride  # the lowest grid point that leaves <= max_chars
    start = next((i for i in range(1, n) if offsets[i] >= grid), n - 1)
    start = min(start, *keep) if keep else start
    return [0, *range(max(1, start), n)]


def frozen_updates(
    original: Sequence[BaseMessage],
    index_map: Sequence[int],
    result: CompressionResult | None,
    candidates: Sequence[int],
    whole: Sequence[int],
    footer: str | None,
) -> Frozen:
    """The new frozen forms: each candidate's compressed content (or None: whole), by message ref.

    ``index_map`` maps positions of the draft's window back to indices of ``original``. ``footer``
    (the recall tool's hint, with ``{ref}``) is appended to each output that lost text.
    """
    updates: Frozen = {}
    for i in whole:
        updates[ref_of(original[i])] = {"digest": digest(original[i]), "content": None}
    if result is None or result.stats.error is not None:
        return updates  # a failed draft decides nothing: the outputs go whole and are tried again
    out_of = {orig: pos for pos, orig in enumerate(index_map)}
    for i in candidates:
        m, new = original[i], result.messages[out_of[i]]
        content: Any = None if new.content == m.content else new.content
        if content is not None and footer and isinstance(content, str) and recall_ref(m):
            content += footer.format(ref=recall_ref(m))
        updates[ref_of(m)] = {"digest": digest(m), "content": content}
    return updates


@dataclass
class StableStep:
    """One stable step: the model input, the new frozen forms for the state, and the compression."""

    messages: list[BaseMessage]
    updates: Frozen
    result: CompressionResult | None


@dataclass
class _Pending:
    """A stable step between its plan and its compression: what the draft reads and may compress."""

    messages: Sequence[BaseMessage]
    frozen: Mapping[str, Any]
    plan: Plan
    index_map: list[int]  # positions of the draft's window -> indices of ``messages``
    window: list[BaseMessage]  # empty: nothing to compress this step
    only: list[int]  # positions of the window that may be compressed

    def finish(self, result: CompressionResult | None, footer: str | None) -> StableStep:
        p = self.plan
        updates = frozen_updates(self.messages, self.index_map, result, p.candidates, p.whole, footer)
        final, _ = apply_frozen(self.messages, {**self.frozen, **updates})
        if result is not None:
            result.stats.mode = "stable"
            result.stats.newly_compressed = sum(1 for u in updates.values() if u["content"] is not None)
            result.stats.frozen_reused = len(p.view) - len(p.candidates) - len(p.whole)
        return StableStep(final, updates, result)


def _prepare(compressor: Any, messages: Sequence[BaseMessage], frozen: Mapping[str, Any] | None) -> _Pending:
    cfg = compressor.config
    p = plan(messages, frozen or {}, cfg.stable, cfg.policy)
    index_map = draft_window(p.view, p.candidates, cfg.stable.window_chars) if p.candidates else []
    chosen = set(p.candidates)
    only = [pos for pos, i in enumerate(index_map) if i in chosen]
    return _Pending(messages, frozen or {}, p, index_map, [p.view[i] for i in index_map], only)


def run_stable(
    compressor: Any,
    messages: Sequence[BaseMessage],
    frozen: Mapping[str, Any] | None,
    *,
    cache_key: str | None,
    footer: str | None = None,
    config: Any = None,
    target_extra: Sequence[BaseMessage] = (),
) -> StableStep:
    """Decide what this step must decide, and return the model input with every frozen form in place."""
    pending = _prepare(compressor, messages, frozen)
    result = None
    if pending.window:
        result = compressor.compress(pending.window, cache_key=cache_key, only=pending.only, target_extra=target_extra)
    step = pending.finish(result, footer)  # sets the stats' stable-mode fields: emit after it
    if result is not None:
        emit_stats(result.stats, config)
    return step


async def arun_stable(
    compressor: Any,
    messages: Sequence[BaseMessage],
    frozen: Mapping[str, Any] | None,
    *,
    cache_key: str | None,
    footer: str | None = None,
    config: Any = None,
    target_extra: Sequence[BaseMessage] = (),
) -> StableStep:
    """The async twin of :func:`run_stable`."""
    pending = _prepare(compressor, messages, frozen)
    result = None
    if pending.window:
        result = await compressor.acompress(
            pending.window, cache_key=cache_key, only=pending.only, target_extra=target_extra
        )
    step = pending.finish(result, footer)
    if result is not None:
        await aemit_stats(result.stats, config)
    return step
