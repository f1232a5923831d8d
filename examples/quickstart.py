"""Quickstart: ``prompt | SpecPrefillCompressor | llm`` on a real multi-tool agent transcript.

    python examples/quickstart.py            # the compressor is real; the "llm" only reports what it got
    python examples/quickstart.py --target   # the llm is Qwen2.5-Coder-0.5B, run locally on CPU

The transcript is what a coding agent would have gathered with three tools over the Python standard
library (a source file, grep hits, a folder listing); the question comes last. The SmolLM2-135M
draft reads it, and only ~30 % of the tool output reaches the llm. Runs offline in well under a
minute on a laptop CPU (no target model needed).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableLambda

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stdlib_tools import stdlib_tools

from specprefill_langchain import STATS_EVENT, SpecPrefillCompressor

QUESTION = "Which attributes does JSONDecodeError set in its __init__, besides the message?"


def gather_history(max_chars: int) -> list[BaseMessage]:
    """Run the tools for real and record the calls and outputs as an agent would have."""
    read_file, list_dir, grep = stdlib_tools(max_chars=max_chars)
    calls = [
        (list_dir, {"path": "json"}),
        (read_file, {"path": "json/decoder.py"}),
        (grep, {"pattern": r"raise JSONDecodeError", "path": "json"}),
    ]
    history: list[BaseMessage] = []
    for i, (tool, args) in enumerate(calls):
        call = {"name": tool.name, "args": args, "id": f"call_{i}", "type": "tool_call"}
        history.append(AIMessage("", tool_calls=[call]))
        history.append(ToolMessage(tool.invoke(args), tool_call_id=call["id"], name=tool.name))
    return history


class PrintStats(BaseCallbackHandler):
    """The compressor reports every call as a ``specprefill_stats`` custom event (LangSmith shows it too)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        if name == STATS_EVENT:
            self.events.append(data)


def echo_llm(messages: Any) -> AIMessage:
    """Stands in for a chat model: says how much it was given (no model runs here)."""
    msgs = messages.to_messages() if hasattr(messages, "to_messages") else list(messages)
    chars = sum(len(m.text) for m in msgs)
    return AIMessage(f"[echo, not a model] received {len(msgs)} messages, {chars:,} characters")


def print_stats(title: str, s: dict[str, Any]) -> None:
    print(f"\n== {title}")
    rows = [
        ("draft tokens in -> out", f"{s['draft_tokens_in']} -> {s['draft_tokens_out']} (ratio {s['ratio']:.2f})"),
        ("compressible kept", f"{s['compressible_kept']}/{s['compressible_tokens']} ({s['kept_fraction']:.0%})"),
        ("target tokens in -> out", f"{s['target_tokens_in']} -> {s['target_tokens_out']}"),
        ("reused / prefilled (KV)", f"{s['reused_tokens']} / {s['prefilled_tokens']}"),
        ("draft prefill / scoring / total", f"{s['prefill_s']:.2f} s / {s['scoring_s']:.2f} s / {s['total_s']:.2f} s"),
        ("passthrough", f"{s['passthrough']} {s['reason'] or ''}".strip()),
    ]
    for k, v in rows:
        print(f"  {k:<32} {v}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", action="store_true", help="answer with Qwen2.5-Coder-0.5B (local, slower)")
    ap.add_argument("--keep-ratio", type=float, default=0.3)
    ap.add_argument("--max-chars", type=int, default=6000, help="cap on each tool output")
    ap.add_argument("--full", action="store_true", help="print every message in full in the kept/dropped view")
    args = ap.parse_args(argv)

    llm: Any
    if args.target:
        from specprefill_langchain.bench.target import LocalChatModel

        llm = LocalChatModel(model="qwen2.5-coder-0.5b", max_new_tokens=64)
        print("llm: Qwen2.5-Coder-0.5B-Instruct, local (real)")
    else:
        llm = RunnableLambda(echo_llm)
        print("llm: an echo that reports its input size (not a model; pass --target for a real one)")
    print(f"draft: SmolLM2-135M-Instruct (real), keep_ratio={args.keep_ratio}")

    compressor = SpecPrefillCompressor(
        draft="smollm2-135m", keep_ratio=args.keep_ratio, target=llm if args.target else None
    )
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "You are a careful coding agent. Answer from the tool outputs, briefly."),
            ("human", "Find out how the json module reports a decoding error."),
            MessagesPlaceholder("history"),
            ("human", "{question}"),
        ]
    )
    chain = prompt | compressor | llm

    history = gather_history(args.max_chars)
    stats = PrintStats()
    config = {"configurable": {"thread_id": "quickstart"}, "callbacks": [stats]}
    t0 = time.perf_counter()
    answer = chain.invoke({"history": history, "question": QUESTION}, config)
    print(f"\nchain answered in {time.perf_counter() - t0:.1f} s: {answer.text.strip()}")
    print_stats("chain step (cold draft cache)", stats.events[-1])

    # The same messages again, with the same thread id: the draft reuses its KV cache.
    messages = prompt.invoke({"history": history, "question": QUESTION}).to_messages()
    explanation = compressor.explain(messages, cache_key="quickstart")
    print_stats("explain() on the same thread (warm cache)", explanation.stats.to_dict())

    print("\n== what the llm reads: kept text as is, dropped text as [-...-]")
    if args.full:
        print(explanation)
    else:
        for view in explanation.messages:
            text = "".join(t if kept else f"[-{t}-]" for t, kept in view.pieces)
            tag = f"kept {view.kept_chars}/{view.total_chars} chars" if view.compressed else "unchanged"
            clip = text if len(text) <= 700 else text[:700] + f" ...[{len(text) - 700} more chars; --full]"
            print(f"--- [{view.index}] {view.role} ({tag})\n{clip}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
