"""Tool rounds of an agent transcript, and their assembly into LangChain messages.

A round is one tool call and its output. Task generators make the round that holds the evidence;
this module makes the distractor rounds (real files, listings, greps, pydoc pages) that fill the
rest of the size budget, and turns rounds into ``AIMessage``/``ToolMessage`` pairs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from specprefill_langchain.bench.tasks import sources

SYSTEM_PROMPT = (
    "You are a careful software assistant working in a CPython checkout and its internal services. "
    "Use the tools to read files, search, list folders, fetch JSON from internal APIs and read "
    "documentation. Base every answer on the tool outputs you have seen; quote values exactly as they "
    "appear, and answer the final question briefly."
)

_GREP_PATTERNS = ("raise ValueError", "def __init__", "return None", "import ", "self._", "isinstance(")


@dataclass(frozen=True)
class Round:
    tool: str
    args: dict[str, Any]
    output: str


def window(
    lines: list[str], budget: int, rng: random.Random, anchor: int | None = None, depth: float | None = None
) -> tuple[int, int]:
    """A [start, end) slice of ``lines`` of at most ``budget`` chars holding ``anchor`` at about ``depth``.

    Without ``anchor`` the slice starts anywhere; without ``depth`` the anchor's depth is random.
    """
    sizes = [len(line) + 1 for line in lines]
    if sum(sizes) <= budget:
        return 0, len(lines)
    if anchor is None:
        anchor = rng.randrange(len(lines))
    # Walk back from the anchor to a random share of the budget, then forward to fill the rest.
    before = (rng.random() if depth is None else depth) * budget
    start, used = anchor, sizes[anchor]
    while start > 0 and used + sizes[start - 1] <= before:
        start -= 1
        used += sizes[start]
    end = anchor + 1
    while end < len(lines) and used + sizes[end] <= budget:
        used += sizes[end]
        end += 1
    while start > 0 and used + sizes[start - 1] <= budget:
        start -= 1
        used += sizes[start]
    return start, end


def clip_lines(text: str, budget: int, rng: random.Random) -> tuple[str, int, int]:
    lines = text.splitlines()
    start, end = window(lines, budget, rng)
    return "\n".join(lines[start:end]), start, end


def insert_line(text: str, line: str, depth: float) -> str:
    """Insert ``line`` between lines of ``text`` at the relative ``depth`` (0 = top, 1 = bottom)."""
    lines = text.splitlines()
    at = round(depth * len(lines))
    return "\n".join([*lines[:at], line, *lines[at:]])


def read_file_round(rel: str, budget: int, rng: random.Random) -> Round:
    text, start, end = clip_lines(sources.read_stdlib(rel), budget, rng)
    args = {"path": sources.display_path(rel), "offset": start + 1, "limit": end - start}
    return Round("read_file", args, text)


def pydoc_round(module: str, budget: int, rng: random.Random) -> Round:
    text, _, _ = clip_lines(sources.pydoc_page(module), budget, rng)
    return Round("pydoc", {"name": module}, text)


def grep_round(files: list[str], budget: int, rng: random.Random) -> Round:
    pattern = rng.choice(_GREP_PATTERNS)
    hits: list[str] = []
    used = 0
    for rel in files:
        for no, line in enumerate(sources.read_stdlib(rel).splitlines(), 1):
            if pattern in line:
                hit = f"{sources.display_path(rel)}:{no}:{line}"
                if used + len(hit) + 1 > budget:
                    return Round("grep", {"pattern": pattern, "path": "cpython/Lib"}, "\n".join(hits))
                hits.append(hit)
                used += len(hit) + 1
    return Round("grep", {"pattern": pattern, "path": "cpython/Lib"}, "\n".join(hits))


def list_dir_round(budget: int, rng: random.Random) -> Round:
    rel = rng.choice(sources.package_dirs())
    text, _, _ = clip_lines(sources.list_dir(rel), budget, rng)
    return Round("list_dir", {"path": sources.display_path(rel)}, text)


def filler_rounds(n: int, budget: int, rng: random.Random, avoid_files: frozenset[str] = frozenset()) -> list[Round]:
    """``n`` distractor rounds of real text, about ``budget`` chars in all."""
    files = [f for f in sources.stdlib_files() if f not in avoid_files]
    rounds: list[Round] = []
    left = budget
    for i in range(n):
        share = left // (n - i)
        kind = rng.choice(("read_file", "read_file", "pydoc", "grep", "list_dir"))
        if kind == "list_dir" and share > 3000:
            kind = "pydoc"  # listings are short; keep big shares for sources that can fill them
        if kind == "read_file":
            rnd = read_file_round(_big_file(files, share, rng), share, rng)
        elif kind == "pydoc":
            rnd = pydoc_round(rng.choice(sources.PYDOC_MODULES), share, rng)
        elif kind == "grep":
            rnd = grep_round(rng.sample(files, min(len(files), 60)), share, rng)
        else:
            rnd = list_dir_round(share, rng)
        if len(rnd.output) < 0.7 * share and rnd.tool != "read_file":
            # A short page, listing or grep would leave the transcript under its size target.
            rnd = read_file_round(_big_file(files, share, rng), share, rng)
        rounds.append(rnd)
        left -= len(rnd.output)
    return rounds


def _big_file(files: list[str], need: int, rng: random.Random) -> str:
    for _ in range(50):
        rel = rng.choice(files)
        if len(sources.read_stdlib(rel)) >= need:
            return rel
    return max(files, key=lambda f: len(sources.read_stdlib(f)))


_AI_TEXT = {
    "read_file": "Let me open {path}.",
    "pydoc": "I'll check the documentation of {name}.",
    "grep": "Searching for `{pattern}`.",
    "list_dir": "Listing {path} first.",
    "http_get_json": "Fetching {url}.",
}


def build_messages(
    task_id: str, rng: random.Random, request: str, rounds: list[Round], question: str
) -> list[BaseMessage]:
    """System prompt, the request, one AI tool call + ToolMessage per round, then the question."""
    msgs: list[BaseMessage] = [
        SystemMessage(SYSTEM_PROMPT, id=f"{task_id}-m0"),
        HumanMessage(request, id=f"{task_id}-m1"),
    ]
    for rnd in rounds:
        call_id = f"call_{rng.getrandbits(48):012x}"
        # Real models often emit a tool call with no text; mix both.
        text = _AI_TEXT[rnd.tool].format(**rnd.args) if rng.random() < 0.6 else ""
        call = {"name": rnd.tool, "args": rnd.args, "id": call_id, "type": "tool_call"}
        msgs.append(AIMessage(text, tool_calls=[call], id=f"{task_id}-m{len(msgs)}"))
        msgs.append(ToolMessage(rnd.output, tool_call_id=call_id, name=rnd.tool, id=f"{task_id}-m{len(msgs)}"))
    msgs.append(HumanMessage(question, id=f"{task_id}-m{len(msgs)}"))
    return msgs


@dataclass(frozen=True)
class TaskParts:
    """What a kind generator decides: the rounds holding the evidence, the wording, and the gold answer."""

    rounds: tuple[Round, ...]
    evidence: tuple[str, ...]
    request: str
    question: str
    answer: str
    avoid_files: frozenset[str] = frozenset()
    fill: bool = True  # add distractor rounds of real text up to the size budget


def arrange(parts: TaskParts, budget: int, rng: random.Random) -> list[Round]:
    """Evidence rounds in their order, at random positions among distractor rounds (2–5 rounds in all)."""
    own = list(parts.rounds)
    left = budget - sum(len(r.output) for r in own)
    if not parts.fill or left < 200:
        return own
    n_fill = rng.randint(max(1, 2 - len(own)), max(1, 5 - len(own)))
    fill = filler_rounds(n_fill, left, rng, parts.avoid_files)
    slots = sorted(rng.sample(range(len(own) + len(fill)), len(own)))
    out: list[Round] = []
    for pos in range(len(own) + len(fill)):
        out.append(own.pop(0) if pos in slots else fill.pop(0))
    return out
