"""Agent-step benchmark: time to first token of a growing agent transcript, full vs compressed.

    python -m specprefill_langchain.bench agent-step --steps 6 --history 6000 --keep-ratio 0.3 --json

Step ``k`` of the loop sends the system prompt, the human request (which holds the question) and the
first ``k`` tool rounds (one ``AIMessage`` tool call + its ``ToolMessage`` each; real files, pydoc
pages, greps and JSON from :mod:`..tasks.rounds`, with a needle in one of them). Per step it measures:

* ``full_ttft_s``: the target's prefill of the whole chat-templated prompt, i.e. one forward pass
  with ``logits_to_keep=1``. On CPU that *is* the time to first token (choosing the token is free).
* ``draft_s_with_reuse``: one compressor, one ``cache_key`` for the thread, steps in order, so the
  draft prefills only the round the previous step did not see.
* ``draft_s_without_reuse``: a second compressor over the same loaded draft whose cache is cleared
  before every step, so the draft prefills the whole history each time.
* ``target_ttft_compressed_s``: the target's prefill of the compressed prompt.

Compressed TTFT = draft seconds + target TTFT on the compressed prompt. The target never reuses a KV
cache here (in either arm), which is how a stateless chat API bills and computes every step.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import sys
import time
from typing import Any

import torch
from langchain_core.messages import BaseMessage

from specprefill_langchain.bench import options
from specprefill_langchain.bench.tasks import real_tasks
from specprefill_langchain.bench.tasks.rounds import Round, build_messages, filler_rounds

CHARS_PER_TOKEN = 4  # first guess only; the history is re-sized once with the draft's real count


def _log(msg: str) -> None:
    print(f"[agent-step] {msg}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux: the high-water mark of this whole process.
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _rounds(steps: int, chars: int, seed: int) -> tuple[str, list[Round]]:
    """The request (with the question) and ``steps`` rounds of about ``chars`` characters in all."""
    rng = random.Random(f"agent-step:{seed}")
    # The needle's host round gets about one step's share of the history, like every other round.
    parts = real_tasks.needle(rng, 2 * chars // steps, rng.uniform(0.2, 0.8))
    own = list(parts.rounds)[:steps]
    left = max(200 * steps, chars - sum(len(r.output) for r in own))
    fill = filler_rounds(steps - len(own), left, rng, parts.avoid_files) if steps > len(own) else []
    # The evidence sits in the first half of the loop, so later steps must carry it a long way.
    at = rng.randrange(max(1, steps // 2))
    rounds = fill[:at] + own + fill[at:]
    return f"{parts.request}\n\n{parts.question}", rounds


def build_history(steps: int, history_tokens: int, seed: int, count: Any) -> list[BaseMessage]:
    """The final transcript (step ``steps``); ``count(messages)`` gives its size in draft tokens."""
    if steps < 1:
        msg = f"steps must be at least 1, got {steps}"
        raise ValueError(msg)
    chars = history_tokens * CHARS_PER_TOKEN
    msgs: list[BaseMessage] = []
    for _ in range(2):  # one correction: code and JSON run at ~3-4 chars per token, prose at ~4-5
        request, rounds = _rounds(steps, chars, seed)
        msgs = build_messages(f"agent-{seed}", random.Random(seed), request, rounds, "")[:-1]
        chars = int(chars * history_tokens / max(1, count(msgs)))
    return msgs


def step_messages(history: list[BaseMessage], step: int) -> list[BaseMessage]:
    """System + request + the first ``step`` rounds: a prefix of the next step's messages."""
    return history[: 2 + 2 * step]


class Target:
    """The local target's prefill, timed: the exact ids ``LocalChatModel`` would feed to ``generate``."""

    def __init__(self, name: str, dtype: str) -> None:
        from specprefill_langchain.bench.target import LocalChatModel, load_model

        self.chat = LocalChatModel(model=name, dtype=dtype)  # type: ignore[arg-type]
        self.loaded = load_model(name, dtype)

    def ids(self, messages: list[BaseMessage]) -> torch.Tensor:
        text = self.chat.render_prompt(messages)
        return self.loaded.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]

    def ttft(self, messages: list[BaseMessage]) -> tuple[float, int]:
        """(seconds to the first token's logits, prompt tokens)."""
        ids = self.ids(messages)
        with self.loaded.lock, torch.inference_mode():
            start = time.perf_counter()
            logits = self.loaded.model(input_ids=ids, logits_to_keep=1, use_cache=True).logits
            int(logits[0, -1].argmax())  # the first token itself; forces the lazy work to finish
            seconds = time.perf_counter() - start
        del logits
        gc.collect()  # the prompt's KV cache is garbage now; free it before the next timing
        return seconds, int(ids.shape[1])


