"""One worker of ``bench fleet``: a process that runs "the next step of thread X" for any thread.

A worker holds no state of any thread: only the draft (loaded once) and its KV cache, which is a
speed-up. Everything a step needs comes from the shared PostgreSQL checkpointer: the history, the
frozen forms of stable mode, and even the scripted model's call index, which is the number of AI
messages in the checkpointed input (a per-process counter would be wrong the moment a thread moves
to another worker). ``interrupt_after=["tools"]`` makes one ``invoke`` one model call plus its tools.

Faults are injected from inside the worker, at points a real crash can hit:

* ``"model"``: SIGKILL in the chat model's call, after the draft compressed the input (the input
  is already recorded) and before the model answers; nothing of the step reached the checkpoint.
* ``"put"``: SIGKILL inside ``PostgresSaver.put`` of the model step's checkpoint, after its blobs
  and its checkpoint row were sent to the server but before the pipeline's Sync commits them (the
  saver runs ``put`` as one implicit transaction of a psycopg pipeline). The model's pending writes
  were already committed by ``put_writes``.
* ``"put_writes"``: SIGKILL inside ``put_writes`` of the model task, after its rows were sent and
  before the Sync: nothing of the model step is committed, so another worker runs it again.

The kill sits in a psycopg cursor class given to the saver's connection (``cursor_factory``, public
psycopg API), so the checkpointer itself is the real, unmodified ``PostgresSaver``.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psycopg
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatResult

from specprefill_langchain.bench.runs.cost_loop import ScriptedChatModel, loop_tools
from specprefill_langchain.bench.tasks.rounds import SYSTEM_PROMPT

ARMED: dict[str, str | None] = {"at": None}  # which write the next kill hits ("put", "put_writes"), per process
CHECKPOINT_INSERT = "INSERT INTO checkpoints "
WRITES_INSERT = "INSERT INTO checkpoint_writes "


def serialize(messages: list[BaseMessage]) -> list[list[Any]]:
    """A model input as JSON-able rows: [type, content, tool_calls, tool_call_id] (no ids: they are random)."""
    return [[m.type, m.content, getattr(m, "tool_calls", None), getattr(m, "tool_call_id", None)] for m in messages]


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class FaultCursor(psycopg.Cursor):
    """A psycopg cursor that kills its process right after sending an armed write, before its commit."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        out = super().execute(query, params, **kwargs)
        if ARMED["at"] == "put" and CHECKPOINT_INSERT in str(query):
            _die()
        return out

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        super().executemany(query, params_seq, **kwargs)
        if ARMED["at"] == "put_writes" and WRITES_INSERT in str(query):
            _die()


class FleetModel(ScriptedChatModel):
    """``ScriptedChatModel`` whose call index comes from the input (its AI messages), not a counter.

    Each input is written to ``record_dir`` before the model answers, so the input of a call whose
    process is then killed is kept too.
    """

    record_dir: str = ""
    fault: str | None = None  # "model", "put" or "put_writes": what the call ``fault_at`` triggers
    fault_at: int = -1

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        k = sum(isinstance(m, AIMessage) for m in messages)
        self.received.append(list(messages))
        _record(Path(self.record_dir), k, messages)
        if k == self.fault_at and self.fault == "model":
            _die()
        if k == self.fault_at and self.fault in ("put", "put_writes"):
            ARMED["at"] = self.fault
        return self.reply(k)


