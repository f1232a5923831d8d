"""Agent loops on real compiled graphs: the three doors, KV reuse per thread, full history in state.

The draft is the real SmolLM2 (``smol``) wherever a behaviour is user-facing; the chat model is a
scripted fake (tests/agents.py) so that a whole loop costs only the draft's work.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver

from specprefill_langchain import SpecPrefillCompressor, SpecPrefillNode, pre_model_hook
from specprefill_langchain.draft import PREFILL_CHUNK
from tests.agents import SYSTEM, TOOLS, PlannedChatModel, StatsCollector, chars, check_history, node_graph, request

pytestmark = pytest.mark.real

PATH_A, PATH_B = "json/decoder.py", "json/encoder.py"


def run_config(thread: str, collector: StatsCollector) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}, "callbacks": [collector], "recursion_limit": 30}


def check_loop(model: PlannedChatModel, events: list[dict[str, Any]], history: list[BaseMessage], thread: str) -> None:
    """What every door must do, checked on one finished thread."""
    check_history(history)  # the checkpointed state: whole tool outputs, every call paired
    assert len(model.received) == len(events) == 4  # read, grep, list, answer
    assert all(e["cache_key"] == thread for e in events)
    assert events[0]["passthrough"]  # only the request so far: nothing to compress
    compressed = events[1:]
    assert not any(e["passthrough"] for e in compressed), [e["reason"] for e in compressed]
    assert compressed[0]["reused_tokens"] == 0  # the first compressed step pays for its prefix
    for prev, cur in itertools.pairwise(compressed):
        # The draft pays only for what is new: the previous step's prefix comes from the cache, in whole
        # prefill chunks (a partial last chunk is prefilled again: docs/design.md, "Same bytes on every worker").
        assert cur["reused_tokens"] >= prev["reused_tokens"] + prev["prefilled_tokens"] - PREFILL_CHUNK
        assert cur["reused_tokens"] % PREFILL_CHUNK == 0
    for received, event in zip(model.received, events, strict=True):
        shown = [m for m in received if not isinstance(m, SystemMessage)]
        original = [m for m in history if not isinstance(m, SystemMessage)][: len(shown)]
        assert [m.id for m in shown] == [m.id for m in original]  # same messages, same order
        if event["passthrough"]:
            assert chars(shown) == chars(original)
        else:
            assert chars(shown) < 0.6 * chars(original)  # the model read a compressed copy


def by_request(model: PlannedChatModel) -> dict[str, list[list[tuple[str, str]]]]:
    """What the model was shown, grouped by thread (its request), as (type, text) pairs."""
    out: dict[str, list[list[tuple[str, str]]]] = {}
    for received in model.received:
        key = next(m.text for m in received if isinstance(m, HumanMessage))
        out.setdefault(key, []).append([(m.type, m.text) for m in received])
    return out


# --------------------------------------------------------------------------- door 1: SpecPrefillNode
def test_node_agent_loop_reuses_kv_and_keeps_history(smol):
    compressor = SpecPrefillCompressor(draft=smol, keep_ratio=0.3)
    model, collector = PlannedChatModel(), StatsCollector()
    graph = node_graph(SpecPrefillNode(compressor, mode="per_step"), model, InMemorySaver())
    cfg = run_config("thread-a", collector)
    graph.invoke({"messages": [SystemMessage(SYSTEM), HumanMessage(request(PATH_A))]}, cfg)
    history = graph.get_state(cfg).values["messages"]
    check_loop(model, collector.events, history, "thread-a")


async def test_node_agent_loop_async(tiny):
    # Same checks as the sync test; the tiny random draft keeps it cheap (mechanics, not quality).
    compressor = SpecPrefillCompressor(draft=tiny, keep_ratio=0.3)
    model, collector = PlannedChatModel(), StatsCollector()
    graph = node_graph(SpecPrefillNode(compressor, mode="per_step"), model, InMemorySaver())
    cfg = run_config("thread-async", collector)
    await graph.ainvoke({"messages": [SystemMessage(SYSTEM), HumanMessage(request(PATH_A))]}, cfg)
    history = (await graph.aget_state(cfg)).values["messages"]
    check_loop(model, collector.events, history, "thread-async")


def test_interleaved_threads_match_separate_runs(tiny):
    # Four loops: the tiny draft keeps this cheap; cache keying does not depend on the model.
    def start(path: str) -> dict[str, Any]:
        return {"messages": [SystemMessage(SYSTEM), HumanMessage(request(path))]}

    alone = PlannedChatModel()
    for path in (PATH_A, PATH_B):  # each thread alone, on a fresh compressor (cold cache)
        graph = node_graph(
            SpecPrefillNode(SpecPrefillCompressor(draft=tiny, keep_ratio=0.3), mode="per_step"), alone, InMemorySaver()
        )
        graph.invoke(start(path), run_config(path, StatsCollector()))

    shared, collector = PlannedChatModel(), StatsCollector()
    graph = node_graph(
        SpecPrefillNode(SpecPrefillCompressor(draft=tiny, keep_ratio=0.3), mode="per_step"), shared, InMemorySaver()
    )
    # Step the two threads in turn on one compressor: stream() runs a graph one super-step per item.
    runs = {path: iter(graph.stream(start(path), run_config(path, collector))) for path in (PATH_A, PATH_B)}
    while runs:
        for path in list(runs):
            if next(runs[path], None) is None:
                del runs[path]
    assert by_request(shared) == by_request(alone)
    keys = [e["cache_key"] for e in collector.events]
    assert keys[:4] == [PATH_A, PATH_B, PATH_A, PATH_B]  # really interleaved
    for path in (PATH_A, PATH_B):  # and each thread still reused its own prefix
        mine = [e for e in collector.events if e["cache_key"] == path and not e["passthrough"]]
        assert all(e["reused_tokens"] > 0 and e["reused_tokens"] % PREFILL_CHUNK == 0 for e in mine[1:])


# --------------------------------------------------------------------------- door 2: pre_model_hook
def test_create_react_agent_pre_model_hook(smol):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # moved to langchain.agents in LangGraph 1.x
        from langgraph.prebuilt import create_react_agent

        compressor = SpecPrefillCompressor(draft=smol, keep_ratio=0.3)
        model, collector = PlannedChatModel(), StatsCollector()
        agent = create_react_agent(
            model,
            TOOLS,
            prompt=SYSTEM,
            pre_model_hook=pre_model_hook(compressor, mode="per_step"),
            checkpointer=InMemorySaver(),
        )
    cfg = run_config("react", collector)
    agent.invoke({"messages": [HumanMessage(request(PATH_A))]}, cfg)
    history = agent.get_state(cfg).values["messages"]
    check_loop(model, collector.events, history, "react")
    assert all(isinstance(r[0], SystemMessage) and r[0].text == SYSTEM for r in model.received)


# --------------------------------------------------------------------------- door 3: middleware
def _agent(draft: Any, model: PlannedChatModel) -> Any:
    from langchain.agents import create_agent

    from specprefill_langchain import SpecPrefillMiddleware

    middleware = SpecPrefillMiddleware(draft=draft, keep_ratio=0.3, mode="per_step")
    return create_agent(model, TOOLS, system_prompt=SYSTEM, middleware=[middleware], checkpointer=InMemorySaver())


def test_create_agent_middleware(smol):
    model, collector = PlannedChatModel(), StatsCollector()
    agent = _agent(smol, model)
    cfg = run_config("mw", collector)
    agent.invoke({"messages": [HumanMessage(request(PATH_A))]}, cfg)
    history = agent.get_state(cfg).values["messages"]
    check_loop(model, collector.events, history, "mw")
    assert all(isinstance(r[0], SystemMessage) and r[0].text == SYSTEM for r in model.received)


async def test_create_agent_middleware_async(tiny):
    model, collector = PlannedChatModel(), StatsCollector()
    agent = _agent(tiny, model)
    cfg = run_config("mw-async", collector)
    await agent.ainvoke({"messages": [HumanMessage(request(PATH_A))]}, cfg)
    history = (await agent.aget_state(cfg)).values["messages"]
    check_loop(model, collector.events, history, "mw-async")


# --------------------------------------------------------------------------- node options and errors
def test_an_unknown_node_option_fails_at_construction(tiny):
    compressor = SpecPrefillCompressor(draft=tiny, keep_ratio=0.3)
    with pytest.raises(ValueError, match="persist"):
        SpecPrefillNode(compressor, persist=True)
    with pytest.raises(ValueError, match="mode='both' is not valid"):
        SpecPrefillNode(compressor, mode="both")


def test_missing_messages_key_is_a_clear_error(tiny):
    node = SpecPrefillNode(SpecPrefillCompressor(draft=tiny), messages_key="history")
    with pytest.raises(KeyError, match="messages_key"):
        node.invoke({"messages": [HumanMessage("hi")]})
    graph = node_graph(node, PlannedChatModel(), InMemorySaver())
    with pytest.raises(KeyError, match="no 'history' key"):
        graph.invoke({"messages": [HumanMessage("hi")]}, {"configurable": {"thread_id": "bad"}})


def test_node_arguments_are_checked(tiny):
    compressor = SpecPrefillCompressor(draft=tiny)
    with pytest.raises(TypeError, match="needs a SpecPrefillCompressor"):
        SpecPrefillNode("smollm2-135m")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="would overwrite"):
        SpecPrefillNode(compressor, output_key="messages")
    with pytest.raises(ValueError, match="mode='every'"):
        SpecPrefillNode(compressor, mode="every")
    hook = pre_model_hook(compressor)
    assert hook.output_key == "llm_input_messages" and hook.mode == "stable"