def run_agent_step(
    steps: int = 6,
    history: int = 6000,
    keep_ratio: float = 0.3,
    draft: str = "smollm2-135m",
    target: str = "qwen2.5-coder-0.5b",
    dtype: str = "auto",
    target_dtype: str = "auto",
    seed: int = 0,
    hop_chunks: int | None = None,
) -> dict[str, Any]:
    from specprefill_langchain import ScoringConfig, SpecPrefillCompressor

    # None: the library's default scoring (what a user gets); an int overrides the second hop only.
    scoring = ScoringConfig() if hop_chunks is None else ScoringConfig(hop_chunks=hop_chunks)

    _log(f"loading target {target} ({target_dtype}) and draft {draft} ({dtype})")
    tgt = Target(target, target_dtype)
    kw: dict[str, Any] = {"keep_ratio": keep_ratio, "dtype": dtype, "on_error": "raise", "scoring": scoring}
    reuse = SpecPrefillCompressor(draft=draft, **kw)
    cold = SpecPrefillCompressor(draft=reuse.draft, **kw)
    tok = reuse.draft.tokenizer

    def count(msgs: list[BaseMessage]) -> int:
        return sum(len(tok(m.text, add_special_tokens=False)["input_ids"]) + 4 for m in msgs)

    full_history = build_history(steps, history, seed, count)
    # Warm-up: first calls pay one-off allocation and kernel selection that no later step pays.
    tgt.ttft(step_messages(full_history, 0))
    reuse.compress(step_messages(full_history, 1))
    reuse.cache.clear()

    per_step: list[dict[str, Any]] = []
    for step in range(1, steps + 1):
        msgs = step_messages(full_history, step)
        full_s, full_tokens = tgt.ttft(msgs)
        start = time.perf_counter()
        warm = reuse.compress(msgs, cache_key="agent-thread")
        warm_s = time.perf_counter() - start
        cold.cache.clear()
        start = time.perf_counter()
        fresh = cold.compress(msgs, cache_key="agent-thread")
        cold_s = time.perf_counter() - start
        comp_s, comp_tokens = tgt.ttft(list(warm.messages))
        row = {
            "step": step,
            "history_draft_tokens": warm.stats.draft_tokens_in,
            "compressed_draft_tokens": warm.stats.draft_tokens_out,
            "target_tokens_full": full_tokens,
            "target_tokens_compressed": comp_tokens,
            "full_ttft_s": round(full_s, 4),
            "draft_s_with_reuse": round(warm_s, 4),
            "draft_s_without_reuse": round(cold_s, 4),
            "draft_prefill_s_with_reuse": round(warm.stats.prefill_s, 4),
            "draft_scoring_s_with_reuse": round(warm.stats.scoring_s, 4),
            "draft_prefill_s_without_reuse": round(fresh.stats.prefill_s, 4),
            "reused_tokens": warm.stats.reused_tokens,
            "prefilled_tokens_with_reuse": warm.stats.prefilled_tokens,
            "prefilled_tokens_without_reuse": fresh.stats.prefilled_tokens,
            "target_ttft_compressed_s": round(comp_s, 4),
            "compressed_ttft_s_with_reuse": round(warm_s + comp_s, 4),
            "compressed_ttft_s_without_reuse": round(cold_s + comp_s, 4),
            # In float32 both arms keep the same text (reuse is exact to ~1e-7). In bfloat16 the
            # matmuls round differently when the prefix was prefilled in other chunk sizes (step by
            # step vs 512 at once), and a chunk scored within rounding of the budget cut can swap.
            "same_output": [m.content for m in warm.messages] == [m.content for m in fresh.messages],
            "passthrough": warm.stats.passthrough,
        }
        per_step.append(row)
        _log(
            f"step {step}: {row['history_draft_tokens']} draft tok, full {full_s:.2f}s, "
            f"compressed {warm_s + comp_s:.2f}s (reuse) / {cold_s + comp_s:.2f}s (no reuse)"
        )
    from specprefill_langchain.draft import resolve_dtype

    # The dtypes that ran ("auto" resolved), so a reader knows which arithmetic the times are for.
    summary = _summary(
        per_step, steps, history, keep_ratio, draft, target, resolve_dtype(dtype), resolve_dtype(target_dtype)
    )
    return {**summary, "hop_chunks": scoring.hop_chunks}


