"""Target-token counting: each distinct message counted once, extras counted, budgets that cannot be met.

The target is a real LangChain chat model class (``FakeListChatModel``) whose stock counter,
``BaseLanguageModel.get_num_tokens_from_messages``, tokenizes each message's buffer string with
``custom_get_token_ids`` (here SmolLM2's tokenizer, so nothing is downloaded). It adds 3 tokens per
call, as OpenAI's counter does for the reply primer, and records every call.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import Field
from transcripts import NEEDLE, agent_transcript, pydoc_page

from specprefill_langchain import CompressorConfig, SpecPrefillCompressor
from specprefill_langchain.engine import Call, compress
from specprefill_langchain.targets import TargetCounter

pytestmark = pytest.mark.real

PRIMER = 3  # what the counter adds to every call, messages or not


class CountingChat(FakeListChatModel):
    """A fake target whose stock counter records how many messages each call was given."""

    calls: list[int] = Field(default_factory=list)

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Any = None) -> int:
        self.calls.append(len(messages))
        return super().get_num_tokens_from_messages(messages, tools) + PRIMER


@pytest.fixture
def target(smol) -> CountingChat:
    return CountingChat(
        responses=["ok"], custom_get_token_ids=lambda s: smol.tokenizer.encode(s, add_special_tokens=False)
    )


@pytest.fixture(scope="module")
def transcript() -> list[BaseMessage]:
    return agent_transcript(6000)


def true_count(target: CountingChat, messages: list[BaseMessage]) -> int:
    """The target's own count of the whole prompt in one call (not recorded)."""
    n = target.get_num_tokens_from_messages(messages)
    target.calls.pop()
    return n


def _distinct(messages: list[BaseMessage]) -> int:
    keys = {(m.type, m.text, getattr(m, "tool_call_id", None), str(getattr(m, "tool_calls", ""))) for m in messages}
    return len(keys)


# --------------------------------------------------------------------------- the counter itself
def test_each_distinct_message_is_counted_once(target, transcript) -> None:
    counter = TargetCounter(target)
    first = counter.count(transcript)
    assert first == true_count(target, transcript)  # per-message sums plus one primer: exact
    assert target.calls == [0] + [1] * len(transcript)  # the primer once, then one call per message
    assert counter.count(transcript) == first
    assert len(target.calls) == 1 + len(transcript)  # the second count asked the target nothing
    grown = [*transcript, AIMessage("The key is kiwi-4417."), HumanMessage("thanks")]
    assert counter.count(grown) == true_count(target, grown)
    assert len(target.calls) == 1 + len(transcript) + 2  # only the two new messages
    twice = [transcript[3], transcript[3], transcript[3]]
    assert counter.count(twice) == true_count(target, twice)
    assert len(target.calls) == 1 + len(transcript) + 2  # already known: no call at all


def test_messages_that_differ_only_in_what_a_provider_reads_are_counted_apart(target) -> None:
    counter = TargetCounter(target)
    a = ToolMessage("same output", tool_call_id="call_1", name="read")
    b = ToolMessage("same output", tool_call_id="call_2", name="read")  # OpenAI counts the call id
    c = ToolMessage("same output", tool_call_id="call_1", name="read", id="another-id")  # ids are not sent
    counter.count([a, b, c])
    assert target.calls == [0, 1, 1]


def test_counts_are_bounded_lru(target) -> None:
    counter = TargetCounter(target, max_entries=2)
    msgs = [HumanMessage(f"message number {i}") for i in range(3)]
    counter.count(msgs)
    assert len(target.calls) == 4
    counter.count(msgs[2:])  # still remembered
    assert len(target.calls) == 4
    counter.count(msgs[:1])  # evicted (least recently used): asked again
    assert len(target.calls) == 5


def test_counter_errors(target) -> None:
    with pytest.raises(TypeError, match="target=str can count no tokens"):
        TargetCounter("gpt-4o")
    with pytest.raises(ValueError, match="max_entries=0 must be a whole number"):
        TargetCounter(target, max_entries=0)

    class NoNumber(CountingChat):
        def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Any = None) -> Any:
            return None

    with pytest.raises(TypeError, match="returned None, not a number"):
        TargetCounter(NoNumber(responses=["ok"])).count([HumanMessage("hi")])

    class RefusesEmpty(CountingChat):
        def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Any = None) -> int:
            if not messages:
                msg = "messages must not be empty"
                raise ValueError(msg)
            return super().get_num_tokens_from_messages(messages, tools)

    refuses = RefusesEmpty(responses=["ok"], custom_get_token_ids=target.custom_get_token_ids)
    counter = TargetCounter(refuses)
    assert counter.overhead == 0  # no primer to remove: each message then counts its own
    assert counter.count([HumanMessage("hello there")]) == true_count(target, [HumanMessage("hello there")])


