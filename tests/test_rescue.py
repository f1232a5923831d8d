"""Rescue: what a later step names in the dropped part of an earlier output comes back, append-only.

The rules on hand-made messages (module ``rescue``, no model), then whole agent loops with the real
SmolLM2 draft: a real failing check names a function of a file read earlier, and the function's ``def``
line is in the model's input although the read was compressed before anyone knew it mattered.
"""

from __future__ import annotations

import itertools

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from specprefill_langchain import SpecPrefillCompressor, StableConfig
from specprefill_langchain.rescue import candidates, report_lines, rescue, source_of, step_terms
from tests.agents import LATE_TOOLS, SYSTEM, PlannedChatModel, StatsCollector

SOURCE = "\n".join(
    [
        "import os",
        "",
        "def load_config(path, strict=True):",
        "    with open(path) as f:",
        "        return parse(f.read(), strict)",
        "",
        "def parse_header(line):",
        "    key, _, value = line.partition(':')",
        "    return key.strip(), value.strip()",
        "",
        "def unrelated():",
        "    return None",
    ]
)


def _read(offset: int = 1) -> tuple[ToolMessage, dict]:
    call = {"name": "read_file", "args": {"path": "src/app/config.py", "offset": offset}, "id": "c1"}
    return ToolMessage(SOURCE, tool_call_id="c1", name="read_file"), call


def _source(offset: int = 1):
    m, call = _read(offset)
    return [source_of(3, m, call)]


def test_a_traceback_frame_points_at_the_line_of_the_earlier_read() -> None:
    text = 'Traceback (most recent call last):\n  File "/srv/app/src/app/config.py", line 47, in parse_header'
    found = candidates(_source(offset=40), text)
    assert found[0] == (0, 7)  # file line 47 is output line 8 (offset 40): the frame's line, first
    block = rescue(_source(offset=40), text, lambda line: False, 400)
    assert block is not None and "    key, _, value = line.partition(':')" in block.text
    assert "[from read_file c1 (src/app/config.py), lines 46-47:]" in block.text  # the def too, labelled


def test_a_failing_test_names_a_function_and_its_def_comes_first() -> None:
    text = "FAILED tests/test_config.py::test_parse_header - AssertionError: parse_header('x') returned None"
    assert "parse_header" in step_terms(text)
    found = candidates(_source(), text)
    assert found[0] == (0, 6)  # the def line before any use
    block = rescue(_source(), text, lambda line: False, 60)
    assert block is not None and block.text.splitlines()[-1] == "def parse_header(line):"
    assert block.chars <= 60 + len("\n[specprefill: lines of earlier outputs that this step names]\n") + 80


def test_visible_lines_are_never_sent_again_and_the_budget_holds() -> None:
    text = "ERROR load_config failed for 'settings.toml'"
    assert rescue(_source(), text, lambda line: line == "def load_config(path, strict=True):", 400) is None
    assert rescue(_source(), text, lambda line: False, 10) is None  # no line fits a 10-character budget


def test_a_code_listing_reports_nothing_and_common_terms_point_nowhere() -> None:
    listing = ToolMessage("\n".join(["    raise ValueError('bad config')"] * 3 + ["x = 1"] * 20), tool_call_id="c")
    assert report_lines(listing) == []  # a read file's `raise ValueError` is code, not a report
    common = "\n".join(["def strip():", *("    s.strip()" for _ in range(5))])
    src = [source_of(3, ToolMessage(common, tool_call_id="c2", name="read_file"), None)]
    assert candidates(src, "ERROR strip( failed") == [(0, 0)]  # the definition; its five uses are too common
    assert candidates(src, "ERROR s.strip() failed for 'zzz'") == [(0, 0)]


