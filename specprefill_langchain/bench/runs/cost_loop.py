"""The agent loop of ``bench cost``: a real ``create_agent`` graph around a scripted chat model.

The chat model is scripted (at its call k it asks for round k's tool call, after the last round it
answers) and records every message list it receives: that is exactly what a target would read. All
else is real: ``langchain.agents.create_agent``, ``InMemorySaver``, ``ToolNode``, the middleware of
each arm. The tools return the rounds' outputs, found by the call's id and checked against its args
(two rounds may share args, e.g. two pydoc windows of one module).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import InjectedToolCallId, StructuredTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field

from specprefill_langchain.bench.tasks.agent_loops import LoopTask
from specprefill_langchain.bench.tasks.rounds import SYSTEM_PROMPT

ARMS = (
    "full",
    "context-editing",
    "per_step",
    "stable",
    "stable[query=request]",
    "stable[keep_recent=3]",
    "stable[keep_recent=5]",
    "stable[depth=1.0]",
    "per_step[depth=1.0]",
)
ARM_SETTINGS: dict[str, dict[str, Any]] = {
    "full": {"middleware": []},
    "context-editing": {"middleware": ["ContextEditingMiddleware(ClearToolUsesEdit)"]},
    "per_step": {"middleware": ["SpecPrefillMiddleware"], "mode": "per_step"},
    "stable": {"middleware": ["SpecPrefillMiddleware"], "mode": "stable"},
    "stable[query=request]": {"middleware": ["SpecPrefillMiddleware"], "mode": "stable", "scoring.query": "request"},
    "stable[keep_recent=3]": {"middleware": ["SpecPrefillMiddleware"], "mode": "stable", "stable.keep_recent": 3},
    "stable[keep_recent=5]": {"middleware": ["SpecPrefillMiddleware"], "mode": "stable", "stable.keep_recent": 5},
    "stable[depth=1.0]": {"middleware": ["SpecPrefillMiddleware"], "mode": "stable", "scoring.depth": 1.0},
    "per_step[depth=1.0]": {"middleware": ["SpecPrefillMiddleware"], "mode": "per_step", "scoring.depth": 1.0},
}
FINAL_ANSWER = "I have read every output above; here is what I found."


# --- tools -------------------------------------------------------------------------------------


class ReadFileArgs(BaseModel):
    path: str = Field(description="file path inside the checkout")
    offset: int = Field(1, description="first line to read (1-based)")
    limit: int = Field(200, description="number of lines to read")
    symbol: str | None = Field(None, description="a function or class the read is about")
    tool_call_id: Annotated[str, InjectedToolCallId]


class PydocArgs(BaseModel):
    name: str = Field(description="module name")
    tool_call_id: Annotated[str, InjectedToolCallId]


class GrepArgs(BaseModel):
    pattern: str = Field(description="text to search for")
    path: str = Field("cpython/Lib", description="folder to search")
    tool_call_id: Annotated[str, InjectedToolCallId]


class ListDirArgs(BaseModel):
    path: str = Field(description="folder to list")
    tool_call_id: Annotated[str, InjectedToolCallId]


class HttpGetJsonArgs(BaseModel):
    url: str = Field(description="URL of an internal JSON API")
    params: dict[str, Any] = Field(default_factory=dict, description="query parameters")
    tool_call_id: Annotated[str, InjectedToolCallId]


TOOL_SPECS: dict[str, tuple[type[BaseModel], str]] = {
    "read_file": (ReadFileArgs, "Read lines of a file of the CPython checkout."),
    "pydoc": (PydocArgs, "Show the pydoc page of a module."),
    "grep": (GrepArgs, "Search the checkout for lines containing a pattern."),
    "list_dir": (ListDirArgs, "List a folder with file sizes."),
    "http_get_json": (HttpGetJsonArgs, "GET an internal JSON API."),
}


def loop_tools(task: LoopTask) -> list[StructuredTool]:
    """One tool per name; each returns the output of the round whose call id it is given."""

    def make(name: str, schema: type[BaseModel], description: str) -> StructuredTool:
        def fn(tool_call_id: str, **args: Any) -> str:
            k = int(tool_call_id.rsplit("_", 1)[1])
            rnd = task.rounds[k]
            if rnd.tool != name or any(args.get(a) != v for a, v in rnd.args.items()):
                msg = f"{task.id}: call {tool_call_id} {name}({args}) does not match round {k} {rnd.tool}({rnd.args})"
                raise ValueError(msg)
            return rnd.output

        return StructuredTool.from_function(func=fn, name=name, description=description, args_schema=schema)

    return [make(name, schema, doc) for name, (schema, doc) in TOOL_SPECS.items()]


# --- the scripted model and the draft's stats ---------------------------------------------------


class ScriptedChatModel(BaseChatModel):
    """At call k returns round k's tool call, then a short answer; records every input and the tools."""

    plan: list[tuple[str, dict[str, Any]]]
    received: list[list[BaseMessage]] = Field(default_factory=list)
    schemas: list[dict[str, Any]] = Field(default_factory=list)
    on_call: Any = None  # called with (k, messages) before answering

    @property
    def _llm_type(self) -> str:
        return "scripted-loop"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        self.schemas = [convert_to_openai_tool(t) for t in tools]
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        k = len(self.received)
        self.received.append(list(messages))
        if self.on_call is not None:
            self.on_call(k, messages)
        if k < len(self.plan):
            name, args = self.plan[k]
            msg = AIMessage("", tool_calls=[{"name": name, "args": args, "id": f"call_{k}", "type": "tool_call"}])
        else:
            msg = AIMessage(FINAL_ANSWER)
        return ChatResult(generations=[ChatGeneration(message=msg)])


