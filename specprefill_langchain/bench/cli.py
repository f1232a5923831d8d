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
from typing import Any

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
    if args.plots:
        from specprefill_langchain.bench.plots import plot_fidelity

        result["plots"] = [str(p) for p in plot_fidelity(result, args.plots)]
    return (0 if result["results"] else 1), result


def cmd_kv_reuse(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    try:
        from specprefill_langchain.bench.kv_reuse import run_kv_reuse
    except ImportError as exc:
        return 2, {"error": f"kv-reuse benchmark unavailable: {exc}"}
    result = run_kv_reuse(
        draft=args.draft, history=args.history, append=args.append, repeats=args.repeats, dtype=args.dtype
    )
    return 0, dict(result)


def cmd_not_implemented(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    return 2, {"error": "not implemented yet"}


def cmd_all(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    out: dict[str, Any] = {}
    codes = []
    for key, command in (
        ("fidelity", cmd_fidelity),
        ("latency", cmd_not_implemented),
        ("agent_step", cmd_not_implemented),
        ("kv_reuse", cmd_kv_reuse),
    ):
        code, out[key] = command(args)
        codes.append(code)
    # Stubs that are not written yet do not fail the run; a real failure does.
    return (0 if codes[0] == 0 else 1), out


def _add_fidelity(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--methods", type=_csv(str, METHODS), default=["ours", "full", "keep-last-tokens", "random"]
    )
    p.add_argument("--drafts", type=_csv(str), default=["smollm2-135m"])
    p.add_argument("--keep-ratios", type=_ratios, default=[0.1, 0.2, 0.3, 0.5])
    p.add_argument("--kinds", type=_csv(str, KINDS), default=None, help=f"default: all of {','.join(KINDS)}")
    p.add_argument("--n-per-kind", type=int, default=4)
    p.add_argument("--tokens", type=int, default=4000, help="approximate size of each transcript")
    p.add_argument("--seed", type=int, default=0)


def _add_kv_reuse(p: argparse.ArgumentParser) -> None:
    p.add_argument("--draft", default="smollm2-135m")
    p.add_argument("--history", type=int, default=8192)
    p.add_argument("--append", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    common.add_argument("--plots", metavar="DIR", default=None, help="write PNG plots into DIR")
    parser = argparse.ArgumentParser(prog="python -m specprefill_langchain.bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    commands: list[tuple[str, Command, str, list[Callable[[argparse.ArgumentParser], None]]]] = [
        ("fidelity", cmd_fidelity, "evidence retention vs keep ratio", [_add_fidelity]),
        ("latency", cmd_not_implemented, "draft and target prefill latency", []),
        ("agent-step", cmd_not_implemented, "per-step cost in an agent loop", []),
        ("kv-reuse", cmd_kv_reuse, "incremental prefill through the draft's KV cache", [_add_kv_reuse]),
        ("all", cmd_all, "every benchmark above", [_add_fidelity, _add_kv_reuse]),
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
    # Model libraries sometimes print; keep stdout for the one JSON object.
    with contextlib.redirect_stdout(sys.stderr):
        code, result = args.run(args)
    if args.json:
        print(json.dumps(result, default=str))
    else:
        _print_summary(result)
    return code
