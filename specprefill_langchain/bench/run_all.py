"""``bench all``: every benchmark in one process, then ``results.json``, PNG plots and ``RESULTS.md``.

    python -m specprefill_langchain.bench all --plots docs/

Defaults are sized to finish in well under an hour on a 2-core CPU. LLMLingua/LongLLMLingua (slow:
about a minute per 4k-token transcript here) run at one keep ratio on a subset of the fidelity tasks;
the extra drafts run at that ratio on all of them. ``--quick`` shrinks everything to seconds-scale
sizes for the smoke test. One benchmark that fails is reported with its error; the others still run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import traceback
from pathlib import Path
from typing import Any

from specprefill_langchain.bench import accuracy, agent_step, latency, options

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
    "latency_methods": ["ours", "random"],
    "latency_tokens": 600,
    "latency_n": 1,
    "agent_steps": 2,
    "agent_history": 800,
    "kv_history": 300,
    "kv_append": 64,
    "kv_repeats": 1,
}
BENCHES = ("fidelity", "accuracy", "latency", "agent_step", "kv_reuse")


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds to a few minutes)")
    p.add_argument("--skip", type=options.csv, default=[], help=f"benchmarks to leave out: {','.join(BENCHES)}")
    p.add_argument("--out", default="docs/results.json", help="where to write the JSON of all results")
    p.add_argument("--report", default="docs/RESULTS.md", help="where to write the Markdown report")
    p.add_argument("--readme", default="README.md", help="README whose results block to rewrite ('' = none)")
    p.add_argument("--peer-methods", type=options.csv, default=["llmlingua", "longllmlingua"])
    p.add_argument("--peer-keep", type=options.ratio, default=0.3, help="keep ratio for peers and extra drafts")
    p.add_argument("--peer-tasks", type=int, default=4, help="fidelity tasks the LLMLingua peers run on")
    p.add_argument("--extra-drafts", type=options.csv, default=["gemma3-270m", "qwen2.5-coder-0.5b"])
    p.add_argument("--accuracy-tasks", type=int, default=8, help="fidelity tasks asked to the target")
    accuracy.add_args(p, "accuracy-", with_tasks=False)
    latency.add_args(p, "latency-")
    agent_step.add_args(p, "agent-")


def _spread(items: list[Any], n: int) -> list[Any]:
    """``n`` items spread evenly over ``items`` (so every task kind gets its turn)."""
    if n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(max(1, n))]


def _safe(name: str, fn: Any) -> dict[str, Any]:
    print(f"[all] running {name}", file=sys.stderr, flush=True)
    try:
        return fn()
    except Exception as exc:  # one broken benchmark must not lose the others' results
        traceback.print_exc(file=sys.stderr)
        return {"error": f"{type(exc).__name__}: {exc}"}


def run_all(args: argparse.Namespace, argv_text: str, kv_command: Any) -> tuple[int, dict[str, Any]]:
    from specprefill_langchain.bench.cli import build_methods
    from specprefill_langchain.bench.fidelity import run_fidelity
    from specprefill_langchain.bench.report import machine, update_readme, write_report
    from specprefill_langchain.bench.tasks import make_tasks

    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    out: dict[str, Any] = {"machine": machine(), "command": argv_text, "quick": args.quick}
    tasks = make_tasks(args.kinds, n_per_kind=args.n_per_kind, target_tokens=args.tokens, seed=args.seed)
    skip = set(args.skip)

    def fidelity(names: list[str], drafts: list[str], ratios: list[float], subset: list[Any]) -> dict[str, Any]:
        methods, skipped = build_methods(names, drafts, seed=args.seed)
        res = run_fidelity(methods, subset, keep_ratios=ratios, progress=True)
        res["skipped"] = skipped + res["skipped"]
        return res

    if "fidelity" not in skip:
        out["fidelity"] = _safe("fidelity", lambda: fidelity(args.methods, args.drafts, args.keep_ratios, tasks))
        if args.peer_methods:
            subset = _spread(tasks, args.peer_tasks)
            names = ["ours", "random", *args.peer_methods]
            out["fidelity_peers"] = _safe(
                "fidelity peers", lambda: fidelity(names, args.drafts, [args.peer_keep], subset)
            )
        if args.extra_drafts:
            out["fidelity_drafts"] = _safe(
                "fidelity drafts", lambda: fidelity(["ours"], args.extra_drafts, [args.peer_keep], tasks)
            )
    if "accuracy" not in skip:
        subset = _spread(tasks, args.accuracy_tasks)
        out["accuracy"] = _safe("accuracy", lambda: accuracy.run_args(args, "accuracy-", tasks=subset))
    if "latency" not in skip:
        out["latency"] = _safe("latency", lambda: latency.run_args(args, "latency-"))
    if "agent_step" not in skip:
        out["agent_step"] = _safe("agent-step", lambda: agent_step.run_args(args, "agent-"))
    if "kv_reuse" not in skip:
        out["kv_reuse"] = _safe("kv-reuse", lambda: kv_command(args)[1])
    out["plots"] = [str(p) for p in _plots(out, args.plots)] if args.plots else []
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    if args.report:
        write_report(out, args.report, argv_text)
    if args.readme and not args.quick:  # tiny-size figures never replace the README's
        update_readme(out, args.readme, argv_text)
    failed = [k for k in BENCHES if isinstance(out.get(k), dict) and "error" in out[k]]
    out["failed"] = failed
    return (1 if failed else 0), out


def _plots(out: dict[str, Any], plot_dir: str) -> list[Path]:
    from specprefill_langchain.bench import plots

    paths: list[Path] = []
    pairs = [("fidelity", plots.plot_fidelity), ("latency", plots.plot_latency), ("agent_step", plots.plot_agent_step)]
    for key, fn in pairs:
        res = out.get(key)
        if isinstance(res, dict) and "error" not in res:
            paths += fn(res, plot_dir)
    return paths


def command_line(argv: list[str] | None) -> str:
    return shlex.join(["python", "-m", "specprefill_langchain.bench", *(argv if argv is not None else sys.argv[1:])])