def _record(folder: Path, k: int, messages: list[BaseMessage]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{k:03d}-{os.getpid()}-{time.time_ns()}.json"
    tmp.write_text(json.dumps(serialize(messages)))
    tmp.rename(folder / tmp.name[1:])  # whole files only, even if the process dies next


class DraftEvents(BaseCallbackHandler):
    """The ``specprefill_stats`` events of one step: what the draft prefilled and reused."""

    run_inline = True

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        from specprefill_langchain import STATS_EVENT

        if name == STATS_EVENT:
            keys = ("draft_tokens_in", "reused_tokens", "prefilled_tokens", "total_s", "newly_compressed")
            self.events.append({k: data.get(k) for k in keys})


class Worker:
    """The loaded draft, the middleware and the saver of one process; serves requests one by one."""

    def __init__(self, url: str, tasks: dict[str, Any], inputs_dir: str, dtype: str = "auto") -> None:
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row

        from specprefill_langchain import SpecPrefillMiddleware

        opts = {} if dtype == "auto" else {"dtype": dtype}  # the library's defaults unless told otherwise
        self.middleware = SpecPrefillMiddleware(draft="smollm2-135m", keep_ratio=0.3, **opts)  # stable mode
        _ = self.middleware.compressor.draft  # load now: a request should not pay for it
        self.conn = psycopg.Connection.connect(
            url, autocommit=True, prepare_threshold=0, row_factory=dict_row, cursor_factory=FaultCursor
        )
        self.saver = PostgresSaver(self.conn)
        self.tasks = tasks
        self.inputs_dir = Path(inputs_dir)

    def agent(self, task: Any, model: FleetModel) -> Any:
        from langchain.agents import create_agent

        return create_agent(
            model,
            loop_tools(task),
            system_prompt=SYSTEM_PROMPT,
            middleware=[self.middleware],
            checkpointer=self.saver,
            interrupt_after=["tools"],
        )

    def step(self, req: dict[str, Any]) -> dict[str, Any]:
        """Run the next step of ``req["thread"]``: the request if the thread is new, else resume (None)."""
        ARMED["at"] = None
        task = self.tasks[req["task"]]
        folder = self.inputs_dir / req["thread"].replace("/", "_")
        model = FleetModel(plan=[(r.tool, r.args) for r in task.rounds], record_dir=str(folder))
        model.fault, model.fault_at = req.get("fault"), int(req.get("fault_at", -1))
        agent, events = self.agent(task, model), DraftEvents()
        cfg = {"configurable": {"thread_id": req["thread"]}, "callbacks": [events], "recursion_limit": 20}
        started = bool(agent.get_state(cfg).values.get("messages"))
        payload = None if started else {"messages": [HumanMessage(task.request)]}
        t0 = time.perf_counter()
        agent.invoke(payload, cfg)
        seconds = time.perf_counter() - t0
        calls = [sum(isinstance(m, AIMessage) for m in r) for r in model.received]
        return {
            "calls": calls,
            "inputs": [serialize(r) for r in model.received],  # also on disk, with those of killed calls
            "seconds": seconds,
            "events": events.events,
            "done": not agent.get_state(cfg).next,
        }

    def state(self, req: dict[str, Any]) -> dict[str, Any]:
        """The thread's final state as the agent reads it: messages (with ids) and the frozen forms."""
        from specprefill_langchain import FROZEN_KEY

        task = self.tasks[req["task"]]
        agent = self.agent(task, FleetModel(plan=[], record_dir=str(self.inputs_dir)))
        snap = agent.get_state({"configurable": {"thread_id": req["thread"]}})
        msgs = snap.values.get("messages", [])
        return {
            "messages": [[m.id, *row] for m, row in zip(msgs, serialize(msgs), strict=True)],
            "frozen": snap.values.get(FROZEN_KEY, {}),
            "next": list(snap.next),
        }

    def info(self) -> dict[str, Any]:
        """Cumulative draft KV-cache stats and this process's peak RSS (MB)."""
        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux
        draft = str(self.middleware.compressor.draft.dtype).removeprefix("torch.")
        return {"pid": os.getpid(), "cache": asdict(self.middleware.compressor.cache.stats), "rss_mb": rss_kb / 1024,
                "draft_dtype": draft}  # fmt: skip


def serve(conn: Any, url: str, torch_threads: int, tasks: dict[str, Any], inputs_dir: str, dtype: str) -> None:
    """The worker process's main: load once, say ready, then answer requests until ``stop``."""
    import torch

    torch.set_num_threads(max(1, torch_threads))
    t0 = time.perf_counter()
    worker = Worker(url, tasks, inputs_dir, dtype)
    conn.send({"ready": True, "load_s": time.perf_counter() - t0, **worker.info()})
    ops = {"step": worker.step, "state": worker.state, "info": lambda req: {}}
    while True:
        req = conn.recv()
        if req["op"] == "stop":
            break
        if req["op"] == "reset_cache":
            worker.middleware.compressor.cache.clear()
        try:
            out = {"ok": True, **ops.get(req["op"], lambda r: {})(req), **worker.info()}
        except Exception as exc:  # reported to the orchestrator, which decides
            out = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-4000:]}
        conn.send({"id": req.get("id"), **out})
    worker.conn.close()


__all__ = ["ARMED", "FaultCursor", "FleetModel", "Worker", "serialize", "serve"]
