"""Rescue: what the current step names in the dropped parts of earlier outputs comes back, append-only.

Stable mode decides a tool result when it arrives; what matters in it is often named only later (a
failing test names a function, a log line a config key, a traceback ``file, line N``, a follow-up asks
about an old result). Rewriting the old output would break the target's prefix cache, so the lines
that hold it are *appended* instead: a short labelled block at the end of the newest message, frozen
in the thread's state like every other decision (docs/design.md, "Rescue"). Step N+1 still extends
step N byte for byte, and a line already visible anywhere in the prompt is never sent again.

Candidates come from literal references first: ``file, line N`` of a traceback or ``path:N`` against
the line numbers of an earlier read (its ``offset`` argument), then rare terms of the step (identifiers,
keys, quoted values) found in dropped lines, definitions (``def name``, ``key = value``) before mere
uses. Pure functions over strings, no model.
"""

from __future__ import annotations

import bisect
import keyword
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from .focus import SALIENT, call_text
from .mentions import CALLED, IDENT, QUOTED
from .wordlists import PROSE, STOP

RESCUE_SHARE = 0.25  # of the new messages' characters: a rescue never outweighs the step that asked for it
RESCUE_FLOOR = 400  # characters: even a one-line step (a follow-up question) may bring back a few lines
MAX_LINE_HITS = 3  # a term found in more dropped lines than this points at nothing in particular
MAX_TERMS = 64  # the first terms of the step: a pasted file must not cost a scan per identifier
LINE_CHARS = 300  # a rescued line is cut to this: a minified line is named for its start
STEP_LINES = 20  # salient lines of a new result read for terms (errors, failures, warnings, frames)
SHORT_RESULT = 15  # lines: a result this short (a grep, a status) is read whole for terms
_TRACE = re.compile(r'File "([^"]+)", line (\d+)')
_PATH_LINE = re.compile(r"([\w.\-/\\]+\.[A-Za-z]\w*):(\d+)")
# Names a report shows by their place: a function's repr, a traceback frame, a test of it, an attribute
# (a call, ``name(``, is the mentions' CALLED).
_NAMED = re.compile(r"<function (\w+)|, in (\w{4,})|\btest_(\w{4,})|\.([A-Za-z_]\w{3,})\b")
# A line of source code (a read file), not a report about it.
_CODE = re.compile(
    r"^\s*(raise|except|if|elif|while|for|return|def|class|import|from|with|try|assert|#|@)\b|^\s*\w+(\.\w+)*\("
)
_OFFSET_ARGS = ("offset", "start", "start_line", "line", "from_line")
_WORD = re.compile(r"(?<![\w.])[A-Za-z][a-z]{3,}(?![\w])")


@dataclass(frozen=True)
class Source:
    """An earlier tool output whose compressed form dropped lines: where rescued lines come from."""

    index: int
    label: str  # how the block names it: tool, ref and path
    lines: tuple[str, ...]
    starts: tuple[int, ...]  # character offset of each line in the joined text
    first_line: int  # the file line number of output line 1 (a read's offset), else 1
    path: str | None


@dataclass(frozen=True)
class Rescue:
    """The block appended to the newest message, and what it holds."""

    text: str
    lines: int
    chars: int


def report_lines(m: ToolMessage) -> list[str]:
    """The lines of a new result that *report* something (an error, a failure, a warning, a frame): a
    short result whole. Source code is not a report, even where it says ``raise ValueError``."""
    lines = m.text.splitlines()
    if len(lines) <= SHORT_RESULT:
        return lines
    return [x for x in lines if SALIENT.search(x) and not _CODE.match(x)][:STEP_LINES]


def step_text(messages: Sequence[BaseMessage], first_new: int) -> str:
    """What the current step says: the call that led to it (and its text), the report lines of the
    new results, a new human turn."""
    parts: list[str] = []
    prev = messages[first_new - 1] if first_new > 0 else None
    if isinstance(prev, AIMessage):
        parts += [prev.text, *(call_text(c) for c in prev.tool_calls)]
    for m in messages[first_new:]:
        if isinstance(m, HumanMessage):
            parts.append(m.text)
        elif isinstance(m, ToolMessage):
            parts += report_lines(m)
    return "\n".join(p for p in parts if p)


def step_terms(text: str, asked: str = "") -> list[str]:
    """Rare-looking terms a step names, in order, without duplicates: quoted values; identifiers that no
    prose word looks like; names that only their place shows (``tenumerate(``, ``<function load``,
    ``, in parse``, ``::test_load``, ``.load``); last, the content words of a new human turn (``asked``):
    a person asks about "the alias french" without quoting it."""
    found = [next(g for g in m.groups() if g) for m in QUOTED.finditer(text)]
    found += [m.group(0) for m in IDENT.finditer(text)]
    found += [m.group(1) for m in CALLED.finditer(text)]
    found += [next(g for g in m.groups() if g) for m in _NAMED.finditer(text)]
    found += [w for w in _WORD.findall(asked) if w.lower() not in PROSE]
    out: list[str] = []
    for term in (t.strip() for t in found):
        if 3 <= len(term) <= 64 and term.upper() not in STOP and term not in out and not keyword.iskeyword(term):
            out.append(term)
    return out[:MAX_TERMS]


def line_refs(text: str) -> list[tuple[str, int]]:
    """``(path, line)`` pairs a step points at: traceback frames, ``path:N`` of test runs and greps."""
    refs = [(m.group(1), int(m.group(2))) for m in _TRACE.finditer(text)]
    return refs + [(m.group(1), int(m.group(2))) for m in _PATH_LINE.finditer(text)]


