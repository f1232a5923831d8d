"""The README's Python snippets run as written, in order, in one namespace.

The README says what they assume: ``llm`` (a chat model that calls tools), ``tools``, ``messages`` and,
for the PostgreSQL snippet, ``DB_URI``. Here ``llm`` is the scripted tool-calling model of
tests/agents.py, ``tools`` read the Python standard library, ``messages`` is a real agent transcript,
and ``DB_URI`` is the test session's throwaway PostgreSQL server. Everything else is what a user gets:
the packaged SmolLM2 draft, real graphs, real checkpointers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, ToolMessage

from tests.agents import TOOLS, PlannedChatModel
from tests.transcripts import agent_transcript

README = Path(__file__).resolve().parent.parent / "README.md"
_PYTHON = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)

pytestmark = [pytest.mark.real, pytest.mark.slow]


def snippets() -> list[str]:
    return _PYTHON.findall(README.read_text())


def test_the_readme_has_the_snippets_it_promises() -> None:
    code = "\n".join(snippets())
    assert code.index("create_agent(") < code.index("SpecPrefillCompressor(")  # create_agent comes first
    for needed in ("SpecPrefillMiddleware", "SpecPrefillNode", "llm_input_messages", "PostgresSaver", "warmup()"):
        assert needed in code, needed


def test_every_snippet_runs_as_written(postgres_url, one_thread) -> None:
    namespace = {
        "llm": PlannedChatModel(),
        "tools": TOOLS,
        "messages": agent_transcript(chars=3000),
        "DB_URI": postgres_url,
        "__name__": "readme",
    }
    for i, code in enumerate(snippets()):
        try:
            exec(compile(code, f"README.md snippet {i + 1}", "exec"), namespace)
        except Exception as err:  # pragma: no cover - the message says which snippet broke
            raise AssertionError(f"README snippet {i + 1} fails: {type(err).__name__}: {err}\n{code}") from err
    # What the snippets did, checked: the agent compressed and answered; the graph ran its tools.
    agent_state = namespace["agent"].get_state({"configurable": {"thread_id": "thread-1"}}).values
    assert isinstance(agent_state["messages"][-1], AIMessage) and not agent_state["messages"][-1].tool_calls
    assert namespace["result"].stats.compressible_kept < namespace["result"].stats.compressible_tokens
    assert len(namespace["shorter"]) == len(namespace["messages"])
    graph_state = namespace["app"].get_state({"configurable": {"thread_id": "thread-2"}}).values
    assert any(isinstance(m, ToolMessage) for m in graph_state["messages"])
    sent = graph_state["llm_input_messages"]
    assert sum(len(m.text) for m in sent) < sum(len(m.text) for m in graph_state["messages"])
