"""What the draft's queries ask about: the request, or the request plus the agent's current step.

In an agent loop the last message is usually a tool result, and what matters in an older output is
often named only in the agent's latest tool call or in the newest result (a traceback names a
function, a ticket names a record). ``ScoringConfig.query`` picks (docs/design.md, "Queries"):

* ``"request"``: the latest human message (what a one-shot prompt asks);
* ``"step"``: the agent's current step: the salient lines of the newest tool results that are not
  themselves being scored, the tool calls (with their arguments) that fetched the results being
  scored, then the request. The request goes last, so that a cut to ``max_question_tokens`` from
  the left keeps it.

:func:`mention_text` says where the literal terms of module ``mentions`` are looked for.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from .chatformat import safe_json
from .policy import latest_human_index

# What the query takes from the turn (docs/design.md, "Queries"):
# * the salient lines of the most recent results that are not being scored: the lines an agent acts
#   on, which name what it looks for next (an error names a key, a failing test names a function);
# * the tool calls that fetched the results being scored, compactly (``name key=value ...``): the
#   call says what its output was fetched for;
# * the request, last.
SALIENT = re.compile(
    r"\b(error|exception|traceback|fail(ed|ure)?|warn(ing)?|rejected|denied|invalid|unknown|missing|not found)\b",
    re.IGNORECASE,
)
SALIENT_LINES = 3  # per result
RESULTS = 3  # the most recent results (not being scored) whose salient lines join the query
LINE_CHARS = 200
CALL_CHARS = 120
CALLS = 16  # the calls that fetched the results being scored, the latest kept


def request_text(messages: Sequence[BaseMessage]) -> str | None:
    i = latest_human_index(messages)
    return None if i is None else (messages[i].text or None)


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else safe_json(value)


def _call_text(call: dict[str, Any]) -> str:
    args = call.get("args") or {}
    pairs = " ".join(f"{k}={_compact(v)}" for k, v in args.items()) if isinstance(args, dict) else _compact(args)
    return f"{call['name']} {pairs}".strip()[:CALL_CHARS]


def _salient(m: ToolMessage) -> list[str]:
    return [line.strip()[:LINE_CHARS] for line in m.text.splitlines() if SALIENT.search(line)][:SALIENT_LINES]


def step_text(messages: Sequence[BaseMessage], scored: Collection[int] = ()) -> str:
    """The agent's current step as query text: salient lines of recent results, then the fetching calls.

    ``scored``: indices of the tool results being scored. Their own text is never restated (a copy of a
    text would make its queries find the text itself); the calls that fetched them are, the latest last.
    """
    human = latest_human_index(messages)
    turn = 0 if human is None else human + 1
    results = [j for j in range(turn, len(messages)) if isinstance(messages[j], ToolMessage)]
    if not results:
        return ""
    recent = [j for j in results if j not in scored][-RESULTS:]
    salient = [line for j in recent for line in _salient(messages[j])]
    wanted = {messages[j].tool_call_id for j in results if j in scored}
    calls = [
        _call_text(c)
        for i in range(turn, len(messages))
        if isinstance(messages[i], AIMessage)
        for c in messages[i].tool_calls
        if c.get("id") in wanted
    ][-CALLS:]
    return "\n".join([*salient, *calls])


def mention_text(messages: Sequence[BaseMessage], how: str, query: str | None) -> str:
    """Where literal mentions are looked for (module ``mentions``): the query, and with ``"step"`` the
    salient lines of the newest results *including* those being scored.

    The attention query never restates a scored text (its queries would find the text itself), but a
    literal term is safe to take from it: in per-step mode the log line that names a key is itself
    scored, and the key it names marks the record it points to.
    """
    parts: list[str] = []
    if how == "step":  # first: the newest, most specific lines (key_terms keeps the first terms)
        human = latest_human_index(messages)
        turn = 0 if human is None else human + 1
        results = [m for m in messages[turn:] if isinstance(m, ToolMessage)][-RESULTS:]
        parts += [line for m in reversed(results) for line in _salient(m)]
    parts.append(query or "")
    return "\n".join(p for p in parts if p)


def build_query(messages: Sequence[BaseMessage], how: str, exclude: Collection[int] = ()) -> str | None:
    """The query text for ``how`` (``"request"`` or ``"step"``); None means "the latest human message"."""
    if how == "request":
        return None
    if how != "step":
        msg = f"query={how!r} is not valid: use 'request' or 'step'."
        raise ValueError(msg)
    step = step_text(messages, exclude)
    if not step:
        return None  # no agent step after the request: the request alone, as a one-shot prompt
    request = request_text(messages) or ""
    return f"{step}\n{request}".strip()
