"""``bench fleet``: many workers behind one PostgreSQL checkpointer, any worker runs any thread's next step.

    python -m specprefill_langchain.bench fleet --json

Stable mode keeps each tool output's frozen form in the thread state, so the claim is that a thread
sends the model the same bytes whichever worker runs each of its steps, whatever the worker's draft
KV cache holds, and after a worker dies mid-step. This run checks the claim with everything real: a
throwaway PostgreSQL server (or ``--postgres-url``), ``PostgresSaver``, ``create_agent`` with the
scripted model of ``bench cost``, ``SpecPrefillMiddleware`` with the packaged SmolLM2 draft, and
worker processes (``fleet_worker``) that keep no thread state of their own.

1. Reference: one worker runs the ``--threads`` loops uninterrupted, with the fleet workers' thread
   count (cores // W); then again with every core, for the throughput of one worker.
2. Fleet of ``--workers`` (torch threads = cores // W each): every step of every thread to a seeded
   random worker, then again with thread affinity (thread i always on worker i % W). Draft caches are
   cleared before each, so their hit rates compare.
3. Faults (``fleet_faults``): killed in the model call, inside the checkpoint's ``put``, inside
   ``put_writes``; two workers racing on one step.

Every model input of phases 2 and 3 (including a killed worker's) must equal the reference's
(``identical_share``); each thread must end with the reference's messages, frozen forms, and no tool
call without its result. Also measured: steps per minute with one worker and with W, the draft KV
cache's hit rate under random routing vs affinity, peak RSS per worker, and the checkpoint bytes per
step of the frozen forms vs the messages. Exit code 1 when any check fails.

Reading ``identical_share``: in bfloat16 (what ``dtype="auto"`` picks on a CPU that computes it) the
bytes a step decides depend on the matmul shapes and the thread count; the draft prefills on a fixed
chunk grid so that a worker's cache never changes the shapes (docs/design.md, "Same bytes on every
worker"), and the reference runs with the workers' thread count. ``--inputs-dir`` keeps every
recorded model input, one JSON file per call, to diff.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from specprefill_langchain.bench import options
from specprefill_langchain.bench.runs.fleet_faults import FAULTS, ThreadRun, checked, run_fault


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=2, help="worker processes of the fleet (W)")
    p.add_argument("--threads", type=int, default=4, help="agent threads (loops) run side by side")
    p.add_argument("--steps", type=int, default=6, help="tool rounds per loop (model calls: steps + 1)")
    p.add_argument("--output-chars", type=int, default=2000, help="characters of each tool output")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--faults", type=options.csv_of(str, FAULTS), default=list(FAULTS), help="comma list")
    p.add_argument("--fault-at", type=int, default=2, help="model call at which each fault strikes (>= 1)")
    p.add_argument("--torch-threads", type=int, default=0, help="intra-op threads per worker (0: cores // W)")
    p.add_argument("--dtype", default="auto", help="the draft's dtype (the library default: auto)")
    p.add_argument("--postgres-url", default=None, help="an existing server instead of a throwaway one")
    p.add_argument("--inputs-dir", default=None, help="keep every recorded model input here (default: a temp dir)")


def loop_tasks(n: int, steps: int, chars: int, seed: int) -> list[Any]:
    """``n`` loop tasks, the kinds interleaved (``key_later`` only when the loop is long enough for it)."""
    from specprefill_langchain.bench.tasks.agent_loops import LATER_GAP, LOOP_KINDS, make_loop_tasks

    kinds = list(LOOP_KINDS) if steps >= 2 + LATER_GAP else ["key_in_request", "key_in_call"]
    per = -(-n // len(kinds))
    made = make_loop_tasks(kinds, n_per_kind=per, steps=steps, output_chars=chars, seed=seed)
    order = sorted(range(len(made)), key=lambda j: (j % per, j // per))
    return [made[j] for j in order][:n]


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[str]:
    """The given server's URL, or a throwaway server's for the duration; its tables set up."""
    from langgraph.checkpoint.postgres import PostgresSaver

    from specprefill_langchain.bench.pgserver import ThrowawayPostgres

    with contextlib.ExitStack() as stack:
        if url is None:
            url = stack.enter_context(ThrowawayPostgres()).url
        with PostgresSaver.from_conn_string(url) as saver:
            saver.setup()
        yield url


def drive(pool: Any, runs: list[ThreadRun], route: Callable[[int, int], int], log: Callable[[str], None]) -> tuple:
    """Run every thread to its end, each step on ``route(thread, step)``; workers stay busy side by side.

    Returns the wall seconds and the draft's stats events of every step.
    """
    from collections import deque

    queues: list[deque[tuple[int, int]]] = [deque() for _ in range(len(pool))]
    busy: dict[int, tuple[int, int]] = {}
    for i in range(len(runs)):
        queues[route(i, 0)].append((i, 0))
    events: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    while busy or any(queues):
        for w, q in enumerate(queues):
            if w not in busy and q:
                i, k = q.popleft()
                pool.send(w, runs[i].step())
                busy[w] = (i, k)
        w, out = pool.recv_any(list(busy))
        i, k = busy.pop(w)
        checked(out, f"{runs[i].thread} step {k} on worker {w}")
        events += out["events"]
        last = k + 1 == runs[i].calls
        if bool(out["done"]) != last:
            msg = f"{runs[i].thread}: ended after step {k}, expected after {runs[i].calls - 1}"
            raise RuntimeError(msg)
        log(f"{runs[i].thread} step {k} on worker {w}: {out['seconds']:.2f}s")
        if not last:
            queues[route(i, k + 1)].append((i, k + 1))
    return time.perf_counter() - t0, events


class Fleet:
    """One ``bench fleet`` run: the phases, then the checks and metrics of them."""

    def __init__(self, args: argparse.Namespace, url: str, tasks: list[Any], inputs: str) -> None:
        self.args, self.url, self.tasks, self.inputs = args, url, tasks, inputs
        self.nonce = uuid.uuid4().hex[:8]  # thread ids are new even on a shared --postgres-url
        self.cores = len(os.sched_getaffinity(0))
        self.calls = args.steps + 1
        self.draft_dtype = "?"

    def log(self, text: str) -> None:
        print(f"[fleet] {text}", file=sys.stderr, flush=True)

    def runs(self, phase: str) -> list[ThreadRun]:
        return [ThreadRun(f"{self.nonce}:{phase}:{t.id}", t.id, self.calls) for t in self.tasks]

    def pool(self, n: int, threads: int | None = None) -> Any:
        from specprefill_langchain.bench.runs.fleet_pool import Pool

        threads = threads or self.torch_threads(n)
        self.log(f"starting {n} worker(s), {threads} torch thread(s) each")
        tasks = {t.id: t for t in self.tasks}
        return Pool(n, self.url, threads, tasks, self.inputs, dtype=self.args.dtype, log=self.log)

    def torch_threads(self, workers: int) -> int:
        return self.args.torch_threads or max(1, self.cores // workers)

    def state(self, pool: Any, run: ThreadRun) -> dict[str, Any]:
        out = checked(pool.call(0, {"op": "state", "thread": run.thread, "task": run.task}), f"state of {run.thread}")
        return {k: out[k] for k in ("messages", "frozen", "next")}

    def phase(self, pool: Any, name: str, route: Callable[[int, int], int]) -> dict[str, Any]:
        """Run every thread under ``route`` with cleared draft caches; its speed, cache use and states."""
        from specprefill_langchain.bench.runs.fleet_checks import cache_delta

        runs = self.runs(name)
        before = pool.broadcast({"op": "reset_cache"})
        wall, events = drive(pool, runs, route, lambda s: self.log(f"{name}: {s}"))
        after = pool.broadcast({"op": "info"})
        steps = sum(r.calls for r in runs)
        return {
            "runs": runs,
            "steps_per_min": round(steps / wall * 60, 2),
            "cache": cache_delta(before, after, events),
            "states": [self.state(pool, r) for r in runs],
        }

    def compare(self, ref: dict[str, Any], got: dict[str, Any]) -> list[dict[str, Any]]:
        from specprefill_langchain.bench.runs.fleet_checks import load_inputs, thread_report

        out = []
        for r_ref, s_ref, r, s in zip(ref["runs"], ref["states"], got["runs"], got["states"], strict=True):
            out.append(
                thread_report(load_inputs(self.inputs, r_ref.thread), s_ref, load_inputs(self.inputs, r.thread), s)
            )
        return out

    def faults(self, pool: Any, ref: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Each fault on a thread of its own (task j % threads), compared with that task's reference."""
        from specprefill_langchain.bench.runs.fleet_checks import load_inputs, thread_report

        out = {}
        at = max(1, min(self.args.fault_at, self.calls - 1))
        for j, kind in enumerate(self.args.faults):
            t = j % len(self.tasks)
            run = ThreadRun(f"{self.nonce}:fault-{kind}:{self.tasks[t].id}", self.tasks[t].id, self.calls)
            notes = run_fault(pool, kind, run, at, self.args.seed, self.url, self.log)
            ref_inputs = load_inputs(self.inputs, ref["runs"][t].thread)
            rep = thread_report(
                ref_inputs, ref["states"][t], load_inputs(self.inputs, run.thread), self.state(pool, run)
            )
            out[kind] = {k: rep[k] for k in ("resumed_identical", "lost_messages", "orphaned_tool_calls")}
            out[kind].update({**notes, **{k: v for k, v in rep.items() if k not in out[kind]}})
        return out

    def run(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        w, seed = self.args.workers, self.args.seed
        # The reference runs with the fleet's own thread count: bfloat16 bytes depend on it (workers of
        # one fleet run alike, docs/design.md "Same bytes on every worker").
        with self.pool(1, threads=self.torch_threads(w)) as one:
            ref = self.phase(one, "ref", lambda i, k: 0)
            ref_rss, self.draft_dtype = one.peak_rss_mb[0], one.draft_dtype
        with self.pool(1) as solo:  # one worker with every core: the throughput W workers are held against
            ref["steps_per_min_solo"] = self.phase(solo, "solo", lambda i, k: 0)["steps_per_min"]
        with self.pool(w) as fleet:
            rand = self.phase(fleet, "random", lambda i, k: random.Random(f"{seed}:{i}:{k}").randrange(w))
            aff = self.phase(fleet, "affinity", lambda i, k: i % w)
            faults = self.faults(fleet, ref)
            rss, respawns = list(fleet.peak_rss_mb), fleet.respawns
        from specprefill_langchain.bench.runs.fleet_report import summary

        return summary(self, ref, {"random": rand, "affinity": aff}, faults, rss, ref_rss, respawns, t0)


def run_args(args: argparse.Namespace) -> dict[str, Any]:
    for name, what in (("--workers", args.workers), ("--threads", args.threads), ("--steps", args.steps)):
        if what < 1:
            msg = f"{name} must be >= 1, got {what}"
            raise SystemExit(msg)
    try:
        import langgraph.checkpoint.postgres  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError as exc:
        msg = (
            f'bench fleet needs {exc.name!r}: pip install "langgraph-checkpoint-postgres>=3,<4" "psycopg[binary]>=3.2"'
        )
        raise SystemExit(msg) from exc
    tasks = loop_tasks(args.threads, args.steps, args.output_chars, args.seed)
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres(args.postgres_url))
        inputs = args.inputs_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="specprefill-fleet-"))
        return Fleet(args, url, tasks, inputs).run()


def command(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    """The ``bench fleet`` subcommand: exit code 1 when any input differs or a fault lost anything."""
    result = run_args(args)
    return (0 if result["all_checks_passed"] else 1), result


__all__ = ["FAULTS", "Fleet", "add_args", "command", "drive", "loop_tasks", "postgres", "run_args"]
