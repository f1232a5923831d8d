"""Which messages may be compressed (docs/design.md, "Policy").

By default tool outputs and human/AI text older than the latest human turn; never the system prompt,
the latest human message, or a message type the library does not know. ``PolicyConfig`` narrows it.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from .config import PolicyConfig


def latest_human_index(messages: Sequence[BaseMessage]) -> int | None:
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return i
    return None


def is_compressible(messages: Sequence[BaseMessage], i: int, policy: PolicyConfig) -> bool:
    """The policy of docs/design.md, "Policy" (never system, latest human, tool calls, or unknown types)."""
    m = messages[i]
    if i >= len(messages) - policy.protect_last:
        return False
    latest = latest_human_index(messages)
    if isinstance(m, ToolMessage):
        name = m.name or ""
        allowed = policy.tools is None or name in policy.tools
        return "tool" in policy.roles and allowed and name not in policy.skip_tools
    if isinstance(m, HumanMessage):
        return "human" in policy.roles and latest is not None and i < latest
    if isinstance(m, AIMessage):
        return "ai" in policy.roles and latest is not None and i < latest
    return False
