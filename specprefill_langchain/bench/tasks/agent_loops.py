"""Agent-loop tasks for ``bench cost``: one tool call per step, real tool outputs, evidence that must survive.

A :class:`LoopTask` is a scripted agent loop: the human request, then ``steps`` tool rounds (one
``Round(tool, args, output)`` per step, ~``output_chars`` characters of real text each: standard-library
sources, pydoc pages, greps, listings, JSON tables of real data). Three kinds differ in *where the key
that makes the evidence findable* is named (docs/design.md, "Stable mode"):

* ``key_in_request``: a JSON table arrives early (step 1-3); the request names the key, as in
  ``kv_json`` ("Use the internal mimetypes API: which MIME type ... '.xyz'?"). Evidence: the record line.
* ``key_in_call``: a code window of a real stdlib file arrives early (step 1-3); the request is generic
  ("Tests fail in <path>; ..."), and the ``read_file`` call that fetched it names the function in its
  ``symbol`` argument. Evidence: the function's ``def`` line.
* ``key_later``: a JSON table arrives at step ``e`` (2-5) under a generic request ("Uploads fail for
  some files; find out why"); exactly 3 steps later a real-text output with one inserted log line
  names the key (``ERROR upload rejected: ... '.xyz'``). Evidence: the record line.

Steps are 1-based: round ``i``'s output is first read by the model at its call ``i`` (call 0 sees only
the request). Every other step is a filler round of real text. Seeded and deterministic.

:data:`LATE_KINDS` (``late_loops``, issue 20) are loops of installed-package text where what matters
in an output is named only later; a ``follow_up`` task adds a human turn after the loop's answer.
"""

from __future__ import annotations

import random

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from specprefill_langchain.bench.tasks import real_tasks, sources
from specprefill_langchain.bench.tasks.late_loops import MAKERS as LATE_MAKERS
from specprefill_langchain.bench.tasks.rounds import SYSTEM_PROMPT, Round, filler_rounds, insert_line, window
from specprefill_langchain.bench.tasks.types import LoopTask

LOOP_KINDS = ("key_in_request", "key_in_call", "key_later")
LATE_KINDS = ("grep_then_read", "test_names_function", "log_names_key", "traceback_to_source", "follow_up")
ALL_KINDS = LOOP_KINDS + LATE_KINDS
FINAL_ANSWER = "I have read every output above; here is what I found."  # the scripted model's answer
LATER_GAP = 3  # steps between the evidence and the output that names its key (key_later)


# --- public wrappers of the real-text builders ---------------------------------------------------


def table_round(rng: random.Random, budget: int, depth: float) -> tuple[sources.Table, dict[str, object], Round]:
    """A JSON table window of about ``budget`` chars (one record per line) holding a chosen record."""
    return real_tasks._table_round(rng, budget, depth)


def direct_question(table_name: str, key: object) -> str:
    """The ``kv_json`` wording that names the key: "Which MIME type is registered for '.xyz'?"."""
    return real_tasks._ASK[table_name].direct.format(k=key)


def code_round(rng: random.Random, budget: int, depth: float) -> tuple[str, str, str, Round]:
    """(file, function name, its ``def`` line, round): a ``read_file`` window that names the function.

    The call's args carry ``symbol`` (the function the agent asked about), as a code-search tool would.
    """
    files = list(sources.stdlib_files())
    rng.shuffle(files)
    # Parse lazily in a seeded order; the whole library would cost seconds.
    rel = next(f for f in files if len(sources.read_stdlib(f)) >= budget and real_tasks._defs(f))
    d = rng.choice(real_tasks._defs(rel))
    lines = sources.read_stdlib(rel).splitlines()
    start, end = window(lines, budget, rng, anchor=d.line_no, depth=depth)
    args = {"path": sources.display_path(rel), "offset": start + 1, "limit": end - start, "symbol": d.name}
    return rel, d.name, d.line, Round("read_file", args, "\n".join(lines[start:end]))


def log_round(rng: random.Random, budget: int, line: str, avoid: frozenset[str]) -> Round:
    """A real file or pydoc page of about ``budget`` chars with ``line`` inserted as its own line."""
    depth = rng.uniform(0.2, 0.8)
    if rng.random() < 0.5:
        files = [f for f in sources.stdlib_files() if f not in avoid and len(sources.read_stdlib(f)) >= budget]
        rel = rng.choice(files)
        lines = sources.read_stdlib(rel).splitlines()
        start, end = window(lines, budget - len(line) - 1, rng)
        args = {"path": sources.display_path(rel), "offset": start + 1, "limit": end - start + 1}
        return Round("read_file", args, insert_line("\n".join(lines[start:end]), line, depth))
    module = rng.choice(sources.PYDOC_MODULES)
    lines = sources.pydoc_page(module).splitlines()
    start, end = window(lines, budget - len(line) - 1, rng)
    return Round("pydoc", {"name": module}, insert_line("\n".join(lines[start:end]), line, depth))


# How a generic request hides the key, and the log line that names it later (key_later).
_LATER = {
    "mimetypes": (
        "Uploads fail for some files; find out why.",
        "ERROR upload rejected: no mimetypes entry matched extension '{k}'",
    ),
    "http_status": (
        "The health checks of our services keep failing; find out why.",
        "ERROR health check failed: upstream answered with HTTP status {k}",
    ),
    "errno": (
        "The nightly export job keeps failing; find out why.",
        "ERROR nightly export aborted: OSError {k} while writing the archive",
    ),
    "unicode": (
        "The CSV exporter writes files that no importer can read; find out why.",
        "ERROR import rejected: unexpected field separator {k}",
    ),
    "locale_alias": (
        "The support desk shows dates in the wrong format; find out why.",
        "WARNING locale fallback: alias '{k}' was resolved at startup",
    ),
}


