"""A hand-built LangGraph agent with ``SpecPrefillNode`` in front of the model node.

    python examples/langgraph_node.py              # the model is Qwen2.5-Coder-0.5B, local (real)
    python examples/langgraph_node.py --scripted   # a scripted tool-calling stand-in (fast, deterministic)

    START -> compress -> model -> tools -> compress -> model -> ... -> END
             (SpecPrefillNode writes llm_input_messages; the model node reads them)

The checkpointer stores ``messages``, the whole uncompressed history; the compressed copy lives only in
``llm_input_messages``, overwritten each step. The thread id keys the draft's KV cache.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphRecursionError
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stdlib_tools import stdlib_tools

from specprefill_langchain import STATS_EVENT, SpecPrefillCompressor, SpecPrefillNode, SpecPrefillState, recall_tool

QUESTION = (
    "Use read_file to read json/decoder.py, then use grep to find 'class ' in json/decoder.py. "
    "Then answer: which classes does json/decoder.py define?"
)


# The history (`messages`, checkpointed, never compressed), what the model reads this step
# (`llm_input_messages`) and stable mode's frozen forms (`specprefill`): subclass it to add your keys.
State = SpecPrefillState


class ScriptedModel(BaseChatModel):
    """A stand-in that calls read_file, then grep, then answers: shows the wiring without an LLM."""

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        done = sum(isinstance(m, ToolMessage) for m in messages)
        plan = [("read_file", {"path": "json/decoder.py"}), ("grep", {"pattern": "class ", "path": "json/decoder.py"})]
        if done < len(plan):
            name, args = plan[done]
            reply = AIMessage("", tool_calls=[{"name": name, "args": args, "id": f"call_{done}", "type": "tool_call"}])
        else:
            reply = AIMessage(f"[scripted] done after {done} tool calls; I read {len(messages)} messages.")
        return ChatResult(generations=[ChatGeneration(message=reply)])


class PrintStats(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        if name == STATS_EVENT:
            self.events.append(data)
            s = data
            print(
                f"step {len(self.events)}: draft {s['draft_tokens_in']} -> {s['draft_tokens_out']} tok, "
                f"reused {s['reused_tokens']}, prefilled {s['prefilled_tokens']}, draft {s['total_s'] * 1000:.0f} ms"
                + (f"  [passthrough: {s['reason']}]" if s["passthrough"] else ""),
                flush=True,
            )


def build_graph(compressor: SpecPrefillCompressor, model: BaseChatModel, tools: list[Any]) -> Any:
    bound = model.bind_tools(tools)

    def call_model(state: State) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["llm_input_messages"])]}

    g = StateGraph(State)
    g.add_node("compress", SpecPrefillNode(compressor))
    g.add_node("model", call_model)
    g.add_node("tools", ToolNode(tools))
    g.add_edge(START, "compress")
    g.add_edge("compress", "model")
    g.add_conditional_edges("model", tools_condition, {"tools": "tools", END: END})
    g.add_edge("tools", "compress")  # every step goes through the compressor again
    return g.compile(checkpointer=InMemorySaver())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="StateGraph + SpecPrefillNode + ToolNode + checkpointer")
    ap.add_argument("--scripted", action="store_true", help="use a scripted model instead of Qwen2.5-Coder-0.5B")
    ap.add_argument("--question", default=QUESTION)
    ap.add_argument("--steps", type=int, default=4, help="most model calls before stopping")
    ap.add_argument("--keep-ratio", type=float, default=0.3)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--max-chars", type=int, default=12_000, help="cap on each tool output")
    args = ap.parse_args(argv)

    model: BaseChatModel
    if args.scripted:
        model = ScriptedModel()
        print("model: scripted stand-in (not an LLM)")
    else:
        from specprefill_langchain.bench.target import LocalChatModel

        model = LocalChatModel(model="qwen2.5-coder-0.5b", max_new_tokens=args.max_new_tokens)
        print("model: Qwen2.5-Coder-0.5B-Instruct, local (real)")
    compressor = SpecPrefillCompressor(draft="smollm2-135m", keep_ratio=args.keep_ratio)
    # recall_tool(): each compressed output ends with a note naming it, so the model can read one in full.
    graph = build_graph(compressor, model, [*stdlib_tools(max_chars=args.max_chars), recall_tool()])

    stats = PrintStats()
    # Each step runs compress, model and tools: three super-steps per model call.
    config: dict[str, Any] = {
        "configurable": {"thread_id": "graph-demo"},
        "callbacks": [stats],
        "recursion_limit": 3 * args.steps,
    }
    system = SystemMessage("You are a coding agent exploring the Python standard library. Call one tool at a time.")
    try:
        graph.invoke({"messages": [system, ("user", args.question)]}, config)
    except GraphRecursionError:
        print(f"stopped after {args.steps} model calls (--steps)")

    values = graph.get_state(config).values
    history, shown = values["messages"], values.get("llm_input_messages", [])
    print("\ncheckpointed state of the thread (messages = full history; llm_input_messages = last model input):")
    print(f"  {'#':>2} {'type':<6} {'history chars':>13} {'model read':>10}")
    for i, m in enumerate(history):
        read = len(shown[i].text) if i < len(shown) else None
        calls = ", ".join(c["name"] for c in getattr(m, "tool_calls", None) or [])
        print(f"  {i:>2} {m.type:<6} {len(m.text):>13,} {read if read is not None else '-':>10}  {calls}")
    tools = [m for m in history if isinstance(m, ToolMessage)]
    print(f"tool outputs in the checkpoint: {sum(len(m.text) for m in tools):,} chars, whole")
    if history and isinstance(history[-1], AIMessage) and not history[-1].tool_calls:
        print(f"answer: {history[-1].text.strip()[:300]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
