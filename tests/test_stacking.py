"""SpecPrefillMiddleware stacked with LangChain's own middleware in one ``create_agent`` (issue 21, item 5).

Everything is real but the chat models: compiled agents, checkpointers, ToolNode, LangChain's
``SummarizationMiddleware`` and ``HumanInTheLoopMiddleware``, and langchain-anthropic's
``AnthropicPromptCachingMiddleware`` in front of a real ``ChatAnthropic`` whose HTTP requests are
answered in-process (an ``httpx2.MockTransport``: no network). The agent models are scripted; the
mechanics tests use the tiny random draft, the Anthropic test the real SmolLM2 draft.

Where the hooks run (langchain ``agents/factory.py``): every ``before_model`` hook is a graph node
before the model node, chained in list order; every ``wrap_model_call`` runs inside the model node,
the first in the list outermost; ``after_model`` hooks are nodes after it, in reverse list order.
"""

from __future__ import annotations

import itertools
import json
import xml.sax.saxutils
from collections.abc import Sequence
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware, SummarizationMiddleware
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from pydantic import Field

from specprefill_langchain import FROZEN_KEY, SpecPrefillMiddleware
from tests.agents import SYSTEM, TOOLS, PlannedChatModel, request

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

READ_FILE = next(t for t in TOOLS if t.name == "read_file")
# Seven standard-library sources: each read_file output is ~4,000 characters (TOOLS caps them there).
FILES = ("json/decoder.py", "json/encoder.py", "csv.py", "shlex.py", "textwrap.py", "fnmatch.py", "glob.py")
SUMMARY = "The agent has read json/decoder.py, json/encoder.py and csv.py; it reads the rest next."


# --------------------------------------------------------------------------- helpers
class ReaderModel(BaseChatModel):
    """Reads FILES one per call, then answers; records every message list it is called with.

    The next file follows the highest call id it is shown, so the plan survives a summarization
    (which drops the early calls but keeps the latest one) and depends only on the input.
    """

    received: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "reader-fake"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ReaderModel:
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        self.received.append(list(messages))
        made = [int(c["id"].removeprefix("call_")) for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
        k = max(made, default=-1) + 1
        if k >= len(FILES):
            answer = AIMessage("All seven files were read.")
        else:
            call = {"name": "read_file", "args": {"path": FILES[k]}, "id": f"call_{k}", "type": "tool_call"}
            answer = AIMessage("", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=answer)])


class SummaryModel(BaseChatModel):
    """The summarization model: returns SUMMARY and records the prompts it was given."""

    prompts: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "summary-fake"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        self.prompts.append("\n".join(m.text for m in messages))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(SUMMARY))])


def _wire(messages: Sequence[BaseMessage]) -> list[str]:
    """What a chat model reads of each message, as JSON: its type, content and tool calls."""
    return [
        json.dumps(
            [
                m.type,
                m.content,
                [[c["name"], c["args"], c["id"]] for c in getattr(m, "tool_calls", None) or []],
                getattr(m, "tool_call_id", None),
            ],
            sort_keys=True,
        )
        for m in messages
    ]


def _append_only(prev: Sequence[BaseMessage], cur: Sequence[BaseMessage]) -> bool:
    """Did the previous model input survive byte for byte as a prefix of this one?"""
    return len(cur) >= len(prev) and _wire(prev) == _wire(cur[: len(prev)])


def _by_call(values: dict[str, Any]) -> dict[str, Any]:
    """A state's frozen forms keyed by their tool call ids (message ids are random per thread)."""
    call_of = {m.id: m.tool_call_id for m in values["messages"] if isinstance(m, ToolMessage)}
    return {call_of[ref]: entry for ref, entry in values[FROZEN_KEY].items()}


def _check_pairs(messages: Sequence[BaseMessage]) -> None:
    """Every tool call has its result after it, and every result its call."""
    calls = [(i, c["id"]) for i, m in enumerate(messages) if isinstance(m, AIMessage) for c in m.tool_calls]
    results = {m.tool_call_id: i for i, m in enumerate(messages) if isinstance(m, ToolMessage)}
    assert {cid for _, cid in calls} == set(results), "a tool call without its result, or a result without its call"
    assert all(results[cid] > i for i, cid in calls)


