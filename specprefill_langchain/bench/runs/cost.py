"""``bench cost``: what an agent loop costs a target with a prefix cache, per compression arm.

    python -m specprefill_langchain.bench cost --json --plots docs/ --n-per-kind 3 --steps 12

Each task (:mod:`..tasks.agent_loops`) runs as a real ``langchain.agents.create_agent`` graph with an
``InMemorySaver``: a scripted chat model asks for round k's tool call at its call k and answers after the
last round, recording every input it receives (what the target reads); the tools return the rounds'
outputs. Arms are middleware lists: ``full`` (none), ``context-editing`` (LangChain's own
``ClearToolUsesEdit``, its trigger scaled to the loop), ``per_step`` and ``stable`` speculative prefill,
and stable variants. Measures per arm (definitions in :mod:`.cost_target`): characters and target tokens
sent, prefix stability, the input bill under two cache price sheets relative to ``full``, evidence
kept verbatim at the final step (rate, n, Wilson 95 %), the draft's seconds per step, and (on
``--ttft-tasks``) the local target's summed TTFT with its own prefix cache.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

from specprefill_langchain.bench import options
from specprefill_langchain.bench.runs import cost_loop
from specprefill_langchain.bench.runs.cost_metrics import aggregate, cumulative_bill, measure, relate
from specprefill_langchain.bench.runs.cost_target import SHEETS, PrefixCachedTarget, target_tokenizer
from specprefill_langchain.bench.tasks.agent_loops import ALL_KINDS, LOOP_KINDS, LoopTask, make_loop_tasks

ARMS = cost_loop.ARMS
CUMULATIVE_SHEET = "r0.1_w1.25"


def _log(msg: str) -> None:
    print(f"[cost] {msg}", file=sys.stderr, flush=True)


def ttft(
    tasks: list[LoopTask],
    rows: list[dict[str, Any]],
    arms: list[str],
    target: str,
    dtype: str,
    *,
    no_cache_reference: bool = False,
) -> dict[str, Any]:
    """Summed TTFT per arm = sum over steps of (draft seconds + target prefill with its prefix cache)."""
    tgt = PrefixCachedTarget(target, dtype)
    tgt.warm_up()
    by = {(r["task"], r["arm"]): r for r in rows}
    out: dict[str, Any] = {"target": target, "target_dtype": dtype, "tasks": [t.id for t in tasks], "arms": {}}
    variants = [(arm, arm, True) for arm in arms]
    if no_cache_reference:  # every step prefilled from scratch: slow (the whole prompt, every step)
        variants.append(("full[no target cache]", "full", False))
    for label, arm, reuse in variants:
        per_task = []
        for task in tasks:
            row = by[(task.id, arm)]
            _log(f"ttft {task.id} {label}: {len(row['_ids'])} steps")
            steps = tgt.time_loop(row["_ids"], reuse=reuse)
            for s, d in zip(steps, row["draft_s"], strict=True):  # full's draft seconds are all 0
                s["draft_s"], s["ttft_s"] = d, round(d + s["target_s"], 4)
                s["target_s"] = round(s["target_s"], 4)
            per_task.append(steps)
        out["arms"][label] = {
            "summed_ttft_s": statistics.fmean(sum(s["ttft_s"] for s in st) for st in per_task),
            "target_prefill_s": statistics.fmean(sum(s["target_s"] for s in st) for st in per_task),
            "draft_s": statistics.fmean(sum(s["draft_s"] for s in st) for st in per_task),
            "target_cache": reuse,
            "per_step": per_task[0],
        }
        _log(f"ttft {label}: summed {out['arms'][label]['summed_ttft_s']:.2f}s")
    full = out["arms"].get("full", {}).get("summed_ttft_s")
    for timed in out["arms"].values():  # each arm's summed TTFT over the full loop's, both with a target cache
        timed["ttft_vs_full"] = round(timed["summed_ttft_s"] / full, 4) if full else None
    return out


def run_cost(
    tasks: list[LoopTask],
    draft: Any,
    *,
    arms: list[str] | tuple[str, ...] = ARMS,
    keep_ratio: float = 0.3,
    target: str = "qwen2.5-coder-0.5b",
    target_dtype: str = "auto",
    ttft_tasks: int = 1,
    ttft_arms: list[str] | tuple[str, ...] | None = None,
    ttft_no_cache_reference: bool = False,
    no_ttft: bool = False,
    answers: bool = False,
    ce_trigger: int = 6000,
    ce_keep: int = 3,
) -> dict[str, Any]:
    """Every task through every arm (one at a time), then the metrics; ``draft`` is a loaded ``DraftModel``."""
    arms = ["full", *(a for a in arms if a != "full")]  # full is the reference of every relative figure
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        msg = f"unknown arm(s) {unknown}; choose from {list(ARMS)}"
        raise ValueError(msg)
    tokenizer = target_tokenizer(target, None if no_ttft and not answers else target_dtype)
    rows, runs = [], {}
    for task in tasks:
        for arm in arms:
            mw = cost_loop.middleware(arm, draft, keep_ratio, ce_trigger, ce_keep)
            runs[(task.id, arm)] = run = cost_loop.run_loop(task, arm, mw, _log)
            rows.append(measure(task, arm, run, tokenizer))
    relate(rows)
    if answers:
        from specprefill_langchain.bench.runs.cost_answers import answer_all

        answer_all(tasks, runs, rows, target, target_dtype)
    kinds = sorted({t.kind for t in tasks}, key=ALL_KINDS.index)
    result: dict[str, Any] = {
        "config": _config(tasks, draft, arms, keep_ratio, target, ce_trigger, ce_keep, answers),
        "arms": {a: aggregate([r for r in rows if r["arm"] == a]) for a in arms},
        "per_kind": {
            k: {a: aggregate([r for r in rows if r["arm"] == a and r["kind"] == k]) for a in arms} for k in kinds
        },
        "cumulative_bill": cumulative_bill(rows, tasks[0].id, CUMULATIVE_SHEET),
    }
    if no_ttft or ttft_tasks < 1:
        result["ttft"] = {"skipped": "--no-ttft" if no_ttft else "--ttft-tasks 0"}
    else:
        timed = [a for a in arms if ttft_arms is None or a in ttft_arms or a == "full"]
        result["ttft"] = ttft(
            tasks[:ttft_tasks], rows, timed, target, target_dtype, no_cache_reference=ttft_no_cache_reference
        )
    result["per_task"] = [{k: v for k, v in r.items() if k != "_ids"} for r in rows]
    _summary(result)
    return result


def _config(
    tasks: list[LoopTask],
    draft: Any,
    arms: list[str],
    keep_ratio: float,
    target: str,
    ce_trigger: int,
    ce_keep: int,
    answers: bool,
) -> dict[str, Any]:
    return {
        "arms": arms,
        "arm_settings": {a: cost_loop.ARM_SETTINGS[a] for a in arms},
        "context_editing": cost_loop.context_editing_settings(ce_trigger, ce_keep),
        "keep_ratio": keep_ratio,
        "draft": getattr(draft, "name", str(draft)),
        "draft_dtype": str(getattr(draft, "dtype", "")).replace("torch.", ""),
        "target_tokenizer": target,
        "answers": answers,
        "kinds": sorted({t.kind for t in tasks}, key=ALL_KINDS.index),
        "n_tasks": len(tasks),
        "steps": max(t.steps for t in tasks),
        "model_calls_per_task": max(t.calls for t in tasks),
        "price_sheets": {k: {"read": r, "write": w} for k, (r, w) in SHEETS.items()},
        "cumulative_bill_sheet": CUMULATIVE_SHEET,
    }


def _summary(result: dict[str, Any]) -> None:
    _log(f"{'arm':<24} {'tok vs full':>11} {'stab mean':>9} {'stab min':>8} {'bill w1.25':>10} "
         f"{'bill w1.0':>9} {'evidence':>10} {'recover':>8} {'rescued/step':>12} {'draft s/step':>12}")  # fmt: skip
    for arm, a in result["arms"].items():
        bill = a["bill_vs_full"]
        _log(
            f"{arm:<24} {a['tokens_vs_full']:>11.3f} {a['prefix_stability_mean']:>9.3f} "
            f"{a['prefix_stability_min']:>8.3f} {bill['r0.1_w1.25']:>10.3f} {bill['r0.1_w1.0']:>9.3f} "
            f"{a['evidence_kept']:>4}/{a['n']:<5} {a['recoverable']['k']:>4}/{a['n']:<3} "
            f"{a['rescued_chars_per_step']:>12.1f} {a['draft_s_per_step']:>12.3f}"
        )


def add_args(p: argparse.ArgumentParser, prefix: str = "") -> None:
    options.add(
        p, prefix, "kinds", type=options.csv_of(str, ALL_KINDS), default=list(LOOP_KINDS), help=", ".join(ALL_KINDS)
    )
    options.add(p, prefix, "n-per-kind", type=int, default=3, help="loops per kind")
    options.add(p, prefix, "steps", type=int, default=12, help="tool steps per loop (one model call more)")
    options.add(p, prefix, "output-chars", type=int, default=3000, help="characters per tool output")
    options.add(p, prefix, "arms", type=options.csv_of(str, ARMS), default=list(ARMS), help=", ".join(ARMS))
    options.add(p, prefix, "keep-ratio", type=options.ratio, default=0.3)
    options.add(p, prefix, "ttft-tasks", type=int, default=1, help="tasks whose local target TTFT is timed")
    options.add(
        p,
        prefix,
        "ttft-arms",
        type=options.csv_of(str, ARMS),
        default=["full", "per_step", "stable"],
        help="arms whose TTFT is timed (the target's prefill is the slow part of this benchmark)",
    )
    options.add(p, prefix, "no-ttft", action="store_true", help="skip the local target's TTFT timing")
    options.add(
        p, prefix, "answers", action="store_true", help="the local target answers each loop's question from each arm"
    )
    options.add(
        p,
        prefix,
        "ttft-no-cache-reference",
        action="store_true",
        help="also time the full loop with no target cache (every step prefilled from scratch: slow)",
    )
    options.add(p, prefix, "draft", default="smollm2-135m")
    options.add(p, prefix, "dtype", default="auto", choices=["auto", "float32", "bfloat16"], help="draft dtype")
    options.add(p, prefix, "target", default="qwen2.5-coder-0.5b", help="tokenizer and TTFT model")
    options.add(p, prefix, "target-dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    options.add(p, prefix, "ce-trigger", type=int, default=6000, help="context-editing trigger (tokens)")
    options.add(p, prefix, "ce-keep", type=int, default=3, help="context-editing: tool results kept")
    options.add(p, prefix, "seed", type=int, default=0)


def run_args(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    from specprefill_langchain import DraftModel

    def get(name: str) -> Any:
        return options.get(args, prefix, name)

    tasks = make_loop_tasks(get("kinds"), get("n-per-kind"), get("steps"), get("output-chars"), get("seed"))
    _log(f"{len(tasks)} loops of {get('steps')} steps; loading draft {get('draft')} ({get('dtype')})")
    draft = DraftModel.load(get("draft"), dtype=get("dtype"))
    result = run_cost(
        tasks,
        draft,
        arms=get("arms"),
        keep_ratio=get("keep-ratio"),
        target=get("target"),
        target_dtype=get("target-dtype"),
        ttft_tasks=get("ttft-tasks"),
        ttft_arms=get("ttft-arms"),
        ttft_no_cache_reference=get("ttft-no-cache-reference"),
        no_ttft=get("no-ttft"),
        answers=get("answers"),
        ce_trigger=get("ce-trigger"),
        ce_keep=get("ce-keep"),
    )
    result["config"] |= {"seed": get("seed"), "n_per_kind": get("n-per-kind"), "output_chars": get("output-chars")}
    result["config"]["draft"] = get("draft")
    return result
