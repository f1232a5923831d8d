"""SpecPrefillCompressor as a LangChain Runnable, on the real SmolLM2 draft."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableLambda
from transcripts import NEEDLE, agent_transcript

from specprefill_langchain import (
    STATS_EVENT,
    CompressorConfig,
    Explanation,
    SpecPrefillCompressor,
    compress_messages,
)
from specprefill_langchain.draft import PREFILL_CHUNK
from specprefill_langchain.transcript import Transcript

pytestmark = pytest.mark.real


class RecordingChat(BaseChatModel):
    """A fake target that records what it was sent and counts 'target tokens' as words."""

    seen: list[list[BaseMessage]] = []  # noqa: RUF012

    @property
    def _llm_type(self) -> str:
        return "recording"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any):
        self.seen.append(list(messages))
        size = sum(len(m.text) for m in messages)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(f"read {size} chars"))])

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Any = None) -> int:
        return sum(len(m.text.split()) + 4 for m in messages)


class StatsHandler(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[dict] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        if name == STATS_EVENT:
            self.events.append(data)


@pytest.fixture(scope="module")
def transcript():
    return agent_transcript(6000)


@pytest.fixture(scope="module")
def compressor(smol):
    return SpecPrefillCompressor(draft=smol, keep_ratio=0.3)


def _text(messages):
    return "\n".join(m.text for m in messages)


def _assert_structure(out, msgs):
    assert [type(m) for m in out] == [type(m) for m in msgs]
    assert [m.id for m in out] == [m.id for m in msgs]
    for o, m in zip(out, msgs, strict=True):
        if isinstance(m, AIMessage):
            assert o.tool_calls == m.tool_calls
        if isinstance(m, ToolMessage):
            assert o.tool_call_id == m.tool_call_id


def test_invoke_compresses_and_keeps_the_evidence(compressor, transcript):
    before = copy.deepcopy(transcript)
    out = compressor.invoke(transcript)
    assert transcript == before  # never mutated
    _assert_structure(out, transcript)
    assert out[0] is transcript[0] and out[-1] is transcript[-1]  # system and question untouched
    assert NEEDLE in _text(out)
    assert len(_text(out)) < 0.45 * len(_text(transcript))


async def test_ainvoke_matches_invoke(compressor, transcript):
    out = await compressor.ainvoke(transcript)
    assert out == compressor.invoke(transcript)


@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.5])
def test_kept_share_is_within_five_points_of_keep_ratio(smol, transcript, ratio):
    r = SpecPrefillCompressor(draft=smol, keep_ratio=ratio).compress(transcript)
    assert abs(r.stats.kept_fraction - ratio) <= 0.05, r.stats


def test_stats_and_callback_event(compressor, transcript):
    handler = StatsHandler()
    compressor.invoke(transcript, config={"callbacks": [handler], "configurable": {"thread_id": "t1"}})
    assert len(handler.events) == 1
    ev = handler.events[0]
    assert ev["cache_key"] == "t1" and ev["draft_tokens_in"] > ev["draft_tokens_out"] > 0
    assert 0 < ev["ratio"] < 1 and ev["total_s"] > 0
    assert compressor.last_stats is not None and compressor.last_stats.cache_key == "t1"


async def test_callback_event_async(compressor, transcript):
    handler = StatsHandler()
    await compressor.ainvoke(transcript, config={"callbacks": [handler]})
    assert len(handler.events) == 1 and handler.events[0]["compressible_kept"] > 0


def test_chain_with_prompt_template_and_target(smol, transcript):
    target = RecordingChat()
    target.seen.clear()
    prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("history")])
    compressor = SpecPrefillCompressor(draft=smol, keep_ratio=0.3, target=target)
    chain = prompt | compressor | target
    reply = chain.invoke({"history": transcript})
    assert reply.content.startswith("read ")
    sent = target.seen[-1]
    _assert_structure(sent, transcript)
    assert NEEDLE in _text(sent)
    stats = compressor.last_stats
    assert stats.target_tokens_in == target.get_num_tokens_from_messages(transcript)
    assert stats.target_tokens_out == target.get_num_tokens_from_messages(sent)


async def test_chain_async(smol, transcript):
    target = RecordingChat()
    chain = (
        ChatPromptTemplate.from_messages([MessagesPlaceholder("history")])
        | SpecPrefillCompressor(draft=smol, keep_ratio=0.3)
        | target
    )
    reply = await chain.ainvoke({"history": transcript})
    assert reply.content.startswith("read ")


def test_max_target_tokens_is_respected(smol, transcript):
    target = RecordingChat()
    full = target.get_num_tokens_from_messages(transcript)
    c = SpecPrefillCompressor(draft=smol, keep_ratio=1.0, max_target_tokens=full // 3, target=target)
    r = c.compress(transcript)
    assert r.stats.target_tokens_out <= full // 3
    assert r.stats.target_tokens_out > full // 6  # it uses the budget, not far less


def test_batch_and_stream(compressor, transcript):
    outs = compressor.batch([transcript, transcript[:6]])
    assert len(outs) == 2 and len(outs[1]) == 6
    chunks = list(compressor.stream(transcript))
    assert len(chunks) == 1 and chunks[0] == outs[0]


async def test_abatch_and_astream(compressor, transcript):
    outs = await compressor.abatch([transcript, transcript[:6]])
    assert len(outs) == 2
    chunks = [c async for c in compressor.astream(transcript)]
    assert chunks[0] == outs[0]


def test_small_input_passes_through(compressor):
    msgs = [HumanMessage("hi"), AIMessage("hello"), HumanMessage("how are you?")]
    r = compressor.compress(msgs)
    assert r.messages == msgs and r.stats.passthrough and "threshold" in r.stats.reason


def test_prompt_value_input(compressor, transcript):
    pv = ChatPromptTemplate.from_messages([MessagesPlaceholder("h")]).invoke({"h": transcript})
    assert compressor.invoke(pv) == compressor.invoke(transcript)


def test_explain_view(compressor, transcript):
    ex = compressor.explain(transcript)
    assert isinstance(ex, Explanation)
    s = str(ex)
    assert "[-" in s and "draft tokens" in s and NEEDLE in s
    html = ex._repr_html_()
    assert "line-through" in html and "<b>SpecPrefill</b>" in html


def test_compress_messages_function_and_runnable(smol, transcript):
    runnable = compress_messages(draft=smol, keep_ratio=0.3)
    assert isinstance(runnable, SpecPrefillCompressor)
    out = compress_messages(transcript, draft=smol, keep_ratio=0.3)
    assert out == runnable.invoke(transcript)


def test_compress_messages_reuses_one_compressor_and_its_kv_cache(smol, transcript):
    """Two calls of the functional form with the same settings share one compressor, so the second,
    on the grown transcript, takes the first one's prefix from the draft's KV cache."""
    handler = StatsHandler()
    settings = {"draft": "smollm2-135m", "keep_ratio": 0.35, "dtype": "float32"}  # this test's own settings
    agent_step = RunnableLambda(lambda msgs: compress_messages(msgs, **settings))
    early = [*transcript[:6], transcript[-1]]  # two tool results so far, then the question
    agent_step.invoke(early, {"callbacks": [handler]})
    out = agent_step.invoke(transcript, {"callbacks": [handler]})  # one more tool call and result
    assert len(handler.events) == 2, "compress_messages should emit one stats event per call"
    first, second = handler.events
    assert first["reused_tokens"] == 0 and not first["passthrough"] and not second["passthrough"]
    shared = len(Transcript(transcript[:6], smol.tokenizer, CompressorConfig().policy).ids)
    # Whole prefill chunks of the shared prefix come from the cache (a partial last one is prefilled again).
    assert shared - PREFILL_CHUNK <= second["reused_tokens"] <= shared, (second["reused_tokens"], shared)
    assert second["prefilled_tokens"] < second["draft_tokens_in"] - shared + 64 + PREFILL_CHUNK
    assert NEEDLE in _text(out)


def test_config_is_printable_serialisable_and_validated():
    cfg = CompressorConfig(keep_ratio=0.25)
    assert "keep_ratio=0.25" in repr(cfg)
    d = cfg.to_dict()
    assert d["policy"]["roles"] == ["ai", "human", "tool"] and d["scoring"] == {
        "focus": "step",
        "depth": 0.65,
        "hop_chunks": 3,
    }
    for bad in (0, -1, 1.5, "x", True):
        with pytest.raises(ValueError, match="keep_ratio"):
            CompressorConfig(keep_ratio=bad)
    with pytest.raises(ValueError, match="max_target_tokens"):
        CompressorConfig(max_target_tokens=-5)
    with pytest.raises(ValueError, match="smollm2-135m"):
        SpecPrefillCompressor(draft="no-such-draft", keep_ratio=0.3)
    with pytest.raises(TypeError, match="unknown option"):
        SpecPrefillCompressor(keep_ratio=0.3, keepratio=2)


def test_bad_input_types(compressor):
    with pytest.raises(TypeError, match="list of messages"):
        compressor.invoke("just a string")
    with pytest.raises(TypeError, match="list of messages"):
        compressor.invoke(42)
