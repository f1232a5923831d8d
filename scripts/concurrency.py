"""One compressor shared by N agent threads (and by asyncio tasks): outputs vs serial, cache budget.

    .venv/bin/python scripts/concurrency.py [--threads 8] [--steps 20] [--budget 1500000] [--draft tiny]

Prints, for thread-keyed, unkeyed and asyncio runs: how many outputs are identical to a serial run
without a cache, the prefix store's peak bytes against its budget, hits and evictions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from fuzz import tiny_draft
from test_concurrency import make, run_concurrent, serial_reference, thread_history

from specprefill_langchain import DraftModel, SpecPrefillCompressor


def report(label: str, comp: SpecPrefillCompressor, got: dict, ref: dict, steps: int, secs: float) -> int:
    same = sum(got[t][s] == ref[t][s] for t in got for s in range(steps))
    total = len(got) * steps
    st = comp.cache.stats
    print(
        f"{label:12s} identical {same}/{total}  cache peak {st.max_bytes:,} B / budget {comp.cache.max_bytes:,} B "
        f"({'OK' if st.max_bytes <= comp.cache.max_bytes else 'OVER'})  hits {st.hits}/{st.lookups}  "
        f"evictions {st.evictions}  {secs:.1f}s"
    )
    return total - same


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--budget", type=int, default=1_500_000)
    ap.add_argument("--draft", default="tiny")
    args = ap.parse_args()
    torch.set_num_threads(1)  # one intra-op thread per agent thread
    smol = DraftModel.load("smollm2-135m")
    draft = tiny_draft(smol) if args.draft == "tiny" else DraftModel.load(args.draft)

    t0 = time.perf_counter()
    ref = serial_reference(draft, args.threads, args.steps)
    print(f"serial reference: {args.threads}x{args.steps} steps, no cache, {time.perf_counter() - t0:.1f}s")
    bad = 0
    for keyed in (True, False):
        comp = make(draft, args.budget)
        t0 = time.perf_counter()
        got = run_concurrent(comp, args.threads, args.steps, keyed)
        bad += report("thread keys" if keyed else "no keys", comp, got, ref, args.steps, time.perf_counter() - t0)

    comp = make(draft, args.budget)

    async def agent(tid: int) -> list:
        config = {"configurable": {"thread_id": f"t{tid}"}}
        return [await comp.ainvoke(thread_history(tid, s + 1), config=config) for s in range(args.steps)]

    async def gather() -> list:
        return await asyncio.gather(*(agent(t) for t in range(args.threads)))

    t0 = time.perf_counter()
    got = dict(enumerate(asyncio.run(gather())))
    bad += report("asyncio", comp, got, ref, args.steps, time.perf_counter() - t0)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
