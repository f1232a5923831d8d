"""What the draft's queries ask about (module ``focus``), on hand-made messages: no model."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from specprefill_langchain.focus import focus_text, lead_lines, step_text
from specprefill_langchain.mentions import key_terms


def _loop() -> list:
    filler = "\n".join(f"line {i} of ordinary output" for i in range(80))
    log = filler + "\nERROR upload rejected: no entry for extension '.qzx'\n" + filler
    read = {"name": "read_file", "args": {"path": "json/decoder.py", "symbol": "py_scanstring"}, "id": "c0"}
    return [
        SystemMessage("sys"),
        HumanMessage("Uploads fail for some files; find out why."),
        AIMessage("Reading the scanner.", tool_calls=[read]),
        ToolMessage(filler, tool_call_id="c0", name="read_file"),
        AIMessage("", tool_calls=[{"name": "tail_log", "args": {"service": "uploads"}, "id": "c1"}]),
        ToolMessage(log, tool_call_id="c1", name="tail_log"),
    ]


def test_step_focus_holds_salient_lines_the_fetching_call_and_the_request_last() -> None:
    msgs = _loop()
    q = focus_text(msgs, "step", scored={3})  # scoring the read_file output
    assert q is not None
    assert "ERROR upload rejected: no entry for extension '.qzx'" in q  # a salient line of a newer result
    assert "read_file path=json/decoder.py symbol=py_scanstring" in q  # the call that fetched what is scored
    assert "Reading the scanner." in q  # and the text that announced it
    assert "tail_log" not in q  # a call whose result is not being scored says nothing about it
    assert q.endswith("Uploads fail for some files; find out why.")


def test_results_being_scored_are_not_restated() -> None:
    msgs = _loop()
    text = step_text(msgs, scored={5})
    assert "ERROR upload" not in text and "ordinary output" not in text  # neither its text nor another's
    assert text == "tail_log service=uploads"  # only the call that fetched it


def test_the_grep_hit_that_led_to_a_read_joins_its_focus_and_its_terms() -> None:
    hits = "\n".join(
        [
            "pkg/util.py:12:def unrelated():",
            "pkg/views.py:40:    token = _decode_header_token(raw)",
            "pkg/other.py:7:import os",
        ]
    )
    grep = {"name": "grep", "args": {"pattern": "_decode_header_token"}, "id": "g"}
    read = {"name": "read_file", "args": {"path": "src/pkg/views.py"}, "id": "r"}
    msgs = [
        HumanMessage("Requests with odd headers crash; find out why."),
        AIMessage("", tool_calls=[grep]),
        ToolMessage(hits, tool_call_id="g", name="grep"),
        AIMessage("The grep points at views.py; reading it.", tool_calls=[read]),
        ToolMessage("x = 1\n" * 300, tool_call_id="r", name="read_file"),
    ]
    assert lead_lines(msgs, 3, read) == ["pkg/views.py:40:    token = _decode_header_token(raw)"]
    q = focus_text(msgs, "step", scored={4})
    assert q is not None and "_decode_header_token(raw)" in q and "reading it" in q
    assert "_decode_header_token" in key_terms(q)  # so mentions keep the chunk that defines it
    assert "unrelated" not in q and "import os" not in q  # hits that name another file are not leads


def test_request_focus_and_one_shot_prompts_use_the_request() -> None:
    msgs = _loop()
    assert focus_text(msgs, "request") is None  # None: the transcript's latest human message
    assert focus_text([SystemMessage("s"), HumanMessage("q?")], "step") is None  # no agent step yet
    with pytest.raises(ValueError, match="focus='both'"):
        focus_text(msgs, "both")
