"""Seeded, download-free agent transcripts with gold evidence, for the fidelity benchmark.

A :class:`Task` is a real LangChain transcript (system prompt, request, 2–5 tool rounds, the question
last) whose tool outputs are real text shipped with Python, with the evidence the answer needs
buried in one or two of them. ``make_tasks`` is deterministic for a seed on one Python install.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

from langchain_core.messages import BaseMessage, ToolMessage

from specprefill_langchain.bench.tasks import real_tasks, ruler
from specprefill_langchain.bench.tasks.metrics import message_text
from specprefill_langchain.bench.tasks.rounds import TaskParts, arrange, build_messages
from specprefill_langchain.bench.tasks.types import Task

T = TypeVar("T")
Generator = Callable[[random.Random, int, float], TaskParts]

GENERATORS: dict[str, Generator] = {
    "needle": real_tasks.needle,
    "kv_json": real_tasks.kv_json,
    "multi_hop": real_tasks.multi_hop,
    "code_default": real_tasks.code_default,
    "code_signature": real_tasks.code_signature,
    "passkey": ruler.passkey,
    "multikey": ruler.multikey,
    "vartrack": ruler.vartrack,
}
KINDS: tuple[str, ...] = tuple(GENERATORS)

CHARS_PER_TOKEN = 4  # sizing only; real token counts depend on the tokenizer
_OVERHEAD_CHARS = 900  # system prompt, request, AI turns and the question
_MAX_EVIDENCE_CHARS = 150


def make_tasks(
    kinds: Sequence[str] | None = None, n_per_kind: int = 4, target_tokens: int = 4000, seed: int = 0
) -> list[Task]:
    """``n_per_kind`` tasks of each kind, each about ``target_tokens`` tokens (1 token ≈ 4 chars)."""
    chosen = tuple(kinds) if kinds is not None else KINDS
    unknown = sorted(set(chosen) - set(GENERATORS))
    if unknown:
        msg = f"unknown task kinds {unknown}; choose from {list(KINDS)}"
        raise ValueError(msg)
    if n_per_kind < 1:
        msg = f"n_per_kind must be at least 1, got {n_per_kind}"
        raise ValueError(msg)
    if target_tokens < 500:
        msg = f"target_tokens must be at least 500 to hold a transcript, got {target_tokens}"
        raise ValueError(msg)
    return [make_task(k, i, n_per_kind, target_tokens, seed) for k in chosen for i in range(n_per_kind)]


def make_task(kind: str, index: int, n_per_kind: int, target_tokens: int, seed: int) -> Task:
    """Task ``index`` of ``kind``; depths spread evenly over the ``n_per_kind`` tasks of a kind."""
    budget = target_tokens * CHARS_PER_TOKEN - _OVERHEAD_CHARS
    problems: list[str] = []
    # A draw can be unusable (evidence repeated elsewhere in the transcript); retry with a new stream.
    for attempt in range(20):
        rng = random.Random(f"{seed}:{kind}:{index}:{attempt}")
        depth = min(0.95, max(0.05, (index + rng.random()) / n_per_kind))
        parts = GENERATORS[kind](rng, budget, depth)
        task_id = f"{kind}-s{seed}-{index}"
        messages = build_messages(task_id, rng, parts.request, arrange(parts, budget, rng), parts.question)
        problem = _problem(parts, messages)
        if problem is None:
            hint = len(message_text(messages)) // CHARS_PER_TOKEN
            return Task(task_id, kind, messages, parts.question, parts.answer, parts.evidence, hint)
        problems.append(problem)
    msg = f"could not generate a valid {kind} task (seed {seed}, index {index}): {problems[-1]}"
    raise RuntimeError(msg)


def _problem(parts: TaskParts, messages: list[BaseMessage]) -> str | None:
    """Why a draw is unusable: every evidence string must occur once, in a tool output, on one line."""
    tools = "\n\n".join(m.content for m in messages if isinstance(m, ToolMessage) and isinstance(m.content, str))
    everything = message_text(messages)
    for ev in parts.evidence:
        if "\n" in ev or len(ev) > _MAX_EVIDENCE_CHARS:
            return f"evidence is not a short single line: {ev!r}"
        if ev not in tools:
            return f"evidence not in any tool output: {ev!r}"
        if everything.count(ev) != 1:
            return f"evidence occurs {everything.count(ev)} times: {ev!r}"
    return None


def spread(items: Sequence[T], n: int) -> list[T]:
    """``n`` items spread evenly over ``items`` (so every task kind gets its turn); all when ``n >= len``."""
    if n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(max(1, n))]


def make_count(count: int, kinds: Sequence[str] | None = None, target_tokens: int = 4000, seed: int = 0) -> list[Task]:
    """``count`` tasks spread over ``kinds`` (every kind gets ``count // len(kinds)`` or one more)."""
    if count < 1:
        msg = f"count must be at least 1, got {count}"
        raise ValueError(msg)
    chosen = tuple(kinds) if kinds is not None else KINDS
    per_kind = -(-count // len(chosen))
    return spread(make_tasks(chosen, n_per_kind=per_kind, target_tokens=target_tokens, seed=seed), count)
