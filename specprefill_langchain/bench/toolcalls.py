"""Tool calls in a local model's text: Qwen's ``<tool_call>`` blocks, bare JSON calls, and what may stream.

Pure string work (no model): :func:`parse_tool_calls` splits a finished reply into content, tool calls
and invalid tool calls; :func:`safe_prefix` says how much of a partial reply may already be streamed.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.messages.tool import InvalidToolCall, ToolCall, invalid_tool_call, tool_call

__all__ = ["OPEN_TAG", "parse_tool_calls", "safe_prefix"]

_TOOL_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_DECODER = json.JSONDecoder()
_FENCE = re.compile(r"```(?:json)?")
OPEN_TAG = "<tool_call>"
_BARE_STARTS = ("```json{", "```{", "{")  # whitespace removed
_Parsed = tuple[str, list[ToolCall], list[InvalidToolCall]]


def _new_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _as_call(raw: Any, names: Sequence[str] | None = None) -> ToolCall | str:
    """A ``{"name": ..., "arguments": {...}}`` object (or its JSON) as a tool call, or why it is not one."""
    try:
        payload = json.loads(raw) if isinstance(raw, str) else raw
        args = payload.get("arguments", {}) if isinstance(payload, dict) else None
        # Some fine-tunes send the arguments as a JSON string, the OpenAI wire format.
        args = json.loads(args) if isinstance(args, str) else args
    except ValueError as exc:
        return f"invalid JSON: {exc}"
    name = payload.get("name") if isinstance(payload, dict) else None
    if not isinstance(name, str) or not isinstance(args, dict) or (names is not None and name not in names):
        return 'expected {"name": <a bound tool>, "arguments": <object>}'
    return tool_call(name=name, args=args, id=_new_id())


def _bare_calls(text: str, names: Sequence[str]) -> list[ToolCall]:
    """The calls when ``text`` is nothing but call objects (maybe in ```json fences), else []."""
    text, calls = _FENCE.sub(" ", text), []
    while text := text.strip():
        try:
            payload, end = _DECODER.raw_decode(text)
        except ValueError:
            return []
        if isinstance(call := _as_call(payload, names), str):
            return []
        calls.append(call)
        text = text[end:]
    return calls


def parse_tool_calls(text: str, tool_names: Sequence[str] | None = None) -> _Parsed:
    """Split model output into (content, tool calls, invalid tool calls).

    Qwen's format is ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, possibly several; a
    block cut off by ``max_new_tokens`` (no closing tag) becomes an invalid call so the caller sees it.
    Qwen2.5-Coder-0.5B usually answers with a fenced ``json`` block instead, so when ``tool_names`` are
    given, a reply made *only* of such objects, all for bound tools, counts as tool calls too.
    """
    calls: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for match in _TOOL_CALL.finditer(text):
        raw = match.group(1).strip()
        if isinstance(result := _as_call(raw), str):
            name = re.search(r'"name"\s*:\s*"([^"]*)"', raw)
            invalid.append(invalid_tool_call(name=name and name.group(1), args=raw, id=_new_id(), error=result))
        else:
            calls.append(result)
    content = _TOOL_CALL.sub("", text).strip()
    if tool_names and not calls and not invalid and (bare := _bare_calls(content, tool_names)):
        return "", bare, []
    return content, calls, invalid


def safe_prefix(text: str, markers: Sequence[str], bare_calls_possible: bool) -> str:
    """The part of a partial reply sure to start the final content, so streaming may emit it: not from a
    marker (``<tool_call>``, a stop string) on, nor what may still become one or (tools bound) a bare call."""
    for marker in markers:
        text = text.split(marker, 1)[0]
    text = text.strip()
    compact = "".join(text.split())
    if bare_calls_possible and any(p.startswith(compact) or compact.startswith(p) for p in _BARE_STARTS):
        return ""
    held = max((k for m in markers for k in range(1, len(m)) if text.endswith(m[:k])), default=0)
    return text[: len(text) - held].rstrip()
