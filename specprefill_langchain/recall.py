"""The way back from a frozen output: a tool that returns a compressed tool output in full.

In stable mode an output is compressed once, against what the agent was looking for then; what
matters in it may be named only later. The graph state still holds every original, so the agent
can ask for one back by the reference that its compressed form carries (its tool call id).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, tool
from langgraph.prebuilt import InjectedState

RECALL_TOOL = "read_full_output"
FOOTER = '\n[specprefill: " … " marks omitted text; {tool}(ref="{{ref}}") returns this output in full]'


def footer(tool_name: str = RECALL_TOOL) -> str:
    """The note appended to each compressed output (``{ref}`` is filled in with its tool call id)."""
    return FOOTER.format(tool=tool_name)


def original_output(messages: list[Any], ref: str) -> str:
    """The whole text of the tool output whose tool call id is ``ref``, or a message saying it is unknown."""
    for m in messages:
        if isinstance(m, ToolMessage) and m.tool_call_id == ref:
            return m.text
    known = [m.tool_call_id for m in messages if isinstance(m, ToolMessage)][-5:]
    return f"no tool output has ref {ref!r}; recent refs: {', '.join(known) or 'none'}."


def recall_tool(name: str = RECALL_TOOL) -> BaseTool:
    """A tool that reads the whole original of a compressed tool output from the graph state."""

    @tool(name)
    def read_full_output(ref: str, state: Annotated[Any, InjectedState]) -> str:
        """Return the complete, uncompressed text of an earlier tool output.

        Use it when a compressed output (it ends with a note naming this tool and a ref) may hold
        what you need in the omitted parts. ``ref`` is the value given in that note.
        """
        messages = state.get("messages", []) if isinstance(state, Mapping) else getattr(state, "messages", [])
        return original_output(list(messages), ref)

    return read_full_output
