"""Histories longer than the draft's context, in per-step mode: evidence kept, windows, cost of a step.

    python -m specprefill_langchain.bench long-history --json

Each transcript holds real text of about ``--tokens`` tokens (past SmolLM2's 8,192-token context, so
it is scored in windows) with its evidence at a depth spread over the tasks, so the evidence lands
in different windows. Per task: evidence retention at ``--keep-ratio``, the number of windows, the
cold compression's seconds, and the next agent step's (one more tool output and a new question):
the windows before the last must come from the draft's KV cache.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from specprefill_langchain.bench import options
from specprefill_langchain.bench.intervals import wilson
from specprefill_langchain.bench.tasks import make_tasks, sources
from specprefill_langchain.bench.tasks.metrics import evidence_retained


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kinds", type=options.csv_of(str), default=["kv_json", "code_default", "needle"])
    p.add_argument("--n-per-kind", type=int, default=2)
    p.add_argument("--tokens", type=int, default=22000, help="approximate size of each transcript")
    p.add_argument("--keep-ratio", type=options.ratio, default=0.3)
    p.add_argument("--draft", default="smollm2-135m")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--seed", type=int, default=0)


def _next_step(messages: list[Any]) -> list[Any]:
    """One more tool round before a new question: what the next turn of the agent sends."""
    call = {"name": "read_file", "args": {"path": "Lib/string.py"}, "id": "call_next", "type": "tool_call"}
    text = sources.read_stdlib("string.py")[:4000]
    return [
        *messages,
        AIMessage("", tool_calls=[call], id="next-ai"),
        ToolMessage(text, tool_call_id="call_next", name="read_file", id="next-tool"),
        HumanMessage(messages[-1].text, id="next-q"),
    ]


def run_args(args: argparse.Namespace) -> dict[str, Any]:
    from specprefill_langchain import DraftModel, PolicyConfig, SpecPrefillCompressor

    draft = DraftModel.load(args.draft, dtype=args.dtype)
    tasks = make_tasks(args.kinds, n_per_kind=args.n_per_kind, target_tokens=args.tokens, seed=args.seed)
    rows = []
    for task in tasks:
        compressor = SpecPrefillCompressor(
            draft=draft, keep_ratio=args.keep_ratio, policy=PolicyConfig(min_compressible_tokens=0)
        )
        start = time.perf_counter()
        cold = compressor.compress(task.messages, cache_key=task.id)
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        step = compressor.compress(_next_step(list(task.messages)), cache_key=task.id)
        step_s = time.perf_counter() - start
        row = {
            "task": task.id,
            "kind": task.kind,
            "draft_tokens": cold.stats.draft_tokens_in,
            "windows": cold.stats.windows,
            "kept_fraction": round(cold.stats.kept_fraction, 4),
            "retained": evidence_retained(task, cold.messages),
            "cold_s": round(cold_s, 2),
            "next_step_s": round(step_s, 2),
            "next_step_new_tokens": step.stats.draft_tokens_in - cold.stats.draft_tokens_in,
            "next_step_reused_tokens": step.stats.reused_tokens,
            "next_step_prefilled_tokens": step.stats.prefilled_tokens,
        }
        rows.append(row)
        print(f"[long-history] {row}", file=sys.stderr, flush=True)
    k, n = sum(r["retained"] for r in rows), len(rows)
    lo, hi = wilson(k, n)
    return {
        "config": {k_: getattr(args, k_) for k_ in ("kinds", "n_per_kind", "tokens", "keep_ratio", "draft", "dtype")},
        "retention": k / n if n else 0.0,
        "retained": k,
        "n": n,
        "ci95": [lo, hi],
        "per_task": rows,
    }
