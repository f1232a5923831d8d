"""How the draft reads chat turns: role headers and footers, and each message's role.

The draft reads the transcript in the chat format it was trained on (ChatML for SmolLM2 and Qwen,
Gemma's turns, a plain "Role:" fallback), so it reads turns as turns.
"""

from __future__ import annotations

import contextlib
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
