"""Compression latency per method at equal keep ratio, on the same transcripts.

    python -m specprefill_langchain.bench latency --tokens 2000 --n 2 --keep-ratio 0.3 --json

Every method compresses the same ``n`` transcripts (one per task kind, in order). Model loading and a
warm-up call on a small transcript happen before any timing. Ours is measured **cold**: its KV cache is
cleared before every call, so the draft prefills the whole transcript each time, as LLMLingua does
(in an agent loop ours would reuse the cache; ``agent-step`` and ``kv-reuse`` measure that).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from specprefill_langchain.bench import options
from specprefill_langchain.bench.methods import METHODS, SETUP_ERRORS, build_methods
from specprefill_langchain.bench.tasks import KINDS, make_tasks


def _log(msg: str) -> None:
    print(f"[latency] {msg}", file=sys.stderr, flush=True)


def run_latency(
    methods: list[str],
    tokens: int = 2000,
    n: int = 2,
    keep_ratio: float = 0.3,
    draft: str = "smollm2-135m",
    dtype: str = "float32",
    seed: int = 0,
) -> dict[str, Any]:
    if n < 1:
        msg = f"n must be at least 1, got {n}"
        raise ValueError(msg)
    kinds = [KINDS[i % len(KINDS)] for i in range(n)]
    tasks = [make_tasks([k], n_per_kind=1, target_tokens=tokens, seed=seed + i)[0] for i, k in enumerate(kinds)]
    warmup = make_tasks([KINDS[0]], n_per_kind=1, target_tokens=500, seed=seed + 1000)[0]
    objs, skipped = build_methods(methods, [draft], seed=seed, cold=True, dtype=dtype)
    results: list[dict[str, Any]] = []
    for method in objs:
        label = getattr(method, "draft", None)
        try:
            setup = getattr(method, "setup", None)
            if setup is not None:
                setup()
            method.compress(list(warmup.messages), keep_ratio, warmup.question)
            seconds, draft_tokens = [], []
            for task in tasks:
                start = time.perf_counter()
                method.compress(list(task.messages), keep_ratio, task.question)
                seconds.append(time.perf_counter() - start)
                stats = getattr(method, "last_stats", None)
                if stats is not None:
                    draft_tokens.append(stats.draft_tokens_in)
        except SETUP_ERRORS as exc:
            skipped.append({"method": method.name, "draft": label, "reason": f"{type(exc).__name__}: {exc}"})
            continue
        row: dict[str, Any] = {
            "method": method.name,
            "draft": label,
            "seconds_median": round(statistics.median(seconds), 6),
            "seconds_all": [round(s, 6) for s in seconds],
            "n": len(seconds),
        }
        if draft_tokens:
            row["draft_tokens"] = draft_tokens
        if method.name == "ours":
            row["cache"] = "cold"
        results.append(row)
        _log(f"{method.name}[{label}]: median {row['seconds_median']:.2f}s over {len(seconds)}")
    return {
        "keep_ratio": keep_ratio,
        "tokens": tokens,
        "n": n,
        "kinds": kinds,
        "dtype": dtype,
        "note": "ours is measured cold: its draft KV cache is cleared before every call",
        "results": results,
        "skipped": skipped,
    }


def add_args(p: argparse.ArgumentParser, prefix: str = "") -> None:
    options.add(p, prefix, "methods", type=options.csv, default=["ours", "llmlingua", "longllmlingua", "random"])
    options.add(p, prefix, "tokens", type=int, default=2000, help="approximate size of each transcript")
    options.add(p, prefix, "n", type=int, default=2, help="transcripts per method")
    options.add(p, prefix, "keep-ratio", type=options.ratio, default=0.3)
    options.add(p, prefix, "draft", default="smollm2-135m", help="the draft of ours and of LLMLingua")
    options.add(p, prefix, "dtype", default="float32", choices=["float32", "bfloat16"], help="ours' draft dtype")


def run_args(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    methods = options.get(args, prefix, "methods")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        msg = f"unknown latency methods {unknown}; choose from {list(METHODS)}"
        raise ValueError(msg)  # before any task is built or model loaded
    return run_latency(
        methods,
        tokens=options.get(args, prefix, "tokens"),
        n=options.get(args, prefix, "n"),
        keep_ratio=options.get(args, prefix, "keep-ratio"),
        draft=options.get(args, prefix, "draft"),
        dtype=options.get(args, prefix, "dtype"),
        seed=getattr(args, "seed", 0) or 0,
    )
