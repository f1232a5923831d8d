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

import contextlib
import json
import unicodedata
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from .config import PolicyConfig, ScoringConfig

# Break levels after a token (see scoring.make_chunks): where a chunk may end.
NO_BREAK, IN_WORD, SPACE, LINE, RECORD, HARD = 0, 1, 2, 3, 4, 5


# --------------------------------------------------------------------------- chat format
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
    breaks: tuple[int, ...] = ()  # break level after each token (text parts only)

    @property
    def n_tokens(self) -> int:
        return self.end - self.start

    def char_span(self, t0: int, t1: int) -> tuple[int, int]:
        """Characters covered by local tokens [t0, t1)."""
        c0 = 0 if t0 == 0 else self.starts[t0]
        c1 = len(self.text) if t1 >= len(self.starts) else self.starts[t1]
        return c0, c1


def _break_level(text: str, p: int) -> int:
    """How good a place char ``p`` of ``text`` is to cut a chunk (between p-1 and p)."""
    prev, nxt = text[p - 1], text[p]
    if unicodedata.combining(nxt) or "\u200d" in (prev, nxt) or unicodedata.category(nxt) == "Mn":
        return NO_BREAK  # never split a character from its combining marks or a ZWJ sequence
    if "\n" in (prev, nxt):
        before = text[:p].rstrip(" \t")
        if text[p - 2 : p] == "\n\n" or text[p : p + 2] == "\n\n" or before.endswith(("},", "}", "],")):
            return RECORD
        return LINE
    if prev.isspace() or nxt.isspace():
        return SPACE
    return IN_WORD


def _inside_graphemes(text: str) -> frozenset[int]:
    """Char positions that fall inside a user-perceived character (Unicode extended grapheme).

    Flags (two regional indicators), skin-tone modifiers, keycaps, tag sequences, Indic spacing
    marks, Hangul jamo and CR LF are all one character to a reader but several code points, and a
    byte-level BPE often puts a token boundary between them: a cut there shows the target a broken
    character. ``regex`` (a dependency of transformers) implements UAX #29 grapheme clusters.
    """
    if text.isascii() and "\r\n" not in text:
        return frozenset()  # the common case: every ASCII char but CR LF is its own grapheme
    import regex

    inside: set[int] = set()
    for g in regex.finditer(r"\X", text):
        if g.end() - g.start() > 1:
            inside.update(range(g.start() + 1, g.end()))
    return frozenset(inside)


def _text_breaks(text: str, starts: Sequence[int], ends: Sequence[int]) -> tuple[int, ...]:
    out = []
    inside = _inside_graphemes(text)
    for i in range(len(starts) - 1):
        p = starts[i + 1]
        # Byte-level BPE splits some characters over several tokens whose offsets overlap: those
        # tokens must stay together or the target would see a broken character.
        if p <= starts[i] or p < ends[i] or p >= len(text) or p in inside:
            out.append(NO_BREAK)
        else:
            out.append(_break_level(text, p))
    if starts:
        out.append(HARD)
    return tuple(out)


def _is_text_block(block: Any) -> bool:
    return isinstance(block, str) or (
        isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
    )


def _block_text(block: Any) -> str:
    return block if isinstance(block, str) else block["text"]


def _role(m: BaseMessage) -> str:
    if isinstance(m, HumanMessage):
        return "human"
    if isinstance(m, AIMessage):
        return "ai"
    if isinstance(m, SystemMessage):
        return "system"
    if isinstance(m, ToolMessage):
        return "tool"
    return str(getattr(m, "role", None) or m.type)


def latest_human_index(messages: Sequence[BaseMessage]) -> int | None:
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return i
    return None


def is_compressible(messages: Sequence[BaseMessage], i: int, policy: PolicyConfig) -> bool:
    """The policy of DESIGN.md part 1 (never system, latest human, tool calls, or unknown types)."""
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


