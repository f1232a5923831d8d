"""The worker processes of ``bench fleet``: spawned, addressed one by one, killed and respawned.

Each worker gets its own pipe, so a request goes to the worker the routing chose (the point of the
benchmark), and a worker that dies is seen at once through its process sentinel, never as a hang.
Pipes rather than one shared ``multiprocessing.Queue``: a process killed with SIGKILL while holding
a shared queue's lock would block every other worker. ``spawn``: a fork of a process that already
holds torch threads and a database connection is not a fresh worker.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from specprefill_langchain.bench.runs.fleet_worker import serve

DIED = {"ok": False, "died": True}


def _serve_quietly(conn: Connection, *args: Any) -> None:
    """The child's entry: stdout goes to stderr (the parent's stdout holds one JSON object)."""
    import os

    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(conn, *args)


class Pool:
    """``n`` worker processes on one PostgreSQL URL, each with ``torch_threads`` intra-op threads.

    ``dtype`` is the draft's (``"auto"``: the library's default, not passed on).
    """

    def __init__(
        self, n: int, url: str, torch_threads: int, tasks: dict[str, Any], inputs_dir: str, dtype: str = "auto",
        log: Callable[[str], None] = lambda s: None, timeout_s: float = 900,
    ) -> None:  # fmt: skip
        self.ctx = mp.get_context("spawn")
        self.args = (url, torch_threads, tasks, inputs_dir, dtype)
        self.log = log
        self.timeout_s = timeout_s
        self.procs: list[Any] = [None] * n
        self.conns: list[Connection | None] = [None] * n
        self.load_s: list[float] = [0.0] * n
        self.peak_rss_mb: list[float] = [0.0] * n  # per slot, over every process that held it
        self.respawns = 0
        self.draft_dtype = "?"  # as the workers resolved it (``auto``: bfloat16 where the CPU has it)
        try:
            for i in range(n):  # start all, then wait: they load the draft side by side
                self._spawn(i)
            for i in range(n):
                self._ready(i)
        except BaseException:
            self.close()
            raise

    def __len__(self) -> int:
        return len(self.procs)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spawn(self, i: int) -> None:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_serve_quietly, args=(child, *self.args), daemon=True, name=f"fleet-worker-{i}")
        proc.start()
        child.close()
        self.procs[i], self.conns[i] = proc, parent

    def _ready(self, i: int) -> None:
        out = self.recv(i)
        if not out.get("ready"):
            msg = f"worker {i} did not start (exit code {self.procs[i].exitcode}): {out}"
            raise RuntimeError(msg)
        self.load_s[i] = out["load_s"]
        self.draft_dtype = out["draft_dtype"]
        self._note(i, out)
        self.log(f"worker {i} ready (pid {out['pid']}, draft loaded in {out['load_s']:.1f}s)")

    def _note(self, i: int, out: dict[str, Any]) -> None:
        if "rss_mb" in out:
            self.peak_rss_mb[i] = max(self.peak_rss_mb[i], float(out["rss_mb"]))

    def send(self, i: int, req: dict[str, Any]) -> None:
        conn = self.conns[i]
        assert conn is not None
        conn.send(req)

    def recv(self, i: int) -> dict[str, Any]:
        """Worker ``i``'s next reply, or ``DIED`` when its process ends first."""
        conn, proc = self.conns[i], self.procs[i]
        assert conn is not None
        ready = wait([conn, proc.sentinel], timeout=self.timeout_s)
        if not ready:
            msg = f"worker {i} gave no answer in {self.timeout_s}s"
            raise TimeoutError(msg)
        try:
            if conn in ready or conn.poll():
                out = conn.recv()
                self._note(i, out)
                return out
        except (EOFError, OSError):
            pass
        proc.join(5)
        return {**DIED, "exitcode": proc.exitcode}

    def recv_any(self, busy: list[int]) -> tuple[int, dict[str, Any]]:
        """The first reply (or death) among the workers ``busy``."""
        by_handle: dict[Any, int] = {}
        for i in busy:
            by_handle[self.conns[i]] = i
            by_handle[self.procs[i].sentinel] = i
        ready = wait(list(by_handle), timeout=self.timeout_s)
        if not ready:
            msg = f"workers {busy} gave no answer in {self.timeout_s}s"
            raise TimeoutError(msg)
        i = by_handle[ready[0]]
        return i, self.recv(i)

    def call(self, i: int, req: dict[str, Any]) -> dict[str, Any]:
        self.send(i, req)
        return self.recv(i)

    def respawn(self, i: int) -> None:
        """Replace a dead (or live) worker by a fresh process: a cold draft KV cache."""
        proc = self.procs[i]
        if proc is not None and proc.is_alive():
            proc.kill()
        if proc is not None:
            proc.join(10)
        t0 = time.perf_counter()
        self._spawn(i)
        self._ready(i)
        self.respawns += 1
        self.log(f"worker {i} respawned in {time.perf_counter() - t0:.1f}s")

    def broadcast(self, req: dict[str, Any]) -> list[dict[str, Any]]:
        for i in range(len(self)):
            self.send(i, req)
        return [self.recv(i) for i in range(len(self))]

    def close(self) -> None:
        for i, (proc, conn) in enumerate(zip(self.procs, self.conns, strict=True)):
            if proc is None:
                continue
            if proc.is_alive() and conn is not None:
                with contextlib.suppress(OSError):  # it may die between the check and the send
                    conn.send({"op": "stop"})
            proc.join(20)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
            if conn is not None:
                conn.close()
            self.procs[i], self.conns[i] = None, None


__all__ = ["DIED", "Pool"]
