"""Which messages may be compressed (docs/design.md, "Policy").

By default tool outputs and human/AI text older than the latest human turn; never the system prompt,
the latest human message, or a message type the library does not know. ``PolicyConfig`` narrows it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from .config import PolicyConfig


def latest_human_index(messages: Sequence[BaseMessage]) -> int | None:
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return i
    return None


def compressible_mask(
    messages: Sequence[BaseMessage], policy: PolicyConfig, only: Collection[int] | None = None
) -> list[bool]:
    """For each message, may it be compressed? One pass (the latest human turn is found once).

    ``only``: if given, no message outside these indices may be (the policy still applies inside).
    """
    latest = latest_human_index(messages)
    cut = len(messages) - policy.protect_last
    allowed = None if only is None else frozenset(only)
    return [
        i < cut and (allowed is None or i in allowed) and _allowed(m, i, latest, policy) for i, m in enumerate(messages)
    ]


def _allowed(m: BaseMessage, i: int, latest: int | None, policy: PolicyConfig) -> bool:
    if isinstance(m, ToolMessage):
        name = m.name or ""
        listed = policy.tools is None or name in policy.tools
        return "tool" in policy.roles and listed and name not in policy.skip_tools
    older = latest is not None and i < latest
    if isinstance(m, HumanMessage):
        return "human" in policy.roles and older
    if isinstance(m, AIMessage):
        return "ai" in policy.roles and older
    return False  # system prompts, and message types the library does not know
