"""Benchmarks for specprefill_langchain: fidelity tasks, peer compressors, metrics and a CLI.

Importing this package loads no draft model; methods that need one load it when first used.

Layout (imports point down only): ``cli`` -> ``run_all`` -> ``runs/`` (fidelity, accuracy, latency,
agent_step, kv_reuse) -> ``methods/`` (peers, ours, llmlingua, ``build_methods``) -> ``tasks/``
(generators, sources, metrics). ``target`` is the local chat model the runs use as the target;
``options``, ``intervals``, ``report`` and ``plots`` are leaves.
"""

# The method classes, re-exported: __all__ names them through CLASSES, which ruff cannot follow.
from specprefill_langchain.bench.methods import (  # noqa: F401
    CLASSES,
    FullPrompt,
    KeepLast,
    KeepLastTokens,
    Method,
    OursMethod,
    RandomChunks,
)
from specprefill_langchain.bench.runs.fidelity import run_fidelity
from specprefill_langchain.bench.tasks import KINDS, Task, make_tasks
from specprefill_langchain.bench.tasks.metrics import evidence_retained, keep_fraction, message_text

__all__ = [
    "KINDS",
    *CLASSES,
    "Task",
    "evidence_retained",
    "keep_fraction",
    "make_tasks",
    "message_text",
    "run_fidelity",
]
