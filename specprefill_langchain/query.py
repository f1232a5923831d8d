"""What the draft's queries ask about: the request, or the request plus the agent's current step.

In an agent loop the last message is usually a tool result, and what matters in an older output is
often named only in the agent's latest tool call or in the newest result (a traceback names a
function, a ticket names a record). ``ScoringConfig.query`` picks (docs/design.md, "Queries"):

* ``"request"``: the latest human message (what a one-shot prompt asks);
* ``"step"``: the agent's current step (the text and tool calls of its latest AI message, and the
  newest tool results that are not themselves being compressed), then the request. The request
  goes last, so that when the query is cut to ``max_question_tokens`` from the left it survives.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from .transcript import latest_human_index, render_tool_calls

# How much of one newest tool result joins the query: its end (a traceback's last frames, a log's
# last lines, the record a grep hit names).
RESULT_CHARS = 600


def request_text(messages: Sequence[BaseMessage]) -> str | None:
    i = latest_human_index(messages)
    return None if i is None else (messages[i].text or None)


def step_text(messages: Sequence[BaseMessage], exclude: Collection[int] = ()) -> str:
    """The agent's current step: its latest AI message (text and tool calls) and the results after it.

    Results whose index is in ``exclude`` (the ones being scored) are left out: a restated copy of
    a text would make its queries find the text itself.
    """
    last_ai = next((i for i in range(len(messages) - 1, -1, -1) if isinstance(messages[i], AIMessage)), None)
    if last_ai is None or last_ai < (latest_human_index(messages) or 0):
        return ""
    ai = messages[last_ai]
    pieces = [ai.text.strip(), render_tool_calls(ai).strip()]
    for j in range(last_ai + 1, len(messages)):
        m = messages[j]
        if isinstance(m, ToolMessage) and j not in exclude:
            pieces.append(m.text[-RESULT_CHARS:].strip())
        elif isinstance(m, HumanMessage):
            break
    return "\n".join(p for p in pieces if p)


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
