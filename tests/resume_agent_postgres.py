"""One agent run in its own process on PostgreSQL, for the resume test (tests/test_postgres.py).

    python tests/resume_agent_postgres.py URL THREAD STEPS OUT

As tests/resume_agent.py, with ``PostgresSaver`` on the server at URL instead of SQLite: a
``create_agent`` loop (scripted model, real stdlib tools, SpecPrefillMiddleware in stable mode with
the packaged SmolLM2 draft) for at most STEPS model calls of thread THREAD (0: to the end), resuming
the thread if it exists. Writes what the model was shown to OUT as JSON. Each process starts with a
new compressor and a cold draft KV cache.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.postgres import PostgresSaver

from specprefill_langchain import SpecPrefillMiddleware
from tests.agents import SYSTEM, TOOLS, PlannedChatModel, request


def main(url: str, thread: str, steps: int, out: str) -> None:
    model = PlannedChatModel()
    middleware = SpecPrefillMiddleware(draft="smollm2-135m", keep_ratio=0.3)
    with PostgresSaver.from_conn_string(url) as saver:
        saver.setup()
        agent = create_agent(
            model, TOOLS, system_prompt=SYSTEM, middleware=[middleware], checkpointer=saver, interrupt_after=["model"]
        )
        cfg = {"configurable": {"thread_id": thread}}
        started = bool(agent.get_state(cfg).values.get("messages"))
        payload = None if started else {"messages": [HumanMessage(request("json/decoder.py"))]}
        while True:
            agent.invoke(payload, cfg)
            payload = None
            if (steps and len(model.received) >= steps) or not agent.get_state(cfg).next:
                break
    shown = [
        [[m.type, m.content, getattr(m, "tool_calls", None), getattr(m, "tool_call_id", None)] for m in r]
        for r in model.received
    ]
    Path(out).write_text(json.dumps(shown))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
