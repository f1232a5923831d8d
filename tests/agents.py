"""Agent-loop helpers for tests: a scripted tool-calling chat model, stats collection, a graph.

The model is fake (fast, deterministic) but everything around it is real: compiled LangGraph
graphs, checkpointers, ToolNode, and tools that read the Python standard library.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from pydantic import Field

from specprefill_langchain import STATS_EVENT, SpecPrefillNode
from specprefill_langchain.schedule import merge_frozen

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from stdlib_tools import stdlib_tools

SYSTEM = "You are a careful coding agent. Use the tools, then answer briefly."
# Tool outputs of ~1,100 draft tokens first, then short ones: after the first compressed step,
# each step adds well under 10 % new tokens, which is what KV reuse should make nearly free.
TOOLS = stdlib_tools(max_chars=4000, max_hits=20)


def request(path: str) -> str:
    return f"Inspect `{path}` and tell me which classes it defines."


def plan(messages: Sequence[BaseMessage]) -> AIMessage:
    """The next step of a fixed plan, from what the model was shown: read, grep, list, answer.

    A pure function of the (possibly compressed) input, so runs are comparable across threads and
    doors: compression keeps every message, the latest request and all tool-call arguments.
    """
    human = next(m for m in reversed(messages) if isinstance(m, HumanMessage))
    found = re.search(r"`([^`]+)`", human.text)
    path = found.group(1) if found else "json/decoder.py"
    steps = [
        ("read_file", {"path": path}),
        ("grep", {"pattern": "^class ", "path": path}),
        ("list_dir", {"path": str(Path(path).parent)}),
    ]
    done = sum(isinstance(m, ToolMessage) for m in messages)
    if done >= len(steps):
        return AIMessage(f"{path} was read; see the grep hits for its classes.")
    name, args = steps[done]
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": f"call_{done}", "type": "tool_call"}])


@tool
def run_check(module: str) -> str:
    """Run the module's smoke checks and report failures with their tracebacks."""
    import importlib
    import traceback

    target = importlib.import_module(module)
    lines = [f"running 3 checks of {module}", "check_decode_object ... ok", "check_decode_array ... ok"]
    try:
        target.py_scanstring('"unterminated', 1)  # a real failure: a real traceback
    except Exception:
        lines += ["check_unterminated_string ... FAILED", traceback.format_exc()]
    return "\n".join(lines)


LATE_TOOLS = [*TOOLS, run_check]


def late_plan(messages: Sequence[BaseMessage]) -> AIMessage:
    """Read a file, list its folder, run its checks (a failure names one of its functions), answer.

    The function the failure names is in the file read first, and nothing before the check names it:
    in stable mode it is found only by a rescue (or a recall).
    """
    steps = [
        ("read_file", {"path": "json/decoder.py"}),
        ("list_dir", {"path": "json"}),
        ("run_check", {"module": "json.decoder"}),
    ]
    done = sum(isinstance(m, ToolMessage) for m in messages)
    if done >= len(steps):
        return AIMessage("The unterminated-string check fails in the scanner.")
    name, args = steps[done]
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": f"call_{done}", "type": "tool_call"}])


class PlannedChatModel(BaseChatModel):
    """Follows :func:`plan` and records every message list it was called with."""

    received: list[list[BaseMessage]] = Field(default_factory=list)
    late: bool = False  # follow late_plan (a later step names what an earlier output held)

    @property
    def _llm_type(self) -> str:
        return "planned-fake"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> PlannedChatModel:
        return self  # the plan already knows the tools

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        self.received.append(list(messages))
        return ChatResult(generations=[ChatGeneration(message=(late_plan if self.late else plan)(messages))])


class StatsCollector(BaseCallbackHandler):
    """Collects the ``specprefill_stats`` custom events of a run, in order."""

    run_inline = True  # keep events in call order under async runs too

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        if name == STATS_EVENT:
            self.events.append(data)


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    llm_input_messages: list[AnyMessage]
    specprefill: Annotated[dict[str, Any], merge_frozen]


def node_graph(node: SpecPrefillNode, model: BaseChatModel, checkpointer: Any) -> Any:
    """START -> compress -> model -> (tools -> compress ...) -> END, the model reading llm_input_messages."""

    def call_model(state: State) -> dict[str, Any]:
        return {"messages": [model.bind_tools(TOOLS).invoke(state["llm_input_messages"])]}

    async def acall_model(state: State) -> dict[str, Any]:
        return {"messages": [await model.bind_tools(TOOLS).ainvoke(state["llm_input_messages"])]}

    from langchain_core.runnables import RunnableLambda

    g = StateGraph(State)
    g.add_node("compress", node)
    g.add_node("model", RunnableLambda(call_model, afunc=acall_model))
    g.add_node("tools", ToolNode(TOOLS))
    g.add_edge(START, "compress")
    g.add_edge("compress", "model")
    g.add_conditional_edges("model", tools_condition, {"tools": "tools", END: END})
    g.add_edge("tools", "compress")
    return g.compile(checkpointer=checkpointer)


def chars(messages: Sequence[BaseMessage]) -> int:
    return sum(len(m.text) for m in messages)


def check_history(messages: Sequence[BaseMessage]) -> None:
    """Every tool call has its result right after it, and the results are whole (uncompressed)."""
    by_name = {t.name: t for t in TOOLS}
    for i, m in enumerate(messages):
        if isinstance(m, AIMessage) and m.tool_calls:
            for call in m.tool_calls:
                result = next(
                    r for r in messages[i + 1 :] if isinstance(r, ToolMessage) and r.tool_call_id == call["id"]
                )
                assert result.text == by_name[call["name"]].invoke(call["args"])
    calls = sum(len(m.tool_calls) for m in messages if isinstance(m, AIMessage))
    assert calls == sum(isinstance(m, ToolMessage) for m in messages) == 3
