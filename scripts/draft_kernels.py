"""Which arithmetic makes the draft's step cheaper on this CPU? (issue 22: int8, torch.compile, threads)

    python scripts/draft_kernels.py --tokens 1000 --context 300 --repeats 5

Times the draft's work of one stable agent step at the default depth: prefill ``--tokens`` new tokens
after ``--context`` cached ones, then capture the queries of a 300-token focus, in each variant:

* ``bf16`` / ``fp32``: the shipping path (``dtype="auto"`` is bfloat16 on a CPU with avx512_bf16);
* ``int8``: ``torch.ao.quantization.quantize_dynamic`` on every ``nn.Linear`` (int8 weights, float32
  activations: fbgemm's VNNI kernels);
* ``compile``: ``torch.compile`` of each decoder layer (inductor, dynamic shapes), after its warm-up compile;
* ``threads=1``: one intra-op thread.

Prints one JSON line per variant (median seconds, and the speed-up over bf16) with the CPU's flags.
A variant is worth a library option only if it wins here *and* keeps retention (``bench depth``).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from specprefill_langchain import DraftModel, ScoringConfig
from specprefill_langchain.passes import scoring_layers


def cpu_flags() -> list[str]:
    try:
        line = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags"))
    except (OSError, StopIteration):
        return []
    wanted = ("avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "avx2")
    return [f for f in wanted if f in line.split()]


def step(draft: DraftModel, ids: list[int], context: int, focus: int) -> None:
    sc = ScoringConfig()
    depth = draft.depth_of(sc.depth)
    cache = draft.prefill(ids[:context], depth=depth)
    cache = draft.prefill(ids[: len(ids) - focus], cache, depth=depth)
    draft.capture(ids[len(ids) - focus :], cache, layers=scoring_layers(draft, sc), depth=depth)


def timed(draft: DraftModel, ids: list[int], context: int, focus: int, repeats: int) -> float:
    step(draft, ids, context, focus)  # warm-up (and, compiled, the compile itself)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(draft, ids, context, focus)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def variant(name: str) -> DraftModel:
    if name in ("bf16", "threads=1", "compile"):
        base = DraftModel.load("smollm2-135m", dtype="bfloat16")
    else:
        base = DraftModel.load("smollm2-135m", dtype="float32")
    if name == "int8":
        model = torch.ao.quantization.quantize_dynamic(copy.deepcopy(base.model), {torch.nn.Linear}, dtype=torch.qint8)
        return DraftModel(model, base.tokenizer, name="smollm2-135m-int8")
    if name == "compile":
        model = copy.deepcopy(base.model)
        for layer in model.model.layers:  # the layers are what every depth's stack shares
            layer.forward = torch.compile(layer.forward, dynamic=True)
        return DraftModel(model, base.tokenizer, name="smollm2-135m-compiled")
    return base


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=1000, help="new tokens the step prefills")
    ap.add_argument("--context", type=int, default=300, help="tokens already cached (system prompt, request)")
    ap.add_argument("--focus", type=int, default=300, help="tokens of the focus whose queries are captured")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--variants", default="bf16,fp32,int8,compile,threads=1")
    args = ap.parse_args(argv)
    total = args.context + args.tokens + args.focus
    results: dict[str, Any] = {"cpu_flags": cpu_flags(), "torch": torch.__version__, "tokens": total}
    for name in args.variants.split(","):
        threads = torch.get_num_threads()
        if name == "threads=1":
            torch.set_num_threads(1)
        try:
            draft = variant(name)
            ids = (draft.tokenizer("def f(x):\n    return x + 1\n", add_special_tokens=False)["input_ids"] * total)[
                :total
            ]
            results[name] = round(timed(draft, ids, args.context, args.focus, args.repeats), 4)
        except Exception as err:  # a variant this CPU or torch cannot run: say so, go on
            results[name] = f"failed: {type(err).__name__}: {err}"[:300]
        finally:
            torch.set_num_threads(threads)
        print(f"[kernels] {name}: {results[name]}", file=sys.stderr, flush=True)
    base = results.get("bf16")
    if isinstance(base, float):
        results["speedup_vs_bf16"] = {k: round(base / v, 3) for k, v in results.items() if isinstance(v, float)}
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