# --------------------------------------------------------------------------- SummarizationMiddleware
ORDERS = {
    "summarize-first": lambda summarize, compress: [summarize, compress],
    "compress-first": lambda summarize, compress: [compress, summarize],
}
START = {"messages": [HumanMessage("Read the seven files one by one.")]}


def _summarizing_agent(draft: Any, order: str) -> tuple[Any, dict[str, Any], ReaderModel, SummaryModel]:
    """Eight model calls. Before the sixth the history has 11 messages (the request and five calls
    with their results): the summary replaces all but the last two calls and their results, so one
    result compressed before the summary is kept, and the agent summarizes exactly once."""
    model, summarizer = ReaderModel(), SummaryModel()
    summarize = SummarizationMiddleware(
        model=summarizer, trigger=("messages", 11), keep=("messages", 4), trim_tokens_to_summarize=None
    )
    compress = SpecPrefillMiddleware(draft=draft, keep_ratio=0.3)
    middleware = ORDERS[order](summarize, compress)
    agent = create_agent(model, TOOLS, system_prompt=SYSTEM, middleware=middleware, checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": f"summarize-{order}"}, "recursion_limit": 80}
    return agent, cfg, model, summarizer


def _results(messages: Sequence[BaseMessage]) -> dict[str, ToolMessage]:
    return {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}


@pytest.mark.parametrize("order", list(ORDERS))
def test_summarization_prunes_frozen_forms_and_keeps_each_side_append_only(tiny, order):
    agent, cfg, model, summarizer = _summarizing_agent(tiny, order)
    agent.invoke(START, cfg)
    values = agent.get_state(cfg).values
    messages = values["messages"]
    # The private key is in no input or output schema of the agent, but it is in the checkpointed state.
    assert FROZEN_KEY in values and FROZEN_KEY not in agent.invoke(None, cfg)
    frozen = values[FROZEN_KEY]

    # It summarized once, before the sixth model call, from the full originals in the state.
    assert len(summarizer.prompts) == 1 and len(model.received) == len(FILES) + 1
    assert isinstance(messages[0], HumanMessage) and messages[0].additional_kwargs.get("lc_source") == "summarization"
    assert " … " in _results(model.received[4])["call_0"].text  # the model read call_0's result compressed ...
    whole = READ_FILE.invoke({"path": FILES[0]})
    assert xml.sax.saxutils.escape(whole) in summarizer.prompts[0]  # ... the summarizer read it whole

    # (a) No frozen form outlives its message: the summarized results' forms were pruned, by the very
    # model step that first read the summary (so in every checkpoint a model step wrote; only the one
    # between the summary and that step still holds them).
    assert set(frozen) <= {m.id for m in messages}
    after_model = [snap for snap in agent.get_state_history(cfg) if snap.next in {("tools",), ()}]
    assert len(after_model) == len(model.received)
    for snap in after_model:
        assert set(snap.values.get(FROZEN_KEY, {})) <= {m.id for m in snap.values.get("messages", [])}
    # The last checkpoint before the summary: the request, then call_0..call_4 and their results.
    before = next(s for s in agent.get_state_history(cfg) if len(s.values.get("messages", [])) == 11)
    summarized = [m.id for m in before.values["messages"][:7] if isinstance(m, ToolMessage)]
    assert len(summarized) == 3 and all(ref in before.values[FROZEN_KEY] for ref in summarized)
    assert not set(summarized) & set(frozen)
    kept = _results(messages)
    assert sorted(kept) == ["call_3", "call_4", "call_5", "call_6"]
    assert all(frozen[m.id]["content"] is not None for m in kept.values())  # each compressed, each kept

    # (b) Every tool call in the final state has its result.
    _check_pairs(messages)

    # (c) Append-only on each side of the summary; the summary itself is the one break.
    steps = [_append_only(a, b) for a, b in itertools.pairwise(model.received)]
    assert steps == [True, True, True, True, False, True, True]
    # The result compressed before the summary and kept by it goes on in the very same bytes.
    pre, post = _results(model.received[4])["call_3"], _results(model.received[5])["call_3"]
    assert " … " in pre.text and post.content == pre.content


def test_summarization_is_listed_before_compression(tiny):
    """Recommended order: ``middleware=[SummarizationMiddleware(...), SpecPrefillMiddleware(...)]``.

    LangChain runs every ``before_model`` hook as a graph node ahead of the model node (in list
    order) and every ``wrap_model_call`` inside the model node (the first listed outermost). The
    summarization is a ``before_model`` hook and the compression a ``wrap_model_call``, so in either
    order the summary is written to the state first and the compression then reads the summarized
    history: both orders build the same graph and send the same bytes (this test checks it). The
    summarizer always reads the full originals from the state, never the compressed forms, and its
    own token count is of the full history too (only a provider's reported usage, when the trigger
    reads it, counts the smaller prompt the model was sent). The compression
    keeps the frozen forms of the messages the summary keeps (they go on in the same bytes) and
    forgets those of the messages it replaced. List summarization first anyway: it is the order in
    which they run, and it stays right should summarization ever move into ``wrap_model_call``
    (listed first, it would summarize the whole history and the compression would see only what
    is left; listed second, it would summarize compressed text).
    """
    runs = {}
    for order in ORDERS:
        agent, cfg, model, summarizer = _summarizing_agent(tiny, order)
        agent.invoke(START, cfg)
        runs[order] = agent, cfg, model, summarizer
    (a_agent, a_cfg, a_model, a_sum), (b_agent, b_cfg, b_model, b_sum) = runs.values()
    edges = [sorted((e.source, e.target) for e in agent.get_graph().edges) for agent in (a_agent, b_agent)]
    assert edges[0] == edges[1]  # one graph: the summary node feeds the model node, whatever the list order
    assert ("SummarizationMiddleware.before_model", "model") in edges[0]
    assert ("tools", "SummarizationMiddleware.before_model") in edges[0]
    assert [_wire(x) for x in a_model.received] == [_wire(x) for x in b_model.received]
    assert a_sum.prompts == b_sum.prompts
    a_values, b_values = a_agent.get_state(a_cfg).values, b_agent.get_state(b_cfg).values
    assert _by_call(a_values) == _by_call(b_values)


async def test_summarization_async_sends_what_sync_sends(tiny):
    """``abefore_model`` and ``awrap_model_call``: the same summary, inputs and frozen forms."""
    sync_agent, sync_cfg, sync_model, _ = _summarizing_agent(tiny, "summarize-first")
    sync_agent.invoke(START, sync_cfg)
    agent, cfg, model, summarizer = _summarizing_agent(tiny, "summarize-first")
    cfg["configurable"]["thread_id"] = "summarize-async"
    await agent.ainvoke(START, cfg)
    assert len(summarizer.prompts) == 1
    assert [_wire(x) for x in model.received] == [_wire(x) for x in sync_model.received]
    values, sync_values = (await agent.aget_state(cfg)).values, sync_agent.get_state(sync_cfg).values
    assert _by_call(values) == _by_call(sync_values)


# --------------------------------------------------------------------------- HumanInTheLoopMiddleware
def _approval(mode: str, interrupts: Sequence[Any]) -> Command:
    """The resume payload that approves every pending call (langchain 1.5's two interrupt modes)."""
    if mode == "batched":
        (pending,) = interrupts
        return Command(resume={"decisions": [{"type": "approve"} for _ in pending.value["action_requests"]]})
    return Command(resume={i.id: {"type": "approve"} for i in interrupts})


@pytest.mark.parametrize("mode", ["batched", "per_call"])
def test_an_approved_interrupt_resumes_with_the_same_model_inputs(tiny, mode):
    """A run paused for review before a tool call and approved sends the model what a run that was
    never paused sends, and keeps the same frozen forms: the compression's decision of the step before
    the pause was checkpointed with it. The list order does not matter here: the review is an
    ``after_model`` node (batched) or a ``wrap_tool_call`` (per call), the compression a
    ``wrap_model_call``, so neither wraps the other."""

    def agent_for(gate: bool) -> tuple[Any, PlannedChatModel]:
        model = PlannedChatModel()
        review = HumanInTheLoopMiddleware(interrupt_on={"grep": gate}, interrupt_mode=mode)
        compress = SpecPrefillMiddleware(draft=tiny, keep_ratio=0.3)
        middleware = [compress, review]
        agent = create_agent(model, TOOLS, system_prompt=SYSTEM, middleware=middleware, checkpointer=InMemorySaver())
        return agent, model

    start = {"messages": [HumanMessage(request("json/decoder.py"))]}
    straight, straight_model = agent_for(gate=False)
    plain = {"configurable": {"thread_id": "no-review"}}
    straight.invoke(start, plain)

    reviewed, reviewed_model = agent_for(gate=True)
    cfg = {"configurable": {"thread_id": "review"}}
    reviewed.invoke(start, cfg)
    paused = reviewed.get_state(cfg)
    assert len(reviewed_model.received) == 2  # stopped before grep ran ...
    (asked,) = paused.interrupts
    assert (asked.value["action_requests"][0] if mode == "batched" else asked.value)["name"] == "grep"  # ... for it
    read = next(m for m in paused.values["messages"] if isinstance(m, ToolMessage))
    assert paused.values[FROZEN_KEY][read.id]["content"] is not None  # the decision was checkpointed before
    reviewed.invoke(_approval(mode, paused.interrupts), cfg)

    assert len(reviewed_model.received) == len(straight_model.received) == 4
    assert [_wire(x) for x in reviewed_model.received] == [_wire(x) for x in straight_model.received]
    assert any(" … " in m.text for m in reviewed_model.received[-1] if isinstance(m, ToolMessage))
    done, base = reviewed.get_state(cfg).values, straight.get_state(plain).values
    assert not reviewed.get_state(cfg).next
    _check_pairs(done["messages"])
    assert _by_call(done) == _by_call(base)


# --------------------------------------------------------------------------- AnthropicPromptCachingMiddleware
ANTHROPIC_STEPS = (
    ("read_file", {"path": "json/decoder.py"}),
    ("grep", {"pattern": "^class |^def ", "path": "json"}),
    ("read_file", {"path": "json/encoder.py"}),
)


class MessagesAPI:
    """Answers POST /v1/messages in-process: a tool_use for each step of ANTHROPIC_STEPS, then text.
    Records every request body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, req: Any) -> Any:
        import httpx2

        assert req.method == "POST" and req.url.path == "/v1/messages", req.url
        body = json.loads(req.content)
        self.bodies.append(body)
        done = sum(m["role"] == "assistant" for m in body["messages"])
        if done < len(ANTHROPIC_STEPS):
            name, args = ANTHROPIC_STEPS[done]
            content = [{"type": "tool_use", "id": f"toolu_{done}", "name": name, "input": args}]
            stop = "tool_use"
        else:
            content, stop = [{"type": "text", "text": "json/decoder.py defines JSONDecoder."}], "end_turn"
        message = {
            "id": f"msg_{len(self.bodies)}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 100, "output_tokens": 10},
        }
        return httpx2.Response(200, json=message)


def _breakpoint(body: dict[str, Any]) -> int:
    """Index of the last message the request's cache breakpoint covers: a block-level
    ``cache_control``, else the top-level one (automatic caching: up to the last block)."""
    for i in range(len(body["messages"]) - 1, -1, -1):
        content = body["messages"][i]["content"]
        if isinstance(content, list) and any(isinstance(b, dict) and "cache_control" in b for b in content):
            return i
    assert "cache_control" in body, "the request has no cache breakpoint"
    return len(body["messages"]) - 1


def _tool_results(body: dict[str, Any]) -> dict[str, Any]:
    """The content of each tool_result block of a request, by its tool_use_id."""
    blocks = [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]]
    return {b["tool_use_id"]: b["content"] for b in blocks if b.get("type") == "tool_result"}


def _dump(items: Any) -> list[str]:
    return [json.dumps(x, sort_keys=True, ensure_ascii=False) for x in items]


def _anthropic_run(draft: Any, order: str, monkeypatch: pytest.MonkeyPatch) -> tuple[MessagesAPI, dict[str, Any]]:
    import httpx2
    import langchain_anthropic.chat_models as chat_models
    from langchain_anthropic import ChatAnthropic
    from langchain_anthropic.middleware import AnthropicPromptCachingMiddleware

    api = MessagesAPI()
    # ChatAnthropic builds its anthropic.Client around this helper's httpx2 client; swapping the
    # client's transport keeps everything else real (the SDK, the payload, the response parsing).
    monkeypatch.setattr(
        chat_models, "_get_default_httpx_client", lambda **_: httpx2.Client(transport=httpx2.MockTransport(api))
    )
    model = ChatAnthropic(model="claude-sonnet-4-5", api_key="test", max_retries=0)
    cache = AnthropicPromptCachingMiddleware(unsupported_model_behavior="raise")
    compress = SpecPrefillMiddleware(draft=draft, keep_ratio=0.3)
    middleware = [compress, cache] if order == "compress-first" else [cache, compress]
    agent = create_agent(model, TOOLS, system_prompt=SYSTEM, middleware=middleware, checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": f"anthropic-{order}"}}
    agent.invoke({"messages": [HumanMessage(request("json/decoder.py"))]}, cfg)
    return api, agent.get_state(cfg).values


@pytest.mark.real
@pytest.mark.slow
def test_anthropic_prompt_caching_sends_stable_compressed_tool_results(smol, monkeypatch):
    """Recommended order: ``middleware=[SpecPrefillMiddleware(...), AnthropicPromptCachingMiddleware()]``.

    Both are ``wrap_model_call`` hooks, so the first listed is the outer one. The caching middleware
    (langchain-anthropic 1.7) tags the system prompt's last block and the last tool, and passes
    ``cache_control`` as a model setting that ChatAnthropic sends as the request's top-level
    ``cache_control`` (automatic caching: the breakpoint goes on the last block of the request). It
    never edits the messages, so today both orders send the same bytes (this test checks it), and
    the compressed tool results, decided once, keep every request's prefix byte-identical up to the
    previous request's breakpoint. List the compression first, as the outer layer, anyway: a cache
    breakpoint belongs on the bytes actually sent, so the caching layer should see the request after
    every layer that edits the messages. A caching layer that tagged message blocks itself would,
    listed first, hand the compression tool results whose content had changed (a new digest, so
    decided again) and put its breakpoint on text the compression then replaces.
    """
    api, values = _anthropic_run(smol, "compress-first", monkeypatch)
    bodies = api.bodies
    assert len(bodies) == len(ANTHROPIC_STEPS) + 1
    for body in bodies:
        assert body["cache_control"] == {"type": "ephemeral", "ttl": "5m"}  # the breakpoint
        assert body["system"][-1]["cache_control"] == body["cache_control"]
        assert body["tools"][-1]["cache_control"] == body["cache_control"]
        assert "read_full_output" in {t["name"] for t in body["tools"]}  # our recall tool is sent too
    for prev, cur in itertools.pairwise(bodies):
        upto = _breakpoint(prev) + 1
        assert _dump(prev["messages"][:upto]) == _dump(cur["messages"][:upto])  # byte-identical prefix
        assert _dump([prev["system"], prev["tools"]]) == _dump([cur["system"], cur["tools"]])

    # What was sent is the compressed form in the state, decided when the result arrived.
    originals = {m.tool_call_id: m for m in values["messages"] if isinstance(m, ToolMessage)}
    sent = _tool_results(bodies[-1])
    assert sorted(sent) == sorted(originals) == ["toolu_0", "toolu_1", "toolu_2"]
    for call in ("toolu_0", "toolu_2"):  # the two files (~4,000 characters each)
        text = sent[call] if isinstance(sent[call], str) else "".join(b["text"] for b in sent[call])
        assert len(text) < 0.6 * len(originals[call].text) and " … " in text
        assert values[FROZEN_KEY][originals[call].id]["content"] == sent[call]
    assert _tool_results(bodies[1])["toolu_0"] == sent["toolu_0"]  # compressed the first time it was sent

    # The other order sends the very same requests.
    other, _ = _anthropic_run(smol, "cache-first", monkeypatch)
    assert [_dump([b]) for b in other.bodies] == [_dump([b]) for b in bodies]
