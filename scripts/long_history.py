"""A ~20k-token agent history through the real SmolLM2 draft (8,192-token context, so 3 windows).

    .venv/bin/python scripts/long_history.py [--chars 80000] [--keep 0.3] [--threads 2]

Prints the draft tokens, windows, time of a cold call, of a repeated call and of the next agent step
(one more tool output appended), whether the needle survived, and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import torch
from langchain_core.messages import AIMessage, ToolMessage
from test_invariants import check_invariants
from test_long_history import long_transcript
from transcripts import NEEDLE, stdlib_source

from specprefill_langchain import DraftModel, PolicyConfig, SpecPrefillCompressor


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chars", type=int, default=80_000)
    ap.add_argument("--keep", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    draft = DraftModel.load("smollm2-135m")
    rss_loaded = peak_rss_mib()
    comp = SpecPrefillCompressor(draft=draft, keep_ratio=args.keep, policy=PolicyConfig(min_compressible_tokens=0))
    msgs = long_transcript(args.chars)
    before = copy.deepcopy(msgs)

    t0 = time.perf_counter()
    cold = comp.compress(msgs, cache_key="t")
    t_cold = time.perf_counter() - t0
    check_invariants(before, msgs, cold)
    t0 = time.perf_counter()
    again = comp.compress(msgs, cache_key="t")
    t_again = time.perf_counter() - t0
    call = {"name": "read_file", "args": {"path": "string"}, "id": "call_x", "type": "tool_call"}
    step = [
        *msgs[:-1],
        AIMessage("", tool_calls=[call], id="ai-x"),
        ToolMessage(stdlib_source("string", 4000), tool_call_id="call_x", name="read_file", id="tool-x"),
        msgs[-1],
    ]
    t0 = time.perf_counter()
    nxt = comp.compress(step, cache_key="t")
    t_step = time.perf_counter() - t0

    s = cold.stats
    kept = "\n".join(m.text for m in cold.messages)
    print(
        f"threads={args.threads} draft_tokens_in={s.draft_tokens_in} windows={s.windows} "
        f"keep={args.keep} kept_fraction={s.kept_fraction:.3f} needle_kept={NEEDLE in kept}"
    )
    print(
        f"cold: {t_cold:.1f}s (prefill {s.prefill_s:.1f}s, scoring {s.scoring_s:.1f}s, "
        f"{s.draft_tokens_in / t_cold:.0f} tok/s)"
    )
    print(
        f"same history again: {t_again:.2f}s, reused {again.stats.reused_tokens} prefilled "
        f"{again.stats.prefilled_tokens}; identical output: {again.messages == cold.messages}"
    )
    print(
        f"next step (+{nxt.stats.draft_tokens_in - s.draft_tokens_in} tokens): {t_step:.1f}s, reused "
        f"{nxt.stats.reused_tokens} prefilled {nxt.stats.prefilled_tokens}"
    )
    print(
        f"peak RSS: {peak_rss_mib():.0f} MiB (after loading the draft: {rss_loaded:.0f} MiB); "
        f"prefix cache {comp.cache.nbytes / 2**20:.0f} MiB in {len(comp.cache)} entries"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
