"""Two worker processes, one agent thread, one PostgreSQL checkpointer: any worker runs any step.

    python examples/postgres_workers.py                      # starts a throwaway PostgreSQL server
    python examples/postgres_workers.py --db postgresql://...  # or uses yours

Each step of the thread (one model call and its tools) runs in a new worker process, alternately A and
B: each loads its own draft, builds the same ``create_agent`` graph on the shared checkpointer, and
resumes the thread from it. The compressed forms decided by one worker live in the thread's state, so
the other sends the model the same bytes; the draft's KV cache only speeds up the worker that has it.
The model is a scripted stand-in (read a file, grep it, answer), so the example runs in a minute.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

QUESTION = "Read json/decoder.py, grep it for 'class ', then say which classes it defines."
THREAD = {"configurable": {"thread_id": "shared-thread"}}


def scripted_model() -> Any:
    """Calls read_file, then grep, then answers; decides from what it is shown, so any worker agrees."""
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class Scripted(BaseChatModel):
        @property
        def _llm_type(self) -> str:
            return "scripted"

        def bind_tools(self, tools: Any, **kwargs: Any) -> Scripted:
            return self

        def _generate(self, messages: list, stop: Any = None, run_manager: Any = None, **kw: Any) -> ChatResult:
            done = sum(isinstance(m, ToolMessage) for m in messages)
            plan = [("read_file", {"path": "json/decoder.py"}), ("grep", {"pattern": "class ", "path": "json"})]
            if done < len(plan):
                name, args = plan[done]
                call = {"name": name, "args": args, "id": f"call_{done}", "type": "tool_call"}
                return ChatResult(generations=[ChatGeneration(message=AIMessage("", tool_calls=[call]))])
            return ChatResult(generations=[ChatGeneration(message=AIMessage(f"done: I read {len(messages)} messages"))])

    return Scripted()


def worker(name: str, db: str, report: Any) -> None:
    """One step of the thread in this process: resume from the checkpoint, run to the next interrupt."""
    from langchain.agents import create_agent
    from langgraph.checkpoint.postgres import PostgresSaver
    from stdlib_tools import stdlib_tools

    from specprefill_langchain import SpecPrefillMiddleware

    middleware = SpecPrefillMiddleware(draft="smollm2-135m", keep_ratio=0.3)
    middleware.compressor.warmup()  # a worker loads its draft once, before it takes work
    with PostgresSaver.from_conn_string(db) as checkpointer:
        agent = create_agent(
            scripted_model(),
            stdlib_tools(max_chars=4000),
            middleware=[middleware],
            checkpointer=checkpointer,
            interrupt_after=["tools"],  # one step per worker: the model call and its tools
        )
        started = bool(agent.get_state(THREAD).values.get("messages"))
        agent.invoke(None if started else {"messages": [("user", QUESTION)]}, THREAD)
        state = agent.get_state(THREAD)
        stats = middleware.last_stats
        report.put((name, len(state.values["messages"]), bool(state.next), stats.reused_tokens if stats else 0))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default=None, help="a PostgreSQL URL (default: start a throwaway server)")
    args = ap.parse_args(argv)
    from contextlib import nullcontext

    from specprefill_langchain.bench.pgserver import ThrowawayPostgres

    server = nullcontext(args.db) if args.db else ThrowawayPostgres()
    with server as found:
        db = found if isinstance(found, str) else found.url
        from langgraph.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(db) as checkpointer:
            checkpointer.setup()
        ctx = mp.get_context("spawn")
        report = ctx.Queue()
        for step in range(4):
            name = "AB"[step % 2]
            proc = ctx.Process(target=worker, args=(name, db, report))
            proc.start()
            proc.join()
            who, n, more, reused = report.get()
            print(f"step {step + 1} on worker {who}: thread holds {n} messages; draft reused {reused} tokens")
            if not more:
                break
    print("every step ran in a fresh process on the shared checkpointer; the thread finished")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
