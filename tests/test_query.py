"""What the draft's queries ask about (module ``query``), on hand-made messages: no model."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from specprefill_langchain.query import build_query, step_text


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


def test_step_query_holds_salient_lines_the_fetching_call_and_the_request_last() -> None:
    msgs = _loop()
    q = build_query(msgs, "step", exclude={3})  # scoring the read_file output
    assert q is not None
    assert "ERROR upload rejected: no entry for extension '.qzx'" in q  # a salient line of a newer result
    assert "read_file path=json/decoder.py symbol=py_scanstring" in q  # the call that fetched what is scored
    assert "tail_log" not in q  # a call whose result is not being scored says nothing about it
    assert q.endswith("Uploads fail for some files; find out why.")


def test_results_being_scored_are_not_restated() -> None:
    msgs = _loop()
    text = step_text(msgs, scored={5})
    assert "ERROR upload" not in text and "ordinary output" not in text  # neither its text nor another's
    assert text == "tail_log service=uploads"  # only the call that fetched it


def test_request_mode_and_one_shot_prompts_use_the_request() -> None:
    msgs = _loop()
    assert build_query(msgs, "request") is None  # None: the transcript's latest human message
    assert build_query([SystemMessage("s"), HumanMessage("q?")], "step") is None  # no agent step yet
    with pytest.raises(ValueError, match="query='both'"):
        build_query(msgs, "both")
