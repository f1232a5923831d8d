"""Transcript: per-message tokenization (prefix-stable), policy, char spans, rebuild."""

from __future__ import annotations

import copy

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from transcripts import agent_transcript

from specprefill_langchain import PolicyConfig
from specprefill_langchain.boundaries import Cut
from specprefill_langchain.chatformat import chat_format
from specprefill_langchain.policy import compressible_mask
from specprefill_langchain.transcript import Transcript


def test_ids_of_step_n_are_a_prefix_of_step_n_plus_1(smol):
    msgs = agent_transcript(2000)
    a = Transcript(msgs[:4], smol.tokenizer, PolicyConfig())
    b = Transcript(msgs, smol.tokenizer, PolicyConfig())
    assert b.ids[: len(a.ids)] == a.ids


def test_chatml_rendering_matches_the_models_template(smol):
    assert chat_format(smol.tokenizer).header("human") == "<|im_start|>user\n"
    t = Transcript([SystemMessage("Be brief."), HumanMessage("hi")], smol.tokenizer, PolicyConfig())
    text = smol.tokenizer.decode(t.ids)
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"


def test_default_policy():
    msgs = agent_transcript(500)
    p = PolicyConfig()
    flags = compressible_mask(msgs, p)
    # system, request (older human), ai-1, tool, ai, tool, ai (text), tool, final question
    assert flags == [False, True, True, True, True, True, True, True, False]
    only_tools = PolicyConfig(roles={"tool"})
    assert compressible_mask(msgs, only_tools) == [
        False,
        False,
        False,
        True,
        False,
        True,
        False,
        True,
        False,
    ]
    skip = PolicyConfig(roles={"tool"}, skip_tools={"pydoc"})
    assert not compressible_mask(msgs, skip)[5] and compressible_mask(msgs, skip)[3]
    assert not compressible_mask(msgs, PolicyConfig(protect_last=2))[7]
    listed = compressible_mask(msgs, PolicyConfig(tools={"http_get_json"}))
    assert listed[7] and not listed[3]
    assert compressible_mask(msgs, p, only={3, 5}) == [i in (3, 5) for i in range(len(msgs))]


def test_spans_tile_the_text_and_breaks_never_split_characters(smol):
    text = "def f(a=1):\n    return 'é😀日本'  # x\u0301\n\n{\"k\": 1},\nend"
    msgs = [HumanMessage("q0"), ToolMessage(text, tool_call_id="c"), HumanMessage("q")]
    t = Transcript(msgs, smol.tokenizer, PolicyConfig())
    part = next(p for p in t.parts if p.compressible and p.message == 1)
    assert part.text == text
    pieces = [part.char_span(i, i + 1) for i in range(part.n_tokens)]
    assert "".join(text[a:b] for a, b in pieces) == text
    assert part.breaks[-1] == Cut.LINE  # the end of a text cuts like a line end
    for i, level in enumerate(part.breaks[:-1]):
        cut = part.char_span(0, i + 1)[1]
        if level != Cut.NONE:
            left, right = text[:cut], text[cut:]
            assert (left + right).encode("utf-8").decode("utf-8") == text
            assert not right or right[0] != "\u0301"
    assert Cut.LINE in part.breaks and Cut.SPACE in part.breaks


def test_content_blocks_and_tool_calls_are_protected(smol):
    img = {"type": "image", "url": "https://example.invalid/x.png"}
    msgs = [
        HumanMessage(content=[{"type": "text", "text": "look at this " * 20}, img]),
        AIMessage("calling", tool_calls=[{"name": "grep", "args": {"pattern": "x" * 50}, "id": "c1"}]),
        ToolMessage("result " * 30, tool_call_id="c1"),
        HumanMessage("and?"),
    ]
    t = Transcript(msgs, smol.tokenizer, PolicyConfig())
    protected = [p.text for p in t.parts if not p.compressible]
    assert "[image]" in protected
    assert any('"pattern": "' in p for p in protected)
    comp = [(p.message, p.block) for p in t.compressible_parts]
    assert comp == [(0, 0), (1, None), (2, None)]


def test_rebuild_keeps_structure_and_never_mutates(smol):
    msgs = agent_transcript(1500)
    before = copy.deepcopy(msgs)
    t = Transcript(msgs, smol.tokenizer, PolicyConfig())
    kept = {pi: [(0, 10)] for pi, p in enumerate(t.parts) if p.compressible}
    out = t.rebuild(kept, " … ")
    assert msgs == before
    assert [type(m) for m in out] == [type(m) for m in msgs]
    assert [m.id for m in out] == [m.id for m in msgs]
    for o, m in zip(out, msgs, strict=True):
        if isinstance(m, ToolMessage):
            assert o.tool_call_id == m.tool_call_id and o.name == m.name
            assert o.content == m.content[:10] + " …"
        if isinstance(m, AIMessage):
            assert o.tool_calls == m.tool_calls
    assert out[0] is msgs[0] and out[-1] is msgs[-1]


def test_scoring_sequence_restates_the_request_when_tools_follow(smol):
    msgs = agent_transcript(800)
    t = Transcript(msgs, smol.tokenizer, PolicyConfig())
    ids, qs = t.scoring_sequence()
    assert ids[: len(t.ids)] == t.ids and qs >= min(p.start for p in t.parts if p.message == 8)
    agent_step = msgs[:-1]  # the request is earlier; the last message is a tool output
    t2 = Transcript(agent_step, smol.tokenizer, PolicyConfig())
    ids2, qs2 = t2.scoring_sequence()
    assert qs2 == len(t2.ids)
    assert "deployment key" in smol.tokenizer.decode(ids2[qs2:])
    t3 = Transcript(agent_step, smol.tokenizer, PolicyConfig(), focus="read_file path=x.py")
    ids3, qs3 = t3.scoring_sequence()
    assert qs3 == len(t3.ids) and smol.tokenizer.decode(ids3[qs3:]).count("read_file path=x.py") == 1


def test_unread_messages_stand_as_a_placeholder_and_stay_whole(smol):
    msgs = agent_transcript(800)
    t = Transcript(msgs, smol.tokenizer, PolicyConfig(), unread=frozenset({3}))
    parts = [p for p in t.parts if p.message == 3]
    assert not any(p.compressible for p in parts)
    assert "characters the draft did not read" in smol.tokenizer.decode(t.ids[parts[0].start : parts[-1].end])
    assert t.rebuild({}, " … ")[3] is msgs[3]


def test_lone_surrogates_are_read_as_replacement_characters(smol):
    text = "data \udcff\udcfe end\n" * 40
    msgs = [HumanMessage("q0"), ToolMessage(text, tool_call_id="c"), HumanMessage("q")]
    t = Transcript(msgs, smol.tokenizer, PolicyConfig())
    part = next(p for p in t.parts if p.compressible and p.message == 1)
    assert part.text == text and len(part.starts) == part.n_tokens  # offsets still index the original
