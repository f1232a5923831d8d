"""One agent run in its own process, for the resume test (tests/test_stable.py).

    python tests/resume_agent.py DB THREAD STEPS OUT [late]

Runs a `create_agent` loop (scripted model, real stdlib tools, SpecPrefillMiddleware in stable mode
with the packaged SmolLM2 draft) on the SQLite checkpointer at DB, for at most STEPS model calls of
thread THREAD (0: to the end), resuming the thread if it exists. Writes what the model was shown to
OUT as JSON. Each process starts with a new compressor and a cold draft KV cache. With ``late``, the loop
is tests/agents.py's ``late_plan``: its last tool result names a function of the file read first, which
stable mode brings back by a rescue (at keep 0.1, so that the read drops it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.sqlite import SqliteSaver

from specprefill_langchain import SpecPrefillMiddleware
from tests.agents import LATE_TOOLS, SYSTEM, TOOLS, PlannedChatModel, request


def main(db: str, thread: str, steps: int, out: str, late: bool = False) -> None:
    model = PlannedChatModel(late=late)
    middleware = SpecPrefillMiddleware(draft="smollm2-135m", keep_ratio=0.1 if late else 0.3)
    tools = LATE_TOOLS if late else TOOLS
    with SqliteSaver.from_conn_string(db) as saver:
        agent = create_agent(
            model, tools, system_prompt=SYSTEM, middleware=[middleware], checkpointer=saver, interrupt_after=["model"]
        )
        cfg = {"configurable": {"thread_id": thread}}
        started = bool(agent.get_state(cfg).values.get("messages"))
        payload = None if started else {"messages": [HumanMessage(request("json/decoder.py"), id="request")]}
        while True:
            agent.invoke(payload, cfg)
            payload = None
            if (steps and len(model.received) >= steps) or not agent.get_state(cfg).next:
                break
    shown = [[[m.type, m.content, getattr(m, "tool_calls", None)] for m in r] for r in model.received]
    Path(out).write_text(json.dumps(shown))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], late=sys.argv[5:] == ["late"])
