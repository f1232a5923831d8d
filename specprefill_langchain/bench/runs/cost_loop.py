"""The agent loop of ``bench cost``: a real ``create_agent`` graph around a scripted chat model.

The chat model is scripted (at its call k it asks for round k's tool call, after the last round it
answers) and records every message list it receives: that is exactly what a target would read. All
else is real: ``langchain.agents.create_agent``, ``InMemorySaver``, ``ToolNode``, the middleware of
each arm. The tools return the rounds' outputs, found by the call's id and checked against its args
(two rounds may share args, e.g. two pydoc windows of one module).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import InjectedToolCallId, StructuredTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field, create_model

from specprefill_langchain.bench.tasks.agent_loops import FINAL_ANSWER, LoopTask
from specprefill_langchain.bench.tasks.rounds import SYSTEM_PROMPT

ARMS = (
    "full",
    "context-editing",
    "per_step",
    "stable",
    "stable[rescue=off]",
    "stable[focus=request]",
    "stable[keep_recent=3]",
    "stable[keep_recent=5]",
    "stable[context_chars=0]",
    "stable[context_chars=20000]",
    "stable[depth=1.0]",
    "per_step[depth=1.0]",
)
_MW = ["SpecPrefillMiddleware"]
ARM_SETTINGS: dict[str, dict[str, Any]] = {
    "full": {"middleware": []},
    "context-editing": {"middleware": ["ContextEditingMiddleware(ClearToolUsesEdit)"]},
    "per_step": {"middleware": _MW, "mode": "per_step"},
    "stable": {"middleware": _MW, "mode": "stable"},
    "stable[rescue=off]": {"middleware": _MW, "mode": "stable", "stable.rescue": False},
    "stable[focus=request]": {"middleware": _MW, "mode": "stable", "scoring.focus": "request"},
    "stable[keep_recent=3]": {"middleware": _MW, "mode": "stable", "stable.keep_recent": 3},
    "stable[keep_recent=5]": {"middleware": _MW, "mode": "stable", "stable.keep_recent": 5},
    "stable[context_chars=0]": {"middleware": _MW, "mode": "stable", "stable.context_chars": 0},
    "stable[context_chars=20000]": {"middleware": _MW, "mode": "stable", "stable.context_chars": 20000},
    "stable[depth=1.0]": {"middleware": _MW, "mode": "stable", "scoring.depth": 1.0},
    "per_step[depth=1.0]": {"middleware": _MW, "mode": "per_step", "scoring.depth": 1.0},
}


# --- tools -------------------------------------------------------------------------------------


# Each tool's arguments besides the call id the ToolNode injects: name -> (type, default, description);
# ``...`` marks a required argument and ``dict`` a fresh empty dict.
_ARGS: dict[str, dict[str, tuple[Any, Any, str]]] = {
    "read_file": {
        "path": (str, ..., "file path inside the checkout"),
        "offset": (int, 1, "first line to read (1-based)"),
        "limit": (int, 200, "number of lines to read"),
        "symbol": (str | None, None, "a function or class the read is about"),
    },
    "pydoc": {"name": (str, ..., "module name")},
    "grep": {"pattern": (str, ..., "text to search for"), "path": (str, "cpython/Lib", "folder to search")},
    "list_dir": {"path": (str, ..., "folder to list")},
    "http_get_json": {
        "url": (str, ..., "URL of an internal JSON API"),
        "params": (dict[str, Any], dict, "query parameters"),
    },
    "run_tests": {"path": (str, "tests", "test folder or file"), "options": (str, "", "extra pytest options")},
    "read_log": {
        "path": (str, ..., "log file of the service"),
        "lines": (int, 200, "how many of the last lines to read"),
    },
}


def _field(default: Any, description: str) -> Any:
    """A pydantic field: required for ``...``, a fresh empty dict per call for ``dict``, else ``default``."""
    if default is dict:
        return Field(default_factory=dict, description=description)
    return Field(default, description=description)


def _args_model(tool: str) -> type[BaseModel]:
    """The pydantic arguments of ``tool`` (``read_file`` -> ``ReadFileArgs``), the injected call id last."""
    fields: dict[str, Any] = {name: (kind, _field(d, doc)) for name, (kind, d, doc) in _ARGS[tool].items()}
    fields["tool_call_id"] = (Annotated[str, InjectedToolCallId], ...)
    return create_model("".join(w.title() for w in tool.split("_")) + "Args", **fields)


def _specs(descriptions: dict[str, str]) -> dict[str, tuple[type[BaseModel], str]]:
    return {tool: (_args_model(tool), doc) for tool, doc in descriptions.items()}


TOOL_SPECS = _specs(
    {
        "read_file": "Read lines of a file of the CPython checkout.",
        "pydoc": "Show the pydoc page of a module.",
        "grep": "Search the checkout for lines containing a pattern.",
        "list_dir": "List a folder with file sizes.",
        "http_get_json": "GET an internal JSON API.",
    }
)
# Tools of the late-relevance loops, bound only to a loop that calls them (the others keep their schemas).
EXTRA_TOOL_SPECS = _specs(
    {"run_tests": "Run the test suite with pytest.", "read_log": "Read the last lines of a log of the service."}
)


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

    used = {r.tool for r in task.rounds}
    specs = {**TOOL_SPECS, **{n: spec for n, spec in EXTRA_TOOL_SPECS.items() if n in used}}
    return [make(name, schema, doc) for name, (schema, doc) in specs.items()]


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
        return self.reply(k)

    def reply(self, k: int) -> ChatResult:
        """The answer to call ``k``: round k's tool call (id ``call_k``), after the last round :data:`FINAL_ANSWER`."""
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

    def total(self, k: int, field: str) -> float:
        """The sum of one stat over the events before model call ``k`` (e.g. ``total_s``, ``rescued_chars``)."""
        return sum(float(d.get(field) or 0.0) for step, d in self.events if step == k)

    def seconds(self, k: int) -> float:
        return self.total(k, "total_s")


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
    if arm not in ARM_SETTINGS:
        msg = f"unknown arm {arm!r}; choose from {list(ARMS)}"
        raise ValueError(msg)
    settings = ARM_SETTINGS[arm]
    opts: dict[str, Any] = {}
    for group, cls in (("scoring", ScoringConfig), ("stable", StableConfig)):
        fields = {k.split(".", 1)[1]: v for k, v in settings.items() if k.startswith(group + ".")}
        if fields:
            opts[group] = cls(**fields)
    compressor = SpecPrefillCompressor(draft=draft, keep_ratio=keep_ratio, on_error="raise", **opts)
    return [SpecPrefillMiddleware(compressor=compressor, mode=settings["mode"])]


