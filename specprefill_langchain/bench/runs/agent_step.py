"""``bench agent-step``: the draft's stable step against the target's cached step over the same new tokens.

    python -m specprefill_langchain.bench agent-step --json

The baseline a user really has is a target that caches its prompt prefix: each step of an uncompressed
agent loop prefills only the tokens that step adds. One scripted ``create_agent`` loop (``bench cost``'s,
real tool outputs) runs twice, uncompressed (``full``) and through ``SpecPrefillMiddleware`` at the
shipping defaults (``stable``); per step it measures

* the draft's stable step (from its ``specprefill_stats`` events), split: prefill, the focus's scoring,
  the second hop;
* the target's cached prefill of the step's new tokens, for the full loop and for the stable loop (the
  previous step's KV cache cropped to the common prefix, as vLLM / llama.cpp reuse one);
* ``draft_vs_target_cached_step``: the draft's seconds over the full loop's cached target seconds,
  summed over the steps that ran the draft (and at the last step);
* each part's achieved GFLOP/s (FLOPs from the models' shapes) against a plain matmul of the model's
  own shapes on this CPU (:mod:`.flops`).

Time to first token per step: full = the target's cached prefill; stable = the draft's step + the
target's cached prefill of the (shorter) stable input.
"""

from __future__ import annotations

import argparse
import resource
import sys
from typing import Any

import torch

from specprefill_langchain.bench import options
from specprefill_langchain.bench.runs import cost_loop
from specprefill_langchain.bench.runs.cost_target import PrefixCachedTarget, encode, render
from specprefill_langchain.bench.runs.flops import matmul_ceiling, rate, shapes_of
from specprefill_langchain.bench.tasks.agent_loops import ALL_KINDS, make_loop_tasks

ARMS = ("full", "stable")  # the uncompressed loop and the shipping defaults


