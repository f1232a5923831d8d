"""Stable mode on a real PostgreSQL checkpointer: a thread resumed elsewhere sends the same bytes.

Teams run many workers behind one PostgreSQL checkpointer, and any worker may run a thread's next
step. The frozen forms live in the thread state, so a worker with a cold draft cache must send the
model exactly what an uninterrupted run sends. Everything is real: a throwaway PostgreSQL server
(tests/pg_fixture.py), ``PostgresSaver``/``AsyncPostgresSaver``, ``create_agent`` with the
middleware and the packaged SmolLM2 draft, stdlib tools; only the chat model is scripted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, HumanMessage

from specprefill_langchain import FROZEN_KEY
from tests.agents import SYSTEM, TOOLS, PlannedChatModel, check_history, request
from tests.pg_fixture import postgres_url  # noqa: F401  (a session fixture; conftest.py may re-export it)

pytest.importorskip("langchain.agents")
pytest.importorskip("langgraph.checkpoint.postgres")

ROOT = Path(__file__).resolve().parents[1]


def _shown(received: list[list[BaseMessage]]) -> list[Any]:
    """What the model was shown, call by call, as resume_agent_postgres.py writes it."""
    rows = [
        [[m.type, m.content, getattr(m, "tool_calls", None), getattr(m, "tool_call_id", None)] for m in r]
        for r in received
    ]
    return json.loads(json.dumps(rows))


def _frozen_by_position(values: dict[str, Any]) -> list[tuple[int, Any, Any]]:
    """The frozen forms keyed by the position of their message (message ids are random per run)."""
    frozen = values.get(FROZEN_KEY) or {}
    return [
        (i, frozen[m.id]["digest"], frozen[m.id]["content"]) for i, m in enumerate(values["messages"]) if m.id in frozen
    ]


def _agent(saver: Any, model: PlannedChatModel) -> Any:
    from langchain.agents import create_agent

    from specprefill_langchain import SpecPrefillMiddleware

    mw = SpecPrefillMiddleware(draft="smollm2-135m", keep_ratio=0.3)  # stable mode, a new (cold) draft cache
    return create_agent(
        model, TOOLS, system_prompt=SYSTEM, middleware=[mw], checkpointer=saver, interrupt_after=["model"]
    )


def _run(url: str, thread: str, steps: int, out: Path) -> list[Any]:
    cmd = [sys.executable, str(ROOT / "tests" / "resume_agent_postgres.py"), url, thread, str(steps), str(out)]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(out.read_text())


def _values(url: str, thread: str) -> dict[str, Any]:
    from langgraph.checkpoint.postgres import PostgresSaver

    with PostgresSaver.from_conn_string(url) as saver:
        return _agent(saver, PlannedChatModel()).get_state({"configurable": {"thread_id": thread}}).values


@pytest.mark.real
@pytest.mark.slow
def test_a_thread_resumed_by_another_process_on_postgres_sends_the_same_bytes(postgres_url, tmp_path):  # noqa: F811
    tag = uuid.uuid4().hex[:8]
    whole = _run(postgres_url, f"uninterrupted-{tag}", 0, tmp_path / "a.json")
    first = _run(postgres_url, f"resumed-{tag}", 2, tmp_path / "b.json")  # two model calls, then the process ends
    rest = _run(postgres_url, f"resumed-{tag}", 0, tmp_path / "c.json")  # a new process: new compressor, cold draft
    assert len(whole) == 4 and len(first) == 2 and len(rest) == 2
    assert first + rest == whole  # byte-identical model inputs, call by call
    assert any(" … " in str(m[1]) for m in whole[-1])  # and they were compressed
    a, b = _values(postgres_url, f"uninterrupted-{tag}"), _values(postgres_url, f"resumed-{tag}")
    check_history(b["messages"])  # every call answered, every original whole in the state
    assert _frozen_by_position(a) == _frozen_by_position(b) != []  # the same frozen forms, checkpointed


async def _arun(url: str, thread: str, steps: int) -> tuple[list[Any], dict[str, Any]]:
    """Up to ``steps`` model calls (0: to the end) with a fresh saver, middleware and draft cache."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    model = PlannedChatModel()
    async with AsyncPostgresSaver.from_conn_string(url) as saver:
        await saver.setup()
        agent = _agent(saver, model)
        cfg = {"configurable": {"thread_id": thread}}
        started = bool((await agent.aget_state(cfg)).values.get("messages"))
        payload = None if started else {"messages": [HumanMessage(request("json/decoder.py"))]}
        while True:
            await agent.ainvoke(payload, cfg)
            payload = None
            if (steps and len(model.received) >= steps) or not (await agent.aget_state(cfg)).next:
                break
        values = (await agent.aget_state(cfg)).values
    return _shown(model.received), values


@pytest.mark.real
async def test_async_postgres_resume_with_a_cold_draft_cache_sends_the_same_bytes(postgres_url):  # noqa: F811
    tag = uuid.uuid4().hex[:8]
    whole, a = await _arun(postgres_url, f"async-uninterrupted-{tag}", 0)
    first, _ = await _arun(postgres_url, f"async-resumed-{tag}", 2)
    rest, b = await _arun(postgres_url, f"async-resumed-{tag}", 0)  # new saver, new compressor: a cold cache
    assert len(whole) == 4 and len(first) == 2 and len(rest) == 2
    assert first + rest == whole
    assert any(" … " in str(m[1]) for m in whole[-1])
    check_history(b["messages"])
    assert _frozen_by_position(a) == _frozen_by_position(b) != []
