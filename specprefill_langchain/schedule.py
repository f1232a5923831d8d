"""Stable mode's bookkeeping: which tool results to decide now, their frozen forms, the draft's window.

Agent loops run against targets that cache their prefix, and a cache only hits on a byte-identical
prefix (docs/design.md, "Stable mode"). So a tool result's compressed form is decided once and then
sent byte for byte; what is decided lives in the thread's state (the *frozen forms*), so any worker
that resumes the thread sends the same bytes. Pure functions over messages and dicts: no model, no
LangChain runtime (module ``step`` runs them).

A frozen form is keyed by the message's ref (its id, else the digest of what it renders to)::

    {"digest": <hash of the original>,           # a changed original no longer matches: decided again
     "content": <compressed content> | None,      # present once decided; None = whole
     "rescue": <text appended after the content>} # optional: evidence brought back (module ``rescue``)

The state reducer :func:`merge_frozen` adds and replaces entries, and removes those whose update is
``None`` (the messages they belonged to are gone from the state).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from .chatformat import message_key
from .config import PolicyConfig, StableConfig
from .policy import compressible_mask

FROZEN_KEY = "specprefill"
Frozen = dict[str, Any]  # ref -> frozen form (a dict), or None in an update: forget that ref


def merge_frozen(left: Frozen | None, right: Frozen | None) -> Frozen:
    """The state reducer of the frozen forms: an update adds or replaces entries; ``None`` removes one."""
    merged = dict(left or {})
    for ref, entry in (right or {}).items():
        if entry is None:
            merged.pop(ref, None)
        else:
            merged[ref] = entry
    return merged


def digest(m: BaseMessage) -> str:
    return hashlib.sha256(message_key(m).encode("utf-8", "surrogatepass")).hexdigest()[:24]


def ref_of(m: BaseMessage) -> str:
    """The key of a message's frozen form: its id, else (no id) the digest of its content."""
    return str(m.id) if m.id else f"sha:{digest(m)}"


def entry_of(frozen: Mapping[str, Any], m: BaseMessage) -> Mapping[str, Any] | None:
    """The frozen form of ``m`` if it still matches ``m`` (same digest), else None."""
    entry = frozen.get(ref_of(m))
    return entry if isinstance(entry, Mapping) and entry.get("digest") == digest(m) else None


def render(m: BaseMessage, entry: Mapping[str, Any] | None) -> BaseMessage:
    """``m`` as the target reads it: its decided content, then any rescued evidence."""
    if entry is None:
        return m
    content = entry.get("content")
    content = m.content if content is None else content
    rescue = entry.get("rescue")
    if rescue:
        content = content + rescue if isinstance(content, str) else [*content, {"type": "text", "text": rescue}]
    return m if content is m.content else m.model_copy(update={"content": content})


def apply_frozen(messages: Sequence[BaseMessage], frozen: Mapping[str, Any]) -> tuple[list[BaseMessage], set[int]]:
    """The messages as the target reads them, and the indices whose form was decided earlier."""
    view, decided = [], set()
    for i, m in enumerate(messages):
        entry = entry_of(frozen, m)
        if entry is not None and "content" in entry:
            decided.add(i)
        view.append(render(m, entry))
    return view, decided


def first_unread(messages: Sequence[BaseMessage]) -> int:
    """Index of the first message the target has not read yet (those after its latest AI message)."""
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], AIMessage):
            return i + 1
    return 0


@dataclass(frozen=True)
class Plan:
    """What one stable step decides: the input as the target reads it so far, and the candidates."""

    view: list[BaseMessage]  # decided messages in their frozen form, the rest as they are
    decided: frozenset[int]  # decided in an earlier step
    candidates: tuple[int, ...]  # to compress now
    whole: tuple[int, ...] = ()  # to decide whole now: never to be compressed (``keep_whole``)


