"""``python -m specprefill_langchain.bench``: fidelity, latency, agent-step and KV-reuse benchmarks.

With ``--json`` a command prints exactly one JSON object on stdout; logs, progress bars and anything
a model library prints go to stderr, so the output can be piped straight into ``jq``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
from collections.abc import Callable
from typing import Any

from specprefill_langchain.bench import accuracy, agent_step, latency, options
from specprefill_langchain.bench.peers import (
    FullPrompt,
    KeepLast,
    KeepLastTokens,
    Method,
    OursMethod,
    RandomChunks,
)
from specprefill_langchain.bench.tasks import KINDS

METHODS = ("ours", "full", "keep-last", "keep-last-tokens", "random", "llmlingua", "longllmlingua")
Command = Callable[[argparse.Namespace], tuple[int, dict[str, Any]]]


def _csv(kind: type, allowed: tuple[str, ...] | None = None) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        items = [kind(x.strip()) for x in text.split(",") if x.strip()]
        bad = [x for x in items if allowed is not None and x not in allowed]
        if not items or bad:
            msg = f"expected a comma list of {list(allowed) if allowed else kind.__name__}, got {text!r}"
            raise argparse.ArgumentTypeError(msg)
        return items

    return parse


def _ratios(text: str) -> list[float]:
    ratios = _csv(float)(text)
    if any(not 0 < r <= 1 for r in ratios):
        msg = f"keep ratios must be in (0, 1], got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return ratios


def build_methods(names: list[str], drafts: list[str], seed: int = 0) -> tuple[list[Method], list[dict]]:
    """Method objects for CLI names, one per draft for draft-based methods; unavailable ones as skipped."""
    methods: list[Method] = []
    skipped: list[dict[str, Any]] = []
    simple: dict[str, Callable[[], Method]] = {
        "full": FullPrompt,
        "keep-last": KeepLast,
        "keep-last-tokens": KeepLastTokens,
        "random": lambda: RandomChunks(seed=seed),
    }
    for name in names:
        if name in simple:
            methods.append(simple[name]())
        elif name == "ours":
            methods.extend(OursMethod(draft=d) for d in drafts)
        else:
            for d in drafts:
                try:
                    from specprefill_langchain.bench.llmlingua_peer import LLMLinguaMethod

                    methods.append(LLMLinguaMethod(draft=d, variant=name))
                except (ImportError, RuntimeError, OSError) as exc:
                    skipped.append({"method": name, "draft": d, "reason": f"{type(exc).__name__}: {exc}"})
    return methods, skipped


def cmd_fidelity(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from specprefill_langchain.bench.fidelity import run_fidelity
    from specprefill_langchain.bench.tasks import make_tasks

    tasks = make_tasks(args.kinds, n_per_kind=args.n_per_kind, target_tokens=args.tokens, seed=args.seed)
    methods, skipped = build_methods(args.methods, args.drafts, seed=args.seed)
    print(f"fidelity: {len(tasks)} tasks, {len(methods)} methods", file=sys.stderr)
    result = run_fidelity(methods, tasks, keep_ratios=args.keep_ratios, progress=True)
    result["skipped"] = skipped + result["skipped"]
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
        from specprefill_langchain.bench.run_all import _spread

        result["accuracy"] = accuracy.run_args(args, "accuracy-", tasks=_spread(tasks, args.accuracy_tasks))
    if args.plots:
        from specprefill_langchain.bench.plots import plot_fidelity

        result["plots"] = [str(p) for p in plot_fidelity(result, args.plots)]
    return (0 if result["results"] else 1), result


def cmd_kv_reuse(args: argparse.Namespace, prefix: str = "") -> tuple[int, dict[str, Any]]:
    try:
        from specprefill_langchain.bench.kv_reuse import run_kv_reuse
    except ImportError as exc:
        return 2, {"error": f"kv-reuse benchmark unavailable: {exc}"}
    get = functools.partial(options.get, args, prefix)
    result = run_kv_reuse(
        draft=get("draft"), history=get("history"), append=get("append"), repeats=get("repeats"), dtype=get("dtype")
    )
    return 0, dict(result)


def cmd_latency(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from specprefill_langchain.bench import latency, plots

    result = latency.run_args(args)
    if args.plots:
        result["plots"] = [str(p) for p in plots.plot_latency(result, args.plots)]
    return (0 if result["results"] else 1), result


def cmd_agent_step(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from specprefill_langchain.bench import agent_step, plots

    result = agent_step.run_args(args)
    if args.plots:
        result["plots"] = [str(p) for p in plots.plot_agent_step(result, args.plots)]
    return 0, result


def cmd_accuracy(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from specprefill_langchain.bench import accuracy

    result = accuracy.run_args(args)
    return (0 if result["results"] else 1), result


def cmd_all(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from specprefill_langchain.bench.run_all import run_all

    return run_all(args, args.command_line, functools.partial(cmd_kv_reuse, prefix="kv-"))


def cmd_report(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from pathlib import Path

    from specprefill_langchain.bench.report import update_readme, write_report

    source = Path(args.results)
    if not source.is_file():
        msg = f"{source} does not exist: run `python -m specprefill_langchain.bench all` first (it writes it)."
        raise SystemExit(msg)
    results = json.loads(source.read_text())
    command = str(results.get("command") or "python -m specprefill_langchain.bench all")
    report = write_report(results, args.report, command)
    readme = bool(args.readme) and update_readme(results, args.readme, command)
    return 0, {"report": str(report), "readme_updated": readme}


def _add_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="docs/results.json", help="the JSON that `bench all` wrote")
    p.add_argument("--report", default="docs/RESULTS.md", help="where to write the Markdown report")
    p.add_argument("--readme", default="README.md", help="README whose results block to rewrite ('' = none)")


def _add_fidelity(p: argparse.ArgumentParser, in_all: bool = False) -> None:
    # `all` adds keep-last (trim_messages) and uses fewer tasks per kind to stay within ~40 minutes.
    methods = (
        ["ours", "full", "keep-last", "keep-last-tokens", "random"]
        if in_all
        else ["ours", "full", "keep-last-tokens", "random"]
    )
    p.add_argument("--methods", type=_csv(str, METHODS), default=methods)
    p.add_argument("--drafts", type=_csv(str), default=["smollm2-135m"])
    p.add_argument("--keep-ratios", type=_ratios, default=[0.1, 0.2, 0.3, 0.5])
    p.add_argument("--kinds", type=_csv(str, KINDS), default=None, help=f"default: all of {','.join(KINDS)}")
    p.add_argument("--n-per-kind", type=int, default=2 if in_all else 4)
    p.add_argument("--tokens", type=int, default=4000, help="approximate size of each transcript")
    p.add_argument("--seed", type=int, default=0)
    if not in_all:
        p.add_argument("--accuracy", action="store_true", help="also ask the target (see the accuracy command)")
        p.add_argument("--accuracy-tasks", type=int, default=8, help="fidelity tasks asked to the target")
        accuracy.add_args(p, "accuracy-", with_tasks=False)


def _add_kv_reuse(p: argparse.ArgumentParser, prefix: str = "") -> None:
    options.add(p, prefix, "draft", default="smollm2-135m")
    options.add(p, prefix, "history", type=int, default=8192)
    options.add(p, prefix, "append", type=int, default=512)
    options.add(p, prefix, "repeats", type=int, default=3)
    options.add(p, prefix, "dtype", default="float32", choices=["float32", "bfloat16", "float16"])


def _add_all(p: argparse.ArgumentParser) -> None:
    from specprefill_langchain.bench import run_all  # lazy: run_all imports this module back

    _add_fidelity(p, in_all=True)
    _add_kv_reuse(p, "kv-")
    run_all.add_args(p)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    common.add_argument("--plots", metavar="DIR", default=None, help="write PNG plots into DIR")
    parser = argparse.ArgumentParser(prog="python -m specprefill_langchain.bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    commands: list[tuple[str, Command, str, list[Callable[[argparse.ArgumentParser], None]]]] = [
        ("fidelity", cmd_fidelity, "evidence retention vs keep ratio", [_add_fidelity]),
        ("latency", cmd_latency, "compression seconds per method at equal keep", [latency.add_args]),
        ("agent-step", cmd_agent_step, "time to first token per agent step", [agent_step.add_args]),
        ("accuracy", cmd_accuracy, "target answer accuracy, full vs compressed", [accuracy.add_args]),
        ("kv-reuse", cmd_kv_reuse, "incremental prefill through the draft's KV cache", [_add_kv_reuse]),
        ("all", cmd_all, "every benchmark above, results.json, plots, RESULTS.md", [_add_all]),
        ("report", cmd_report, "rewrite RESULTS.md and the README block from results.json", [_add_report]),
    ]
    for name, command, help_text, adders in commands:
        p = sub.add_parser(name, parents=[common], help=help_text)
        for add in adders:
            add(p)
        p.set_defaults(run=command)
    return parser


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
    from specprefill_langchain.bench.run_all import command_line

    args.command_line = command_line(argv)
    # Model libraries sometimes print; keep stdout for the one JSON object.
    with contextlib.redirect_stdout(sys.stderr):
        code, result = args.run(args)
    if args.json:
        print(json.dumps(result, default=str))
    else:
        _print_summary(result)
    return code
