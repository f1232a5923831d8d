"""The target's side of ``bench cost``: what it reads (its own tokens), what a prefix cache saves, its TTFT.

Pure metrics on token-id lists (no model):

* :func:`lcp`: the longest common prefix of two id lists;
* :func:`prefix_stability`: per step k >= 1, ``lcp(ids[k-1], ids[k]) / len(ids[k-1])``: the share of the
  previous input that the new one starts with, i.e. that a prefix cache can serve;
* :func:`step_bills`: per step, ``read * cached + write * (tokens - cached)`` with ``cached`` the LCP
  with the previous step's input (nothing at the first step): a provider's input bill with prompt
  caching (Anthropic: read 0.1, write 1.25; OpenAI-like: read 0.1, write 1.0).

And the local target's time to first token with a prefix cache, the way vLLM / llama.cpp reuse one:
the previous step's ``DynamicCache`` is cropped to the LCP with the new ids and only the rest is
forwarded (``logits_to_keep=1``); without a cache every step is prefilled from scratch.
"""

from __future__ import annotations

import gc
import inspect
import time
from collections.abc import Sequence
from typing import Any

import torch
from langchain_core.messages import BaseMessage

from specprefill_langchain import models
from specprefill_langchain.bench.target import _to_hf, load_model

# Price sheets: (read, write) per token, as multiples of the uncached input price.
SHEETS: dict[str, tuple[float, float]] = {"r0.1_w1.25": (0.1, 1.25), "r0.1_w1.0": (0.1, 1.0)}


def lcp(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of ``a`` and ``b``."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def cached_tokens(inputs: Sequence[Sequence[int]]) -> list[int]:
    """Per step, the tokens a prefix cache holds from the previous step (0 at the first)."""
    return [0] + [lcp(inputs[k - 1], inputs[k]) for k in range(1, len(inputs))]


def prefix_stability(inputs: Sequence[Sequence[int]]) -> list[float]:
    """Per step k >= 1: ``lcp(input k-1, input k) / len(input k-1)`` (1.0: the old input is a prefix)."""
    return [lcp(inputs[k - 1], inputs[k]) / max(1, len(inputs[k - 1])) for k in range(1, len(inputs))]


def step_bills(inputs: Sequence[Sequence[int]], read: float, write: float) -> list[float]:
    """Per step: ``read * cached + write * (tokens - cached)``, cached = LCP with the previous input."""
    return [read * c + write * (len(ids) - c) for ids, c in zip(inputs, cached_tokens(inputs), strict=True)]


def relative(value: float, reference: float) -> float | None:
    return value / reference if reference else None


# --- rendering ---------------------------------------------------------------------------------


def target_tokenizer(name: str, dtype: str | None = None) -> Any:
    """The target's tokenizer: from the loaded model when ``dtype`` is given (TTFT runs), else alone."""
    if dtype is not None:
        return load_model(name, dtype).tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(models.resolve(name)), local_files_only=True)


def render(tokenizer: Any, messages: Sequence[BaseMessage], schemas: Sequence[dict[str, Any]] | None) -> str:
    """The prompt text the target reads: its chat template over the messages, tool schemas included."""
    hf = [_to_hf(m) for m in messages]
    tools = list(schemas) if schemas else None
    return tokenizer.apply_chat_template(hf, tools=tools, add_generation_prompt=True, tokenize=False)


def encode(tokenizer: Any, text: str) -> list[int]:
    # The template holds every special token already: the tokenizer must add none.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


# --- TTFT with a prefix cache ------------------------------------------------------------------


def crop_to(cache: Any, length: int) -> None:
    """Keep the first ``length`` positions of ``cache``.

    A negative argument removes that many tokens both in transformers 5.24 (where a positive one is
    refused) and before it (where a positive one was the length to keep); removing none is skipped,
    since ``crop(0)`` once meant "keep nothing".
    """
    remove = cache.get_seq_length() - length
    if remove > 0:
        cache.crop(-remove)


class PrefixCachedTarget:
    """The local target's prefill, timed, with or without a KV cache kept from the previous step."""

    def __init__(self, name: str, dtype: str, loaded: Any = None) -> None:
        self.loaded = loaded if loaded is not None else load_model(name, dtype)
        model = self.loaded.model
        # transformers 5.24 renamed `past_key_values` to `cache`; 5.23 only knows the old name.
        self._cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def _forward(self, ids: Sequence[int], cache: Any) -> torch.Tensor:
        """Forward ``ids`` after what ``cache`` holds; the last position's logits."""
        x = torch.tensor([list(ids)], dtype=torch.long)
        out = self.loaded.model(input_ids=x, logits_to_keep=1, use_cache=True, **{self._cache_kw: cache})
        logits = out.logits[0, -1]
        int(logits.argmax())  # the first token itself; forces the lazy work to finish
        return logits

    def warm_up(self, n: int = 64) -> None:
        """One untimed forward: first calls pay one-off allocation that no later step pays."""
        with self.loaded.lock, torch.inference_mode():
            self._forward([0] * n, self.new_cache())

    def new_cache(self) -> Any:
        from transformers import DynamicCache

        return DynamicCache(config=self.loaded.model.config)

    def time_loop(self, inputs: Sequence[Sequence[int]], *, reuse: bool) -> list[dict[str, Any]]:
        """Per step: tokens, tokens served from the cache, tokens forwarded and the prefill seconds.

        ``reuse``: the cache of step k-1 is cropped to the LCP with step k's ids (at least one token
        is always forwarded: the first output token needs the last position's logits).
        """
        rows, prev, cache = [], None, None
        for ids in inputs:
            cached = 0
            if reuse and prev is not None and cache is not None:
                cached = min(lcp(prev, ids), len(ids) - 1)
                crop_to(cache, cached)
            else:
                cache = None
                gc.collect()  # the previous prompt's KV cache is garbage now; free it before timing
                cache = self.new_cache()
            with self.loaded.lock, torch.inference_mode():
                start = time.perf_counter()
                self._forward(ids[cached:], cache)
                seconds = time.perf_counter() - start
            rows.append({"tokens": len(ids), "cached": cached, "forwarded": len(ids) - cached, "target_s": seconds})
            prev = ids
        del cache
        gc.collect()
        return rows


__all__ = [
    "SHEETS",
    "PrefixCachedTarget",
    "cached_tokens",
    "crop_to",
    "encode",
    "lcp",
    "prefix_stability",
    "relative",
    "render",
    "step_bills",
    "target_tokenizer",
]
