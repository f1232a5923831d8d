"""The faults of ``bench fleet``: a worker dies in the middle of a step, or two workers run one step.

Each fault drives one thread to its end, step by step on random workers, and injects the fault at
one call index ``at`` (``>= 1``: that call's compression has happened, so a recomputation would
show). What the database holds then is LangGraph's and PostgreSQL's business; the claim under test
is that whatever worker picks the thread up next sends the reference's bytes, and that the thread
ends with every message and every frozen form of the reference.

* ``model``: the worker is SIGKILLed in the model call (compressed, not answered); the step is sent
  to another worker (the dead one is respawned: a cold draft KV cache), which runs it again.
* ``put``: killed inside ``PostgresSaver.put`` of the model step's checkpoint, before it commits. The
  model task's pending writes are already committed, so LangGraph resumes from them: the next worker
  runs the tools but not the model.
* ``put_writes``: killed inside ``put_writes`` of the model task, before it commits: nothing of the
  step survives, and the next worker runs the model again.
* ``race``: the same step is sent to two workers at once. Each checkpoints its own branch from the
  same parent; the newest checkpoint wins (``forks`` counts the branches), and the thread goes on.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from specprefill_langchain.bench.runs.fleet_checks import checkpoint_rows, forks

if TYPE_CHECKING:  # the pool imports psycopg; the CLI imports this module without the `postgres` extra
    from specprefill_langchain.bench.runs.fleet_pool import Pool

FAULTS = ("model", "put", "put_writes", "race")


@dataclass(frozen=True)
class ThreadRun:
    """One agent thread of a phase: its thread id, its task, and how many model calls it takes."""

    thread: str
    task: str
    calls: int

    def step(self, **extra: Any) -> dict[str, Any]:
        return {"op": "step", "thread": self.thread, "task": self.task, **extra}


def checked(out: dict[str, Any], what: str) -> dict[str, Any]:
    """A worker's reply, or an error that says which step failed and how."""
    if not out.get("ok"):
        detail = "the worker died" if out.get("died") else f"{out.get('error')}\n{out.get('trace', '')}"
        msg = f"{what}: {detail}"
        raise RuntimeError(msg)
    return out


def _kill_and_retry(pool: Pool, kind: str, run: ThreadRun, at: int, rng: random.Random, url: str) -> tuple:
    w = rng.randrange(len(pool))
    before = checkpoint_rows(url, run.thread)
    first = pool.call(w, run.step(fault=kind, fault_at=at))
    if not first.get("died"):  # the fault point was never reached: the step simply completed
        return checked(first, f"{run.thread} step {at}"), {"killed": False}
    left = checkpoint_rows(url, run.thread)  # what the crash left in the database
    pool.respawn(w)
    other = (w + 1) % len(pool)
    out = checked(pool.call(other, run.step()), f"{run.thread} retry of step {at}")
    notes = {"killed": True, "killed_worker": w, "retried_on": other, "db_before": before, "db_after_kill": left}
    notes["retry_called_model"] = at in out["calls"]
    return out, notes


def _race(pool: Pool, run: ThreadRun, at: int, rng: random.Random, url: str) -> tuple:
    if len(pool) < 2:
        out = checked(pool.call(0, run.step()), f"{run.thread} step {at}")
        return out, {"skipped": "a race needs two workers"}
    a, b = rng.sample(range(len(pool)), 2)
    pool.send(a, run.step())
    pool.send(b, run.step())
    outs = [pool.recv(a), pool.recv(b)]
    ok = [o for o in outs if o.get("ok")]
    notes = {
        "racers": [a, b],
        "both_ok": len(ok) == 2,
        "errors": [o.get("error") for o in outs if not o.get("ok")],
        "models_called": [at in o.get("calls", []) for o in outs],
        "forks": forks(url, run.thread),
    }
    if not ok:
        checked(outs[0], f"{run.thread} raced step {at}")
    return ok[-1], notes


def run_fault(
    pool: Pool, kind: str, run: ThreadRun, at: int, seed: int, url: str, log: Callable[[str], None]
) -> dict[str, Any]:
    """Drive ``run`` to its end with ``kind`` injected at call ``at``; what happened on the way."""
    if kind not in FAULTS:
        msg = f"unknown fault {kind!r}; choose from {list(FAULTS)}"
        raise ValueError(msg)
    rng = random.Random(f"fault:{kind}:{seed}")
    notes: dict[str, Any] = {"kind": kind, "at": at}
    k, done, requests = 0, False, 0
    while not done and requests < run.calls + 3:  # a lost step would need an extra request: allow a few
        if k == at and kind == "race":
            out, extra = _race(pool, run, at, rng, url)
            notes.update(extra)
        elif k == at:
            out, extra = _kill_and_retry(pool, kind, run, at, rng, url)
            notes.update(extra)
        else:
            out = checked(pool.call(rng.randrange(len(pool)), run.step()), f"{run.thread} step {k}")
        requests, k, done = requests + 1, k + 1, bool(out["done"])
        log(f"fault {kind}: {run.thread} step {k - 1} done={done}")
    notes["requests"] = requests
    notes["extra_requests"] = requests - run.calls
    return notes


__all__ = ["FAULTS", "ThreadRun", "checked", "run_fault"]
