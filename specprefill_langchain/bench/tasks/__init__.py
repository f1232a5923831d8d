"""Benchmark tasks: seeded, download-free agent transcripts with gold evidence, and the fidelity metrics.

``sources`` (real text shipped with Python) -> ``rounds`` (tool rounds, transcripts) -> ``real_tasks`` /
``ruler`` (one generator per task kind) -> ``generate`` (``make_tasks``); ``metrics`` and ``types`` are
leaves that every layer above may use.
"""

from specprefill_langchain.bench.tasks.generate import KINDS, make_count, make_tasks, spread
from specprefill_langchain.bench.tasks.types import Task

__all__ = ["KINDS", "Task", "make_count", "make_tasks", "spread"]