@dataclass
class LoopRun:
    inputs: list[list[BaseMessage]]  # per model call, what the model received (system prompt first)
    schemas: list[dict[str, Any]]  # the tool schemas bound to it
    draft_s: list[float]  # per model call, the draft's seconds before it
    rescued_chars: list[int] = field(default_factory=list)  # per model call, characters rescued for it
    stats: list[list[dict[str, Any]]] = field(default_factory=list)  # per model call, the stats events before it


def run_loop(task: LoopTask, arm: str, mw: list[Any], log: Callable[[str], None] | None = None) -> LoopRun:
    """Run ``task`` through a ``create_agent`` graph with the arm's middleware; one thread per (arm, task).

    A task with a ``follow_up`` is invoked twice on its thread: the request (rounds, then the answer),
    then the follow-up turn, which the model answers directly; its call is the last of ``inputs``.
    """
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    model = ScriptedChatModel(plan=[(r.tool, r.args) for r in task.rounds])
    stats = StepStats(model)
    calls = task.calls

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
    turns = [(task.request, task.steps + 1)]
    if task.follow_up is not None:
        turns.append((task.follow_up, calls))
    for text, expected in turns:
        state = agent.invoke({"messages": [HumanMessage(text)]}, config)
        if len(model.received) != expected or state["messages"][-1].text != FINAL_ANSWER:
            msg = f"{task.id} {arm}: the loop made {len(model.received)} model calls, expected {expected}"
            raise RuntimeError(msg)
    rescued = [int(stats.total(k, "rescued_chars")) for k in range(calls)]
    events = [[d for step, d in stats.events if step == k] for k in range(calls)]
    return LoopRun(model.received, model.schemas, [stats.seconds(k) for k in range(calls)], rescued, events)


__all__ = [
    "ARMS",
    "ARM_SETTINGS",
    "EXTRA_TOOL_SPECS",
    "FINAL_ANSWER",
    "TOOL_SPECS",
    "LoopRun",
    "ScriptedChatModel",
    "StepStats",
    "loop_tools",
    "middleware",
    "run_loop",
]
