"""Recall: the way back from a compressed tool output, in one place (docs/design.md, "Recall").

What matters in an output may be named only later, and the thread's state still holds every original.
So each compressed tool output ends with a note (:func:`add_note`) that says how much was left out and
how to get it back, and a tool (:func:`recall_tool`) returns the original by the reference the note
gives (its tool call id). An output of that tool is the whole original: it is never compressed again
(:func:`is_recall_output`), whoever built the compressor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from langchain_core.messages import BaseMessage, ToolMessage
from langchain_core.tools import BaseTool, tool
from langgraph.prebuilt import InjectedState

RECALL_TOOL = "read_full_output"


def recall_ref(m: BaseMessage) -> str | None:
    """What the recall tool takes to find this output again: its tool call id."""
    return m.tool_call_id if isinstance(m, ToolMessage) else None


def is_recall_output(m: BaseMessage, tool_name: str = RECALL_TOOL) -> bool:
    """Is ``m`` what the recall tool returned (a whole original, never to be compressed again)?"""
    return isinstance(m, ToolMessage) and m.name == tool_name


def note(original: BaseMessage, compressed: BaseMessage, gap_marker: str, tool_name: str = RECALL_TOOL) -> str:
    """The note at the end of a compressed output: the marker, how much it hides, and the way back."""
    mark, total = gap_marker.strip(), len(original.text)
    omitted = max(0, total - len(compressed.text) + compressed.text.count(mark) * len(mark))
    call = f'{tool_name}(ref="{recall_ref(original)}")'
    return f'\n["{mark}" marks omitted text, {omitted:,} of {total:,} chars; {call} returns all of it]'


def add_note(original: BaseMessage, compressed: BaseMessage, gap_marker: str, tool_name: str = RECALL_TOOL) -> Any:
    """``compressed``'s content with the recall note appended (a text block after content blocks)."""
    text = note(original, compressed, gap_marker, tool_name)
    content = compressed.content
    if isinstance(content, str):
        return content + text
    return [*content, {"type": "text", "text": text.lstrip("\n")}]


def original_output(messages: list[Any], ref: str) -> str:
    """The whole text of the tool output whose tool call id is ``ref``, or a message saying it is unknown."""
    for m in messages:
        if isinstance(m, ToolMessage) and m.tool_call_id == ref:
            return m.text
    known = [m.tool_call_id for m in messages if isinstance(m, ToolMessage)][-5:]
    return f"no tool output has ref {ref!r}; recent refs: {', '.join(known) or 'none'}."


def recall_tool(name: str = RECALL_TOOL) -> BaseTool:
    """A tool that reads the whole original of a compressed tool output from the graph state.

    The middleware registers it itself; with ``SpecPrefillNode`` or ``pre_model_hook``, add it to the
    agent's tools (``[*tools, recall_tool()]``).
    """

    @tool(name)
    def read_full_output(ref: str, state: Annotated[Any, InjectedState]) -> str:
        """The whole text of a shortened tool output, by the ref its closing note gives."""
        messages = state.get("messages", []) if isinstance(state, Mapping) else getattr(state, "messages", [])
        return original_output(list(messages), ref)

    return read_full_output
