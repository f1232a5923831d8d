"""State that stays small, private and whole at scale (issue 21): one test per defect found on 9a23e92.

* the node wrote its frozen-forms key on every step, even when nothing was decided;
* entries of messages removed from the thread were never forgotten;
* the key was public: every compressed output showed up in the agent's input/output schema and result;
* two stable middleware instances shared one key and kept overwriting each other (a cache break a step);
* one message the draft cannot take made every later step fail (or stay uncompressed);
* ``DraftModel.load`` loaded outside its lock; the layout cache was shared across threads unlocked.
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage, SystemMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from specprefill_langchain import FROZEN_KEY, DraftModel, SpecPrefillCompressor, SpecPrefillNode
from specprefill_langchain.schedule import ref_of
from tests.agents import SYSTEM, TOOLS, PlannedChatModel, node_graph, request

pytestmark = pytest.mark.usefixtures("one_thread")


def _loop(n: int, size: int = 3000, big: int | None = None) -> list[Any]:
    msgs: list[Any] = [SystemMessage("sys"), HumanMessage("look at the files", id="h")]
    for k in range(n):
        call = {"name": "read", "args": {"k": k}, "id": f"c{k}", "type": "tool_call"}
        text = (
            "x" * big
            if big is not None and k == n - 1
            else "\n".join(f"line {k}.{i} of output" for i in range(size // 20))
        )
        msgs += [
            AIMessage("", tool_calls=[call], id=f"a{k}"),
            ToolMessage(text, tool_call_id=f"c{k}", name="read", id=f"t{k}"),
        ]
    return msgs


def test_the_node_writes_its_key_only_when_something_was_decided(tiny) -> None:
    node = SpecPrefillNode(SpecPrefillCompressor(draft=tiny, keep_ratio=0.3))
    first = node.invoke({"messages": _loop(1), FROZEN_KEY: {}})
    assert set(first) == {"llm_input_messages", FROZEN_KEY}  # the new result was decided: written
    msgs = [*_loop(1), AIMessage("done", id="end"), HumanMessage("and now?", id="h2")]
    again = node.invoke({"messages": msgs, FROZEN_KEY: first[FROZEN_KEY]})
    assert set(again) == {"llm_input_messages"}  # nothing new: nothing written, the checkpoint stays small


def test_entries_of_removed_messages_are_forgotten(tiny) -> None:
    model = PlannedChatModel()
    graph = node_graph(SpecPrefillNode(SpecPrefillCompressor(draft=tiny, keep_ratio=0.3)), model, InMemorySaver())
    cfg = {"configurable": {"thread_id": "prune"}, "recursion_limit": 30}
    graph.invoke({"messages": [SystemMessage(SYSTEM), HumanMessage(request("json/decoder.py"))]}, cfg)
    values = graph.get_state(cfg).values
    read = next(m for m in values["messages"] if isinstance(m, ToolMessage) and m.name == "read_file")
    assert ref_of(read) in values[FROZEN_KEY]
    graph.update_state(cfg, {"messages": [RemoveMessage(id=read.id)]})  # as a summarization would
    graph.invoke({"messages": [HumanMessage("Inspect `json/encoder.py` as well.")]}, cfg)
    assert ref_of(read) not in graph.get_state(cfg).values[FROZEN_KEY]


def test_the_middleware_key_is_private_to_the_agents_schemas(tiny) -> None:
    from langchain.agents import create_agent

    from specprefill_langchain import SpecPrefillMiddleware

    agent = create_agent(
        PlannedChatModel(), TOOLS, middleware=[SpecPrefillMiddleware(draft=tiny)], checkpointer=InMemorySaver()
    )
    assert FROZEN_KEY not in agent.get_input_jsonschema().get("properties", {})
    assert FROZEN_KEY not in agent.get_output_jsonschema().get("properties", {})
    cfg = {"configurable": {"thread_id": "private"}}
    result = agent.invoke({"messages": [HumanMessage(request("json/decoder.py"))]}, cfg)
    assert FROZEN_KEY not in result  # not in what invoke returns ...
    assert agent.get_state(cfg).values[FROZEN_KEY]  # ... and still checkpointed with the thread


def test_two_middleware_instances_keep_their_own_decisions(tiny) -> None:
    from langchain.agents import create_agent

    from specprefill_langchain import SpecPrefillMiddleware

    compressor = SpecPrefillCompressor(draft=tiny, keep_ratio=0.5)
    outer = SpecPrefillMiddleware(compressor=compressor, name="outer")
    inner = SpecPrefillMiddleware(compressor=compressor, name="inner", recall_tool=False)
    assert (outer.state_key, inner.state_key) == ("specprefill_outer", "specprefill_inner")
    model = PlannedChatModel()
    agent = create_agent(model, TOOLS, middleware=[outer, inner], checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "twins"}}
    agent.invoke({"messages": [HumanMessage(request("json/decoder.py"))]}, cfg)
    values = agent.get_state(cfg).values
    assert values["specprefill_outer"] and values["specprefill_inner"]
    for prev, cur in itertools.pairwise(model.received):  # no tug of war: the prompt stays append-only
        assert [(m.type, m.content) for m in prev] == [(m.type, m.content) for m in cur[: len(prev)]]


def test_one_unreadable_message_is_decided_whole_once_and_the_thread_goes_on(tiny, caplog) -> None:
    compressor = SpecPrefillCompressor(draft=tiny, keep_ratio=0.3, max_input_chars=20_000)
    node = SpecPrefillNode(compressor)
    msgs = _loop(2, big=50_000)  # the second result is longer than the draft may read
    with caplog.at_level(logging.WARNING, logger="specprefill_langchain"):
        out = node.invoke({"messages": msgs, FROZEN_KEY: {}})
    assert out[FROZEN_KEY]["t1"]["content"] is None  # decided whole, for good
    assert any("t1" in r.getMessage() and "sent whole" in r.getMessage() for r in caplog.records)
    later = [*msgs, AIMessage("", tool_calls=[{"name": "read", "args": {"k": 9}, "id": "c9"}], id="a9")]
    later.append(ToolMessage("\n".join(f"more line {i}" for i in range(200)), tool_call_id="c9", name="read", id="t9"))
    nxt = node.invoke({"messages": later, FROZEN_KEY: out[FROZEN_KEY]})  # the default on_error="raise": no error
    assert nxt[FROZEN_KEY]["t9"]["content"] is not None  # and the next result is compressed as usual
    assert nxt["llm_input_messages"][5].content == msgs[5].content  # the big one whole


def test_a_draft_loads_once_when_many_threads_ask_at_once(monkeypatch, smol) -> None:
    loads: list[str] = []
    real = DraftModel._load

    def counting(name: str, dtype: str, device: str) -> DraftModel:
        loads.append(name)
        return real(name, dtype, device)

    monkeypatch.setattr(DraftModel, "_load", staticmethod(counting))
    monkeypatch.setattr(DraftModel, "_registry", {})  # as in a fresh process
    got: list[DraftModel] = []

    def ask() -> None:
        got.append(DraftModel.load("smollm2-135m", dtype="float32"))

    threads = [threading.Thread(target=ask) for _ in range(4)]  # four callers at once
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == ["smollm2-135m"] and len(got) == 4 and len({id(d) for d in got}) == 1


def test_the_layout_cache_is_safe_across_threads(smol) -> None:
    from specprefill_langchain.config import PolicyConfig
    from specprefill_langchain.transcript import Transcript

    histories = [_loop(6, size=1500 + 100 * k) for k in range(4)]
    expected = [Transcript(h, smol.tokenizer, PolicyConfig()).ids for h in histories]
    errors: list[BaseException] = []

    def build(k: int) -> None:
        try:
            for _ in range(5):
                assert Transcript(histories[k], smol.tokenizer, PolicyConfig()).ids == expected[k]
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=build, args=(k % 4,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
