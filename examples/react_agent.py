"""A LangChain v1 agent whose model reads a compressed history: ``create_agent(..., middleware=[...])``.

    python examples/react_agent.py
    python examples/react_agent.py --question "..." --steps 6 --keep-ratio 0.2

Everything is real and local: the target is Qwen2.5-Coder-0.5B-Instruct (tool calling), the draft is
SmolLM2-135M, and the tools read the Python standard library (``read_file`` returns up to 12k chars,
which is why compression matters). The checkpointer keeps the whole history under the thread id;
the middleware compresses only what the model reads, and the draft's KV cache for the thread means
each step prefills only the tokens that are new. One line of stats per model call, from the
compressor's ``specprefill_stats`` callback events.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphRecursionError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stdlib_tools import stdlib_tools

from specprefill_langchain import STATS_EVENT, SpecPrefillMiddleware
from specprefill_langchain.bench.target import LocalChatModel

QUESTION = (
    "Use read_file to read json/decoder.py, then use grep to find 'raise JSONDecodeError' under json. "
    "Then answer: which attributes does JSONDecodeError set in its __init__?"
)
SYSTEM = (
    "You are a coding agent exploring the Python standard library with tools. Call one tool at a time. "
    "When you have what you need, answer in one or two sentences."
)


class StepStats(BaseCallbackHandler):
    """Prints one line per model call from the compressor's custom events."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        if name != STATS_EVENT:
            return
        self.events.append(data)
        s = data
        target = f"target {s['target_tokens_in']} -> {s['target_tokens_out']} tok, " if s["target_tokens_in"] else ""
        note = f"  [passthrough: {s['reason']}]" if s["passthrough"] else ""
        print(
            f"step {len(self.events)}: draft {s['draft_tokens_in']} -> {s['draft_tokens_out']} tok, {target}"
            f"reused {s['reused_tokens']}, prefilled {s['prefilled_tokens']}, draft {s['total_s'] * 1000:.0f} ms"
            + note,
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="create_agent + SpecPrefillMiddleware on a local model")
    ap.add_argument("--question", default=QUESTION)
    ap.add_argument("--steps", type=int, default=5, help="most model calls before stopping")
    ap.add_argument("--keep-ratio", type=float, default=0.3)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--max-chars", type=int, default=12_000, help="cap on each tool output")
    args = ap.parse_args(argv)

    model = LocalChatModel(model="qwen2.5-coder-0.5b", max_new_tokens=args.max_new_tokens)
    # target=model: the stats also count the tokens the target reads, with its own tokenizer.
    middleware = SpecPrefillMiddleware(draft="smollm2-135m", keep_ratio=args.keep_ratio, target=model)
    agent = create_agent(
        model,
        stdlib_tools(max_chars=args.max_chars),
        system_prompt=SYSTEM,
        middleware=[middleware],
        checkpointer=InMemorySaver(),
    )
    stats = StepStats()
    config: dict[str, Any] = {
        "configurable": {"thread_id": "react-demo"},
        "callbacks": [stats],
        # Each step is a model node and a tools node: this caps the model calls at --steps.
        "recursion_limit": 2 * args.steps,
    }
    print(f"question: {args.question}\n", flush=True)
    t0 = time.perf_counter()
    try:
        for update in agent.stream({"messages": [("user", args.question)]}, config, stream_mode="updates"):
            for node, change in update.items():
                for m in (change or {}).get("messages", []):
                    if isinstance(m, AIMessage) and m.tool_calls:
                        for c in m.tool_calls:
                            print(f"  {node}: calls {c['name']}({c['args']})", flush=True)
                    elif isinstance(m, ToolMessage):
                        print(f"  {node}: {m.name} returned {len(m.text):,} chars", flush=True)
                    elif isinstance(m, AIMessage):
                        print(f"  {node}: answers: {m.text.strip()[:300]}", flush=True)
    except GraphRecursionError:
        print(f"\nstopped after {args.steps} model calls (--steps)")

    history = agent.get_state(config).values["messages"]
    full = sum(len(m.text) for m in history)
    compressed = [e for e in stats.events if not e["passthrough"]]
    print(
        f"\n{len(stats.events)} compressions in {time.perf_counter() - t0:.0f} s; checkpointed history: "
        f"{len(history)} messages, {full:,} chars (whole, uncompressed)"
    )
    if compressed:
        reused = sum(e["reused_tokens"] for e in compressed)
        seen = reused + sum(e["prefilled_tokens"] for e in compressed)
        print(f"draft KV reuse over compressed steps: {reused}/{seen} tokens ({reused / max(1, seen):.0%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