# --------------------------------------------------------------------------- transcript
class Transcript:
    """The draft's view of a list of messages: token ids plus the parts they came from."""

    def __init__(self, messages: Sequence[BaseMessage], tokenizer: Any, policy: PolicyConfig) -> None:
        self.messages = list(messages)
        self.tokenizer = tokenizer
        self.fmt = chat_format(tokenizer)
        self.latest_human = latest_human_index(self.messages)
        self.ids: list[int] = []
        self.parts: list[Part] = []
        for i, m in enumerate(self.messages):
            self._add_message(i, m, is_compressible(self.messages, i, policy))

    # ------------------------------------------------------------------ building
    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _add_protected(self, i: int, text: str) -> None:
        ids = self._encode(text) if text else []
        self.parts.append(Part(i, -1, text, False, len(self.ids), len(self.ids) + len(ids)))
        self.ids.extend(ids)

    def _add_text(self, i: int, block: int | None, text: str, compressible: bool) -> None:
        if not text:
            return
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        starts = [int(s) for s, _ in enc["offset_mapping"]]
        ends = [int(e) for _, e in enc["offset_mapping"]]
        # Offsets must be monotone for spans to tile the text; fix the rare tokenizer that is not.
        for k in range(1, len(starts)):
            starts[k] = max(starts[k], starts[k - 1])
        breaks = _text_breaks(text, starts, ends)
        start = len(self.ids)
        self.parts.append(Part(i, block, text, compressible, start, start + len(ids), tuple(starts), breaks))
        self.ids.extend(ids)

    def _add_message(self, i: int, m: BaseMessage, compressible: bool) -> None:
        role = _role(m)
        header = self.fmt.header(role)
        if isinstance(m, ToolMessage) and m.name:
            header += f"[{m.name}] "
        self._add_protected(i, header)
        if isinstance(m.content, str):
            self._add_text(i, None, m.content, compressible)
        else:
            for k, block in enumerate(m.content):
                if _is_text_block(block):
                    self._add_text(i, k, _block_text(block), compressible)
                else:
                    kind = block.get("type", "block") if isinstance(block, dict) else type(block).__name__
                    self._add_protected(i, f"[{kind}]")
        if isinstance(m, AIMessage) and m.tool_calls:
            calls = [{"name": c["name"], "arguments": c["args"]} for c in m.tool_calls]
            rendered = "".join(f"\n<tool_call>{json.dumps(c, ensure_ascii=False)}</tool_call>" for c in calls)
            self._add_protected(i, rendered)
        self._add_protected(i, self.fmt.end)

    # ------------------------------------------------------------------ views
    @property
    def compressible_parts(self) -> list[Part]:
        return [p for p in self.parts if p.compressible]

    @property
    def compressible_tokens(self) -> int:
        return sum(p.n_tokens for p in self.compressible_parts)

    def question(self) -> str | None:
        """Text of the latest human message (what the queries should be about)."""
        if self.latest_human is None:
            return None
        texts = [p.text for p in self.parts if p.message == self.latest_human and p.block != -1]
        return "\n".join(texts) or None

    def restated_tail(self, sc: ScoringConfig) -> list[int]:
        """The latest human message said again (its last tokens), then the generation prompt."""
        tail: list[int] = []
        question = self.question()
        if question:
            q_ids = self._encode(question)[-sc.max_question_tokens :]
            tail = self._encode(self.fmt.header("human")) + q_ids + self._encode(self.fmt.end)
        return tail + self._encode(self.fmt.generation_prompt())

    def scoring_sequence(self, sc: ScoringConfig) -> tuple[list[int], int]:
        """(ids the draft scores, first query position).

        The queries must come *after* what they score (attention is causal), so when the latest
        human message is not last (an agent loop: tool outputs follow the request) it is restated
        at the end, then the generation prompt. ``query_start`` is also where the reusable prefix
        ends: everything before it is cached across steps.
        """
        last_is_question = self.latest_human is not None and self.latest_human == len(self.messages) - 1
        gen = self._encode(self.fmt.generation_prompt())
        if last_is_question:
            ids = self.ids + gen
            q_begin = min(p.start for p in self.parts if p.message == self.latest_human)
        else:
            ids = self.ids + self.restated_tail(sc)
            q_begin = len(self.ids)
        if isinstance(sc.query_window, int):
            query_start = len(ids) - sc.query_window
        elif self.latest_human is not None:
            query_start = max(q_begin, len(ids) - sc.max_question_tokens - len(gen) - 8)
        else:
            query_start = len(ids) - 32  # no human turn at all: the tail is the best we have
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
