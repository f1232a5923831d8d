"""Fidelity metrics: does a compressed transcript still hold the gold evidence, and how much is kept."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, ToolMessage

from specprefill_langchain.bench.tasks.types import Task

GAP = " … "
# Messages are joined with a separator no evidence line contains, so no match spans two messages.
_JOIN = "\n\x00\n"


def content_text(content: str | list[Any]) -> str:
    """The text of a message's content: a string, or the ``text`` blocks of a list of content blocks."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "\n".join(parts)


def message_text(messages: Sequence[BaseMessage]) -> str:
    return _JOIN.join(content_text(m.content) for m in messages)


def evidence_found(task: Task, messages: Sequence[BaseMessage]) -> list[bool]:
    text = message_text(messages)
    return [ev in text for ev in task.evidence]


def evidence_retained(task: Task, messages: Sequence[BaseMessage]) -> bool:
    """True when every gold evidence string survives verbatim somewhere in ``messages``."""
    return all(evidence_found(task, messages))


def evidence_fraction(task: Task, messages: Sequence[BaseMessage]) -> float:
    found = evidence_found(task, messages)
    return sum(found) / len(found) if found else 1.0


def compressible_chars(messages: Sequence[BaseMessage]) -> int:
    """Characters of tool-output text, gap markers excluded: the bulk that compressors may drop."""
    return sum(len(content_text(m.content).replace(GAP, "")) for m in messages if isinstance(m, ToolMessage))


def keep_fraction(original: Sequence[BaseMessage], compressed: Sequence[BaseMessage]) -> float:
    """Share of the original tool-output characters still present after compression."""
    total = compressible_chars(original)
    return compressible_chars(compressed) / total if total else 1.0
