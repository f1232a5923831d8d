"""The focus: the text the draft's queries ask about (``ScoringConfig.focus``, docs/design.md, "Focus").

Words, as the code uses them: the *request* is the latest human message; the *focus* is the text
restated after the transcript whose tokens act as the attention *queries*; *mentions* are literal
terms of the focus that mark chunks (module ``mentions``).

In an agent loop the last message is usually a tool result, and what matters in an output is often
named only by the agent's step: the call that fetched it (``read_file symbol=gzip_decode``), the text
that announced the call, the line of an earlier result that led to it (the grep hit naming the file
being read), or an error line of a newer result. ``"step"`` puts all of these before the request:

* for each result being scored: the AI text that announced its call, the call compactly
  (``name key=value ...``), and the lines of the recent results before the call that name one of the
  call's arguments (:func:`lead_lines`);
* the salient lines (errors, failures, warnings) of the newest results not being scored;
* the request, last, so a cut from the left keeps it.

A scored text is never restated (its own queries would find the text itself).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from .chatformat import safe_json
from .policy import latest_human_index

# Lines an agent acts on: they name what it looks for next (an error names a key, a failing test a
# function, a traceback a file and line).
SALIENT = re.compile(
    r"\b(error|exception|traceback|fail(ed|ure)?|warn(ing)?|rejected|denied|invalid|unknown|missing|not found)\b"
    r'|^\s*File "[^"]+", line \d+',
    re.IGNORECASE,
)
SALIENT_LINES = 3  # per result: a long log repeats itself; its first few salient lines carry the news
RESULTS = 3  # the most recent results whose salient lines count: older ones were answered already
LEAD_LINES = 16  # per call: a grep names a file in a dozen hits; the one naming the helper may be any of them
LEAD_RESULTS = 3  # results before a call that may hold its leads: the agent acts on what it just read
LINE_CHARS = 200  # a minified line is not a lead: its first characters are enough to name things
CALL_CHARS = 120
ANNOUNCE_CHARS = 300  # the AI text before a call ("Let me check parse_config"): a sentence or two
CALLS = 16  # the calls that fetched the results being scored, the latest kept
_PATH_PART = re.compile(r"[\\/]")


def request_text(messages: Sequence[BaseMessage]) -> str | None:
    i = latest_human_index(messages)
    return None if i is None else (messages[i].text or None)


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else safe_json(value)


def call_text(call: dict[str, Any]) -> str:
    """A tool call as the focus reads it: ``name key=value ...``."""
    args = call.get("args") or {}
    pairs = " ".join(f"{k}={_compact(v)}" for k, v in args.items()) if isinstance(args, dict) else _compact(args)
    return f"{call['name']} {pairs}".strip()[:CALL_CHARS]


def salient_lines(m: BaseMessage) -> list[str]:
    return [line.strip()[:LINE_CHARS] for line in m.text.splitlines() if SALIENT.search(line)][:SALIENT_LINES]


def _needles(call: dict[str, Any]) -> list[str]:
    """What of a call's arguments a leading line would name: each string value, and a path's file name."""
    args = call.get("args") or {}
    values = [v for v in (args.values() if isinstance(args, dict) else [args]) if isinstance(v, str)]
    out = []
    for v in values:
        v = v.strip()
        tail = _PATH_PART.split(v)[-1]
        out += [x for x in {v, tail} if len(x) >= 3]
    return sorted(set(out), key=len, reverse=True)


def lead_lines(messages: Sequence[BaseMessage], at: int, call: dict[str, Any]) -> list[str]:
    """Lines of the results just before message ``at`` (the AI message holding ``call``) that name one
    of the call's arguments: the grep hits naming the file the call reads, the test naming the module.
    A long path in them is shortened to its file name (the focus has room for the code, not the path)."""
    needles = _needles(call)
    if not needles:
        return []
    before = [m for m in messages[:at] if isinstance(m, ToolMessage)][-LEAD_RESULTS:]
    found: list[str] = []
    for m in reversed(before):
        for line in m.text.splitlines():
            hit = next((n for n in needles if n in line), None)
            if hit is None or not line.strip():
                continue
            short = line.replace(hit, _PATH_PART.split(hit)[-1]).strip()[:LINE_CHARS]
            if short not in found:
                found.append(short)
                if len(found) >= LEAD_LINES:
                    return found
    return found


def arrival_text(messages: Sequence[BaseMessage], scored: Collection[int]) -> list[str]:
    """For the results being scored: the text announcing each call, its leads, and the call itself."""
    wanted = {messages[j].tool_call_id for j in scored if isinstance(messages[j], ToolMessage)}
    groups: list[list[str]] = []  # one per call, the latest last
    for i, m in enumerate(messages):
        mine = [c for c in m.tool_calls if c.get("id") in wanted] if isinstance(m, AIMessage) else []
        announced = m.text.strip()[:ANNOUNCE_CHARS] if mine else ""
        for k, c in enumerate(mine):
            said = [announced] if announced and k == 0 else []
            groups.append([*said, *lead_lines(messages, i, c), call_text(c)])
    return [line for group in groups[-CALLS:] for line in group]


def step_text(messages: Sequence[BaseMessage], scored: Collection[int] = ()) -> str:
    """The agent's current step as focus text (see the module doc); ``scored``: the results being scored."""
    human = latest_human_index(messages)
    turn = 0 if human is None else human + 1
    results = [j for j in range(turn, len(messages)) if isinstance(messages[j], ToolMessage)]
    if not results:
        return ""
    recent = [j for j in results if j not in scored][-RESULTS:]
    salient = [line for j in recent for line in salient_lines(messages[j])]
    return "\n".join([*arrival_text(messages, [j for j in results if j in scored]), *salient])


def mention_text(messages: Sequence[BaseMessage], focus: Any, focus_text: str | None) -> str:
    """Where literal mentions are looked for (module ``mentions``): the focus text, and with ``"step"``
    the salient lines of the newest results *including* those being scored, newest first.

    The attention focus never restates a scored text, but a literal term is safe to take from it: in
    per-step mode the log line that names a key is itself scored, and the key marks the record.
    """
    parts: list[str] = []
    if focus == "step":  # first: the newest, most specific lines (key_terms keeps the first terms)
        human = latest_human_index(messages)
        turn = 0 if human is None else human + 1
        results = [m for m in messages[turn:] if isinstance(m, ToolMessage)][-RESULTS:]
        parts += [line for m in reversed(results) for line in salient_lines(m)]
    parts.append(focus_text or "")
    return "\n".join(p for p in parts if p)


def focus_text(messages: Sequence[BaseMessage], focus: str, scored: Collection[int] = ()) -> str | None:
    """The focus text for ``focus`` (``"request"`` or ``"step"``); None means "the latest human message"."""
    if focus == "request":
        return None
    if focus != "step":
        msg = f"focus={focus!r} is not valid: use 'request' or 'step'."
        raise ValueError(msg)
    step = step_text(messages, scored)
    if not step:
        return None  # no agent step after the request: the request alone, as a one-shot prompt
    request = request_text(messages) or ""
    return f"{step}\n{request}".strip()