class StepStats(BaseCallbackHandler):
    """The draft's ``specprefill_stats`` events, each tagged with the model call it preceded."""

    run_inline = True

    def __init__(self, model: ScriptedChatModel) -> None:
        self.model = model
        self.events: list[tuple[int, dict[str, Any]]] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        from specprefill_langchain import STATS_EVENT

        if name == STATS_EVENT:
            self.events.append((len(self.model.received), data))

    def seconds(self, k: int) -> float:
        return sum(float(d.get("total_s") or 0.0) for step, d in self.events if step == k)


# --- arms and one run --------------------------------------------------------------------------


def context_editing_settings(trigger: int, keep: int) -> dict[str, Any]:
    return {"edit": "ClearToolUsesEdit", "trigger_tokens": trigger, "keep": keep, "clear_at_least": 0,
            "token_count_method": "approximate", "placeholder": "[cleared]"}  # fmt: skip


def middleware(arm: str, draft: Any, keep_ratio: float, ce_trigger: int = 6000, ce_keep: int = 3) -> list[Any]:
    """The middleware list of an arm; the speculative-prefill arms share the loaded ``draft``."""
    from langchain.agents.middleware import ClearToolUsesEdit, ContextEditingMiddleware

    from specprefill_langchain import ScoringConfig, SpecPrefillCompressor, StableConfig
    from specprefill_langchain.middleware import SpecPrefillMiddleware

    if arm == "full":
        return []
    if arm == "context-editing":
        return [ContextEditingMiddleware(edits=[ClearToolUsesEdit(trigger=ce_trigger, keep=ce_keep)])]
    opts: dict[str, Any] = {}
    if arm == "stable[query=request]":
        opts["scoring"] = ScoringConfig(query="request")
    elif arm.startswith("stable[keep_recent="):
        opts["stable"] = StableConfig(keep_recent=int(arm.split("=")[1].rstrip("]")))
    elif arm.endswith("[depth=1.0]"):  # full depth: what early-layer scoring is measured against
        opts["scoring"] = ScoringConfig(depth=1.0)
    elif arm not in ("stable", "per_step"):
        msg = f"unknown arm {arm!r}"
        raise ValueError(msg)
    compressor = SpecPrefillCompressor(draft=draft, keep_ratio=keep_ratio, on_error="raise", **opts)
    mode = "per_step" if arm.startswith("per_step") else "stable"
    return [SpecPrefillMiddleware(compressor=compressor, mode=mode)]


@dataclass
class LoopRun:
    inputs: list[list[BaseMessage]]  # per model call, what the model received (system prompt first)
    schemas: list[dict[str, Any]]  # the tool schemas bound to it
    draft_s: list[float]  # per model call, the draft's seconds before it


def run_loop(task: LoopTask, arm: str, mw: list[Any], log: Callable[[str], None] | None = None) -> LoopRun:
    """Run ``task`` through a ``create_agent`` graph with the arm's middleware; one thread per (arm, task)."""
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    model = ScriptedChatModel(plan=[(r.tool, r.args) for r in task.rounds])
    stats = StepStats(model)
    calls = task.steps + 1

    def on_call(k: int, messages: list[BaseMessage]) -> None:
        if log is not None:
            chars = sum(len(m.text) for m in messages)
            log(f"{task.id} {arm}: step {k}/{calls - 1}, {chars} chars in, draft {stats.seconds(k):.2f}s")

    model.on_call = on_call
    agent = create_agent(
        model, loop_tools(task), system_prompt=SYSTEM_PROMPT, middleware=mw, checkpointer=InMemorySaver()
    )
    config = {
        "configurable": {"thread_id": f"cost:{arm}:{task.id}"},
        "callbacks": [stats],
        "recursion_limit": 4 * calls + 10,
    }
    state = agent.invoke({"messages": [HumanMessage(task.request)]}, config)
    if len(model.received) != calls or state["messages"][-1].text != FINAL_ANSWER:
        msg = f"{task.id} {arm}: the loop made {len(model.received)} model calls, expected {calls}"
        raise RuntimeError(msg)
    return LoopRun(model.received, model.schemas, [stats.seconds(k) for k in range(calls)])


__all__ = ["ARMS", "ARM_SETTINGS", "LoopRun", "ScriptedChatModel", "StepStats", "loop_tools", "middleware", "run_loop"]
