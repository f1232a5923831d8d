"""The metrics of ``bench cost``: one row per (loop, arm), then means and rates per arm and per kind.

Per row (definitions of the cache metrics in :mod:`.cost_target`): characters and target tokens sent,
prefix stability per step, the input bill under each price sheet, whether every evidence string is
verbatim in the final model input (``evidence_kept``) or at least recoverable from it (kept, or the
compressed output that held it carries the recall note with its ref: the thread's state has the
original), the final input's size against the full loop's (``kept_share``), the characters rescued
per step, and the draft's seconds per step. Rates carry n and a 95 % Wilson interval.
"""

from __future__ import annotations

import statistics
from typing import Any

from specprefill_langchain.bench.intervals import wilson
from specprefill_langchain.bench.runs.cost_loop import LoopRun
from specprefill_langchain.bench.runs.cost_target import (
    SHEETS,
    cached_tokens,
    encode,
    prefix_stability,
    relative,
    render,
    step_bills,
)
from specprefill_langchain.bench.tasks.agent_loops import LoopTask


def _evidence_ref(task: LoopTask) -> str:
    """The recall ref of the output that holds the evidence (the scripted calls are ``call_{k}``)."""
    return f'ref="call_{task.evidence_step - 1}"'


def measure(task: LoopTask, arm: str, run: LoopRun, tokenizer: Any) -> dict[str, Any]:
    """One (task, arm) row: per-step sizes, cache hits and draft seconds, and the per-loop totals."""
    texts = [render(tokenizer, msgs, run.schemas) for msgs in run.inputs]
    ids = [encode(tokenizer, t) for t in texts]
    stab = prefix_stability(ids)
    final = "\n".join(m.text for m in run.inputs[-1])
    kept = all(ev in final for ev in task.evidence)
    return {
        "task": task.id,
        "kind": task.kind,
        "arm": arm,
        "steps": len(ids),
        "chars": [len(t) for t in texts],
        "tokens": [len(x) for x in ids],
        "cached": cached_tokens(ids),
        "draft_s": [round(s, 4) for s in run.draft_s],
        "rescued_chars": list(run.rescued_chars),
        "stability": [round(s, 5) for s in stab],
        "chars_total": sum(len(t) for t in texts),
        "tokens_total": sum(len(x) for x in ids),
        "final_chars": len(texts[-1]),
        "stability_mean": statistics.fmean(stab) if stab else 1.0,
        "stability_min": min(stab, default=1.0),
        "bill": {name: sum(step_bills(ids, r, w)) for name, (r, w) in SHEETS.items()},
        "evidence_kept": kept,
        "recoverable": kept or _evidence_ref(task) in final,
        "draft_s_total": round(sum(run.draft_s), 4),
        "_ids": ids,  # dropped before output; the TTFT run reuses them
    }


def relate(rows: list[dict[str, Any]]) -> None:
    """Add what compares a row with the same loop's ``full`` arm: tokens, bill, final input size."""
    full = {r["task"]: r for r in rows if r["arm"] == "full"}
    for r in rows:
        ref = full[r["task"]]
        r["tokens_vs_full"] = relative(r["tokens_total"], ref["tokens_total"])
        r["bill_vs_full"] = {s: relative(r["bill"][s], ref["bill"][s]) for s in SHEETS}
        r["kept_share"] = relative(r["final_chars"], ref["final_chars"])


def _rate(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    k, n = sum(bool(r[key]) for r in rows), len(rows)
    lo, hi = wilson(k, n)
    return {"k": k, "n": n, "rate": k / n if n else None, "ci95": [round(lo, 4), round(hi, 4)]}


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over loops (minimum for the stability minimum); evidence as k of n with its interval."""
    n = len(rows)
    steps = sum(r["steps"] for r in rows)
    evidence = _rate(rows, "evidence_kept")
    rescued = sum(sum(r["rescued_chars"]) for r in rows)
    answered = [r for r in rows if "answer_correct" in r]
    return {
        "n": n,
        "chars_sent": statistics.fmean(r["chars_total"] for r in rows),
        "target_tokens_sent": statistics.fmean(r["tokens_total"] for r in rows),
        "tokens_vs_full": statistics.fmean(r["tokens_vs_full"] for r in rows),
        "kept_share": statistics.fmean(r["kept_share"] for r in rows),
        "prefix_stability_mean": statistics.fmean(r["stability_mean"] for r in rows),
        "prefix_stability_min": min(r["stability_min"] for r in rows),
        "bill_vs_full": {s: statistics.fmean(r["bill_vs_full"][s] for r in rows) for s in SHEETS},
        "evidence_kept": evidence["k"],
        "evidence_rate": evidence["rate"],
        "evidence_ci95": evidence["ci95"],
        "recoverable": _rate(rows, "recoverable"),
        "rescued_chars_per_step": rescued / steps if steps else 0.0,
        "rescued_share": rescued / max(1, sum(r["chars_total"] for r in rows)),
        "rescued_share_of_final": rescued / max(1, sum(r["final_chars"] for r in rows)),
        "draft_s_per_step": sum(r["draft_s_total"] for r in rows) / steps if steps else 0.0,
        "draft_s_per_task": statistics.fmean(r["draft_s_total"] for r in rows),
        **({"accuracy": _rate(answered, "answer_correct")} if answered else {}),
    }


def cumulative_bill(rows: list[dict[str, Any]], task_id: str, sheet: str) -> dict[str, list[float]]:
    """Per arm, the running sum of the per-step bill of one task, over ``full``'s total bill."""
    read, write = SHEETS[sheet]
    mine = {r["arm"]: step_bills(r["_ids"], read, write) for r in rows if r["task"] == task_id}
    total = sum(mine["full"])
    out = {}
    for arm, bills in mine.items():
        run, acc = [], 0.0
        for b in bills:
            acc += b
            run.append(round(acc / total, 5))
        out[arm] = run
    return out
