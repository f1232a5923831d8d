"""``python -m specprefill_langchain.bench``: fidelity, latency, agent-step and KV-reuse benchmarks.

With ``--json`` a command prints exactly one JSON object on stdout; logs, progress bars and anything
a model library prints go to stderr, so the output can be piped straight into ``jq``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from specprefill_langchain.bench import options, run_all
from specprefill_langchain.bench.runs import (
    accuracy,
    agent_step,
    cost,
    depth,
    fidelity,
    fleet,
    kv_reuse,
    latency,
    long_history,
)
from specprefill_langchain.bench.tasks import KINDS

Command = Callable[[argparse.Namespace], tuple[int, dict[str, Any]]]


def cmd_fidelity(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    tasks = fidelity.tasks_of(args)
    result = fidelity.run_args(args, tasks)
    result["config"] = {
        "methods": args.methods,
        "drafts": args.drafts,
        "keep_ratios": args.keep_ratios,
        "kinds": args.kinds or list(KINDS),
        "n_per_kind": args.n_per_kind,
        "tokens": args.tokens,
        "seed": args.seed,
    }
    if args.accuracy:
        result["accuracy"] = accuracy.run_args(args, "accuracy-", tasks=tasks)  # spread to --accuracy-tasks
    if args.plots:
        from specprefill_langchain.bench.plots import plot_fidelity

        result["plots"] = [str(p) for p in plot_fidelity(result, args.plots)]
    return (0 if result["results"] else 1), result


def cmd_kv_reuse(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    try:
        return 0, kv_reuse.run_args(args)
    except ImportError as exc:  # the library's pass API is imported only when the run starts
        return 2, {"error": f"kv-reuse benchmark unavailable: {exc}"}


def cmd_latency(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from specprefill_langchain.bench import plots

    result = latency.run_args(args)
    if args.plots:
        result["plots"] = [str(p) for p in plots.plot_latency(result, args.plots)]
    return (0 if result["results"] else 1), result


def cmd_agent_step(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from specprefill_langchain.bench import plots

    result = agent_step.run_args(args)
    if args.plots:
        result["plots"] = [str(p) for p in plots.plot_agent_step(result, args.plots)]
    return 0, result


def cmd_accuracy(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    result = accuracy.run_args(args)
    return (0 if result["results"] else 1), result


def cmd_cost(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    result = cost.run_args(args)
    if args.plots:
        from specprefill_langchain.bench.plots import plot_cost

        result["plots"] = [str(p) for p in plot_cost(result, args.plots)]
    return 0, result


def cmd_depth(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    result = depth.run_args(args)
    if args.plots:
        from specprefill_langchain.bench.plots import plot_depth

        result["plots"] = [str(p) for p in plot_depth(result, args.plots)]
    return (0 if result["results"] else 1), result


def cmd_long_history(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    return 0, long_history.run_args(args)


def cmd_all(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    return run_all.run_all(args, args.command_line)


def cmd_report(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from specprefill_langchain.bench.report import update_readme, write_report

    source = Path(args.results)
    if not source.is_file():
        msg = f"{source} does not exist: run `python -m specprefill_langchain.bench all` first (it writes it)."
        raise SystemExit(msg)
    results = json.loads(source.read_text())
    report = write_report(results, args.report)
    readme = bool(args.readme) and update_readme(results, args.readme)
    return 0, {"report": str(report), "readme_updated": readme}


def _add_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="docs/results.json", help="the JSON that `bench all` wrote")
    p.add_argument("--report", default="docs/RESULTS.md", help="where to write the Markdown report")
    p.add_argument("--readme", default="README.md", help="README whose results block to rewrite ('' = none)")


def _add_fidelity(p: argparse.ArgumentParser) -> None:
    fidelity.add_args(p)
    p.add_argument("--accuracy", action="store_true", help="also ask the target (see the accuracy command)")
    accuracy.add_args(p, "accuracy-", own_tasks=False)  # --accuracy-tasks: fidelity tasks asked


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    common.add_argument("--plots", metavar="DIR", default=None, help="write PNG plots into DIR")
    common.add_argument(
        "--save",
        metavar="RESULTS_JSON",
        default=None,
        help="also store the result as this command's section of RESULTS_JSON (e.g. docs/results.json), "
        "for `bench report` to render",
    )
    common.add_argument("--section", default=None, help="the section name for --save (default: the command's)")
    common.add_argument(
        "--note",
        default=None,
        help="how the run was made, shown under its table (e.g. 'timed with one torch thread beside another run')",
    )
    parser = argparse.ArgumentParser(prog="python -m specprefill_langchain.bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    commands: list[tuple[str, Command, str, Callable[[argparse.ArgumentParser], None]]] = [
        ("fidelity", cmd_fidelity, "evidence retention vs keep ratio", _add_fidelity),
        ("latency", cmd_latency, "compression seconds per method at equal keep", latency.add_args),
        ("agent-step", cmd_agent_step, "time to first token per agent step", agent_step.add_args),
        ("accuracy", cmd_accuracy, "target answer accuracy: full prompt, ours, a peer", accuracy.add_args),
        ("kv-reuse", cmd_kv_reuse, "incremental prefill through the draft's KV cache", kv_reuse.add_args),
        ("all", cmd_all, "every benchmark above, results.json, plots, RESULTS.md", run_all.add_args),
        ("report", cmd_report, "rewrite RESULTS.md and the README block from results.json", _add_report),
        ("cost", cmd_cost, "agent-loop cost under prompt caches: tokens, prefix stability, bill", cost.add_args),
        ("depth", cmd_depth, "evidence retention and draft cost vs the layers the draft runs", depth.add_args),
        ("long-history", cmd_long_history, "per-step mode past the draft's context: windows", long_history.add_args),
        ("fleet", fleet.command, "workers behind one PostgreSQL checkpointer: same bytes on resume", fleet.add_args),
    ]
    for name, command, help_text, add in commands:
        p = sub.add_parser(name, parents=[common], help=help_text)
        add(p)
        p.set_defaults(run=command)
    return parser


def save_section(path: Path, key: str, result: dict[str, Any], command: str) -> None:
    """Store ``result`` under ``key`` in the results file (other sections stay), stamped with its provenance."""
    from specprefill_langchain.bench.provenance import stamp
    from specprefill_langchain.bench.report import machine  # lazy: it imports torch

    results = json.loads(path.read_text()) if path.is_file() else {}
    results[key] = result
    here = machine()
    stamp(results, key, command, here["date"])
    # The machine of the latest run, without its date (each section has its own): the report renders
    # it from the file, so rendering twice gives the same bytes.
    results["machine"] = {k: v for k, v in here.items() if k != "date"}
    if result.get("plots"):
        results["plots"] = sorted({*results.get("plots", []), *result["plots"]})
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")


def _print_summary(result: dict[str, Any]) -> None:
    rows = [r for r in result.get("results", []) if r.get("task") == "overall"]
    if not rows:
        print(json.dumps(result, indent=2, default=str))
        return
    print(f"{'method':<28} {'keep':>5} {'retention':>9} {'kept':>6}")
    for r in rows:
        label = f"{r['method']}[{r['draft']}]" if r["draft"] else r["method"]
        print(f"{label:<28} {r['keep_ratio']:>5.2f} {r['retention']:>9.3f} {r['kept_fraction']:>6.3f}")
    for s in result.get("skipped", []):
        print(f"skipped {s['method']}: {s['reason']}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.command_line = options.command_line(argv)
    # Model libraries sometimes print; keep stdout for the one JSON object.
    with contextlib.redirect_stdout(sys.stderr):
        code, result = args.run(args)
    if args.note and isinstance(result, dict):
        result["note"] = "; ".join(n for n in (result.get("note"), args.note) if n)
    if args.save and args.command not in ("all", "report"):
        save_section(Path(args.save), args.section or args.command.replace("-", "_"), result, args.command_line)
    if args.json:
        print(json.dumps(result, default=str))
    else:
        _print_summary(result)
    return code
