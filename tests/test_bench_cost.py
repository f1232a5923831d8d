"""``bench cost``: the agent-loop tasks, the cache metrics by hand, the loop, and one tiny run."""

from __future__ import annotations

import pytest
import torch
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from specprefill_langchain.bench.runs import cost, cost_loop, cost_metrics
from specprefill_langchain.bench.runs.cost_target import (
    SHEETS,
    PrefixCachedTarget,
    cached_tokens,
    crop_to,
    lcp,
    prefix_stability,
    relative,
    step_bills,
)
from specprefill_langchain.bench.tasks.agent_loops import (
    LATER_GAP,
    LOOP_KINDS,
    LoopTask,
    final_transcript,
    make_loop_tasks,
)


@pytest.fixture(scope="module")
def loops() -> list[LoopTask]:
    return make_loop_tasks(n_per_kind=2, steps=12, seed=0)


def _dump(tasks: list[LoopTask]) -> list[tuple]:
    return [(t.request, [(r.tool, r.args, r.output) for r in t.rounds], t.evidence, t.evidence_step) for t in tasks]


# --- tasks -------------------------------------------------------------------------------------


def test_kinds_sizes_and_determinism(loops: list[LoopTask]) -> None:
    assert [t.kind for t in loops] == [k for k in LOOP_KINDS for _ in range(2)]
    assert len({t.id for t in loops}) == len(loops)
    for t in loops:
        assert t.steps == 12 and len(t.rounds) >= 12
        assert all(1500 <= len(r.output) <= 4500 for r in t.rounds), [len(r.output) for r in t.rounds]
    assert _dump(make_loop_tasks(n_per_kind=2, seed=0)) == _dump(loops)
    assert _dump(make_loop_tasks(n_per_kind=2, seed=1)) != _dump(loops)


def test_evidence_arrives_once_at_its_step(loops: list[LoopTask]) -> None:
    for t in loops:
        for ev in t.evidence:
            assert "\n" not in ev and ev not in t.request
            where = [i + 1 for i, r in enumerate(t.rounds) if ev in r.output]
            assert where == [t.evidence_step], (t.id, ev, where)
            assert t.rounds[t.evidence_step - 1].output.count(ev) == 1


def test_where_the_key_is_named(loops: list[LoopTask]) -> None:
    for t in loops:
        ev_round = t.rounds[t.evidence_step - 1]
        if t.kind == "key_in_request":
            assert 1 <= t.evidence_step <= 3 and t.key_step == 0
            assert t.key in t.request and ev_round.tool == "http_get_json"
        elif t.kind == "key_in_call":
            assert 1 <= t.evidence_step <= 3 and t.key_step == t.evidence_step
            assert ev_round.tool == "read_file" and ev_round.args["symbol"] == t.key
            assert ev_round.args["path"] in t.request and t.evidence[0].startswith(f"def {t.key}(")
            assert t.evidence[0] not in t.request
        else:
            assert 2 <= t.evidence_step <= 5 and t.key_step == t.evidence_step + LATER_GAP
            assert t.key not in t.request and ev_round.tool == "http_get_json"
            log = t.rounds[t.key_step - 1].output
            lines = [line for line in log.splitlines() if f"{t.key}" in line and ("ERROR" in line or "WARNING" in line)]
            assert len(lines) == 1, (t.id, t.key)
            # Between the table and the log line no output names the key in such a line.
            for r in t.rounds[t.evidence_step : t.key_step - 1]:
                assert lines[0] not in r.output


def test_bad_kinds_and_sizes() -> None:
    with pytest.raises(ValueError, match="unknown loop kind"):
        make_loop_tasks(["nope"])
    with pytest.raises(ValueError, match="key_later needs"):
        make_loop_tasks(["key_later"], n_per_kind=1, steps=4)
    short = make_loop_tasks(["key_in_request", "key_in_call"], n_per_kind=1, steps=3)
    assert all(t.steps == 3 and 1 <= t.evidence_step <= 3 for t in short)


# --- metrics by hand ---------------------------------------------------------------------------


def test_lcp_and_stability() -> None:
    assert lcp([1, 2, 3], [1, 2, 3, 4]) == 3
    assert lcp([1, 2, 3], [1, 9, 3]) == 1
    assert lcp([], [1]) == 0 and lcp([5], [6]) == 0
    inputs = [[1, 2], [1, 2, 3, 4], [1, 9, 3, 4, 5], [1, 9, 3, 4, 5, 6]]
    assert cached_tokens(inputs) == [0, 2, 1, 5]
    assert prefix_stability(inputs) == [1.0, 0.25, 1.0]  # 2/2, 1/4, 5/5
    assert prefix_stability([[1, 2, 3]]) == []


