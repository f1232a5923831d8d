"""Literal mentions: chunks that contain a rare term the query names verbatim rank first.

A 135M draft's attention finds *what kind* of text a question is about (definitions, records, error
lines), but it is weak at *which one*: asked about ``gzip_decode``, it keeps the ``def`` lines of
``gzip_encode`` and ``loads`` just as gladly (docs/design.md, "Mentions"). An agent's step usually
names the thing exactly: a tool call's ``symbol=gzip_decode``, a log line's ``extension '.xyz'``, a
request's quoted key. So selection ranks first the chunks that contain such a term verbatim, when
the term is *rare* in the text being compressed (it occurs in at most :data:`MAX_HITS` chunks): a
common term tells nothing, and the draft's scores order everything else.

Pure functions over strings and chunk spans, no model.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from .selection import Chunk
from .wordlists import STOP

if TYPE_CHECKING:
    from .transcript import Transcript

MAX_HITS = 3  # a term found in more chunks than this is too common to point at anything
MIN_CHARS = 2
MAX_CHARS = 64
MAX_TERMS = 128  # the first ones: a pasted file in a request must not cost a scan per identifier

# Terms a text names on purpose: a quoted value ('.xyz', "EACCES", `load`), a ``key=value`` argument
# as the focus renders tool calls, an identifier that no prose word looks like (dotted.names,
# snake_case and _private, camelCase and PascalCase, a word with digits, an ACRONYM), a number of two
# digits or more, and a name used as a call (``tenumerate(``), which its place shows to be a name.
QUOTED = re.compile(r"""'([^'\n]{1,64})'|"([^"\n]{1,64})"|`([^`\n]{1,64})`""")
_ARG = re.compile(r"(?<![\w])[A-Za-z_]\w*=([^\s=]{1,64})")
IDENT = re.compile(
    r"(?<![\w.])(?:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+|[A-Za-z_]*_\w*|[a-z]+[A-Z]\w*|[A-Z][a-z]+[A-Z]\w*"
    r"|[A-Z][A-Z0-9]{3,}|[A-Za-z]+\d\w*|\d{2,})(?![\w])"
)
CALLED = re.compile(r"(?<![\w.])([A-Za-z_]\w{3,})\(")


def key_terms(text: str | None) -> list[str]:
    """The literal terms ``text`` names, without duplicates: quoted values first, then arguments, then
    identifiers, each in order of appearance; at most :data:`MAX_TERMS`."""
    if not text:
        return []
    found: list[str] = []
    for m in QUOTED.finditer(text):
        found.append(next(g for g in m.groups() if g is not None).strip())
    found += [m.group(1).strip(".,;:)") for m in _ARG.finditer(text)]
    found += [m.group(0) for m in IDENT.finditer(text)]
    found += [m.group(1) for m in CALLED.finditer(text)]
    seen: set[str] = set()
    out = []
    for term in found:
        if MIN_CHARS <= len(term) <= MAX_CHARS and term not in seen and not term.isspace() and term not in STOP:
            seen.add(term)
            out.append(term)
    return out[:MAX_TERMS]


def _pattern(term: str) -> re.Pattern[str]:
    # Whole-word on the sides where the term itself starts/ends with a word character, so that
    # ``load`` does not match ``loads`` while ``.xyz`` still matches inside ``".xyz":``.
    left = r"(?<![\w])" if term[0].isalnum() or term[0] == "_" else ""
    right = r"(?![\w])" if term[-1].isalnum() or term[-1] == "_" else ""
    return re.compile(left + re.escape(term) + right)


def _hits(pattern: re.Pattern[str], text: str, starts: list[int], ends: list[int], limit: int) -> set[int] | None:
    """Indices of the chunks (sorted spans ``starts``/``ends`` of ``text``) that a match overlaps;
    None as soon as more than ``limit`` are hit (the term is too common: stop scanning)."""
    hits: set[int] = set()
    for m in pattern.finditer(text):
        j = bisect.bisect_right(starts, m.start()) - 1  # the chunk the match starts in
        j = max(j, 0)
        while j < len(starts) and starts[j] < m.end():
            if ends[j] > m.start():
                hits.add(j)
            j += 1
        if len(hits) > limit:
            return None
    return hits


def mark_mentions(t: Transcript, chunks: Sequence[Chunk], terms: Iterable[str]) -> list[Chunk]:
    """``chunks`` with ``mention`` set on those that hold a rare term of ``terms`` (see module doc): the
    rarer the term, the higher (a term found in one chunk only names that chunk; in three, any of them).

    A match counts for every chunk its characters overlap, so a quoted phrase cut by a chunk edge
    still marks both halves. Chunks of one part are consecutive and in order (as ``chunks_of`` makes them).
    """
    chunks = list(chunks)
    by_part: dict[int, list[int]] = {}
    for j, c in enumerate(chunks):
        by_part.setdefault(c.part, []).append(j)
    layout = {}
    for part, idx in by_part.items():
        spans = [t.parts[part].char_span(chunks[j].t0, chunks[j].t1) for j in idx]
        layout[part] = ([a for a, _ in spans], [b for _, b in spans])
    marked: dict[int, int] = {}  # chunk -> its rarest term's rank (MAX_HITS: found in one chunk only)
    for term in terms:
        pattern, found, common = _pattern(term), set(), False
        for part, idx in by_part.items():
            starts, ends = layout[part]
            local = _hits(pattern, t.parts[part].text, starts, ends, MAX_HITS - len(found))
            if local is None:
                common = True
                break
            found |= {idx[j] for j in local}
        if not common:
            for j in found:
                marked[j] = max(marked.get(j, 0), MAX_HITS + 1 - len(found))
    return [replace(c, mention=marked[j]) if j in marked else c for j, c in enumerate(chunks)]


__all__ = ["CALLED", "IDENT", "MAX_HITS", "MAX_TERMS", "QUOTED", "STOP", "key_terms", "mark_mentions"]
