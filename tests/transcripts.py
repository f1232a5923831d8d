"""Real agent transcripts for tests, built from text nobody here wrote (the Python stdlib)."""

from __future__ import annotations

import inspect
import json
import pydoc
import random

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

NEEDLE = "The deployment key for the billing service is kiwi-4417."
QUESTION = "What is the deployment key for the billing service? Answer with the key only."


def stdlib_source(module: str, max_chars: int) -> str:
    mod = __import__(module, fromlist=["_"])
    return inspect.getsource(mod)[:max_chars]


def pydoc_page(obj: object, max_chars: int) -> str:
    return pydoc.render_doc(obj, renderer=pydoc.plaintext)[:max_chars]


def _call(i: int, tool: str, **args: str) -> dict:
    return {"name": tool, "args": args, "id": f"call_{i}", "type": "tool_call"}


def agent_transcript(chars: int = 6000, needle_at: float = 0.5, seed: int = 0) -> list[BaseMessage]:
    """System, request, three tool calls with long real outputs (needle in the 2nd), question last."""
    rng = random.Random(seed)
    src = stdlib_source("json.decoder", chars)
    doc = pydoc_page(random.Random, chars)
    lines = doc.split("\n")
    at = max(1, int(len(lines) * needle_at))
    doc = "\n".join([*lines[:at], NEEDLE, *lines[at:]])
    table = json.dumps({f"E{rng.randint(100, 999)}": code for code in range(40)}, indent=0)[:chars]
    return [
        SystemMessage("You are a careful coding agent. Use the tools, then answer briefly."),
        HumanMessage("Look through the project notes and tell me the deployment key of the billing service."),
        AIMessage("", tool_calls=[_call(1, "read_file", path="json/decoder.py")], id="ai-1"),
        ToolMessage(src, tool_call_id="call_1", name="read_file", id="tool-1"),
        AIMessage("", tool_calls=[_call(2, "pydoc", target="random.Random")], id="ai-2"),
        ToolMessage(doc, tool_call_id="call_2", name="pydoc", id="tool-2"),
        AIMessage("Checking the error table too.", tool_calls=[_call(3, "http_get_json", url="/codes")], id="ai-3"),
        ToolMessage(table, tool_call_id="call_3", name="http_get_json", id="tool-3"),
        HumanMessage(QUESTION, id="human-q"),
    ]
