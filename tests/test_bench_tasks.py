"""Fast tests of the benchmark foundations: tasks, metrics, peers, fidelity runner, CLI (no draft model)."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from specprefill_langchain.bench import cli
from specprefill_langchain.bench.methods import (
    FullPrompt,
    KeepLast,
    KeepLastTokens,
    Method,
    OursMethod,
    RandomChunks,
)
from specprefill_langchain.bench.runs.fidelity import run_fidelity
from specprefill_langchain.bench.tasks import KINDS, Task, make_tasks
from specprefill_langchain.bench.tasks.metrics import (
    GAP,
    evidence_fraction,
    evidence_retained,
    keep_fraction,
    message_text,
)

TOKENS = 2000


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    return make_tasks(n_per_kind=2, target_tokens=TOKENS, seed=0)


def _dump(task: Task) -> list[tuple]:
    return [(type(m).__name__, m.id, m.content, getattr(m, "tool_calls", None)) for m in task.messages]


@pytest.mark.parametrize("kind", KINDS)
def test_kind_is_deterministic_per_seed(kind: str) -> None:
    a = make_tasks([kind], n_per_kind=2, target_tokens=TOKENS, seed=3)
    b = make_tasks([kind], n_per_kind=2, target_tokens=TOKENS, seed=3)
    c = make_tasks([kind], n_per_kind=2, target_tokens=TOKENS, seed=4)
    assert [_dump(t) for t in a] == [_dump(t) for t in b]
    assert [(t.answer, t.evidence) for t in a] == [(t.answer, t.evidence) for t in b]
    assert [_dump(t) for t in a] != [_dump(t) for t in c]
    assert all(t.kind == kind for t in a)


def test_evidence_is_verbatim_in_one_tool_output(tasks: list[Task]) -> None:
    for task in tasks:
        assert task.evidence and task.answer
        tool_texts = [m.content for m in task.messages if isinstance(m, ToolMessage)]
        for ev in task.evidence:
            assert "\n" not in ev and len(ev) < 150
            assert sum(text.count(ev) for text in tool_texts) == 1, (task.id, ev)
            assert ev not in task.question


def test_transcript_shape(tasks: list[Task]) -> None:
    for task in tasks:
        msgs = task.messages
        assert isinstance(msgs[0], SystemMessage)
        assert isinstance(msgs[1], HumanMessage)
        assert isinstance(msgs[-1], HumanMessage) and msgs[-1].content == task.question
        ai = [m for m in msgs if isinstance(m, AIMessage)]
        assert 2 <= len(ai) <= 5, task.id
        for i, m in enumerate(msgs):
            if isinstance(m, AIMessage):
                assert m.tool_calls
                following = msgs[i + 1 : i + 1 + len(m.tool_calls)]
                for call, tool in zip(m.tool_calls, following, strict=True):
                    assert isinstance(tool, ToolMessage)
                    assert tool.tool_call_id == call["id"] and tool.name == call["name"]
            if isinstance(m, ToolMessage):
                assert sum(c["id"] == m.tool_call_id for a in ai for c in a.tool_calls) == 1
        assert len({m.id for m in msgs}) == len(msgs)


def test_sizes_scale_with_target_tokens() -> None:
    for tokens in (2000, 4000, 8000):
        for task in make_tasks(n_per_kind=1, target_tokens=tokens, seed=1):
            chars = len(message_text(task.messages))
            assert 0.6 * tokens * 4 <= chars <= 1.1 * tokens * 4, (task.id, chars)
            assert task.n_draft_tokens_hint == pytest.approx(chars / 4, rel=0.01)


def test_make_tasks_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown task kinds"):
        make_tasks(["nope"])
    with pytest.raises(ValueError, match="n_per_kind"):
        make_tasks(n_per_kind=0)


def test_metrics_on_text_blocks(tasks: list[Task]) -> None:
    task = tasks[0]
    as_blocks = [
        m.model_copy(update={"content": [{"type": "text", "text": m.content}, {"type": "image", "url": "x"}]})
        for m in task.messages
    ]
    assert evidence_retained(task, as_blocks)
    emptied = [m.model_copy(update={"content": ""}) if isinstance(m, ToolMessage) else m for m in task.messages]
    assert not evidence_retained(task, emptied)
    assert evidence_fraction(task, emptied) == 0.0
    assert keep_fraction(task.messages, emptied) == 0.0
    assert keep_fraction(task.messages, task.messages) == 1.0


PEERS: list[Method] = [FullPrompt(), KeepLastTokens(), RandomChunks(seed=0)]


@pytest.mark.parametrize("method", PEERS, ids=lambda m: m.name)
def test_peers_keep_structure_and_do_not_mutate(method: Method, tasks: list[Task]) -> None:
    assert isinstance(method, Method)
    for task in tasks:
        before = _dump(task)
        out = method.compress(task.messages, 0.3, task.question)
        assert _dump(task) == before
        assert [type(m) for m in out] == [type(m) for m in task.messages]
        assert [m.id for m in out] == [m.id for m in task.messages]
        for new, old in zip(out, task.messages, strict=True):
            assert new is not old
            if isinstance(old, ToolMessage):
                assert (new.tool_call_id, new.name) == (old.tool_call_id, old.name)
            if isinstance(old, AIMessage):
                assert new.tool_calls == old.tool_calls
            else:
                assert isinstance(new.content, str)
        assert out[-1].content == task.question


@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.5])
def test_random_and_keep_last_tokens_honour_ratio(ratio: float, tasks: list[Task]) -> None:
    for method in (RandomChunks(seed=1), KeepLastTokens()):
        kept = [keep_fraction(t.messages, method.compress(t.messages, ratio, t.question)) for t in tasks]
        assert sum(kept) / len(kept) == pytest.approx(ratio, abs=0.05), method.name
    out = RandomChunks(seed=1).compress(tasks[0].messages, ratio, tasks[0].question)
    assert any(GAP in m.content for m in out if isinstance(m, ToolMessage))


def test_keep_last_drops_whole_messages_but_never_orphans_tools(tasks: list[Task]) -> None:
    for task in tasks:
        out = KeepLast().compress(task.messages, 0.3, task.question)
        assert isinstance(out[0], SystemMessage) and len(out) < len(task.messages)
        ids = [m.id for m in out]
        assert ids == [m.id for m in task.messages if m.id in set(ids)]
        calls = {c["id"] for m in out if isinstance(m, AIMessage) for c in m.tool_calls}
        assert all(m.tool_call_id in calls for m in out if isinstance(m, ToolMessage))


def test_full_prompt_retains_everything(tasks: list[Task]) -> None:
    result = run_fidelity([FullPrompt()], tasks, keep_ratios=(0.1, 0.5), progress=False)
    assert result["skipped"] == []
    assert {r["task"] for r in result["results"]} == {*KINDS, "overall"}
    assert all(r["retention"] == 1.0 for r in result["results"])
    overall = [r for r in result["results"] if r["task"] == "overall"]
    assert [r["n"] for r in overall] == [len(tasks)] * 2


class _Broken:
    name = "broken"

    def setup(self) -> None:
        raise ImportError("no such package")

    def compress(self, messages, keep_ratio, question):  # pragma: no cover - never reached
        return messages


def test_unavailable_methods_are_reported_not_dropped(tasks: list[Task]) -> None:
    result = run_fidelity([_Broken(), FullPrompt()], tasks[:2], keep_ratios=(0.3,), progress=False)
    assert result["skipped"] == [{"method": "broken", "draft": None, "reason": "ImportError: no such package"}]
    assert {r["method"] for r in result["results"]} == {"full"}


def test_ours_method_imports_lazily() -> None:
    method = OursMethod(draft="smollm2-135m")
    assert method.name == "ours" and method.draft == "smollm2-135m"


def test_cli_fidelity_json(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    argv = ["fidelity", "--methods", "full,random", "--n-per-kind", "1", "--tokens", "1500", "--json"]
    code = cli.main([*argv, "--plots", str(tmp_path)])
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert code == 0
    assert {"results", "skipped", "config"} <= set(data)
    row = data["results"][0]
    assert {"method", "draft", "keep_ratio", "task", "retention", "n"} <= set(row)
    assert {r["method"] for r in data["results"]} == {"full", "random"}
    assert (tmp_path / "fidelity_overall.png").stat().st_size > 0


def test_cli_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["fidelity", "--methods", "bogus"])


def test_pydoc_pages_carry_no_memory_addresses() -> None:
    """Object defaults render as `<... at 0x7f...>`; left in, the same seed would give new text each run."""
    import re

    from specprefill_langchain.bench.tasks import sources

    for module in ("json", "difflib", "dataclasses", "sched"):
        assert not re.search(r" at 0x[0-9a-fA-F]{6,}", sources.pydoc_page(module)), module
