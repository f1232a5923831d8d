"""Workers behind one PostgreSQL checkpointer: ``bench fleet`` at a small size, and what it found.

Two worker processes, two agent threads of four tool rounds (short outputs), every step of every
thread on a random worker, then with thread affinity, then four faults (a worker SIGKILLed in the
model call, inside the checkpoint's ``put``, inside ``put_writes``; two workers racing on one step).
Everything is real: PostgreSQL, ``PostgresSaver``, ``create_agent``, the SmolLM2 draft at the shipping
defaults; only the chat model is scripted. A couple of minutes on two cores.

The fleet found that in bfloat16 a worker whose draft cache held another prefix compressed a new
output differently than a cold one (other matmul shapes flipped a near tie). The draft now prefills on
a fixed chunk grid; the last test checks that a cache hit leaves the bytes unchanged in both dtypes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from tests.pg_fixture import postgres_url  # noqa: F401  (a session fixture; conftest.py may re-export it)

pytest.importorskip("langchain.agents")
pytest.importorskip("langgraph.checkpoint.postgres")

pytestmark = [pytest.mark.real, pytest.mark.slow]
SIZE = {"workers": 2, "threads": 2, "steps": 4, "output-chars": 1200}  # the draft at its default dtype


@pytest.fixture(scope="module")
def fleet(postgres_url, tmp_path_factory) -> tuple[dict[str, Any], Path]:  # noqa: F811
    """One small ``bench fleet`` run (through the CLI's parser) and the folder of its recorded inputs."""
    from specprefill_langchain.bench import cli
    from specprefill_langchain.bench.runs import fleet as fleet_run

    inputs = tmp_path_factory.mktemp("fleet-inputs")
    size = [x for k, v in SIZE.items() for x in (f"--{k}", str(v))]
    argv = ["fleet", *size, "--postgres-url", postgres_url, "--inputs-dir", str(inputs)]
    return fleet_run.run_args(cli.build_parser().parse_args(argv)), inputs


def test_no_phase_or_fault_loses_a_message_or_leaves_a_call_unanswered(fleet):
    result, _ = fleet
    for name, c in result["checks"].items():
        assert c["threads"] == 2, name
        assert c["lost_messages"] == c["extra_messages"] == c["orphaned_tool_calls"] == c["stale_frozen"] == 0, c
    assert set(result["faults"]) == {"model", "put", "put_writes", "race"}
    for kind, f in result["faults"].items():
        assert f["lost_messages"] == f["extra_messages"] == f["orphaned_tool_calls"] == f["stale_frozen"] == 0, kind
        assert f["finished"] and f["missing_calls"] == [] and f["extra_requests"] == 0, (kind, f)
        assert f["frozen_forms"] >= 1, kind  # the thread did compress


def test_each_fault_struck_where_it_was_meant_to(fleet):
    faults = fleet[0]["faults"]
    for kind in ("model", "put", "put_writes"):
        assert faults[kind]["killed"], kind  # the worker died mid-step, and was respawned
    assert faults["model"]["retry_called_model"]  # nothing of the step was written: it ran again
    put = faults["put"]
    assert put["db_after_kill"]["checkpoints"] == put["db_before"]["checkpoints"]  # the put never committed
    race = faults["race"]
    assert race["both_ok"] and race["forks"] >= 1  # both racers wrote a branch from the same parent
    assert fleet[0]["respawns"] == 3


def _rows_by_call(folder: Path) -> dict[int, list[list[Any]]]:
    out: dict[int, list[list[Any]]] = {}
    for f in sorted(folder.glob("*.json")):
        out.setdefault(int(f.name[:3]), []).append(json.loads(f.read_text()))
    return out


def test_every_thread_sends_an_append_only_prompt_whichever_worker_runs_it(fleet):
    """What the target caches: each call's input starts with an input of the call before, byte for byte."""
    _, inputs = fleet
    threads = [d for d in inputs.iterdir() if d.is_dir()]
    assert len(threads) == 2 + 2 + 2 + 2 + 4  # reference, solo (all cores), random, affinity, one per fault
    for folder in threads:
        calls = _rows_by_call(folder)
        assert sorted(calls) == list(range(5)), folder.name
        for k in range(1, 5):
            for cur in calls[k]:
                assert any(cur[: len(prev)] == prev for prev in calls[k - 1]), (folder.name, k)


def test_every_input_equals_the_uninterrupted_runs(fleet):
    result, _ = fleet
    from specprefill_langchain.draft import resolve_dtype

    assert result["config"]["draft_dtype"] == resolve_dtype("auto")  # bfloat16 on a CPU that computes it
    assert result["identical_share"] == 1.0
    assert all(c["all_identical"] for c in result["checks"].values())
    assert all(f["resumed_identical"] for f in result["faults"].values())
    assert result["all_checks_passed"]


def test_the_metrics_are_reported(fleet):
    result, _ = fleet
    assert set(result["steps_per_min"]) == {"1", "2"} and all(v > 0 for v in result["steps_per_min"].values())
    for routing in ("random", "affinity"):
        kv = result["kv_hit_rate"][routing]
        assert kv["lookups"] >= 8 and 0 <= kv["hit_rate"] <= 1 and 0 <= kv["tokens_reused_share"] <= 1
    rss = result["peak_rss_mb"]
    assert len(rss["per_worker"]) == 2 and all(100 < x < 8000 for x in rss["per_worker"])
    blobs = result["frozen_bytes_vs_messages"]["blob_bytes_per_step"]
    assert blobs["messages"] > 0 and 0 < blobs["specprefill"] < blobs["messages"]


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_a_kv_cache_hit_leaves_the_compressed_bytes_unchanged(one_thread, dtype):
    """The fleet's finding, in one process: a worker whose draft cache holds another thread's prefix
    must compress exactly as a cold worker does. It did not in bfloat16 (a hit on a prefix that ended
    mid-chunk ran other matmul shapes and flipped a near tie); the store now holds whole prefill chunks
    only, so a warm and a cold worker run the same chunks (docs/design.md, "Same bytes on every worker")."""
    from specprefill_langchain import DraftModel, SpecPrefillCompressor
    from specprefill_langchain.bench.runs.fleet import loop_tasks

    task = loop_tasks(2, 4, 2400, 1)[1]  # a case that flipped before the fix (bf16, one thread)

    def window(rounds: int, last: str | None = None) -> list[Any]:
        out: list[Any] = [HumanMessage(task.request)]
        for j, r in enumerate(task.rounds[:rounds]):
            out.append(
                AIMessage("", tool_calls=[{"name": r.tool, "args": r.args, "id": f"call_{j}", "type": "tool_call"}])
            )
            out.append(
                ToolMessage(last if j == rounds - 1 and last else r.output, tool_call_id=f"call_{j}", name=r.tool)
            )
        return out

    draft = DraftModel.load("smollm2-135m", dtype=dtype)
    cold = SpecPrefillCompressor(draft=draft, keep_ratio=0.3).compress(window(2), cache_key="a")
    warm = SpecPrefillCompressor(draft=draft, keep_ratio=0.3)
    warm.compress(window(2, last="another second output " * 200), cache_key="b")  # shares the first round
    hit = warm.compress(window(2), cache_key="c")
    assert cold.stats.reused_tokens == 0 < hit.stats.reused_tokens
    assert [m.content for m in hit.messages] == [m.content for m in cold.messages]
