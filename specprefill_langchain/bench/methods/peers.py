"""The peers compared with ours, all behind one small ``Method`` protocol (no model needed).

Every method returns new messages (copies made with ``model_copy``), never mutating its input, and
keeps ids, names, ``tool_call_id`` and ``tool_calls``. Only ``KeepLast`` drops whole messages: that
is what ``trim_messages`` does, and measuring it is the point.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

from langchain_core.messages import BaseMessage, ToolMessage, trim_messages

from specprefill_langchain.bench.tasks.metrics import GAP, content_text


@runtime_checkable
class Method(Protocol):
    name: str

    def compress(self, messages: list[BaseMessage], keep_ratio: float, question: str) -> list[BaseMessage]: ...


def check_ratio(keep_ratio: float) -> None:
    if not 0.0 < keep_ratio <= 1.0:
        msg = f"keep_ratio must be in (0, 1], got {keep_ratio}"
        raise ValueError(msg)


def map_tool_text(messages: list[BaseMessage], fn: Callable[[str, int], str]) -> list[BaseMessage]:
    """Copies of ``messages`` with ``fn(text, index)`` applied to the text of every ToolMessage."""
    out: list[BaseMessage] = []
    for i, m in enumerate(messages):
        if not isinstance(m, ToolMessage):
            out.append(m.model_copy())
        elif isinstance(m.content, str):
            out.append(m.model_copy(update={"content": fn(m.content, i)}))
        else:
            # Only text blocks are compressible; images and other blocks pass through untouched.
            blocks: list[Any] = [
                {**b, "text": fn(str(b.get("text", "")), i)} if isinstance(b, dict) and b.get("type") == "text" else b
                for b in m.content
            ]
            out.append(m.model_copy(update={"content": blocks}))
    return out


def _snap(text: str, pos: int) -> int:
    """The first position at or after ``pos`` that starts a word (so no half-words are kept)."""
    while 0 < pos < len(text) and not text[pos - 1].isspace():
        pos += 1
    return min(pos, len(text))


class FullPrompt:
    """No compression: the reference every other method is measured against."""

    name = "full"
    draft: ClassVar[str | None] = None

    def compress(self, messages: list[BaseMessage], keep_ratio: float, question: str) -> list[BaseMessage]:
        return [m.model_copy() for m in messages]


def count_tokens(messages: list[BaseMessage]) -> int:
    """Approximate tokens (4 chars each, plus a few per message for the role header)."""
    return sum(len(content_text(m.content)) // 4 + 4 for m in messages)


class KeepLast:
    """LangChain's ``trim_messages(strategy="last")`` at a budget of ``keep_ratio`` × all tokens.

    ``start_on="human"`` alone would keep only the final question in an agent transcript (its only
    human turns are the request and the question), so the default also lets the kept tail start on
    an AI turn: that still never leaves a ToolMessage without the AI message that called it.
    """

    name = "keep-last"
    draft: ClassVar[str | None] = None

    def __init__(self, start_on: str | tuple[str, ...] = ("human", "ai")) -> None:
        self.start_on = start_on

    def compress(self, messages: list[BaseMessage], keep_ratio: float, question: str) -> list[BaseMessage]:
        check_ratio(keep_ratio)
        budget = int(keep_ratio * count_tokens(messages))
        kept = trim_messages(
            messages,
            max_tokens=budget,
            token_counter=count_tokens,
            strategy="last",
            include_system=True,
            start_on=list(self.start_on) if isinstance(self.start_on, tuple) else self.start_on,
            allow_partial=False,
        )
        return [m.model_copy() for m in kept]


class KeepLastTokens:
    """Keeps the last ``keep_ratio`` of every tool output's characters: the fair keep-the-last-N."""

    name = "keep-last-tokens"
    draft: ClassVar[str | None] = None

    def compress(self, messages: list[BaseMessage], keep_ratio: float, question: str) -> list[BaseMessage]:
        check_ratio(keep_ratio)

        def tail(text: str, _: int) -> str:
            if keep_ratio >= 1.0 or not text:
                return text
            start = _snap(text, len(text) - round(keep_ratio * len(text)))
            return GAP + text[start:] if start > 0 else text

        return map_tool_text(messages, tail)


class RandomChunks:
    """Random whitespace-snapped chunks of about ``chunk_chars`` of each tool output, to the ratio."""

    name = "random"
    draft: ClassVar[str | None] = None

    def __init__(self, seed: int = 0, chunk_chars: int = 120) -> None:
        self.seed = seed
        self.chunk_chars = chunk_chars

    def _chunks(self, text: str) -> list[tuple[int, int]]:
        bounds = [0]
        while bounds[-1] < len(text):
            bounds.append(max(bounds[-1] + 1, _snap(text, bounds[-1] + self.chunk_chars)))
        return list(itertools.pairwise(bounds))

    def compress(self, messages: list[BaseMessage], keep_ratio: float, question: str) -> list[BaseMessage]:
        check_ratio(keep_ratio)

        def pick(text: str, index: int) -> str:
            if keep_ratio >= 1.0 or not text:
                return text
            chunks = self._chunks(text)
            order = list(range(len(chunks)))
            random.Random(f"{self.seed}:{index}:{keep_ratio}").shuffle(order)
            target, kept, chosen = keep_ratio * len(text), 0, set()
            for c in order:
                size = chunks[c][1] - chunks[c][0]
                # Take a chunk while it brings the kept size closer to the target.
                if kept + size / 2 <= target:
                    chosen.add(c)
                    kept += size
            runs: list[str] = []
            prev = -2
            for c in sorted(chosen):
                piece = text[chunks[c][0] : chunks[c][1]]
                if c == prev + 1:
                    runs[-1] += piece
                else:
                    runs.append(piece)
                prev = c
            return GAP.join(runs)

        return map_tool_text(messages, pick)