# --- the three kinds -----------------------------------------------------------------------------


def _assemble(own: dict[int, Round], steps: int, chars: int, rng: random.Random, avoid: frozenset[str]) -> list[Round]:
    n_fill = steps - len(own)
    fill = filler_rounds(n_fill, n_fill * chars, rng, avoid) if n_fill else []
    return [own[i] if i in own else fill.pop(0) for i in range(1, steps + 1)]


def key_in_request(rng: random.Random, task_id: str, steps: int, chars: int) -> LoopTask:
    tab, rec, rnd = table_round(rng, chars, rng.uniform(0.1, 0.9))
    request = f"Use the internal {tab.name} API to answer this: {direct_question(tab.name, rec[tab.key])}"
    at = rng.randint(1, min(3, steps))
    rounds = _assemble({at: rnd}, steps, chars, rng, frozenset())
    evidence = (sources.record_line(rec),)
    return LoopTask(task_id, "key_in_request", request, tuple(rounds), evidence, at, str(rec[tab.key]), 0)


def key_in_call(rng: random.Random, task_id: str, steps: int, chars: int) -> LoopTask:
    rel, name, line, rnd = code_round(rng, chars, rng.uniform(0.15, 0.85))
    at = rng.randint(1, min(3, steps))
    request = f"Tests fail in {sources.display_path(rel)}; review it and tell me what looks wrong."
    rounds = _assemble({at: rnd}, steps, chars, rng, frozenset({rel}))
    return LoopTask(task_id, "key_in_call", request, tuple(rounds), (line,), at, name, at)


def key_later(rng: random.Random, task_id: str, steps: int, chars: int) -> LoopTask:
    if steps < 2 + LATER_GAP:
        msg = (
            f"key_later needs at least {2 + LATER_GAP} steps (evidence at 2..5, its key {LATER_GAP} later); got {steps}"
        )
        raise ValueError(msg)
    tab, rec, rnd = table_round(rng, chars, rng.uniform(0.1, 0.9))
    request, template = _LATER[tab.name]
    key = str(rec[tab.key])
    at = rng.randint(2, min(5, steps - LATER_GAP))
    log = log_round(rng, chars, template.format(k=key), frozenset())
    rounds = _assemble({at: rnd, at + LATER_GAP: log}, steps, chars, rng, frozenset())
    return LoopTask(task_id, "key_later", request, tuple(rounds), (sources.record_line(rec),), at, key, at + LATER_GAP)


_MAKERS = {"key_in_request": key_in_request, "key_in_call": key_in_call, "key_later": key_later}


def make_loop_tasks(
    kinds: list[str] | tuple[str, ...] | None = None,
    n_per_kind: int = 3,
    steps: int = 12,
    output_chars: int = 3000,
    seed: int = 0,
) -> list[LoopTask]:
    """``n_per_kind`` loops of each kind (default: :data:`LOOP_KINDS`), ``steps`` rounds of ~``output_chars`` each.

    Any of :data:`ALL_KINDS` may be asked for; the late kinds read installed packages (``late_loops``).
    """
    kinds = list(kinds or LOOP_KINDS)
    bad = [k for k in kinds if k not in ALL_KINDS]
    if bad:
        msg = f"unknown loop kind(s) {bad}; choose from {list(ALL_KINDS)}"
        raise ValueError(msg)
    if steps < 1 or n_per_kind < 1 or output_chars < 500:
        msg = f"need steps >= 1, n_per_kind >= 1 and output_chars >= 500; got {steps}, {n_per_kind}, {output_chars}"
        raise ValueError(msg)
    makers = {**_MAKERS, **LATE_MAKERS}
    tasks = []
    for kind in kinds:
        for i in range(n_per_kind):
            rng = random.Random(f"loop:{kind}:{seed}:{i}")
            tasks.append(makers[kind](rng, f"{kind}-{seed}-{i}", steps, output_chars))
    return tasks


def final_transcript(task: LoopTask) -> list[BaseMessage]:
    """What the uncompressed loop's last model call reads: system prompt, request, every tool round,
    and for a ``follow_up`` task the loop's answer and the follow-up turn.

    Call ids are those of ``bench cost``'s scripted model (``call_{k}``, k from 0).
    """
    out: list[BaseMessage] = [SystemMessage(SYSTEM_PROMPT), HumanMessage(task.request)]
    for k, rnd in enumerate(task.rounds):
        call = {"name": rnd.tool, "args": dict(rnd.args), "id": f"call_{k}", "type": "tool_call"}
        out += [AIMessage("", tool_calls=[call]), ToolMessage(rnd.output, tool_call_id=f"call_{k}", name=rnd.tool)]
    if task.follow_up is not None:
        out += [AIMessage(FINAL_ANSWER), HumanMessage(task.follow_up)]
    return out


__all__ = [
    "ALL_KINDS",
    "FINAL_ANSWER",
    "LATER_GAP",
    "LATE_KINDS",
    "LOOP_KINDS",
    "LoopTask",
    "code_round",
    "direct_question",
    "final_transcript",
    "log_round",
    "make_loop_tasks",
    "table_round",
]