def test_bill_arithmetic() -> None:
    inputs = [[1] * 10, [1] * 15, [2] * 20]  # append-only, then a full break
    # step 0: 10 written; step 1: 10 read + 5 written; step 2: nothing cached, 20 written.
    assert step_bills(inputs, 0.1, 1.25) == pytest.approx([12.5, 1.0 + 6.25, 25.0])
    assert step_bills(inputs, 0.1, 1.0) == pytest.approx([10.0, 6.0, 20.0])
    assert set(SHEETS) == {"r0.1_w1.25", "r0.1_w1.0"}
    full = sum(step_bills(inputs, 0.1, 1.25))
    half = sum(step_bills([[1] * 5, [1] * 8, [1] * 10], 0.1, 1.25))  # 6.25 + (0.5 + 3.75) + (0.8 + 2.5)
    assert half == pytest.approx(13.8)
    assert relative(half, full) == pytest.approx(13.8 / 44.75)
    assert relative(1.0, 0.0) is None


def _row(task: str, arm: str, ids: list[list[int]], kept: bool = True) -> dict:
    bills = {s: sum(step_bills(ids, r, w)) for s, (r, w) in SHEETS.items()}
    stab = prefix_stability(ids)
    return {"task": task, "kind": "k", "arm": arm, "steps": len(ids), "_ids": ids, "bill": bills,
            "tokens_total": sum(map(len, ids)), "chars_total": 0, "evidence_kept": kept, "draft_s_total": 1.0,
            "stability_mean": sum(stab) / len(stab), "stability_min": min(stab), "final_chars": len(ids[-1]),
            "rescued_chars": [0] * len(ids), "recoverable": kept}  # fmt: skip


def test_relative_bill_aggregate_and_cumulative() -> None:
    full = [[1] * 10, [1] * 20, [1] * 30]
    comp = [[1] * 3, [1] * 6, [2] * 9]
    rows = [_row("t0", "full", full), _row("t0", "x", comp, kept=False)]
    rows += [_row("t1", "full", full), _row("t1", "x", comp)]
    cost_metrics.relate(rows)
    assert rows[1]["tokens_vs_full"] == pytest.approx(18 / 60)
    assert rows[1]["bill_vs_full"]["r0.1_w1.0"] == pytest.approx((3 + 0.3 + 3 + 9) / (10 + 1 + 10 + 2 + 10))
    agg = cost_metrics.aggregate([r for r in rows if r["arm"] == "x"])
    assert agg["n"] == 2 and agg["evidence_kept"] == 1 and agg["evidence_rate"] == 0.5
    assert agg["evidence_ci95"][0] < 0.5 < agg["evidence_ci95"][1]
    assert agg["prefix_stability_min"] == 0.0 and agg["prefix_stability_mean"] == pytest.approx(0.5)
    assert agg["draft_s_per_step"] == pytest.approx(2 / 6)
    curves = cost_metrics.cumulative_bill(rows, "t0", "r0.1_w1.25")
    assert curves["full"][-1] == pytest.approx(1.0)
    total = 12.5 + (1.0 + 12.5) + (2.0 + 12.5)  # full: append-only, 10 new tokens per step
    assert curves["x"] == pytest.approx([3.75 / total, 7.8 / total, 19.05 / total], abs=1e-4)


# --- the loop (no draft) -----------------------------------------------------------------------


def test_loop_records_what_the_model_reads() -> None:
    (task,) = make_loop_tasks(["key_in_call"], n_per_kind=1, steps=3)
    run = cost_loop.run_loop(task, "full", [])
    assert len(run.inputs) == 4 and run.draft_s == [0.0] * 4
    assert {s["function"]["name"] for s in run.schemas} == set(cost_loop.TOOL_SPECS)
    last = run.inputs[-1]
    assert isinstance(last[0], SystemMessage) and isinstance(last[1], HumanMessage) and last[1].text == task.request
    tools = [m for m in last if isinstance(m, ToolMessage)]
    assert [m.text for m in tools] == [r.output for r in task.rounds]
    calls = [m.tool_calls[0] for m in last if isinstance(m, AIMessage)]
    assert [c["args"] for c in calls] == [r.args for r in task.rounds]  # the symbol arg reached the tool
    assert all(run.inputs[k] == last[: len(run.inputs[k])] for k in range(4))
    # bench depth --loop-tasks scores the same final transcript (roles, text, calls and their ids).
    final = final_transcript(task)
    assert [type(m) for m in final] == [type(m) for m in last]
    assert [m.text for m in final] == [m.text for m in last]
    assert [m.tool_calls for m in final if isinstance(m, AIMessage)] == [
        m.tool_calls for m in last if isinstance(m, AIMessage)
    ]
    assert [m.tool_call_id for m in final if isinstance(m, ToolMessage)] == [
        m.tool_call_id for m in last if isinstance(m, ToolMessage)
    ]


