"""Benchmarks for specprefill_langchain: fidelity tasks, peer compressors, metrics and a CLI.

Importing this package loads no draft model; methods that need one load it when first used.
"""

from specprefill_langchain.bench.fidelity import run_fidelity
from specprefill_langchain.bench.metrics import evidence_retained, keep_fraction, message_text
from specprefill_langchain.bench.peers import (
    FullPrompt,
    KeepLast,
    KeepLastTokens,
    Method,
    OursMethod,
    RandomChunks,
)
from specprefill_langchain.bench.tasks import KINDS, Task, make_tasks

__all__ = [
    "KINDS",
    "FullPrompt",
    "KeepLast",
    "KeepLastTokens",
    "Method",
    "OursMethod",
    "RandomChunks",
    "Task",
    "evidence_retained",
    "keep_fraction",
    "make_tasks",
    "message_text",
    "run_fidelity",
]
