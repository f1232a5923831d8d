"""LLMLingua and LongLLMLingua (``llmlingua==0.2.2``) as a benchmark peer, scored by our own draft model.

The peer runs fully offline, with the same small draft the product uses (SmolLM2-135M by default), so
that a comparison measures the compression method and not the scorer. ``llmlingua`` 0.2.2 predates
transformers 5 and assumes network access; three adaptations make it work, all of them here and none
inside the installed package (see :mod:`.llmlingua_offline`).

How messages map onto llmlingua's inputs: its ``compress_prompt`` returns one string for all contexts
joined, and token deletions cannot be mapped back to message boundaries exactly. So the context-level
step (ranking the tool outputs and dropping the weakest, LLMLingua's "budget controller" /
LongLLMLingua's question-aware coarse step) runs once over all tool outputs with llmlingua's own
``control_context_budget``, and the token-level step then runs once per message, at the ratio the single
call would have given that context (the shared base ratio plus LongLLMLingua's dynamic, rank-dependent
offset). The one difference from a single call: a message's token scores are not conditioned on the
messages before it. A tool output the context-level step drops becomes empty content.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from specprefill_langchain.bench.methods.llmlingua_offline import PIP_INSTALL, load_compressor

__all__ = ["PIP_INSTALL", "LLMLinguaMethod", "Variant", "load_compressor"]

Variant = Literal["llmlingua", "longllmlingua"]

# Settings from the llmlingua README. ``iterative_size`` is its default segment length; LongLLMLingua's
# recommended setup adds question conditioning, contrastive scoring and a rank-dependent ratio offset.
_ITERATIVE_SIZE = 200
_CONTEXT_BUDGET = "+100"
_LONG_DYNAMIC_RATIO = 0.3

_SLOW_CALL_S = 10.0
"""A call that has run this long reports its progress on stderr (the harness does its own timing)."""


# --- the benchmark method -------------------------------------------------------------------------------


def _compressible(messages: Sequence[BaseMessage]) -> tuple[list[int], list[int]]:
    """Indices of tool outputs, and of human/AI text older than the latest human message.

    Only plain-string content counts: content blocks (images, structured parts) are left alone.
    """
    last_human = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
    tools: list[int] = []
    chat: list[int] = []
    for i, m in enumerate(messages):
        if not isinstance(m.content, str) or not m.content.strip():
            continue
        if isinstance(m, ToolMessage):
            tools.append(i)
        elif isinstance(m, HumanMessage | AIMessage) and i < last_human:
            chat.append(i)
    return tools, chat


class LLMLinguaMethod:
    """LLMLingua / LongLLMLingua over a LangChain transcript, scored by a packaged draft model.

    Tool outputs form llmlingua's context list: they are ranked (LongLLMLingua: by how well each
    predicts the question), the weakest dropped to meet the budget, and the rest compressed token by
    token. Older human and AI text is compressed token by token at ``keep_ratio``. The system prompt,
    the latest human message, tool calls and non-text content are never changed.
    """

    def __init__(self, draft: str = "smollm2-135m", variant: Variant = "llmlingua") -> None:
        if variant not in ("llmlingua", "longllmlingua"):
            msg = f"variant={variant!r} is not valid: use 'llmlingua' or 'longllmlingua'."
            raise ValueError(msg)
        self.draft = draft
        self.variant: Variant = variant
        self.name: str = variant

    def compress(self, messages: list[BaseMessage], keep_ratio: float, question: str) -> list[BaseMessage]:
        if not 0.0 < keep_ratio <= 1.0:
            msg = f"keep_ratio={keep_ratio} must be in (0, 1]: the fraction of tokens to keep."
            raise ValueError(msg)
        long = self.variant == "longllmlingua"
        if long and not question.strip():
            msg = "LongLLMLingua needs a question to rank and condition on; pass the latest user question."
            raise ValueError(msg)
        tools, chat = _compressible(messages)
        # Every message is copied, so the caller may mutate the result without touching the input.
        out = [m.model_copy() for m in messages]
        if keep_ratio >= 1.0 or not (tools or chat):
            return out

        pc = load_compressor(self.draft)
        started = time.monotonic()
        texts = [str(messages[i].content) for i in tools]
        lengths = [pc.get_token_length(t) for t in texts]
        rates = self._tool_rates(pc, texts, lengths, keep_ratio, question)
        jobs = [(i, r) for i, r in zip(tools, rates, strict=True)] + [(i, keep_ratio) for i in chat]
        jobs.sort(key=lambda job: job[0])  # message order, so progress lines read naturally
        for n, (i, rate) in enumerate(jobs, 1):
            text = str(messages[i].content)
            new = "" if rate is None else self._compress_text(pc, text, rate, question if long else "")
            out[i] = messages[i].model_copy(update={"content": new})
            elapsed = time.monotonic() - started
            if elapsed > _SLOW_CALL_S:
                print(f"[{self.name}] {n}/{len(jobs)} messages compressed ({elapsed:.0f} s)", file=sys.stderr)
        return out

    def _tool_rates(
        self, pc: Any, texts: list[str], lengths: list[int], keep_ratio: float, question: str
    ) -> list[float | None]:
        """Per tool output: the token keep ratio one llmlingua call would give it; None if dropped."""
        if len(texts) <= 1:
            # llmlingua itself skips the context-level step for a single context.
            return [keep_ratio] * len(texts)
        long = self.variant == "longllmlingua"
        target = sum(lengths) * keep_ratio
        _, dynamic, used = pc.control_context_budget(
            texts,
            lengths,
            target,
            question=question if long else "",
            # What compress_prompt passes after stripping "_condition": LongLLMLingua ranks by the
            # question's perplexity given each output, LLMLingua by each output's own perplexity.
            condition_in_question="after" if long else "none",
            # Messages keep their order; llmlingua's "sort" would reorder them.
            reorder_context="original",
            dynamic_context_compression_ratio=_LONG_DYNAMIC_RATIO if long else 0.0,
            rank_method=self.variant,
            context_budget=_CONTEXT_BUDGET,
        )
        # control_context_budget logs every ranking on the instance; nothing reads it, so keep it small.
        pc.context_idxs.clear()
        kept = sum(lengths[j] for j in used)
        base = target / max(kept, 1)
        by_index = {j: min(1.0, max(0.0, base + d)) for j, d in zip(used, dynamic, strict=True)}
        return [by_index.get(j) for j in range(len(texts))]

    def _compress_text(self, pc: Any, text: str, rate: float, question: str) -> str:
        if rate >= 1.0:
            return text
        n_tokens = pc.get_token_length(text)
        common: dict[str, Any] = {
            # An explicit token target: compress_prompt's rate would also count the question's tokens.
            "target_token": max(1.0, n_tokens * rate),
            "iterative_size": _ITERATIVE_SIZE,
            "use_context_level_filter": False,
            "concate_question": False,
        }
        if question:
            result = pc.compress_prompt(
                [text],
                question=question,
                rank_method="longllmlingua",
                condition_in_question="after_condition",
                condition_compare=True,
                **common,
            )
        else:
            result = pc.compress_prompt([text], rank_method="llmlingua", **common)
        compressed = str(result["compressed_prompt"])
        # A token spanning the question/context boundary (adaptation 3) brings separator newlines along.
        if question and not text.startswith("\n"):
            compressed = compressed.lstrip("\n")
        return compressed
