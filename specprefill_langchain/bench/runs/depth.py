"""Early-layer scoring: evidence retention and draft seconds against the depth the draft runs.

    python -m specprefill_langchain.bench depth --json --plots docs/

For each draft and each depth (a fraction of the draft's layers; 1.0 = all), our compressor runs and
scores only the first layers on every fidelity task kind (and, with ``--loop-tasks``, on the final
transcripts of the agent-loop tasks of ``bench cost``). The default depth is chosen from this curve:
the shallowest depth whose retention stays within 2 points of full depth at every keep ratio.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from specprefill_langchain.bench import options
from specprefill_langchain.bench.methods import OursMethod
from specprefill_langchain.bench.runs.fidelity import run_fidelity
from specprefill_langchain.bench.tasks import KINDS, Task, make_tasks


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--drafts", type=options.csv_of(str), default=["smollm2-135m"])
    p.add_argument("--depths", type=options.csv_of(float), default=[1.0, 0.75, 0.5, 0.4, 0.3, 0.2])
    p.add_argument("--keep-ratios", type=options.ratios, default=[0.3, 0.15])
    p.add_argument("--kinds", type=options.csv_of(str, KINDS), default=None, help=f"default: all of {','.join(KINDS)}")
    p.add_argument("--n-per-kind", type=int, default=3)
    p.add_argument("--tokens", type=int, default=4000)
    p.add_argument("--loop-tasks", type=int, default=0, help="also this many agent-loop tasks per loop kind")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--hop-chunks",
        type=int,
        default=None,
        help="ScoringConfig.hop_chunks for every depth (default: the library's; 0 = no second hop)",
    )


def _loop_tasks(n_per_kind: int, seed: int) -> list[Task]:
    """The agent-loop tasks of ``bench cost`` as fidelity tasks: their last transcript, their evidence."""
    if n_per_kind <= 0:
        return []
    from specprefill_langchain.bench.tasks.agent_loops import LOOP_KINDS, final_transcript, make_loop_tasks

    loops = make_loop_tasks(LOOP_KINDS, n_per_kind=n_per_kind, seed=seed)
    return [
        Task(f"{t.kind}-{i}", t.kind, final_transcript(t), t.request, "", tuple(t.evidence), 0)
        for i, t in enumerate(loops)
    ]


def shallowest_within(rows: Sequence[dict[str, Any]], draft: str, points: float = 0.02) -> float | None:
    """The smallest depth whose overall retention is within ``points`` of full depth at every keep ratio."""
    overall = [r for r in rows if r["draft"] == draft and r["task"] == "overall"]
    full = {r["keep_ratio"]: r["retention"] for r in overall if r["depth"] == 1.0}
    if not full:
        return None
    ok = []
    for depth in sorted({r["depth"] for r in overall}):
        mine = {r["keep_ratio"]: r["retention"] for r in overall if r["depth"] == depth}
        if all(mine.get(k, -1.0) >= v - points - 1e-9 for k, v in full.items()):
            ok.append(depth)
    return min(ok) if ok else None


def run_depth(
    tasks: Sequence[Task],
    drafts: Sequence[str],
    depths: Sequence[float],
    keep_ratios: Sequence[float],
    dtype: str = "float32",
    hop_chunks: int | None = None,
) -> dict[str, Any]:
    from specprefill_langchain import DraftModel, ScoringConfig

    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    layers: dict[str, list[int]] = {}
    for draft in drafts:
        model = DraftModel.load(draft, dtype=dtype)
        layers[draft] = [model.depth_of(d) for d in depths]
        for depth in depths:
            print(
                f"[depth] {draft}: depth {depth} = {model.depth_of(depth)} of {model.n_layers} layers", file=sys.stderr
            )
            hop = {} if hop_chunks is None else {"hop_chunks": hop_chunks}
            method = OursMethod(draft=draft, dtype=dtype, scoring=ScoringConfig(depth=depth, **hop))
            method.name = f"ours[depth={depth}]"
            out = run_fidelity([method], tasks, keep_ratios=keep_ratios, progress=True)
            skipped += out["skipped"]
            rows += [{**r, "depth": depth, "layers": model.depth_of(depth)} for r in out["results"]]
    chosen = {d: shallowest_within(rows, d) for d in drafts}
    return {"results": rows, "skipped": skipped, "layers": layers, "shallowest_within_2_points": chosen}


def run_args(args: argparse.Namespace) -> dict[str, Any]:
    tasks = make_tasks(args.kinds, n_per_kind=args.n_per_kind, target_tokens=args.tokens, seed=args.seed)
    tasks += _loop_tasks(args.loop_tasks, args.seed)
    result = run_depth(tasks, args.drafts, args.depths, args.keep_ratios, args.dtype, args.hop_chunks)
    result["config"] = {
        "drafts": args.drafts,
        "depths": args.depths,
        "keep_ratios": args.keep_ratios,
        "kinds": sorted({t.kind for t in tasks}),
        "n_per_kind": args.n_per_kind,
        "loop_tasks": args.loop_tasks,
        "tokens": args.tokens,
        "dtype": args.dtype,
        "seed": args.seed,
        "hop_chunks": args.hop_chunks,
    }
    return result
