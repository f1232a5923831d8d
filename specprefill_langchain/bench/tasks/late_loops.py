"""Agent loops where what matters in a tool output is named only later ("late relevance", issue 20).

In stable mode a tool output is compressed once, when it arrives; in real loops the part of it that
matters is often named by a later output or turn. Five shapes, all of installed-package text (not the
standard library, which the older kinds read; see :mod:`package_sources`):

* ``grep_then_read``: a ``grep -rn`` output names a helper at a call site; the next round reads the
  helper's file (``read_file`` with ``path``/``offset``/``limit``, no ``symbol``). Evidence: its ``def`` line.
* ``test_names_function``: a source window is read; 2-4 steps later a pytest run fails in
  ``test_<func>``. Evidence: the ``def`` line of ``<func>`` in the early window.
* ``log_names_key``: a window of matplotlib's ``matplotlibrc`` (or a style file) is read; 2-4 steps
  later a service log warns about one of its keys. Evidence: the config line of that key.
* ``traceback_to_source``: a source window is read; 2-4 steps later the service log holds a traceback
  (no code lines: the production image ships no sources) ending at line N of that file, N inside the
  window. Evidence: file line N (stripped); answer: the expression on it that was None.
* ``follow_up``: a JSON table of the installed distributions arrives early; after the loop's answer a
  follow-up human turn asks about one record. Evidence: the record line.

Requests are generic and never name the key; filler rounds never name the key or hold the evidence.
"""

from __future__ import annotations

import random

from specprefill_langchain.bench.tasks import package_sources as ps
from specprefill_langchain.bench.tasks import package_tables, sources
from specprefill_langchain.bench.tasks.late_rounds import (
    LOG_PATH,
    assemble,
    grep_round,
    log_round,
    pytest_round,
    read_round,
    table_round,
    traceback_text,
)
from specprefill_langchain.bench.tasks.late_sites import caller, grep_site, shuffled
from specprefill_langchain.bench.tasks.types import LoopTask

_MIN_STEPS = {
    "grep_then_read": 2,
    "test_names_function": 3,
    "log_names_key": 3,
    "traceback_to_source": 3,
    "follow_up": 1,
}
_JOBS = ("nightly_report", "sync_catalog", "export_metrics", "rebuild_index", "refresh_embeddings")


def _check(kind: str, steps: int) -> None:
    if steps < _MIN_STEPS[kind]:
        msg = f"{kind} needs at least {_MIN_STEPS[kind]} steps; got {steps}"
        raise ValueError(msg)


def _early_late(rng: random.Random, steps: int) -> tuple[int, int]:
    """The evidence step (1-5) and the step 2-4 later that names its key."""
    early = rng.randint(1, min(5, steps - 2))
    return early, early + rng.randint(2, min(4, steps - early))


def _default_question(d: ps.FuncDef, rng: random.Random, who: str) -> tuple[str, str]:
    param, default = rng.choice(d.defaults)
    q = f"What is the default value of the parameter `{param}` of `{d.name}`, {who}? Reply with the value only."
    return q, default


# --- grep_then_read ------------------------------------------------------------------------------


def grep_then_read(rng: random.Random, task_id: str, steps: int, chars: int) -> LoopTask:
    _check("grep_then_read", steps)
    d, folder, pattern, _ = grep_site(rng, chars)
    at = rng.randint(1, min(5, steps - 1))
    grep = grep_round(folder, pattern, chars)
    read = read_round(d.rel, chars, rng, anchor=d.line_no, depth=rng.uniform(0.25, 0.85))
    rounds = assemble({at: grep, at + 1: read}, steps, chars, rng, frozenset({d.rel}), (d.name, d.line))
    pkg = d.rel.split("/")[0]
    request = f"Since we upgraded {pkg}, something around `{pattern}` misbehaves in our service; find out why."
    question, answer = _default_question(d, rng, "the helper that the grep found")
    return LoopTask(
        task_id, "grep_then_read", request, rounds, (d.line,), at + 1, d.name, at, question=question, answer=answer
    )


# --- test_names_function -------------------------------------------------------------------------


def failing_test_names_function(rng: random.Random, task_id: str, steps: int, chars: int) -> LoopTask:
    _check("test_names_function", steps)
    rel = next(f for f in shuffled(rng, ps.package_files()) if any(d.defaults for d in ps.function_defs(f)))
    d = rng.choice([d for d in ps.function_defs(rel) if d.defaults])
    early, late = _early_late(rng, steps)
    forbid = (d.name, d.line)
    read = read_round(rel, chars, rng, anchor=d.line_no, depth=rng.uniform(0.15, 0.85))
    tests = pytest_round(rng, chars, rel, d.name, forbid)
    rounds = assemble({early: read, late: tests}, steps, chars, rng, frozenset({rel}), forbid)
    request = f"Tests fail in {rel.split('/')[0]}; find out why."
    question, answer = _default_question(d, rng, "the function the failing test exercises")
    return LoopTask(
        task_id,
        "test_names_function",
        request,
        rounds,
        (d.line,),
        early,
        d.name,
        late,
        question=question,
        answer=answer,
    )


# --- log_names_key -------------------------------------------------------------------------------

