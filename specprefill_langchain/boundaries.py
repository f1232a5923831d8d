"""Where text may be cut: one named strength per gap between two tokens.

:mod:`transcript` asks this module how good a place the gap after each token is to end a chunk, and
:mod:`selection` cuts chunks at the strongest gaps near its target length (docs/design.md, "Chunks").
The levels are ordered: a higher level is a better place to cut. A chunk ends only at ``SPACE`` or
stronger (or at the end of a text), so the target never sees half a word, let alone half a character:
a run with only ``IN_WORD`` and ``NONE`` gaps inside (a URL, base64, a long identifier) stays whole.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from enum import IntEnum


class Cut(IntEnum):
    """How good a place a gap between two tokens is to end a chunk."""

    NONE = 0  # inside a user-perceived character: never cut here
    IN_WORD = 1  # between two tokens of one word (a URL, base64, a long identifier): no chunk ends here
    SPACE = 2  # between words
    LINE = 3  # at a line end; the end of a text is cut as a line end
    RECORD = 4  # a blank line, or a line that closes a JSON/dict record (`}`, `},`, `],`)


def _before_stripped_ends_with_record(text: str, p: int) -> bool:
    """Does ``text[:p]``, without trailing spaces/tabs, end like a record (`}`, `},`, `],`)?

    Scans back from ``p`` instead of slicing, so the cost is the run of blanks, not ``p``: slicing
    ``text[:p]`` at every line end made long tool outputs quadratic to lay out.
    """
    q = p
    while q > 0 and text[q - 1] in " \t":
        q -= 1
    tail = text[max(0, q - 2) : q]
    return tail.endswith(("},", "}", "],"))


def cut_level(text: str, p: int) -> Cut:
    """How good a place char ``p`` of ``text`` is to cut (between ``p - 1`` and ``p``), 0 < p < len."""
    prev, nxt = text[p - 1], text[p]
    if unicodedata.combining(nxt) or "\u200d" in (prev, nxt) or unicodedata.category(nxt) == "Mn":
        return Cut.NONE  # never split a character from its combining marks or a ZWJ sequence
    if "\n" in (prev, nxt):
        if text[p - 2 : p] == "\n\n" or text[p : p + 2] == "\n\n" or _before_stripped_ends_with_record(text, p):
            return Cut.RECORD
        return Cut.LINE
    if prev.isspace() or nxt.isspace():
        return Cut.SPACE
    return Cut.IN_WORD


def inside_graphemes(text: str) -> frozenset[int]:
    """Char positions that fall inside a user-perceived character (Unicode extended grapheme).

    Flags (two regional indicators), skin-tone modifiers, keycaps, tag sequences, Indic spacing
    marks, Hangul jamo and CR LF are all one character to a reader but several code points, and a
    byte-level BPE often puts a token boundary between them: a cut there shows the target a broken
    character. ``regex`` implements UAX #29 grapheme clusters (``\\X``).
    """
    if text.isascii() and "\r\n" not in text:
        return frozenset()  # the common case: every ASCII char but CR LF is its own grapheme
    import regex

    inside: set[int] = set()
    for g in regex.finditer(r"\X", text):
        if g.end() - g.start() > 1:
            inside.update(range(g.start() + 1, g.end()))
    return frozenset(inside)


def token_cuts(text: str, starts: Sequence[int], ends: Sequence[int]) -> tuple[int, ...]:
    """The :class:`Cut` level of the gap after each token of ``text`` (the last one: ``LINE``).

    ``starts``/``ends`` are the tokens' character offsets. Byte-level BPE splits some characters
    over several tokens whose offsets overlap: those tokens must stay together (``NONE``).
    """
    out = []
    inside = inside_graphemes(text)
    for i in range(len(starts) - 1):
        p = starts[i + 1]
        if p <= starts[i] or p < ends[i] or p >= len(text) or p in inside:
            out.append(int(Cut.NONE))
        else:
            out.append(int(cut_level(text, p)))
    if starts:
        out.append(int(Cut.LINE))  # the end of a text is as good a cut as a line end
    return tuple(out)
