"""Stable mode: decided once, sent byte for byte, kept in the graph state, the same after a resume.

The schedule's rules are checked on hand-made messages (no model); the agent loops run on real
compiled graphs with the real SmolLM2 draft; the resume test runs three real processes on one
SQLite checkpointer.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from specprefill_langchain import (
    FROZEN_KEY,
    PolicyConfig,
    SpecPrefillAgentState,
    SpecPrefillCompressor,
    SpecPrefillNode,
    StableConfig,
    pre_model_hook,
)
from specprefill_langchain.recall import original_output
from specprefill_langchain.schedule import (
    apply_frozen,
    decided_form,
    digest,
    draft_window,
    merge_frozen,
    plan,
    ref_of,
    stale_refs,
)
from tests.agents import SYSTEM, TOOLS, PlannedChatModel, StatsCollector, check_history, node_graph, request

ROOT = Path(__file__).resolve().parents[1]


def _loop(n_results: int, size: int = 2000) -> list[BaseMessage]:
    msgs: list[BaseMessage] = [SystemMessage("sys", id="s"), HumanMessage("find the bug", id="h")]
    for k in range(n_results):
        call = {"name": "read", "args": {"k": k}, "id": f"c{k}", "type": "tool_call"}
        msgs.append(AIMessage("", tool_calls=[call], id=f"a{k}"))
        msgs.append(ToolMessage(f"line {k}\n" * (size // 7), tool_call_id=f"c{k}", name="read", id=f"t{k}"))
    return msgs


# --------------------------------------------------------------------------- the schedule (no model)
def _plan(msgs, frozen=None, cfg=None, **kw):
    return plan(msgs, frozen or {}, cfg or StableConfig(), PolicyConfig(), keep_ratio=0.3, **kw)


def test_results_are_decided_on_arrival_by_default() -> None:
    msgs = _loop(3)
    p = _plan(msgs)
    assert p.candidates == (7,) and p.whole == ()  # the new result; the older ones were read whole already
    # (compressing those would break the target's cache for less than min_saving_chars)
    p = _plan(msgs, cfg=StableConfig(min_saving_chars=0))
    assert p.candidates == (3, 5, 7)  # every tool result; never human or AI text
    frozen = {ref_of(msgs[i]): {"digest": digest(msgs[i]), "content": "short"} for i in (3, 5)}
    p = _plan(msgs, frozen)
    assert p.candidates == (7,) and p.decided == {3, 5}  # decided ones are never decided again
    assert p.view[3].content == "short" and p.view[7].content == msgs[7].content


def test_keep_recent_waits_and_min_saving_batches_cache_breaks() -> None:
    msgs = _loop(4)
    cfg = StableConfig(keep_recent=2, min_saving_chars=0)
    assert _plan(msgs, cfg=cfg).candidates == (3, 5)  # two newer results exist for each
    # Both were already read whole by the target: compressing them breaks its cache, so only together
    # and only for a saving of at least min_saving_chars.
    assert _plan(msgs, cfg=StableConfig(keep_recent=2, min_saving_chars=10**6)).candidates == ()
    assert _plan(msgs, cfg=StableConfig(trigger_chars=10**6)).candidates == ()
    short = _plan(_loop(2, size=100))
    assert short.candidates == () and short.whole == ()  # too short for the draft: no frozen form needed


def test_results_never_to_compress_are_decided_whole_once() -> None:
    msgs = _loop(2)
    p = _plan(msgs, keep_whole=lambda m: m.tool_call_id == "c1")
    assert p.candidates == () and p.whole == (5,)  # decided whole now: no later step tries it again


def test_the_reducer_adds_replaces_and_forgets() -> None:
    left = {"a": {"digest": "1"}, "b": {"digest": "2"}}
    merged = merge_frozen(left, {"b": {"digest": "3"}, "c": {"digest": "4"}, "a": None})
    assert merged == {"b": {"digest": "3"}, "c": {"digest": "4"}}
    assert left == {"a": {"digest": "1"}, "b": {"digest": "2"}}  # neither input is changed
    assert merge_frozen(None, None) == {}


def test_entries_of_messages_gone_from_the_thread_are_stale() -> None:
    msgs = _loop(2)
    frozen = {ref_of(m): {"digest": digest(m), "content": "x"} for m in msgs if isinstance(m, ToolMessage)}
    assert stale_refs(frozen, msgs) == []
    assert stale_refs(frozen, [*msgs[:3], *msgs[5:]]) == [ref_of(msgs[3])]  # summarized away


def test_rescued_text_follows_the_content_and_survives_a_later_decision() -> None:
    msgs = _loop(1)
    m = msgs[3]
    pending = {ref_of(m): {"digest": digest(m), "rescue": "\n[rescued]"}}
    view, decided = apply_frozen(msgs, pending)
    assert view[3].content == m.content + "\n[rescued]" and decided == set()  # not decided yet
    later = decided_form(m, "short", pending[ref_of(m)])
    assert later == {"digest": digest(m), "content": "short", "rescue": "\n[rescued]"}
    blocks = m.model_copy(update={"content": [{"type": "text", "text": "a"}]})
    entry = {"digest": digest(blocks), "content": None, "rescue": "\n[r]"}
    assert apply_frozen([blocks], {ref_of(blocks): entry})[0][0].content[-1] == {"type": "text", "text": "\n[r]"}


def test_a_changed_original_is_decided_again() -> None:
    msgs = _loop(1)
    frozen = {ref_of(msgs[3]): {"digest": digest(msgs[3]), "content": "short"}}
    edited = [*msgs[:3], msgs[3].model_copy(update={"content": "another output " * 100})]
    view, decided = apply_frozen(edited, frozen)
    assert decided == set() and view[3].content == edited[3].content


def test_draft_window_moves_in_jumps_and_keeps_the_candidates() -> None:
    msgs = _loop(30)
    starts = []
    for n in range(10, len(msgs) + 1):
        window = draft_window(msgs[:n], [n - 1], 12000)
        assert window[:2] == [0, 1] and window[-1] == n - 1  # the head (system, request), then the new result
        assert sum(len(msgs[i].text) for i in window[2:]) <= 12000 + len(msgs[n - 1].text)
        starts.append(window[2])
    changes = sum(a != b for a, b in itertools.pairwise(starts))
    assert changes <= len(starts) // 3  # the prefix the draft caches survives most steps


def test_without_context_the_draft_reads_the_head_and_the_new_messages_only() -> None:
    msgs = _loop(6)
    n = len(msgs)
    assert draft_window(msgs, [n - 1], 0) == [0, 1, n - 2, n - 1]  # head, the call, its result
    assert draft_window(msgs, [3, n - 1], 0) == list(range(n))  # from the first candidate's call on
    assert draft_window(msgs[1:], [n - 2], 0) == [0, n - 3, n - 2]  # no system prompt: the request is the head


# --------------------------------------------------------------------------- agent loops
def _prefix_stability(inputs: list[list[BaseMessage]]) -> list[bool]:
    """For each step: did the previous model input survive byte for byte as a prefix of this one?"""
    out = []
    for prev, cur in itertools.pairwise(inputs):
        out.append([(m.type, m.content) for m in prev] == [(m.type, m.content) for m in cur[: len(prev)]])
    return out


def _check_stable_loop(model: PlannedChatModel, history: list[BaseMessage], frozen: dict[str, Any]) -> None:
    check_history(history)  # the state keeps every original, every call paired
    assert all(_prefix_stability(model.received))  # append-only: the target's cache keeps hitting
    last = model.received[-1]
    read = next(m for m in last if isinstance(m, ToolMessage) and m.name == "read_file")
    full = next(m for m in history if isinstance(m, ToolMessage) and m.name == "read_file")
    assert len(read.text) < 0.6 * len(full.text) and " … " in read.text  # compressed on arrival
    assert frozen[full.id]["content"] == read.content  # the state holds what was sent


@pytest.mark.real
def test_create_agent_stable_by_default(smol):
    from langchain.agents import create_agent

    from specprefill_langchain import SpecPrefillMiddleware

    model, collector = PlannedChatModel(), StatsCollector()
    mw = SpecPrefillMiddleware(draft=smol, keep_ratio=0.3)
    agent = create_agent(model, TOOLS, system_prompt=SYSTEM, middleware=[mw], checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "stable"}, "callbacks": [collector]}
    agent.invoke({"messages": [HumanMessage(request("json/decoder.py"))]}, cfg)
    values = agent.get_state(cfg).values
    _check_stable_loop(model, values["messages"], values[FROZEN_KEY])
    assert collector.events and all(e["mode"] == "stable" for e in collector.events)
    assert sum(e["newly_compressed"] for e in collector.events) >= 1


async def test_node_stable_async(tiny):
    model = PlannedChatModel()
    graph = node_graph(SpecPrefillNode(SpecPrefillCompressor(draft=tiny, keep_ratio=0.3)), model, InMemorySaver())
    cfg = {"configurable": {"thread_id": "node-stable"}, "recursion_limit": 30}
    await graph.ainvoke({"messages": [SystemMessage(SYSTEM), HumanMessage(request("json/decoder.py"))]}, cfg)
    values = (await graph.aget_state(cfg)).values
    _check_stable_loop(model, values["messages"], values[FROZEN_KEY])


def test_pre_model_hook_stable_with_its_state(tiny):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from langgraph.prebuilt import create_react_agent

        model = PlannedChatModel()
        hook = pre_model_hook(SpecPrefillCompressor(draft=tiny, keep_ratio=0.3))
        agent = create_react_agent(
            model,
            TOOLS,
            prompt=SYSTEM,
            pre_model_hook=hook,
            state_schema=SpecPrefillAgentState,
            checkpointer=InMemorySaver(),
        )
    cfg = {"configurable": {"thread_id": "hook-stable"}}
    agent.invoke({"messages": [HumanMessage(request("json/decoder.py"))]}, cfg)
    values = agent.get_state(cfg).values
    _check_stable_loop(model, values["messages"], values[FROZEN_KEY])


def test_a_state_without_the_frozen_key_warns(tiny):
    node = SpecPrefillNode(SpecPrefillCompressor(draft=tiny, keep_ratio=0.3))
    msgs = _loop(3)
    with pytest.warns(RuntimeWarning, match="SpecPrefillState"):
        node.invoke({"messages": msgs})


@pytest.mark.real
def test_recall_tool_returns_the_original(smol):
    from langchain.agents import create_agent

    from specprefill_langchain import SpecPrefillMiddleware

    model = PlannedChatModel()
    mw = SpecPrefillMiddleware(draft=smol, keep_ratio=0.3, recall_tool=True)
    assert [t.name for t in mw.tools] == ["read_full_output"]
    agent = create_agent(model, TOOLS, system_prompt=SYSTEM, middleware=[mw], checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "recall"}}
    agent.invoke({"messages": [HumanMessage(request("json/decoder.py"))]}, cfg)
    history = agent.get_state(cfg).values["messages"]
    sent = next(m for m in model.received[-1] if isinstance(m, ToolMessage) and m.name == "read_file")
    assert 'read_full_output(ref="call_0")' in sent.text  # the compressed form says how to get it back
    full = next(m for m in history if isinstance(m, ToolMessage) and m.name == "read_file")
    assert original_output(history, "call_0") == full.text
    assert "no tool output" in original_output(history, "nope")


# --------------------------------------------------------------------------- resume in another process
def _run(db: Path, thread: str, steps: int, out: Path, *extra: str) -> list[Any]:
    cmd = [sys.executable, str(ROOT / "tests" / "resume_agent.py"), str(db), thread, str(steps), str(out), *extra]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.real
@pytest.mark.slow
def test_a_thread_resumed_in_a_new_process_sends_the_same_bytes(smol, tmp_path):
    db = tmp_path / "threads.sqlite"
    whole = _run(db, "uninterrupted", 0, tmp_path / "a.json")
    first = _run(db, "resumed", 2, tmp_path / "b.json")  # two model calls, then the process ends
    rest = _run(db, "resumed", 0, tmp_path / "c.json")  # a new process: new compressor, cold draft
    assert len(whole) == 4 and len(first) == 2 and len(rest) == 2
    assert first + rest == whole  # byte-identical model inputs, call by call
    assert any(" … " in str(m[1]) for m in whole[-1])  # and they were compressed


@pytest.mark.real
@pytest.mark.slow
def test_a_thread_resumed_in_a_new_process_rescues_the_same_lines(smol, tmp_path):
    """The late loop: the step that rescues runs in a new process (cold draft) and sends the same bytes."""
    db = tmp_path / "late.sqlite"
    whole = _run(db, "uninterrupted", 0, tmp_path / "a.json", "late")
    first = _run(db, "resumed", 2, tmp_path / "b.json", "late")
    rest = _run(db, "resumed", 0, tmp_path / "c.json", "late")
    assert first + rest == whole  # byte-identical model inputs, call by call, the rescue included
    last = json.dumps(whole[-1])
    assert "[from read_file call_0 (json/decoder.py)" in last and "def py_scanstring" in last
