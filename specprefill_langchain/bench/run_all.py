"""``bench all``: every benchmark in one process, then ``results.json``, PNG plots and ``RESULTS.md``.

    python -m specprefill_langchain.bench all --plots docs/

LLMLingua/LongLLMLingua (slow: about a minute per 4k-token transcript on a 2-core CPU) run at one keep
ratio on a subset of the fidelity tasks; the extra drafts run at that ratio on all of them. The target
accuracy run answers its own ``--accuracy-tasks`` (48) transcripts per arm (full prompt, ours, a peer),
enough for a Wilson interval narrower than the gaps it is meant to show; it is the longest part.
``--quick`` shrinks everything to seconds-scale sizes for the smoke test. One benchmark that fails is
reported with its error; the others still run.

Imports point one way: ``cli`` -> ``run_all`` -> ``runs`` -> ``methods`` -> ``tasks``; ``options``,
``report`` and ``plots`` import nothing above them.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path
from typing import Any

from specprefill_langchain.bench import options
from specprefill_langchain.bench.runs import accuracy, agent_step, fidelity, kv_reuse, latency
from specprefill_langchain.bench.tasks import spread

QUICK = {
    "kinds": ["needle", "kv_json"],
    "n_per_kind": 1,
    "tokens": 600,
    "keep_ratios": [0.3],
    "methods": ["ours", "full", "random"],
    "peer_methods": [],
    "extra_drafts": [],
    "accuracy_targets": ["qwen2.5-coder-0.5b"],
    "accuracy_tasks": 1,
    "accuracy_kinds": ["needle"],
    "accuracy_tokens": 600,
    "latency_methods": ["ours", "random"],
    "latency_tokens": 600,
    "latency_n": 1,
    "agent_steps": 2,
    "agent_output_chars": 1000,
    "kv_history": 300,
    "kv_append": 64,
    "kv_repeats": 1,
}
BENCHES = ("fidelity", "accuracy", "latency", "agent_step", "kv_reuse")


def add_args(p: argparse.ArgumentParser) -> None:
    """Every run's options (prefixed, except fidelity's), and those of ``all`` itself."""
    fidelity.add_args(p, in_all=True)
    kv_reuse.add_args(p, "kv-")
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds to a few minutes)")
    p.add_argument("--skip", type=options.csv, default=[], help=f"benchmarks to leave out: {','.join(BENCHES)}")
    p.add_argument("--out", default="docs/results.json", help="where to write the JSON of all results")
    p.add_argument("--report", default="docs/RESULTS.md", help="where to write the Markdown report")
    p.add_argument("--readme", default="README.md", help="README whose results block to rewrite ('' = none)")
    p.add_argument("--peer-methods", type=options.csv, default=["llmlingua", "longllmlingua"])
    p.add_argument("--peer-keep", type=options.ratio, default=0.3, help="keep ratio for peers and extra drafts")
    p.add_argument("--peer-tasks", type=int, default=4, help="fidelity tasks the LLMLingua peers run on")
    p.add_argument("--extra-drafts", type=options.csv, default=["gemma3-270m", "qwen2.5-coder-0.5b"])
    accuracy.add_args(p, "accuracy-")  # its own --accuracy-tasks (48) transcripts, not the fidelity ones
    latency.add_args(p, "latency-")
    agent_step.add_args(p, "agent-")


def _safe(name: str, fn: Any) -> dict[str, Any]:
    print(f"[all] running {name}", file=sys.stderr, flush=True)
    try:
        return fn()
    except Exception as exc:  # one broken benchmark must not lose the others' results
        traceback.print_exc(file=sys.stderr)
        return {"error": f"{type(exc).__name__}: {exc}"}


def run_all(args: argparse.Namespace, argv_text: str) -> tuple[int, dict[str, Any]]:
    from specprefill_langchain.bench.provenance import stamp
    from specprefill_langchain.bench.report import machine, update_readme, write_report

    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    # Sections saved by single benchmarks (cost, depth, ...) stay; the ones run here are replaced.
    known = Path(args.out) if args.out else None
    out: dict[str, Any] = json.loads(known.read_text()) if known and known.is_file() and not args.quick else {}
    out |= {"machine": machine(), "command": argv_text, "quick": args.quick}
    tasks = fidelity.tasks_of(args)
    fresh = _run_benches(args, tasks, set(args.skip))
    out |= fresh
    if not args.quick:
        for key in fresh:
            stamp(out, key, argv_text, out["machine"]["date"])
    new_plots = [str(p) for p in _plots(out, args.plots)] if args.plots else []
    out["plots"] = sorted({*out.get("plots", []), *new_plots})
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    if args.report:
        write_report(out, args.report)
    if args.readme and not args.quick:  # tiny-size figures never replace the README's
        update_readme(out, args.readme)
    failed = [k for k in BENCHES if isinstance(out.get(k), dict) and "error" in out[k]]
    out["failed"] = failed
    return (1 if failed else 0), out


def _run_benches(args: argparse.Namespace, tasks: Any, skip: set[str]) -> dict[str, Any]:
    """Every benchmark of ``bench all`` not in ``skip``: section name -> its result (or its error)."""
    fresh: dict[str, Any] = {}
    if "fidelity" not in skip:
        fresh["fidelity"] = _safe("fidelity", lambda: fidelity.run_args(args, tasks))
        if args.peer_methods:
            subset = spread(tasks, args.peer_tasks)
            names = ["ours", "random", *args.peer_methods]
            fresh["fidelity_peers"] = _safe(
                "fidelity peers", lambda: fidelity.run_args(args, subset, names, keep_ratios=[args.peer_keep])
            )
        if args.extra_drafts:
            fresh["fidelity_drafts"] = _safe(
                "fidelity drafts",
                lambda: fidelity.run_args(args, tasks, ["ours"], args.extra_drafts, keep_ratios=[args.peer_keep]),
            )
    runs = {
        "accuracy": lambda: accuracy.run_args(args, "accuracy-"),
        "latency": lambda: latency.run_args(args, "latency-"),
        "agent_step": lambda: agent_step.run_args(args, "agent-"),
        "kv_reuse": lambda: kv_reuse.run_args(args, "kv-"),
    }
    for key, run in runs.items():
        if key not in skip:
            fresh[key] = _safe(key, run)
    return fresh


def _plots(out: dict[str, Any], plot_dir: str) -> list[Path]:
    from specprefill_langchain.bench import plots

    paths: list[Path] = []
    pairs = [("fidelity", plots.plot_fidelity), ("latency", plots.plot_latency), ("agent_step", plots.plot_agent_step)]
    for key, fn in pairs:
        res = out.get(key)
        if isinstance(res, dict) and "error" not in res:
            paths += fn(res, plot_dir)
    return paths
