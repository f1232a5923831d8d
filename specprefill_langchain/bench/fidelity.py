"""Evidence retention of each method at each keep ratio, per task kind and overall."""

from __future__ import annotations

import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from tqdm.auto import tqdm

from specprefill_langchain.bench.metrics import evidence_fraction, evidence_retained, keep_fraction
from specprefill_langchain.bench.peers import Method
from specprefill_langchain.bench.tasks import Task

# Errors that mean "this method cannot run here" (missing package, model or memory), not a bug.
SETUP_ERRORS = (ImportError, RuntimeError, OSError)


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
        retention, fraction, kept, seconds = (sum(col) / n for col in zip(*values, strict=True))
        rows.append(
            {
                "method": name,
                "draft": draft,
                "keep_ratio": ratio,
                "task": kind,
                "retention": retention,
                "n": n,
                "evidence_fraction": fraction,
                "kept_fraction": kept,
                "seconds": seconds,
            }
        )
    return rows


def run_fidelity(
    methods: Sequence[Method],
    tasks: Sequence[Task],
    keep_ratios: Sequence[float] = (0.1, 0.2, 0.3, 0.5),
    progress: bool = True,
) -> dict[str, Any]:
    """Compress every task with every method at every ratio; score verbatim evidence retention.

    ``retention`` is the share of tasks whose evidence strings all survive; ``evidence_fraction`` the
    mean share of evidence strings that survive; ``kept_fraction`` the share of tool-output characters
    kept, to check that methods honour the ratio. A method that cannot set up or fails while
    compressing is listed under ``skipped`` with the reason, and none of its rows are reported.
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
        bar = tqdm(
            total=len(tasks) * len(keep_ratios),
            desc=f"{method.name}" + (f"[{draft}]" if draft else ""),
            file=sys.stderr,
            disable=not progress,
        )
        where = ""
        try:
            # Task-major: every ratio of one task runs back to back, so a method with a KV cache
            # reads each transcript once (ratio-major would cycle through more transcripts than
            # its cache holds, and re-read every one of them at every ratio).
            scores: dict[float, dict[str, list[tuple[float, ...]]]] = {r: defaultdict(list) for r in keep_ratios}
            for task in tasks:
                for ratio in keep_ratios:
                    where = f" (task {task.id}, keep_ratio {ratio})"
                    start = time.perf_counter()
                    out = method.compress(list(task.messages), ratio, task.question)
                    seconds = time.perf_counter() - start
                    scores[ratio][task.kind].append(
                        (
                            float(evidence_retained(task, out)),
                            evidence_fraction(task, out),
                            keep_fraction(task.messages, out),
                            seconds,
                        )
                    )
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
