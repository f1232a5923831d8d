"""Compression methods the benchmarks compare, and the one factory that builds them from CLI names.

``peers`` (full prompt, keep-last, keep-last-tokens, random chunks: no model), ``ours`` (the
compressor, warm or cold) and ``llmlingua`` (LLMLingua / LongLLMLingua on the same draft, optional).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from specprefill_langchain.bench.methods.ours import OursMethod
from specprefill_langchain.bench.methods.peers import FullPrompt, KeepLast, KeepLastTokens, Method, RandomChunks

# The method classes; the bench package re-exports them.
CLASSES = ("FullPrompt", "KeepLast", "KeepLastTokens", "Method", "OursMethod", "RandomChunks")
__all__ = ["CLASSES", "METHODS", "SETUP_ERRORS", *CLASSES, "build_methods"]

METHODS = ("ours", "full", "keep-last", "keep-last-tokens", "random", "llmlingua", "longllmlingua")

# Errors that mean "this method cannot run here" (missing package, model or memory), not a bug.
SETUP_ERRORS = (ImportError, RuntimeError, OSError)


def build_methods(
    names: Sequence[str],
    drafts: Sequence[str],
    *,
    seed: int = 0,
    cold: bool = False,
    dtype: str | None = None,
) -> tuple[list[Method], list[dict[str, Any]]]:
    """Method objects for CLI names, one per draft for draft-based methods; unavailable ones as skipped.

    ``cold`` empties ours' KV cache before every call (latency); ``dtype`` is ours' draft dtype
    (``None``: the compressor's default). Unknown names raise ``ValueError``.
    """
    unknown = sorted(set(names) - set(METHODS))
    if unknown:
        msg = f"unknown methods {unknown}; choose from {list(METHODS)}"
        raise ValueError(msg)
    simple: dict[str, Callable[[], Method]] = {
        "full": FullPrompt,
        "keep-last": KeepLast,
        "keep-last-tokens": KeepLastTokens,
        "random": lambda: RandomChunks(seed=seed),
    }
    config: dict[str, Any] = {} if dtype is None else {"dtype": dtype}
    methods: list[Method] = []
    skipped: list[dict[str, Any]] = []
    for name in names:
        if name in simple:
            methods.append(simple[name]())
        elif name == "ours":
            methods.extend(OursMethod(draft=d, cold=cold, **config) for d in drafts)
        else:
            for d in drafts:
                try:
                    from specprefill_langchain.bench.methods.llmlingua import LLMLinguaMethod

                    methods.append(LLMLinguaMethod(draft=d, variant=name))  # type: ignore[arg-type]
                except SETUP_ERRORS as exc:
                    skipped.append({"method": name, "draft": d, "reason": f"{type(exc).__name__}: {exc}"})
    return methods, skipped