def _log(msg: str) -> None:
    print(f"[agent-step] {msg}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux: the high-water mark of this whole process.
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _draft_parts(events: list[dict[str, Any]]) -> dict[str, float]:
    """A step's draft work from its stats events (a step may compress several results at once)."""
    keys = (
        "total_s",
        "prefill_s",
        "scoring_s",
        "hop_s",
        "prefilled_tokens",
        "reused_tokens",
        "draft_tokens_in",
        "passes",
    )
    return {k: float(sum(e.get(k) or 0 for e in events)) for k in keys}


def per_step_rows(stats: list[list[dict[str, Any]]], full_t: list[dict], stable_t: list[dict]) -> list[dict[str, Any]]:
    """One row per model call: the draft's parts and the target's cached prefills of both loops."""
    rows = []
    for k, (events, f, s) in enumerate(zip(stats, full_t, stable_t, strict=True)):
        d = _draft_parts(events)
        rows.append(
            {
                "step": k,
                "draft_s": round(d["total_s"], 4),
                "draft_prefill_s": round(d["prefill_s"], 4),
                "draft_scoring_s": round(d["scoring_s"], 4),
                "draft_hop_s": round(d["hop_s"], 4),
                "draft_passes": int(d["passes"]),
                "draft_new_tokens": int(d["prefilled_tokens"]),
                "draft_reused_tokens": int(d["reused_tokens"]),
                "draft_context_tokens": int(d["draft_tokens_in"]),
                "target_new_tokens_full": f["forwarded"],
                "target_cached_full_s": round(f["target_s"], 4),
                "target_new_tokens_stable": s["forwarded"],
                "target_cached_stable_s": round(s["target_s"], 4),
                "ttft_full_s": round(f["target_s"], 4),
                "ttft_stable_s": round(d["total_s"] + s["target_s"], 4),
                "target_tokens_full": f["tokens"],
                "target_tokens_stable": s["tokens"],
            }
        )
    return rows


def efficiency(rows: list[dict[str, Any]], draft: Any, target: Any) -> dict[str, Any]:
    """Achieved GFLOP/s of the draft's prefill and the target's cached prefill, and each ceiling."""
    ds, ts = shapes_of(draft.model, draft.depth_of(_depth())), shapes_of(target.model)
    ran = [r for r in rows if r["draft_passes"] > 0]
    d_flops = sum(ds.forward(r["draft_new_tokens"], r["draft_context_tokens"] - r["draft_new_tokens"]) for r in ran)
    t_flops = sum(ts.forward(r["target_new_tokens_full"], r["target_tokens_full"] - r["target_new_tokens_full"])
                  for r in ran)  # fmt: skip
    d_ceiling, t_ceiling = matmul_ceiling(ds), matmul_ceiling(ts)
    d_rate = rate(d_flops, sum(r["draft_prefill_s"] for r in ran))
    t_rate = rate(t_flops, sum(r["target_cached_full_s"] for r in ran))
    return {
        "draft_prefill_gflops": round(d_flops / 1e9, 2),
        "draft_prefill_gflop_s": d_rate,
        "draft_matmul_ceiling_gflop_s": round(d_ceiling, 2),
        "draft_prefill_share_of_ceiling": round(d_rate / d_ceiling, 3) if d_rate else None,
        "target_cached_gflops": round(t_flops / 1e9, 2),
        "target_cached_gflop_s": t_rate,
        "target_matmul_ceiling_gflop_s": round(t_ceiling, 2),
        "target_share_of_ceiling": round(t_rate / t_ceiling, 3) if t_rate else None,
        "flop_ratio_draft_prefill_vs_target": round(d_flops / t_flops, 4) if t_flops else None,
    }


def _depth() -> float:
    from specprefill_langchain import ScoringConfig

    return ScoringConfig().depth


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Sums over the steps that ran the draft; the ratio the issue tracks, and the loop's TTFT."""
    ran = [r for r in rows if r["draft_passes"] > 0]
    draft = sum(r["draft_s"] for r in ran)
    target = sum(r["target_cached_full_s"] for r in ran)
    last = ran[-1] if ran else None
    parts = {k: round(sum(r[f"draft_{k}_s"] for r in ran), 4) for k in ("prefill", "scoring", "hop")}
    return {
        "draft_vs_target_cached_step": round(draft / target, 4) if target else None,
        "draft_vs_target_cached_step_last": round(last["draft_s"] / last["target_cached_full_s"], 4) if last else None,
        "steps_with_draft": len(ran),
        "draft_s": round(draft, 4),
        "draft_parts_s": parts,
        "target_cached_full_s": round(target, 4),
        "target_cached_stable_s": round(sum(r["target_cached_stable_s"] for r in ran), 4),
        "draft_new_tokens": sum(r["draft_new_tokens"] for r in ran),
        "target_new_tokens_full": sum(r["target_new_tokens_full"] for r in ran),
        "summed_ttft_full_s": round(sum(r["ttft_full_s"] for r in rows), 4),
        "summed_ttft_stable_s": round(sum(r["ttft_stable_s"] for r in rows), 4),
    }


def run_agent_step(
    kind: str = "key_in_call",
    steps: int = 8,
    output_chars: int = 3000,
    keep_ratio: float = 0.3,
    draft: str = options.DRAFT,
    target: str = options.TARGET,
    dtype: str = "auto",
    target_dtype: str = "auto",
    seed: int = 0,
) -> dict[str, Any]:
    from specprefill_langchain import DraftModel
    from specprefill_langchain.draft import resolve_dtype

    task = make_loop_tasks([kind], n_per_kind=1, steps=steps, output_chars=output_chars, seed=seed)[0]
    _log(f"loading draft {draft} ({dtype}) and target {target} ({target_dtype}); task {task.id}")
    d = DraftModel.load(draft, dtype=dtype)
    d.warmup(d.depth_of(_depth()))
    tgt = PrefixCachedTarget(target, target_dtype)
    tgt.warm_up()
    runs = {arm: cost_loop.run_loop(task, arm, cost_loop.middleware(arm, d, keep_ratio), _log) for arm in ARMS}
    timed = {}
    for arm, run in runs.items():
        ids = [encode(tgt.loaded.tokenizer, render(tgt.loaded.tokenizer, m, run.schemas)) for m in run.inputs]
        timed[arm] = tgt.time_loop(ids, reuse=True)
    rows = per_step_rows(runs["stable"].stats, timed["full"], timed["stable"])
    summary = summarize(rows)
    _log(f"draft / target cached step: {summary['draft_vs_target_cached_step']} ({summary['steps_with_draft']} steps)")
    return {
        "task": task.id,
        "kind": kind,
        "steps": steps,
        "output_chars": output_chars,
        "keep_ratio": keep_ratio,
        "draft": draft,
        "target": target,
        "dtype": resolve_dtype(dtype),
        "target_dtype": resolve_dtype(target_dtype),
        **summary,
        "efficiency": efficiency(rows, d, tgt.loaded),
        "peak_rss_mb": peak_rss_mb(),
        "torch_threads": torch.get_num_threads(),
        "per_step": rows,
    }


def add_args(p: argparse.ArgumentParser, prefix: str = "") -> None:
    options.add(p, prefix, "kind", default="key_in_call", choices=list(ALL_KINDS), help="the loop's task kind")
    options.add(p, prefix, "steps", type=int, default=8, help="tool steps of the loop")
    options.add(p, prefix, "output-chars", type=int, default=3000, help="characters per tool output")
    options.add(p, prefix, "keep-ratio", type=options.ratio, default=0.3)
    options.add(p, prefix, "draft", default="smollm2-135m")
    options.add(p, prefix, "target", default="qwen2.5-coder-0.5b")
    options.add(p, prefix, "dtype", default="auto", choices=["auto", "float32", "bfloat16"], help="draft dtype")
    options.add(p, prefix, "target-dtype", default="auto", choices=["auto", "float32", "bfloat16"])


def run_args(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    def get(name: str) -> Any:
        return options.get(args, prefix, name)

    return run_agent_step(
        kind=get("kind"),
        steps=get("steps"),
        output_chars=get("output-chars"),
        keep_ratio=get("keep-ratio"),
        draft=get("draft"),
        target=get("target"),
        dtype=get("dtype"),
        target_dtype=get("target-dtype"),
        seed=getattr(args, "seed", 0) or 0,
    )