_RC_LOG = (
    ("reports.render", "WARNING", "style check failed: rcParams[{k!r}] does not match the reference figures"),
    ("reports.export", "ERROR", "figure export differs from the baseline images; first differing setting {k!r}"),
    ("reports.theme", "WARNING", "theme override ignored for {k!r}; the value from the style file was used"),
)


def log_names_key(rng: random.Random, task_id: str, steps: int, chars: int) -> LoopTask:
    _check("log_names_key", steps)
    if not ps.config_files():
        msg = "log_names_key reads matplotlib's matplotlibrc; install matplotlib (the bench extra)"
        raise RuntimeError(msg)
    rel = rng.choice(ps.config_files())
    no, line, key, value = rng.choice(ps.config_entries(rel))
    early, late = _early_late(rng, steps)
    read = read_round(rel, chars, rng, anchor=no, depth=rng.uniform(0.2, 0.8))
    logger, level, template = rng.choice(_RC_LOG)
    note = f"{{ts}} {level:<7} {logger}: {template.format(k=key)}"
    log = log_round(rng, chars, note, rng.uniform(0.2, 0.8), (key,))
    rounds = assemble({early: read, late: log}, steps, chars, rng, frozenset({rel}), (key, line))
    request = (
        "Since the last deploy, the charts in our exported reports look different from the reference; find out why."
    )
    question = f"Which value does {ps.display_path(rel)} give for `{key}`? Reply with the value only, as written."
    return LoopTask(
        task_id, "log_names_key", request, rounds, (line,), early, key, late, question=question, answer=value
    )


# --- traceback_to_source -------------------------------------------------------------------------


def traceback_to_source(rng: random.Random, task_id: str, steps: int, chars: int) -> LoopTask:
    _check("traceback_to_source", steps)
    rel = next(f for f in shuffled(rng, ps.package_files()) if ps.none_sites(f))
    sites = ps.none_sites(rel)
    site = rng.choice([s for s in sites if "." in s.expr] or list(sites))
    early, late = _early_late(rng, steps)
    read = read_round(rel, chars, rng, anchor=site.line_no, depth=rng.uniform(0.2, 0.8))
    job, n = rng.choice(_JOBS), site.line_no + 1
    frames = [
        (f"{ps.APP_ROOT}/worker.py", rng.randint(40, 220), "run"),
        (f"{ps.APP_ROOT}/jobs/{job}.py", rng.randint(15, 160), "main"),
    ]
    call = caller(rng, site.func.name, rel.split("/")[0])
    if call is not None:
        frames.append((ps.app_path(call[0]), call[1], call[2]))
    frames.append((ps.app_path(rel), n, site.func.name))
    error = f"AttributeError: 'NoneType' object has no attribute '{site.attr}'"
    block = f"{{ts}} {'ERROR':<7} jobs.{job}: job {job} failed\n{traceback_text(frames, error)}"
    key, evidence = f"line {n}, in {site.func.name}", ps.read_package(rel).splitlines()[site.line_no].strip()
    log = log_round(rng, chars, block, rng.uniform(0.3, 0.9), (key,))
    rounds = assemble({early: read, late: log}, steps, chars, rng, frozenset({rel}), (key, evidence))
    question = (
        f"The traceback in {LOG_PATH} ends in an AttributeError at line {n} of {ps.display_path(rel)}. "
        "Which expression is None there? Reply with the expression exactly as written in the source."
    )
    return LoopTask(
        task_id,
        "traceback_to_source",
        f"The {job} job on worker-3 keeps failing; find out why.",
        rounds,
        (evidence,),
        early,
        key,
        late,
        question=question,
        answer=site.expr,
    )


# --- follow_up -----------------------------------------------------------------------------------

_FOLLOW = {
    "python_packages": (
        "Audit the Python environment of worker-3 and report anything unusual.",
        "Earlier you fetched the Python packages installed on worker-3: which version of '{k}' is installed "
        "there? Reply with the version only.",
    ),
    "entry_points": (
        "Check which commands and plugins the Python environment of worker-3 registers; report anything unusual.",
        "Earlier you fetched the entry points of worker-3: which object does the entry point '{k}' point to? "
        "Reply with the value only.",
    ),
}


def follow_up(rng: random.Random, task_id: str, steps: int, chars: int) -> LoopTask:
    _check("follow_up", steps)
    tab = rng.choice((package_tables.packages_table, package_tables.entry_points_table))()
    target = rng.choice([i for i, r in enumerate(tab.records) if len(str(r[tab.key])) >= 5])
    rec = tab.records[target]
    key, evidence = str(rec[tab.key]), sources.record_line(rec)
    at = rng.randint(1, min(3, steps))
    rounds = assemble({at: table_round(tab, target, chars, rng)}, steps, chars, rng, frozenset(), (key, evidence))
    request, follow = _FOLLOW[tab.name]
    text = follow.format(k=key)
    return LoopTask(
        task_id,
        "follow_up",
        request,
        rounds,
        (evidence,),
        at,
        key,
        steps + 1,
        follow_up=text,
        question=text,
        answer=str(rec[tab.value]),
    )


MAKERS = {
    "grep_then_read": grep_then_read,
    "test_names_function": failing_test_names_function,
    "log_names_key": log_names_key,
    "traceback_to_source": traceback_to_source,
    "follow_up": follow_up,
}
__all__ = [
    "MAKERS",
    "failing_test_names_function",
    "follow_up",
    "grep_then_read",
    "log_names_key",
    "traceback_to_source",
]