# --------------------------------------------------------------------------- in agent loops, real draft
def _late_loop(smol, rescue_on: bool) -> tuple[PlannedChatModel, dict]:
    from langchain.agents import create_agent

    from specprefill_langchain import SpecPrefillMiddleware

    model, stats = PlannedChatModel(late=True), StatsCollector()
    mw = SpecPrefillMiddleware(draft=smol, keep_ratio=0.1, stable=StableConfig(rescue=rescue_on))
    agent = create_agent(model, LATE_TOOLS, system_prompt=SYSTEM, middleware=[mw], checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": f"late-{rescue_on}"}, "callbacks": [stats]}
    agent.invoke({"messages": [HumanMessage("Some checks of json.decoder fail; find out why.")]}, cfg)
    return model, {"state": agent.get_state(cfg).values, "events": stats.events}


@pytest.mark.real
def test_the_def_line_a_failing_check_names_comes_back_append_only(smol, one_thread) -> None:
    model, out = _late_loop(smol, rescue_on=True)
    evidence = "def py_scanstring(s, end, strict=True,"
    last = model.received[-1]
    assert evidence in "\n".join(m.text for m in last)
    for prev, cur in itertools.pairwise(model.received):  # append-only, rescue included
        assert [(m.type, m.content) for m in prev] == [(m.type, m.content) for m in cur[: len(prev)]]
    read = next(m for m in last if isinstance(m, ToolMessage) and m.name == "read_file")
    assert evidence not in read.text  # the read itself stays as it was decided: the line was appended later
    check = next(m for m in last if isinstance(m, ToolMessage) and m.name == "run_check")
    assert "[from read_file call_0 (json/decoder.py)" in check.text and evidence in check.text
    assert sum(e["rescues"] for e in out["events"]) >= 1 and sum(e["rescued_chars"] for e in out["events"]) > 0
    history = out["state"]["messages"][:-1]  # the thread before the final answer
    assert len(history) == len(last) - 1  # the last input is the system prompt and that history: nothing added
    off, _ = _late_loop(smol, rescue_on=False)
    assert evidence not in "\n".join(m.text for m in off.received[-1])  # without the rescue it is lost


def test_a_rescue_goes_into_a_content_block_list_too(tiny) -> None:
    from specprefill_langchain.step import AgentStep, StepInput

    compressor = SpecPrefillCompressor(draft=tiny, keep_ratio=0.05)
    step = AgentStep(compressor.compress, compressor.config)
    _, call = _read()
    filler = "\n".join(f"    value_{i} = compute({i})" for i in range(150))
    big = ToolMessage(f"{filler}\n{SOURCE}\n{filler}", tool_call_id="c1", name="read_file", id="r")
    failure = [{"type": "text", "text": "FAILED tests/test_config.py::test_parse_header - AssertionError"}]
    msgs = [
        SystemMessage("sys"),
        HumanMessage("why?"),
        AIMessage("", tool_calls=[{**call, "type": "tool_call"}]),
        big,
        AIMessage("", tool_calls=[{"name": "pytest", "args": {}, "id": "c2", "type": "tool_call"}]),
        ToolMessage(failure, tool_call_id="c2", name="pytest", id="p"),
    ]
    frozen = step.decide(StepInput(msgs[:4])).update
    assert frozen is not None and "def parse_header(line):" not in frozen["r"]["content"]  # dropped on arrival
    out = step.decide(StepInput(msgs, frozen))
    assert out.messages[-1].content[0] == failure[0] and out.messages[-1].content[-1]["type"] == "text"
    assert "def parse_header(line):" in out.messages[-1].content[-1]["text"] and out.stats.rescues >= 1
    assert out.update is not None and out.update["p"]["rescue"] == out.messages[-1].content[-1]["text"]
    again = step.decide(StepInput(msgs, {**frozen, **out.update}))  # the same step run again (a retry)
    assert again.messages == out.messages and again.update is None  # decided already: nothing new


def test_the_drafts_order_decides_what_fits_when_the_named_lines_overflow() -> None:
    many = "\n".join([f"def handler_{i}(event):" for i in range(6)] + ["x = 1"] * 30)
    src = [source_of(3, ToolMessage(many, tool_call_id="c3", name="read_file"), None)]
    text = "FAILED: handler_0( handler_1( handler_2( handler_3( handler_4( handler_5( all raised"
    plain = rescue(src, text, lambda line: False, 30)  # room for one line
    assert plain is not None and "def handler_0(event):" in plain.text  # the step's own order: handler_0 first

    def prefer_five(lines: list[str], focus: str) -> list[float]:
        assert focus == text
        return [1.0 if "handler_5" in line else 0.0 for line in lines]

    ranked = rescue(src, text, lambda line: False, 30, prefer_five)
    assert ranked is not None and "def handler_5(event):" in ranked.text and "handler_0" not in ranked.text
    fits = rescue(src, text, lambda line: False, 10_000, prefer_five)
    assert fits is not None and fits.lines == 6  # everything fits: no need to ask the draft


@pytest.mark.real
def test_the_draft_scores_lines_by_the_focus(smol, one_thread) -> None:
    from specprefill_langchain import SpecPrefillCompressor

    compressor = SpecPrefillCompressor(draft=smol)
    lines = [
        "timeout_seconds = 30",
        "retry_backoff = exponential",
        "log_format = json",
        "max_upload_size = 10MB",
    ]
    scores = compressor.line_scores(lines, "ERROR upload rejected: file larger than max_upload_size")
    assert len(scores) == 4 and all(s >= 0 for s in scores)
    assert max(range(4), key=lambda i: scores[i]) == 3  # the line the error names reads as the most relevant


def test_a_follow_up_question_in_plain_words_finds_its_record() -> None:
    table = "\n".join(
        ['{"alias": "english", "locale": "en_EN.ISO8859-1"}', '{"alias": "french", "locale": "fr_FR.ISO8859-1"}']
        + [f'{{"alias": "lang{i}", "locale": "xx_{i}.UTF-8"}}' for i in range(40)]
    )
    src = [source_of(3, ToolMessage(table, tool_call_id="c1", name="http_get_json"), None)]
    asked = "Earlier you fetched the locale aliases: which locale does the alias french map to?"
    found = rescue(src, asked, lambda line: False, 400, asked=asked)
    assert found is not None and '"french"' in found.text and "english" not in found.text
    assert rescue(src, asked, lambda line: False, 400) is None  # a tool's text alone: plain words name nothing