def plan(
    messages: Sequence[BaseMessage],
    frozen: Mapping[str, Any],
    cfg: StableConfig,
    policy: PolicyConfig,
    *,
    keep_ratio: float,
    keep_whole: Callable[[BaseMessage], bool] = lambda m: False,
) -> Plan:
    """Which tool results to compress now (docs/design.md, "When a message is compressed").

    A short result that stays whole needs no frozen form (it is sent as it is, every step).
    ``keep_whole``: results never to be compressed however long they are (a recall output, a message
    the draft cannot read): they are decided whole once, so no later step tries them again.
    """
    view, decided = apply_frozen(messages, frozen)
    if sum(len(m.text) for m in view) < cfg.trigger_chars:
        return Plan(view, frozenset(decided), ())  # below the trigger: everything goes whole, undecided
    mask = compressible_mask(messages, policy)
    tools = [i for i, m in enumerate(messages) if isinstance(m, ToolMessage)]
    # A result waits until keep_recent newer results exist; short ones are not worth the draft.
    eligible = [
        i
        for rank, i in enumerate(tools)
        if i not in decided
        and len(tools) - rank - 1 >= cfg.keep_recent
        and mask[i]
        and len(messages[i].text) >= cfg.min_message_chars
    ]
    whole = tuple(i for i in eligible if keep_whole(messages[i]))
    eligible = [i for i in eligible if i not in whole]
    # A result the target has already read whole costs a cache break when it changes: break only for a
    # saving worth it (as Anthropic's clear_at_least). New results never cost a break.
    first_new = first_unread(messages)
    breaks = [i for i in eligible if i < first_new]
    saving = sum(len(messages[i].text) for i in breaks) * (1 - keep_ratio)
    if breaks and saving < cfg.min_saving_chars:
        eligible = [i for i in eligible if i >= first_new]
    return Plan(view, frozenset(decided), tuple(eligible), whole)


def draft_window(view: Sequence[BaseMessage], keep: Sequence[int], context_chars: int) -> list[int]:
    """Indices of the messages the draft reads to decide ``keep``: the head, then the rest from the call
    of the first result decided, and earlier messages within ``context_chars``.

    The head is everything up to the first human message (system prompt, request): the same every step,
    so the draft's KV cache always serves it. With ``context_chars`` > 0 the window starts at a message
    whose offset is a whole multiple of ``context_chars // 2`` characters into the history, so it moves
    in jumps: between two jumps every step extends the same prefix and the draft's cache keeps hitting.
    """
    n = len(view)
    head = next((i + 1 for i, m in enumerate(view) if isinstance(m, HumanMessage)), 1)
    call = min(keep, default=n)
    while call > head and not isinstance(view[call - 1], AIMessage):
        call -= 1
    call = max(head, call - 1) if call > head else head  # the AI message whose call fetched it
    start = call
    if context_chars > 0:
        offsets, total = [], 0
        for m in view:
            offsets.append(total)
            total += len(m.text)
        stride = max(1, context_chars // 2)
        grid = max(0, -(-(total - context_chars) // stride) * stride)  # lowest grid point leaving <= context
        start = min(call, next((i for i in range(head, n) if offsets[i] >= grid), n))
    return [*range(min(head, n)), *range(max(head, start), n)]


def decided_form(m: BaseMessage, content: Any, old: Mapping[str, Any] | None) -> dict[str, Any]:
    """The frozen form of ``m`` decided now (``content`` None: whole); rescued text it carried stays."""
    entry: dict[str, Any] = {"digest": digest(m), "content": content}
    if old is not None and old.get("rescue"):
        entry["rescue"] = old["rescue"]
    return entry


def stale_refs(frozen: Mapping[str, Any], messages: Sequence[BaseMessage]) -> list[str]:
    """Refs of frozen forms whose messages are no longer in the thread (removed or summarized away)."""
    alive = {ref_of(m) for m in messages}
    return sorted(ref for ref in frozen if ref not in alive)
