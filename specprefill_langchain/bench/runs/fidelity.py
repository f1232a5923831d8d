"""Evidence retention of each method at each keep ratio, per task kind and overall."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from tqdm.auto import tqdm

from specprefill_langchain.bench import options
from specprefill_langchain.bench.methods import METHODS, SETUP_ERRORS, Method, build_methods
from specprefill_langchain.bench.tasks import KINDS, Task, make_tasks
from specprefill_langchain.bench.tasks.metrics import evidence_fraction, evidence_retained, keep_fraction


def _setup(method: Method) -> str | None:
    setup = getattr(method, "setup", None)
    if setup is None:
        return None
    try:
        setup()
    except SETUP_ERRORS as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _rows(name: str, draft: str | None, ratio: float, scores: dict[str, list[tuple[float, ...]]]) -> list[dict]:
    rows = []
    everything = [s for kind_scores in scores.values() for s in kind_scores]
    for kind, values in [*sorted(scores.items()), ("overall", everything)]:
        n = len(values)
        retained, fraction, kept, seconds = (sum(col) for col in zip(*values, strict=True))
        rows.append(
            {
                "method": name,
                "draft": draft,
                "keep_ratio": ratio,
                "task": kind,
                "retention": retained / n,
                "retained": round(retained),  # k of the n tasks: what a confidence interval needs
                "n": n,
                "evidence_fraction": fraction / n,
                "kept_fraction": kept / n,
                "seconds": seconds / n,
            }
        )
    return rows


def _score(method: Method, task: Task, ratio: float) -> tuple[float, ...]:
    """One compression's (all evidence retained, evidence fraction, kept fraction, seconds)."""
    start = time.perf_counter()
    out = method.compress(list(task.messages), ratio, task.question)
    seconds = time.perf_counter() - start
    return float(evidence_retained(task, out)), evidence_fraction(task, out), keep_fraction(task.messages, out), seconds


def _bar(method: Method, draft: str | None, total: int, progress: bool) -> Any:
    desc = f"{method.name}" + (f"[{draft}]" if draft else "")
    return tqdm(total=total, desc=desc, file=sys.stderr, disable=not progress)


def run_fidelity(
    methods: Sequence[Method],
    tasks: Sequence[Task],
    keep_ratios: Sequence[float] = (0.1, 0.2, 0.3, 0.5),
    progress: bool = True,
) -> dict[str, Any]:
    """Compress every task with every method at every ratio; score verbatim evidence retention.

    ``retention`` is the share of tasks whose evidence strings all survive (``retained`` of ``n``);
    ``evidence_fraction`` the mean share of evidence strings that survive; ``kept_fraction`` the share
    of tool-output characters kept, to check that methods honour the ratio. A method that cannot set
    up or fails while compressing is listed under ``skipped`` with the reason, and none of its rows
    are reported.
    """
    if not tasks:
        msg = "run_fidelity needs at least one task"
        raise ValueError(msg)
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for method in methods:
        draft = getattr(method, "draft", None)
        reason = _setup(method)
        if reason is not None:
            skipped.append({"method": method.name, "draft": draft, "reason": reason})
            continue
        rows: list[dict[str, Any]] = []
        bar = _bar(method, draft, len(tasks) * len(keep_ratios), progress)
        where = ""
        try:
            # Task-major: every ratio of one task runs back to back, so a method with a KV cache
            # reads each transcript once (ratio-major would cycle through more transcripts than
            # its cache holds, and re-read every one of them at every ratio).
            scores: dict[float, dict[str, list[tuple[float, ...]]]] = {r: defaultdict(list) for r in keep_ratios}
            for task in tasks:
                for ratio in keep_ratios:
                    where = f" (task {task.id}, keep_ratio {ratio})"
                    scores[ratio][task.kind].append(_score(method, task, ratio))
                    bar.update()
            for ratio in keep_ratios:
                rows.extend(_rows(method.name, draft, ratio, scores[ratio]))
        except Exception as exc:  # one broken method must not sink the whole benchmark run
            traceback.print_exc(file=sys.stderr)
            reason = f"{type(exc).__name__}: {exc}{where}"
            skipped.append({"method": method.name, "draft": draft, "reason": reason})
            continue
        finally:
            bar.close()
        results.extend(rows)
    return {"results": results, "skipped": skipped}


def add_args(p: argparse.ArgumentParser, in_all: bool = False) -> None:
    """The fidelity options (unprefixed, also under ``bench all``)."""
    # `all` adds keep-last (trim_messages) and uses fewer tasks per kind to stay within ~40 minutes.
    methods = ["ours", "full", "keep-last-tokens", "random"]
    if in_all:
        methods.insert(2, "keep-last")
    p.add_argument("--methods", type=options.csv_of(str, METHODS), default=methods)
    p.add_argument("--drafts", type=options.csv_of(str), default=[options.DRAFT])
    p.add_argument("--keep-ratios", type=options.ratios, default=[0.1, 0.2, 0.3, 0.5])
    p.add_argument("--kinds", type=options.csv_of(str, KINDS), default=None, help=f"default: all of {','.join(KINDS)}")
    p.add_argument("--n-per-kind", type=int, default=2 if in_all else 4)
    p.add_argument("--tokens", type=int, default=4000, help="approximate size of each transcript")
    p.add_argument("--seed", type=int, default=0)


def tasks_of(args: argparse.Namespace) -> list[Task]:
    return make_tasks(args.kinds, n_per_kind=args.n_per_kind, target_tokens=args.tokens, seed=args.seed)


def run_args(
    args: argparse.Namespace,
    tasks: Sequence[Task],
    names: Sequence[str] | None = None,
    drafts: Sequence[str] | None = None,
    keep_ratios: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Fidelity of ``names`` x ``drafts`` (default: the options') on ``tasks``; factory skips merged in."""
    methods, skipped = build_methods(names or args.methods, drafts or args.drafts, seed=args.seed)
    print(f"fidelity: {len(tasks)} tasks, {len(methods)} methods", file=sys.stderr)
    result = run_fidelity(methods, tasks, keep_ratios=keep_ratios or args.keep_ratios, progress=True)
    result["skipped"] = skipped + result["skipped"]
    return result