# --------------------------------------------------------------------------- inside a compression
def test_budgeted_compression_counts_messages_not_whole_prompts(smol, target, transcript) -> None:
    """The budget loop recounts only the messages it changed, one message per call of the target."""
    full = true_count(target, transcript)
    budget = int(0.3 * full)
    compressor = SpecPrefillCompressor(draft=smol, keep_ratio=0.5, max_target_tokens=budget, target=target)
    r = compressor.compress(transcript)
    assert not r.stats.passthrough and r.stats.error is None
    assert r.stats.target_tokens_in == full
    assert r.stats.target_tokens_out == true_count(target, r.messages) <= budget
    assert r.stats.target_tokens_out > 0.2 * full  # it fills the budget rather than dropping everything
    assert not r.stats.target_budget_exceeded
    assert NEEDLE in "\n".join(m.text for m in r.messages)
    # Never the whole prompt in one call: each call counts one message (or none, for the primer).
    assert max(target.calls) <= 1
    changed = _distinct([o for o, m in zip(r.messages, transcript, strict=True) if o.text != m.text])
    assert changed == 3  # the three tool outputs
    # Input messages, the compressed outputs, the primer, and at most two more budget rounds.
    assert sum(target.calls) <= _distinct(transcript) + changed + 2 * changed
    assert len(target.calls) <= 1 + _distinct(transcript) + 3 * changed


def test_target_extra_is_counted_and_takes_budget(smol, target, transcript) -> None:
    """A system prompt kept apart (as in the middleware) counts in target_tokens_in and in the budget."""
    extra = [SystemMessage(pydoc_page(dict, 3000))]
    extra_tokens = true_count(target, extra) - PRIMER
    assert extra_tokens > 500
    full = true_count(target, transcript)
    budget = int(0.4 * full) + extra_tokens
    cfg = CompressorConfig(keep_ratio=0.5, max_target_tokens=budget)
    r = compress(transcript, smol, cfg, target=TargetCounter(target), call=Call(target_extra=extra))
    assert r.stats.target_tokens_in == true_count(target, [*extra, *transcript]) == full + extra_tokens
    assert r.stats.target_tokens_out == true_count(target, [*extra, *r.messages]) <= budget
    assert r.stats.target_tokens_out > budget - 0.15 * full
    assert len(r.messages) == len(transcript)  # the extra is counted, never added to the output
    assert not r.stats.target_budget_exceeded


def test_budget_below_the_protected_text_is_flagged_not_an_error(smol, target, transcript) -> None:
    """The system prompt and the question alone are over the budget: everything compressible goes,
    the stats say the budget was not met, and nothing raises."""
    protected = true_count(target, [transcript[0], transcript[-1]])
    compressor = SpecPrefillCompressor(draft=smol, keep_ratio=0.5, max_target_tokens=protected // 2, target=target)
    r = compressor.compress(transcript)
    assert r.stats.error is None and not r.stats.passthrough
    assert r.stats.target_budget_exceeded
    assert r.stats.target_tokens_out == true_count(target, r.messages) > protected // 2
    assert r.stats.target_tokens_out < 0.1 * r.stats.target_tokens_in
    assert r.stats.compressible_kept == 0  # it dropped all it could
    assert r.messages[0] == transcript[0] and r.messages[-1] == transcript[-1]
    assert [m.tool_calls for m in r.messages if isinstance(m, AIMessage)] == [
        m.tool_calls for m in transcript if isinstance(m, AIMessage)
    ]
    assert [m.tool_call_id for m in r.messages if isinstance(m, ToolMessage)] == ["call_1", "call_2", "call_3"]
    assert max(target.calls) <= 1


def test_a_plain_callable_counts_like_trim_messages_token_counter() -> None:
    seen: list[int] = []

    def count(messages: list[BaseMessage]) -> int:
        seen.append(len(messages))
        return sum(len(m.text.split()) for m in messages)

    counter = TargetCounter(count)
    msgs = [HumanMessage("one two three"), AIMessage("four five")]
    assert counter.count(msgs) == 5
    assert counter.count(msgs) == 5 and seen.count(1) == 2  # each message counted once, then remembered