def _totals(rows: list[dict[str, Any]]) -> dict[str, float]:
    full = sum(r["full_ttft_s"] for r in rows)
    warm = sum(r["compressed_ttft_s_with_reuse"] for r in rows)
    cold = sum(r["compressed_ttft_s_without_reuse"] for r in rows)
    return {
        "full_ttft_s": round(full, 4),
        "compressed_ttft_s_with_reuse": round(warm, 4),
        "compressed_ttft_s_without_reuse": round(cold, 4),
        "speedup_with_reuse": round(full / warm, 3),
        "speedup_without_reuse": round(full / cold, 3),
    }


def _summary(
    per_step: list[dict[str, Any]],
    steps: int,
    history: int,
    keep_ratio: float,
    draft: str,
    target: str,
    dtype: str,
    target_dtype: str,
) -> dict[str, Any]:
    last = _totals(per_step[-1:])
    final = per_step[-1]
    new = max(1, final["prefilled_tokens_with_reuse"])
    return {
        "aggregate": "last_step",  # headline numbers: the last (largest) step; "sum_over_steps" below
        "steps": steps,
        "history_tokens": per_step[-1]["history_draft_tokens"],
        "history_tokens_requested": history,
        "keep_ratio": keep_ratio,
        "draft": draft,
        "target": target,
        "dtype": dtype,
        "target_dtype": target_dtype,
        **last,
        # Share of the no-reuse compressed TTFT that KV reuse removes at the last step.
        "reuse_saving_fraction": round(
            1 - last["compressed_ttft_s_with_reuse"] / last["compressed_ttft_s_without_reuse"], 3
        ),
        # The draft's cost of one agent step per 1,000 new tokens (prefill + scoring, KV reuse on),
        # at the last step: the number to hold against the target's own prefill speed.
        "draft_s_per_1k_new": round(final["draft_s_with_reuse"] / new * 1000, 4),
        "draft_new_tokens_last_step": final["prefilled_tokens_with_reuse"],
        "sum_over_steps": _totals(per_step),
        "peak_rss_mb": peak_rss_mb(),
        "torch_threads": torch.get_num_threads(),
        "per_step": per_step,
    }


def add_args(p: argparse.ArgumentParser, prefix: str = "") -> None:
    options.add(p, prefix, "steps", type=int, default=6, help="agent steps (tool rounds)")
    options.add(p, prefix, "history", type=int, default=6000, help="draft tokens at the last step")
    options.add(p, prefix, "keep-ratio", type=options.ratio, default=0.3)
    options.add(p, prefix, "draft", default="smollm2-135m")
    options.add(p, prefix, "target", default="qwen2.5-coder-0.5b")
    options.add(p, prefix, "dtype", default="auto", choices=["auto", "float32", "bfloat16"], help="draft dtype")
    options.add(p, prefix, "target-dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    options.add(p, prefix, "hop-chunks", type=int, default=None, help="ScoringConfig.hop_chunks (0 = one pass)")


def run_args(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    def get(name: str) -> Any:
        return options.get(args, prefix, name)

    return run_agent_step(
        steps=get("steps"),
        history=get("history"),
        keep_ratio=get("keep-ratio"),
        draft=get("draft"),
        target=get("target"),
        dtype=get("dtype"),
        target_dtype=get("target-dtype"),
        seed=getattr(args, "seed", 0) or 0,
        hop_chunks=get("hop-chunks"),
    )
