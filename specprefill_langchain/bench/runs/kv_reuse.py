"""Benchmark: the draft's cost of scoring history+append from scratch vs with the history cached.

    specprefill bench kv-reuse --draft smollm2-135m --history 6000 --append 512 --json

All timings are medians over ``repeats`` in one process. ``max_abs_score_diff`` compares the
importance scores of the incremental path with the from-scratch path on the same tokens, and
``plain_prefill_s`` is the same tokens through a plain prefill (no query capture, no scoring), so
scoring overhead = scratch_s / plain_prefill_s - 1. ``flop_ceiling`` is the speed-up that equally
efficient kernels would give: both arms forward the appended tokens and the question tail, and each of
those still attends to the whole history.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import statistics
import sys
import time
from typing import TYPE_CHECKING, Any

import torch

from specprefill_langchain.bench import options

if TYPE_CHECKING:
    from specprefill_langchain import DraftModel

QUESTION = "Which function decodes a JSON document, and what does it return?"


def _log(msg: str) -> None:
    print(f"[kv-reuse] {msg}", file=sys.stderr, flush=True)


def _history_ids(draft: DraftModel, n: int) -> list[int]:
    """Real text (stdlib sources) tokenized, cut to ``n`` tokens."""
    import json.decoder
    import json.encoder
    import textwrap

    text = inspect.getsource(json.decoder) + inspect.getsource(json.encoder) + inspect.getsource(textwrap)
    ids: list[int] = []
    while len(ids) < n:
        ids += draft.tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[:n]


def flop_ratio(linear_flops_per_token: float, attn_flops_per_pair: float, history: int, total: int) -> float:
    """Scratch FLOPs / incremental FLOPs for ``total`` tokens of which the first ``history`` are cached.

    From scratch every one of ``total`` tokens is forwarded and attends to its whole prefix
    (position p sees p + 1 keys); incrementally only positions ``history .. total - 1`` are forwarded,
    but each of them still attends to everything before it. That second term is why the ratio stays
    far below total / (total - history).
    """
    if not 0 <= history < total:
        msg = f"need 0 <= history < total, got history={history}, total={total}"
        raise ValueError(msg)

    def cost(first: int) -> float:
        tokens = total - first
        pairs = (total * (total + 1) - first * (first + 1)) // 2  # sum of p + 1 over p = first .. total - 1
        return linear_flops_per_token * tokens + attn_flops_per_pair * pairs

    return cost(0) / cost(history)


def flop_ceiling(model: DraftModel, history: int, total: int) -> float:
    """:func:`flop_ratio` from the draft's shapes: the speed-up that kernels of equal efficiency would give.

    ``total`` counts every token the scratch arm forwards (history, appended tokens and the question
    tail). Per token, the decoder's matmuls cost 2 FLOPs per weight; per (query, key) pair and layer,
    attention costs 4 * heads * head_dim (q·k and the weighted sum of v).
    """
    cfg = model.model.config.get_text_config(decoder=True)
    linear = 2 * sum(p.numel() for p in model.decoder_layers.parameters() if p.dim() == 2)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    per_pair = 4 * cfg.num_attention_heads * head_dim * cfg.num_hidden_layers
    return flop_ratio(linear, per_pair, history, total)


def _median_time(fn: Any, repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _token_ids(model: DraftModel, history: int, append: int) -> tuple[list[int], list[int], int]:
    """(the cached history, every token the scratch arm forwards, the question tail's length).

    History and appended tokens are real text; the tail asks :data:`QUESTION` in the draft's chat format.
    """
    from specprefill_langchain.chatformat import chat_format

    fmt = chat_format(model.tokenizer)
    tail = model.tokenizer(
        fmt.header("human") + QUESTION + fmt.end + fmt.generation_prompt(), add_special_tokens=False
    )["input_ids"]
    body = _history_ids(model, history + append)
    hist, full = body[:history], body + list(tail)
    if len(full) > model.context_length:
        msg = f"history+append+question = {len(full)} tokens exceed the draft's context of {model.context_length}."
        raise ValueError(msg)
    return hist, full, len(tail)


def _time_arms(
    model: DraftModel, hist: list[int], full: list[int], qs: int, sc: Any, depth: int, repeats: int
) -> tuple[float, float, float, float, int, float]:
    """Median seconds of the plain prefill (all layers, then ``depth``), of scoring from scratch and with the
    history cached; then the tokens the cached arm reused and how far its scores differ from scratch."""
    from specprefill_langchain import PrefixCache
    from specprefill_langchain.kvcache import snapshot_of
    from specprefill_langchain.passes import score_pass

    _log(f"plain prefill of {len(full)} tokens, all {model.n_layers} layers, x{repeats}")
    plain_s, _ = _median_time(lambda: model.prefill(full), repeats)
    _log(f"plain prefill of {len(full)} tokens, the first {depth} layers, x{repeats}")
    plain_depth_s, _ = _median_time(lambda: model.prefill(full, depth=depth), repeats)
    _log(f"scoring from scratch x{repeats}")
    scratch_s, scratch = _median_time(lambda: score_pass(model, full, qs, scoring=sc), repeats)

    _log(f"prefilling the {len(hist)}-token history once for the cache")
    base = snapshot_of(model.prefill(hist, depth=depth))

    def incremental() -> Any:
        store = PrefixCache()
        store.put(hist, base)  # the state an agent loop is in after the previous step
        return score_pass(model, full, qs, scoring=sc, store=store)

    _log(f"scoring with the history cached x{repeats}")
    incr_s, incr = _median_time(incremental, repeats)
    diff = float(torch.max(torch.abs(incr.scores - scratch.scores)))
    return plain_s, plain_depth_s, scratch_s, incr_s, incr.reused_tokens, diff


def run_kv_reuse(
    draft: str = options.DRAFT,
    history: int = 6000,
    append: int = 512,
    repeats: int = 3,
    dtype: str = "float32",
    depth: float | None = None,
) -> dict[str, Any]:
    from specprefill_langchain import DraftModel, ScoringConfig
    from specprefill_langchain.draft import resolve_dtype

    _log(f"loading draft {draft} ({dtype})")
    model = DraftModel.load(draft, dtype=dtype)
    hist, full, tail = _token_ids(model, history, append)
    sc = ScoringConfig() if depth is None else ScoringConfig(depth=depth)  # None: the library's defaults
    layers = model.depth_of(sc.depth)
    plain_s, plain_depth_s, scratch_s, incr_s, reused, diff = _time_arms(
        model, hist, full, len(full) - tail, sc, layers, repeats
    )
    result = {
        "draft": draft,
        "dtype": resolve_dtype(dtype),
        "history_tokens": history,
        "append_tokens": append,
        "question_tokens": tail,
        "repeats": repeats,
        "scratch_s": round(scratch_s, 4),
        "incremental_s": round(incr_s, 4),
        "speedup": round(scratch_s / incr_s, 2),
        "flop_ceiling": round(flop_ceiling(model, history, len(full)), 2),
        "depth_layers": layers,
        "n_layers": model.n_layers,
        # A plain forward of every layer over history + appended + question, no scoring: what the
        # draft would cost per step without a KV cache and without early-layer scoring.
        "full_depth_prefill_s": round(plain_s, 4),
        "step_vs_full_prefill": round(plain_s / incr_s, 2),
        "plain_prefill_s": round(plain_depth_s, 4),  # the same forward at the scoring depth
        "scoring_overhead": round(scratch_s / plain_depth_s - 1, 4),
        "reused_tokens": reused,
        "max_abs_score_diff": diff,
        "torch_threads": torch.get_num_threads(),
    }
    _log(json.dumps(result))
    return result


def add_args(p: argparse.ArgumentParser, prefix: str = "") -> None:
    options.add(p, prefix, "draft", default=options.DRAFT)
    options.add(p, prefix, "history", type=int, default=6000, help="cached tokens (+ append + question <= context)")
    options.add(p, prefix, "append", type=int, default=512)
    options.add(p, prefix, "repeats", type=int, default=3)
    options.add(p, prefix, "dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    options.add(
        p,
        prefix,
        "depths",
        type=options.csv_of(float),
        default=None,
        help="scoring depths to time besides the default (e.g. 0.5,0.3); the first run is the default's",
    )


def run_args(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    get = functools.partial(options.get, args, prefix)
    kw = {"draft": get("draft"), "history": get("history"), "append": get("append"), "repeats": get("repeats")}
    dtype = get("dtype")
    result = run_kv_reuse(**kw, dtype=dtype)
    others = [run_kv_reuse(**kw, dtype=dtype, depth=d) for d in (get("depths") or [])]
    return {**result, "runs": [result, *others]} if others else result
