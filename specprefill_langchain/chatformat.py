"""How the draft reads chat turns: role headers and footers, each message's role, its tool calls.

The draft reads the transcript in the chat format it was trained on (ChatML for SmolLM2 and Qwen,
Gemma's turns, a plain "Role:" fallback), so it reads turns as turns.
"""

from __future__ import annotations

import contextlib
import json
import re
import weakref
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage


@dataclass(frozen=True)
class ChatFormat:
    """Role headers and footers the draft was trained on, so it reads turns as turns."""

    start: str
    end: str
    roles: dict[str, str]

    def header(self, role: str) -> str:
        return self.start.format(role=self.roles.get(role, role))

    def generation_prompt(self) -> str:
        return self.header("ai")


_FORMATS: weakref.WeakKeyDictionary[Any, ChatFormat] = weakref.WeakKeyDictionary()


def chat_format(tokenizer: Any) -> ChatFormat:
    # get_vocab() builds a dict of the whole vocabulary (~80 ms for a 49k vocab): far more than a
    # small agent step costs, so the answer is kept per tokenizer object.
    try:
        return _FORMATS[tokenizer]
    except (KeyError, TypeError):  # TypeError: an object that cannot be weakly referenced
        fmt = _chat_format(tokenizer)
    with contextlib.suppress(TypeError):
        _FORMATS[tokenizer] = fmt
    return fmt


def _chat_format(tokenizer: Any) -> ChatFormat:
    vocab = tokenizer.get_vocab()
    if "<|im_start|>" in vocab:  # ChatML: SmolLM2, Qwen
        roles = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
        return ChatFormat("<|im_start|>{role}\n", "<|im_end|>\n", roles)
    if "<start_of_turn>" in vocab:  # Gemma
        roles = {"human": "user", "ai": "model", "system": "user", "tool": "user"}
        return ChatFormat("<start_of_turn>{role}\n", "<end_of_turn>\n", roles)
    roles = {"human": "User", "ai": "Assistant", "system": "System", "tool": "Tool"}
    return ChatFormat("{role}: ", "\n\n", roles)


def role_of(m: BaseMessage) -> str:
    if isinstance(m, HumanMessage):
        return "human"
    if isinstance(m, AIMessage):
        return "ai"
    if isinstance(m, SystemMessage):
        return "system"
    if isinstance(m, ToolMessage):
        return "tool"
    return str(getattr(m, "role", None) or m.type)


def is_text_block(block: Any) -> bool:
    return isinstance(block, str) or (
        isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
    )


def block_text(block: Any) -> str:
    return block if isinstance(block, str) else block["text"]


def safe_json(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that never fails on tool-call arguments: odd values go through ``str``, and keys
    that JSON cannot hold or sort (a tuple; ``1`` beside ``"a"``) become their ``str`` form."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str, **kwargs)
    except (TypeError, ValueError):
        return json.dumps(_str_keys(value), ensure_ascii=False, default=str, **kwargs)


def _str_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _str_keys(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_str_keys(v) for v in value]
    return value


def message_key(m: BaseMessage, *, wire: bool = False) -> str:
    """What a message *is*, as one string: the one definition of a message's identity.

    Default: everything the draft reads of it (role, a tool output's tool name, content, tool-call
    names and arguments): equal keys, equal token layout, equal frozen-form digest. ``wire=True``
    adds what a provider's token counter also reads: the message type, any name, the
    ``tool_call_id`` and each tool call's id (OpenAI-style counters count ids). The ``id`` of a
    message is never part of it: it is not sent.
    """
    calls = getattr(m, "tool_calls", None) or []
    if wire:
        fields = [m.type, role_of(m), getattr(m, "name", None), getattr(m, "tool_call_id", None), m.content]
        fields.append([[c.get("id"), c["name"], c["args"]] for c in calls])
    else:
        name = m.name if isinstance(m, ToolMessage) else None
        fields = [role_of(m), name, m.content, [[c["name"], c["args"]] for c in calls]]
    return safe_json(fields, sort_keys=True)


_SURROGATE = re.compile("[\ud800-\udfff]")


def readable(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD: what a tokenizer can read.

    Same length, so character offsets into it are offsets into the original, and kept spans cut from
    the original keep its exact code points (bytes decoded with ``surrogateescape`` pass through).
    """
    return _SURROGATE.sub("\ufffd", text)


def render_tool_calls(m: BaseMessage) -> str:
    """How an AI message's tool calls read to the draft (protected: never compressed).

    Arguments that JSON cannot encode (a datetime, a custom object) are written with ``str``, so an
    odd argument never breaks compression.
    """
    if not (isinstance(m, AIMessage) and m.tool_calls):
        return ""
    calls = [{"name": c["name"], "arguments": c["args"]} for c in m.tool_calls]
    return "".join(f"\n<tool_call>{safe_json(c)}</tool_call>" for c in calls)
