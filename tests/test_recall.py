"""Recall that always works (module ``recall``): on by default in every agent face, the note on every
compressed output in both modes (content blocks too) naming how much it hides with the configured gap
marker, and a recall output never compressed again, however the compressor was built."""

from __future__ import annotations

import re

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from specprefill_langchain import SelectionConfig, SpecPrefillCompressor, SpecPrefillNode, recall_tool
from specprefill_langchain.recall import RECALL_TOOL, note, original_output
from specprefill_langchain.step import AgentStep, StepInput

pytestmark = pytest.mark.usefixtures("one_thread")
TEXT = "\n".join(f"row {i}: value {i * 7} of the table" for i in range(150))


def _msgs(content: object = TEXT, name: str = "read") -> list:
    call = {"name": name, "args": {"ref": "call_0"} if name == RECALL_TOOL else {}, "id": "c1", "type": "tool_call"}
    return [
        SystemMessage("sys"),
        HumanMessage("what is in the table?"),
        AIMessage("", tool_calls=[call], id="a1"),
        ToolMessage(content, tool_call_id="c1", name=name, id="t1"),
    ]


@pytest.mark.parametrize("mode", ["stable", "per_step"])
def test_every_compressed_output_ends_with_the_note_in_both_modes(tiny, mode: str) -> None:
    gap = " [...] "
    c = SpecPrefillCompressor(draft=tiny, keep_ratio=0.3, selection=SelectionConfig(gap_marker=gap))
    out = AgentStep(c.compress, c.config, mode).decide(StepInput(_msgs()))
    text = out.messages[3].text
    found = re.search(
        r'\["\[\.\.\.\]" marks omitted text, ([\d,]+) of ([\d,]+) chars; read_full_output\(ref="c1"\)', text
    )
    assert found is not None, text[-300:]
    omitted, total = (int(g.replace(",", "")) for g in found.groups())
    assert total == len(TEXT) and 0.5 * total < omitted < total  # about what keep 0.3 leaves out


def test_a_content_block_output_gets_its_note_as_a_text_block(tiny) -> None:
    blocks = [{"type": "text", "text": TEXT}, {"type": "image", "url": "https://example.com/a.png"}]
    c = SpecPrefillCompressor(draft=tiny, keep_ratio=0.3)
    out = AgentStep(c.compress, c.config).decide(StepInput(_msgs(blocks)))
    content = out.messages[3].content
    assert content[1] == blocks[1] and content[-1]["type"] == "text"  # the image untouched, the note appended
    assert content[-1]["text"].startswith('["…" marks omitted text')


def test_a_recall_output_is_never_compressed_whoever_built_the_compressor(tiny) -> None:
    from specprefill_langchain import SpecPrefillMiddleware

    c = SpecPrefillCompressor(draft=tiny, keep_ratio=0.3)  # no skip_tools: the faces must not need one
    for step in (SpecPrefillMiddleware(compressor=c).step, SpecPrefillNode(c)._step):
        for mode in ("stable", "per_step"):
            face = AgentStep(step.compress, step.config, mode, step.recall)
            assert face.decide(StepInput(_msgs(name=RECALL_TOOL))).messages[3].content == TEXT, mode


def test_recall_is_on_by_default_and_can_be_turned_off(tiny) -> None:
    from specprefill_langchain import SpecPrefillMiddleware

    assert [t.name for t in SpecPrefillMiddleware(draft=tiny).tools] == [RECALL_TOOL]
    assert SpecPrefillMiddleware(draft=tiny, recall_tool=False).tools == []
    c = SpecPrefillCompressor(draft=tiny, keep_ratio=0.3)
    assert SpecPrefillNode(c).recall
    off = SpecPrefillNode(c, recall=False)._step.decide(StepInput(_msgs()))
    assert "read_full_output" not in off.messages[3].text and len(off.messages[3].text) < len(TEXT)


def test_the_tool_returns_the_original_from_the_state() -> None:
    msgs = _msgs()
    tool = recall_tool()
    assert tool.name == RECALL_TOOL
    assert original_output(msgs, "c1") == TEXT
    assert "no tool output has ref 'nope'" in original_output(msgs, "nope")
    compressed = msgs[3].model_copy(update={"content": "row 1 …"})
    text = note(msgs[3], compressed, " … ")
    assert f"{len(TEXT) - len('row 1 '):,} of {len(TEXT):,} chars" in text  # the marker is not kept text