def test_context_editing_arm_clears_old_outputs() -> None:
    (task,) = make_loop_tasks(["key_in_request"], n_per_kind=1, steps=6)
    run = cost_loop.run_loop(task, "context-editing", cost_loop.middleware("context-editing", None, 0.3, 1500, 2))
    texts = [m.text for m in run.inputs[-1] if isinstance(m, ToolMessage)]
    assert texts[:4] == ["[cleared]"] * 4 and texts[4:] == [r.output for r in task.rounds[4:]]


# --- the target's prefix cache -----------------------------------------------------------------


def _tiny_target() -> PrefixCachedTarget:
    from transformers import LlamaConfig, LlamaForCausalLM

    from specprefill_langchain.bench.target import LoadedModel

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)  # fmt: skip
    return PrefixCachedTarget("tiny", "float32", loaded=LoadedModel(None, LlamaForCausalLM(cfg).eval(), 0.0))


def test_prefix_cached_prefill_is_exact() -> None:
    tgt = _tiny_target()
    a, b = list(range(1, 41)), [*range(1, 31), *range(50, 60), 7]
    with torch.inference_mode():
        cache = tgt.new_cache()
        tgt._forward(a, cache)
        crop_to(cache, lcp(a, b))
        assert cache.get_seq_length() == 30
        reused = tgt._forward(b[30:], cache)
        scratch = tgt._forward(b, tgt.new_cache())
    assert torch.allclose(reused, scratch, atol=1e-5)
    rows = tgt.time_loop([a, b, b], reuse=True)
    assert [(r["cached"], r["forwarded"]) for r in rows] == [(0, 40), (30, 11), (40, 1)]
    assert [r["forwarded"] for r in tgt.time_loop([a, b], reuse=False)] == [40, 41]


# --- one tiny run ------------------------------------------------------------------------------


def test_run_cost_with_the_tiny_draft(tiny) -> None:
    tasks = make_loop_tasks(["key_in_request"], n_per_kind=1, steps=3)
    res = cost.run_cost(tasks, tiny, arms=["full", "stable", "per_step"], keep_ratio=0.3, no_ttft=True)
    assert set(res) >= {"config", "arms", "per_kind", "per_task", "ttft", "cumulative_bill"}
    assert list(res["arms"]) == ["full", "stable", "per_step"] and res["ttft"] == {"skipped": "--no-ttft"}
    assert res["config"]["model_calls_per_task"] == 4
    for a in res["arms"].values():
        assert a["n"] == 1 and set(a["bill_vs_full"]) == set(SHEETS)
    assert res["arms"]["full"]["prefix_stability_mean"] == 1.0
    assert res["arms"]["full"]["bill_vs_full"]["r0.1_w1.25"] == pytest.approx(1.0)
    assert res["arms"]["stable"]["prefix_stability_mean"] >= 0.95
    assert res["arms"]["stable"]["tokens_vs_full"] < 1.0  # something was dropped
    assert res["arms"]["stable"]["draft_s_per_step"] > 0
    assert set(res["per_kind"]) == {"key_in_request"}
    assert {r["arm"] for r in res["per_task"]} == {"full", "stable", "per_step"}
    assert all("_ids" not in r and len(r["tokens"]) == 4 for r in res["per_task"])
    assert len(res["cumulative_bill"]["stable"]) == 4 and res["cumulative_bill"]["full"][-1] == pytest.approx(1.0)


def test_ttft_sums_draft_and_target_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    tiny_target = _tiny_target()
    monkeypatch.setattr(cost, "PrefixCachedTarget", lambda name, dtype: tiny_target)
    (task,) = make_loop_tasks(["key_in_request"], n_per_kind=1, steps=3)
    full, comp = [[1] * 10, [1] * 20, [1] * 30], [[1] * 5, [1] * 8, [1] * 12]
    rows = [
        {**_row(task.id, "full", full), "draft_s": [0.0] * 3},
        {**_row(task.id, "stable", comp), "draft_s": [0, 0.5, 0.25]},
    ]
    out = cost.ttft([task], rows, ["full", "stable"], "tiny", "float32", no_cache_reference=True)
    assert set(out["arms"]) == {"full", "stable", "full[no target cache]"}
    stable = out["arms"]["stable"]
    assert [s["forwarded"] for s in stable["per_step"]] == [5, 3, 4]
    assert stable["draft_s"] == pytest.approx(0.75)
    assert stable["summed_ttft_s"] == pytest.approx(stable["draft_s"] + stable["target_prefill_s"], abs=1e-3)
    assert [s["forwarded"] for s in out["arms"]["full[no target cache]"]["per_step"]] == [10, 20, 30]
    assert out["arms"]["full"]["target_cache"] and not out["arms"]["full[no target cache]"]["target_cache"]
