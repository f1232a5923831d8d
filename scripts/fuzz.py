"""Long fuzz of the message invariants (the checks of tests/test_invariants.py, thousands of examples).

    .venv/bin/python scripts/fuzz.py --examples 2000 [--draft tiny|smollm2-135m] [--seed 0]

Prints how many histories were checked, how many were actually compressed (not passed through), and
every failure with a minimal reproducing history (hypothesis shrinks it). Exit status 1 on a failure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import torch
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from test_invariants import KEEP_RATIOS, histories, run_one

from specprefill_langchain import DraftModel, PolicyConfig, SpecPrefillCompressor


def tiny_draft_for(smol: DraftModel) -> DraftModel:
    """The same tiny random llama as the tests' ``tiny`` fixture (tests/tiny.py)."""
    from tiny import tiny_draft

    return tiny_draft(smol.tokenizer)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=2000)
    ap.add_argument("--draft", default="tiny", help="'tiny' (random 2-layer llama) or a draft name")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    smol = DraftModel.load("smollm2-135m")
    draft = tiny_draft_for(smol) if args.draft == "tiny" else DraftModel.load(args.draft)
    policy = PolicyConfig(min_compressible_tokens=0)
    compressors = {kr: SpecPrefillCompressor(draft=draft, keep_ratio=kr, policy=policy) for kr in KEEP_RATIOS}
    counts: Counter[str] = Counter()
    failures: list[str] = []

    @seed(args.seed)
    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        report_multiple_bugs=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(history=histories(), kr=st.sampled_from(KEEP_RATIOS))
    def fuzz(history: list, kr: float) -> None:
        counts["checked"] += 1
        result = run_one(compressors[kr], history)
        counts["passthrough" if result.stats.passthrough else "compressed"] += 1
        counts["messages"] += len(history)
        counts["dropped_tokens"] += result.stats.draft_tokens_in - result.stats.draft_tokens_out

    start = time.perf_counter()
    try:
        fuzz()
    except Exception:  # hypothesis re-raises the shrunk failure(s); report, do not crash
        failures.append(traceback.format_exc())
    elapsed = time.perf_counter() - start
    # hypothesis also replays the shrunk example, so "checked" counts every execution.
    print(
        f"draft={args.draft} seed={args.seed} examples asked={args.examples} executed={counts['checked']} "
        f"compressed={counts['compressed']} passthrough={counts['passthrough']} messages={counts['messages']} "
        f"dropped_draft_tokens={counts['dropped_tokens']} time={elapsed:.1f}s"
    )
    print(f"failures: {len(failures)}")
    for f in failures:
        print(f)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
