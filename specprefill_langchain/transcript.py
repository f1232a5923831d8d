"""Messages <-> draft tokens, and back.

Each message is rendered and tokenized *on its own* (role header, then each text part, then a footer)
and the ids are concatenated. So the ids of step N are a prefix of those of step N+1, which is what
lets the draft reuse its KV cache; tokenizing the joined text would let BPE merge across message
boundaries and break the prefix.

Every token of a text part knows where it starts in that part's text, so a kept run of tokens maps
back to an exact substring. A token's span runs from its own start to the next token's start: the
spans tile the text, and keeping everything gives back the original text byte for byte.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage, ToolMessage

from .boundaries import token_cuts
from .chatformat import block_text, chat_format, is_text_block, message_key, readable, render_tool_calls, role_of
from .config import PolicyConfig
from .policy import compressible_mask, latest_human_index

MAX_FOCUS_TOKENS = 384  # the restated focus keeps its last tokens: the request goes last (module focus)
NO_FOCUS_QUERIES = 32  # no human turn at all: the last tokens of the transcript are the best queries


# --------------------------------------------------------------------------- parts
@dataclass(frozen=True)
class Part:
    """One run of tokens of one message: a text part the draft reads, or protected rendering."""

    message: int
    block: int | None  # None: str content; k: content[k]; -1: header/footer/tool calls/placeholder
    text: str
    compressible: bool
    start: int  # first token, index into Transcript.ids
    end: int
    starts: tuple[int, ...] = ()  # char where each token starts (text parts only)
    breaks: tuple[int, ...] = ()  # boundaries.Cut level of the gap after each token (text parts only)

    @property
    def n_tokens(self) -> int:
        return self.end - self.start

    def char_span(self, t0: int, t1: int) -> tuple[int, int]:
        """Characters covered by local tokens [t0, t1)."""
        c0 = 0 if t0 == 0 else self.starts[t0]
        c1 = len(self.text) if t1 >= len(self.starts) else self.starts[t1]
        return c0, c1


@dataclass(frozen=True)
class _Piece:
    """One tokenized run of a message, before it is placed in a transcript."""

    block: int | None  # as Part.block
    text: str
    ids: tuple[int, ...]
    is_text: bool  # a text part the policy may compress (else protected rendering)
    starts: tuple[int, ...] = ()
    breaks: tuple[int, ...] = ()


# Per tokenizer, the layout of recently seen messages, keyed by what they render to. An agent step
# adds a few messages to a history it has sent before: only those are tokenized and laid out again,
# so the per-step work of building a transcript does not grow with the history (docs/design.md,
# "Incremental layout"). Shared by every thread of the process, so it is only touched under its lock.
_LAYOUTS: weakref.WeakKeyDictionary[Any, OrderedDict[str, tuple[_Piece, ...]]] = weakref.WeakKeyDictionary()
_LAYOUTS_MAX = 4096
_LAYOUTS_LOCK = threading.Lock()


class Transcript:
    """The draft's view of a list of messages: token ids plus the parts they came from."""

    def __init__(
        self,
        messages: Sequence[BaseMessage],
        tokenizer: Any,
        policy: PolicyConfig,
        *,
        only: frozenset[int] | None = None,
        focus: str | None = None,
        unread: frozenset[int] = frozenset(),
    ) -> None:
        """``only``: if given, no message outside these indices is compressible (the policy still
        applies inside them). ``focus``: what the queries ask about, restated at the end (default:
        the latest human message; module ``focus``). ``unread``: messages the draft does not read
        (too long): a short protected placeholder stands in for their text, and they stay whole."""
        self.messages = list(messages)
        self.focus = focus
        self.unread = unread
        self.tokenizer = tokenizer
        self.fmt = chat_format(tokenizer)
        self.latest_human = latest_human_index(self.messages)
        self.ids: list[int] = []
        self.parts: list[Part] = []
        self._message_starts: list[int] = []
        mask = compressible_mask(self.messages, policy, only)
        for i, m in enumerate(self.messages):
            self._message_starts.append(len(self.ids))
            pieces = self._unread(m) if i in unread else self._layout(m)
            for piece in pieces:
                start = len(self.ids)
                compressible = mask[i] and piece.is_text and i not in unread
                end = start + len(piece.ids)
                self.parts.append(
                    Part(i, piece.block, piece.text, compressible, start, end, piece.starts, piece.breaks)
                )
                self.ids.extend(piece.ids)

    def message_start(self, i: int) -> int:
        """Index in ``ids`` of message ``i``'s first token."""
        return self._message_starts[i]

    # ------------------------------------------------------------------ building
    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(readable(text), add_special_tokens=False)["input_ids"])

    def _layout(self, m: BaseMessage) -> tuple[_Piece, ...]:
        key = message_key(m)
        with _LAYOUTS_LOCK:
            try:
                cache = _LAYOUTS.setdefault(self.tokenizer, OrderedDict())
            except TypeError:  # a tokenizer that cannot be weakly referenced: no reuse
                cache = None
            pieces = cache.get(key) if cache is not None else None
            if pieces is not None and cache is not None:
                cache.move_to_end(key)
                return pieces
        pieces = self._lay_out(m)  # outside the lock: tokenizing is the slow part
        if cache is not None:
            with _LAYOUTS_LOCK:
                cache[key] = pieces
                while len(cache) > _LAYOUTS_MAX:
                    cache.popitem(last=False)
        return pieces

    def _unread(self, m: BaseMessage) -> tuple[_Piece, ...]:
        note = f"[{len(m.text):,} characters the draft did not read]"
        return (self._protected(self.fmt.header(role_of(m)) + note), self._protected(self.fmt.end))

    def _protected(self, text: str) -> _Piece:
        return _Piece(-1, text, tuple(self._encode(text)) if text else (), False)

    def _text(self, block: int | None, text: str) -> _Piece:
        enc = self.tokenizer(readable(text), add_special_tokens=False, return_offsets_mapping=True)
        starts = [int(s) for s, _ in enc["offset_mapping"]]
        ends = [int(e) for _, e in enc["offset_mapping"]]
        # Offsets must be monotone for spans to tile the text; fix the rare tokenizer that is not.
        for k in range(1, len(starts)):
            starts[k] = max(starts[k], starts[k - 1])
        return _Piece(block, text, tuple(enc["input_ids"]), True, tuple(starts), token_cuts(text, starts, ends))

    def _lay_out(self, m: BaseMessage) -> tuple[_Piece, ...]:
        header = self.fmt.header(role_of(m))
        if isinstance(m, ToolMessage) and m.name:
            header += f"[{m.name}] "
        pieces = [self._protected(header)]
        blocks = [(None, m.content)] if isinstance(m.content, str) else list(enumerate(m.content))
        for k, block in blocks:
            if is_text_block(block):
                if block_text(block):
                    pieces.append(self._text(k, block_text(block)))
            else:
                kind = block.get("type", "block") if isinstance(block, dict) else type(block).__name__
                pieces.append(self._protected(f"[{kind}]"))
        calls = render_tool_calls(m)
        if calls:
            pieces.append(self._protected(calls))
        pieces.append(self._protected(self.fmt.end))
        return tuple(pieces)

    # ------------------------------------------------------------------ views
    @property
    def compressible_parts(self) -> list[Part]:
        return [p for p in self.parts if p.compressible]

    @property
    def compressible_tokens(self) -> int:
        return sum(p.n_tokens for p in self.compressible_parts)

    def focus_text(self) -> str | None:
        """What the queries ask about: the given focus, else the latest human message's text."""
        if self.focus is not None:
            return self.focus or None
        if self.latest_human is None:
            return None
        texts = [p.text for p in self.parts if p.message == self.latest_human and p.block != -1]
        return "\n".join(texts) or None

    def restated_tail(self) -> list[int]:
        """The focus said again as a human turn (its last tokens), then the generation prompt."""
        tail: list[int] = []
        focus = self.focus_text()
        if focus:
            q_ids = self._encode(focus)[-MAX_FOCUS_TOKENS:]
            tail = self._encode(self.fmt.header("human")) + q_ids + self._encode(self.fmt.end)
        return tail + self._encode(self.fmt.generation_prompt())

    def scoring_sequence(self) -> tuple[list[int], int]:
        """(ids the draft scores, first query position).

        The queries must come *after* what they score (attention is causal), so unless the latest
        human message is last and is the focus (a one-shot prompt), the focus is restated at the
        end, then the generation prompt. ``query_start`` is also where the reusable prefix ends:
        everything before it is cached across steps.
        """
        last = len(self.messages) - 1
        gen = self._encode(self.fmt.generation_prompt())
        if self.focus is None and self.latest_human is not None and self.latest_human == last:
            ids = self.ids + gen
            q_begin = self.message_start(self.latest_human)
        else:
            ids = self.ids + self.restated_tail()
            q_begin = len(self.ids)
        if self.focus_text() is not None:
            query_start = max(q_begin, len(ids) - MAX_FOCUS_TOKENS - len(gen) - 8)
        else:
            query_start = len(ids) - NO_FOCUS_QUERIES
        return ids, max(1, min(query_start, len(ids) - 1))

    # ------------------------------------------------------------------ rebuild
    def rebuild(self, kept: dict[int, list[tuple[int, int]]], gap_marker: str) -> list[BaseMessage]:
        """Copies of the messages where each compressible part keeps only its ``kept`` char spans.

        ``kept`` maps an index into ``self.parts`` to sorted, non-overlapping char spans. Parts not
        in ``kept`` are unchanged. No message is added, dropped or reordered; ids, names, tool
        calls and metadata stay as they were, and the input messages are never mutated.
        """
        new_text: dict[tuple[int, int | None], str] = {}
        for pi, spans in kept.items():
            part = self.parts[pi]
            new_text[(part.message, part.block)] = _join_spans(part.text, spans, gap_marker)
        out: list[BaseMessage] = []
        for i, m in enumerate(self.messages):
            if not any(key[0] == i for key in new_text):
                out.append(m)
                continue
            if isinstance(m.content, str):
                content: Any = new_text.get((i, None), m.content)
            else:
                content = []
                for k, block in enumerate(m.content):
                    if (i, k) in new_text:
                        text = new_text[(i, k)]
                        block = text if isinstance(block, str) else {**block, "text": text}
                    content.append(block)
            out.append(m.model_copy(update={"content": content}))
        return out


def _join_spans(text: str, spans: list[tuple[int, int]], gap: str) -> str:
    """Kept spans of ``text`` in order, with ``gap`` wherever something was dropped."""
    merged: list[list[int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    if not merged:
        return gap.strip() or gap
    pieces = []
    if merged[0][0] > 0:
        pieces.append(gap.lstrip())
    for j, (a, b) in enumerate(merged):
        if j:
            pieces.append(gap)
        pieces.append(text[a:b])
    if merged[-1][1] < len(text):
        pieces.append(gap.rstrip())
    return "".join(pieces)