def source_of(i: int, m: ToolMessage, call: dict | None) -> Source:
    args = (call or {}).get("args") or {}
    args = args if isinstance(args, dict) else {}
    path = next((str(v) for k, v in args.items() if k in ("path", "file", "filename") and v), None)
    offset = next((v for k, v in args.items() if k in _OFFSET_ARGS), 1)
    first = int(offset) if isinstance(offset, int | str) and str(offset).isdigit() else 1
    label = f"{m.name or 'tool'} {m.tool_call_id}" + (f" ({path})" if path else "")
    lines = tuple(m.text.split("\n"))
    starts, pos = [], 0
    for line in lines:
        starts.append(pos)
        pos += len(line) + 1
    return Source(i, label, lines, tuple(starts), max(first, 1), path)


def _same_file(a: str, b: str) -> bool:
    """Do two paths name the same file? Their last two parts agree (or the last, for a bare name)."""
    pa, pb = re.split(r"[\\/]", a.strip()), re.split(r"[\\/]", b.strip())
    n = min(2, len(pa), len(pb))
    return pa[-n:] == pb[-n:]


def _pattern(term: str) -> re.Pattern[str]:
    left = r"(?<![\w])" if term[0].isalnum() or term[0] == "_" else ""
    right = r"(?![\w])" if term[-1].isalnum() or term[-1] == "_" else ""
    return re.compile(left + re.escape(term) + right)


def candidates(sources: Sequence[Source], text: str, asked: str = "") -> list[tuple[int, int]]:
    """(source, line) pairs the step names, best first: referenced lines, definitions, other uses."""
    return [c for _, c in tiered(sources, text, asked)]


def tiered(sources: Sequence[Source], text: str, asked: str = "") -> list[tuple[int, tuple[int, int]]]:
    """:func:`candidates` with each one's tier: 0 a referenced line, 1 a definition, 2 a use."""
    ranked: list[tuple[tuple[int, int, int], tuple[int, int]]] = []
    for path, number in line_refs(text):
        for k, s in enumerate(sources):
            j = number - s.first_line
            if s.path and _same_file(s.path, path) and 0 <= j < len(s.lines):
                ranked.append(((0, 0, -s.index), (k, j)))
    for order, term in enumerate(step_terms(text, asked)):
        pattern, hits = _pattern(term), set()
        for k, s in enumerate(sources):
            joined = "\n".join(s.lines)
            hits |= {(k, bisect.bisect_right(s.starts, m.start()) - 1) for m in pattern.finditer(joined)}
        definition = re.compile(rf"(def|class)\s+{re.escape(term)}\b|^\s*[\"'#]?{re.escape(term)}[\"']?\s*[:=]")
        defs = {h for h in hits if definition.search(sources[h[0]].lines[h[1]])}
        # A term in many lines points at nothing in particular, except where it is defined.
        uses = hits - defs if len(hits) <= MAX_LINE_HITS else set()
        if len(defs) > MAX_LINE_HITS:
            continue
        ranked += [((1, order, -sources[k].index), (k, j)) for k, j in sorted(defs)]
        ranked += [((2, order, -sources[k].index), (k, j)) for k, j in sorted(uses)]
    seen: set[tuple[int, int]] = set()
    return [(key[0], c) for key, c in sorted(ranked) if not (c in seen or seen.add(c))]


Rank = Callable[[list[str], str], list[float]]  # (lines, focus text) -> the draft's score of each line


def rescue(
    sources: Sequence[Source],
    text: str,
    visible: Callable[[str], bool],
    budget: int,
    rank: Rank | None = None,
    asked: str = "",
) -> Rescue | None:
    """The block of the lines ``text`` names, within ``budget`` characters, skipping visible lines.

    ``rank``: when the named lines overflow the budget, the draft's attention from ``text`` orders the
    lines of each tier (a referenced line, a definition, a use), so the budget goes to those it reads
    as most relevant; without it, the order of the terms in the step decides.
    """
    found = [(tier, (k, j)) for tier, (k, j) in tiered(sources, text, asked) if _shown(sources[k], j, visible)]
    if rank is not None and sum(len(_line(sources[k], j)) + 1 for _, (k, j) in found) > budget:
        scores = rank([_line(sources[k], j) for _, (k, j) in found], text)
        found = [found[n] for n in sorted(range(len(found)), key=lambda n: (found[n][0], -scores[n], n))]
    chosen: dict[int, set[int]] = {}
    used = 0
    for _, (k, j) in found:
        line = _line(sources[k], j)
        if used + len(line) + 1 > budget or j in chosen.get(k, set()):
            continue
        chosen.setdefault(k, set()).add(j)
        used += len(line) + 1
    if not chosen:
        return None
    blocks = [_block(sources[k], sorted(js)) for k, js in sorted(chosen.items(), key=lambda kv: sources[kv[0]].index)]
    body = "\n".join(blocks)
    block = f"\n[specprefill: lines of earlier outputs that this step names]\n{body}"
    return Rescue(block, sum(len(js) for js in chosen.values()), len(block))


def _line(s: Source, j: int) -> str:
    return s.lines[j].rstrip()[:LINE_CHARS]


def _shown(s: Source, j: int, visible: Callable[[str], bool]) -> bool:
    """A candidate worth sending: a line with text that the prompt does not show already."""
    line = _line(s, j).strip()
    return bool(line) and not visible(line)


def _block(s: Source, lines: list[int]) -> str:
    runs: list[list[int]] = []
    for j in lines:
        if runs and j == runs[-1][-1] + 1:
            runs[-1].append(j)
        else:
            runs.append([j])
    out = []
    for run in runs:
        a, b = run[0] + s.first_line, run[-1] + s.first_line
        where = f"line {a}" if a == b else f"lines {a}-{b}"
        out.append(f"[from {s.label}, {where}:]\n" + "\n".join(s.lines[j].rstrip()[:LINE_CHARS] for j in run))
    return "\n".join(out)
