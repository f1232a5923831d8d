"""The late-relevance loop kinds (issue 20): where evidence and key arrive, determinism, and the scripted loop."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from specprefill_langchain.bench.runs import cost_loop
from specprefill_langchain.bench.tasks import late_loops, package_sources
from specprefill_langchain.bench.tasks.agent_loops import (
    ALL_KINDS,
    FINAL_ANSWER,
    LATE_KINDS,
    LOOP_KINDS,
    LoopTask,
    final_transcript,
    make_loop_tasks,
)

# log_names_key reads matplotlib's matplotlibrc (the bench extra); the other kinds need only the core.
KINDS = [k for k in LATE_KINDS if k != "log_names_key" or importlib.util.find_spec("matplotlib")]
_FRAME = re.compile(r'^  File "(?P<path>[^"]+)", line (?P<no>\d+), in (?P<func>\S+)$', re.M)


@pytest.fixture(scope="module")
def late() -> dict[str, list[LoopTask]]:
    return {k: make_loop_tasks([k], n_per_kind=6, steps=12, seed=0) for k in KINDS}


def _dump(tasks: list[LoopTask]) -> list[tuple]:
    return [
        (t.request, [(r.tool, r.args, r.output) for r in t.rounds], t.evidence, t.evidence_step, t.key, t.key_step,
         t.follow_up, t.question, t.answer)
        for t in tasks
    ]  # fmt: skip


def _all(late: dict[str, list[LoopTask]]) -> list[LoopTask]:
    return [t for tasks in late.values() for t in tasks]


def test_kinds_are_registered() -> None:
    assert LOOP_KINDS == ("key_in_request", "key_in_call", "key_later")
    assert ALL_KINDS == LOOP_KINDS + LATE_KINDS and tuple(late_loops.MAKERS) == LATE_KINDS
    with pytest.raises(ValueError, match="unknown loop kind"):
        make_loop_tasks(["nope"])
    with pytest.raises(ValueError, match="needs at least 3 steps"):
        make_loop_tasks(["traceback_to_source"], n_per_kind=1, steps=2)


def test_six_distinct_deterministic_loops_per_kind(late: dict[str, list[LoopTask]]) -> None:
    for kind, tasks in late.items():
        assert [t.kind for t in tasks] == [kind] * 6 and len({t.id for t in tasks}) == 6
        assert len({repr((t.request, t.rounds)) for t in tasks}) == 6, kind
        for t in tasks:
            assert t.steps == 12 and all(1400 <= len(r.output) <= 4500 for r in t.rounds), [
                len(r.output) for r in t.rounds
            ]
        assert _dump(make_loop_tasks([kind], n_per_kind=6, steps=12, seed=0)) == _dump(tasks)
        assert _dump(make_loop_tasks([kind], n_per_kind=2, steps=12, seed=1)) != _dump(tasks[:2])


def test_evidence_arrives_once_at_its_step(late: dict[str, list[LoopTask]]) -> None:
    for t in _all(late):
        for ev in t.evidence:
            assert ev.strip() and "\n" not in ev and ev not in t.request
            where = [i + 1 for i, r in enumerate(t.rounds) if ev in r.output]
            assert where == [t.evidence_step], (t.id, ev, where)
            assert t.rounds[t.evidence_step - 1].output.count(ev) == 1


def test_the_key_is_named_first_at_its_step(late: dict[str, list[LoopTask]]) -> None:
    for t in _all(late):
        assert t.key not in t.request, t.id
        for step, rnd in enumerate(t.rounds[: t.key_step - 1], 1):
            if step != t.evidence_step:  # the evidence holds the key itself (a def line names its function)
                assert t.key not in rnd.output and t.key not in json.dumps(rnd.args), (t.id, step)
        if t.kind == "follow_up":
            assert t.key_step == t.steps + 1 and t.follow_up is not None and t.key in t.follow_up
        else:
            assert t.follow_up is None and t.key in t.rounds[t.key_step - 1].output
        gap = t.key_step - t.evidence_step
        expected = {"grep_then_read": range(-1, 0), "follow_up": range(t.steps + 1 - t.evidence_step, t.steps + 2)}
        assert gap in expected.get(t.kind, range(2, 5)), (t.id, t.evidence_step, t.key_step)


def test_answer_is_in_the_evidence(late: dict[str, list[LoopTask]]) -> None:
    for t in _all(late):
        assert t.question and t.answer and t.answer in t.evidence[0], (t.id, t.answer, t.evidence)


def _read(t: LoopTask) -> tuple[dict, list[str]]:
    rnd = t.rounds[t.evidence_step - 1]
    assert rnd.tool == "read_file" and set(rnd.args) == {"path", "offset", "limit"}  # no symbol argument
    return rnd.args, rnd.output.splitlines()


def test_grep_then_read(late: dict[str, list[LoopTask]]) -> None:
    for t in late["grep_then_read"]:
        grep = t.rounds[t.key_step - 1]
        assert grep.tool == "grep" and grep.args["pattern"] in t.request
        hits = [h for h in grep.output.splitlines() if f"{t.key}(" in h]
        assert hits and all(re.match(r"^\S+\.py:\d+:", h) for h in hits)
        args, lines = _read(t)
        assert args["path"].startswith(package_sources.SITE) and t.evidence[0].startswith(f"def {t.key}(")
        at = next(i for i, line in enumerate(lines) if t.evidence[0] in line)
        assert at >= 3, (t.id, at)  # not at the very top of the window


def test_test_names_function(late: dict[str, list[LoopTask]]) -> None:
    for t in late["test_names_function"]:
        args, _ = _read(t)
        assert t.evidence[0].startswith(f"def {t.key}(")
        run = t.rounds[t.key_step - 1]
        assert run.tool == "run_tests" and "FAILED tests/" in run.output
        assert f"::test_{t.key} - AssertionError: " in run.output
        module = package_sources.module_name(args["path"].removeprefix(package_sources.SITE + "/"))
        assert f"<module '{module}' from " in run.output and f"{module.rsplit('.', 1)[-1]}.{t.key}(" in run.output
        assert run.output.count(" FAILED ") == 1 and " PASSED " in run.output


@pytest.mark.skipif("log_names_key" not in KINDS, reason="needs matplotlib")
def test_log_names_key(late: dict[str, list[LoopTask]]) -> None:
    for t in late["log_names_key"]:
        args, _ = _read(t)
        assert args["path"].endswith(("matplotlibrc", ".mplstyle")) and t.key in t.evidence[0]
        log = t.rounds[t.key_step - 1]
        assert log.tool == "read_log"
        named = [line for line in log.output.splitlines() if t.key in line]
        assert len(named) == 1 and (" WARNING " in named[0] or " ERROR " in named[0])
        assert t.answer not in named[0].split(":", 3)[-1].replace(t.key, "")  # the log does not give the value


def test_traceback_line_maps_to_the_window(late: dict[str, list[LoopTask]]) -> None:
    for t in late["traceback_to_source"]:
        args, lines = _read(t)
        log = t.rounds[t.key_step - 1].output
        assert "Traceback (most recent call last):" in log
        assert re.search(r"^AttributeError: 'NoneType' object has no attribute '\w+'$", log, re.M)
        last = list(_FRAME.finditer(log))[-1]
        assert last["path"].endswith(args["path"]) and f"line {last['no']}, in {last['func']}" == t.key
        at = int(last["no"]) - args["offset"]  # file line N is output line N - offset + 1
        assert 0 <= at < args["limit"] and lines[at].strip() == t.evidence[0]
        assert sum(line.strip() == t.evidence[0] for line in lines) == 1


def test_follow_up(late: dict[str, list[LoopTask]]) -> None:
    for t in late["follow_up"]:
        rnd = t.rounds[t.evidence_step - 1]
        assert rnd.tool == "http_get_json" and t.question == t.follow_up
        record = json.loads(t.evidence[0])
        assert t.key in record.values() and t.answer in record.values()


@pytest.mark.parametrize("kind", KINDS)
def test_the_loop_reads_what_final_transcript_says(kind: str) -> None:
    (task,) = make_loop_tasks([kind], n_per_kind=1, steps=4, output_chars=1500, seed=2)
    run = cost_loop.run_loop(task, "full", [])
    assert len(run.inputs) == task.calls == task.steps + 1 + (kind == "follow_up")
    assert {r.tool for r in task.rounds} <= {s["function"]["name"] for s in run.schemas}
    last, final = run.inputs[-1], final_transcript(task)
    assert all(run.inputs[k] == last[: len(run.inputs[k])] for k in range(len(run.inputs)))
    assert [type(m) for m in final] == [type(m) for m in last]
    assert [m.text for m in final] == [m.text for m in last]
    assert [m.tool_calls for m in final if isinstance(m, AIMessage)] == [
        m.tool_calls for m in last if isinstance(m, AIMessage)
    ]
    assert [m.tool_call_id for m in final if isinstance(m, ToolMessage)] == [
        m.tool_call_id for m in last if isinstance(m, ToolMessage)
    ]
    if kind == "follow_up":
        assert isinstance(last[-1], HumanMessage) and last[-1].text == task.follow_up
        assert isinstance(last[-2], AIMessage) and last[-2].text == FINAL_ANSWER and not last[-2].tool_calls
