"""The draft model: a small causal LM that reads the transcript and says which tokens matter.

One ``DraftModel`` per (model, dtype, device) per process, shared by every compressor. It does three
things, all without ever asking for full logits or an N×N attention matrix:

1. ``prefill``: forward only the tokens past the cached prefix, in chunks (bounded memory), with SDPA.
2. query capture: the scoring pass forwards the *query tail* through a registered attention function
   that calls the stock SDPA kernel and records each layer's post-RoPE query states. Keys come from
   the KV cache afterwards; :mod:`scoring` turns them into importances.
3. greedy look-ahead (optional): a few generated tokens whose queries are recorded too. They run on a
   throw-away cache object, so they never reach the prefix store.
"""

from __future__ import annotations

import contextvars
import inspect
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from . import scoring
from .config import ScoringConfig
from .kvcache import PrefixCache, Snapshot, cache_from_snapshot, snapshot_of

ATTN_NAME = "specprefill_sdpa"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


# --------------------------------------------------------------------------- query capture
@dataclass
class _Recorder:
    """Collects query states per layer during one capture forward (one per thread/task)."""

    layers: frozenset[int]
    queries: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    scales: dict[int, float] = field(default_factory=dict)


_RECORDER: contextvars.ContextVar[_Recorder | None] = contextvars.ContextVar("specprefill_rec", default=None)
_REGISTER_LOCK = threading.Lock()
_REGISTERED = False


def _capture_attention(
    module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: Any, **kwargs: Any
):
    """Stock SDPA attention that also records the queries when a capture is active.

    The recorder lives in a context variable, so concurrent calls in other threads or tasks never see
    each other's captures, and a forward outside a capture pays one lookup.
    """
    rec = _RECORDER.get()
    if rec is not None:
        idx = int(getattr(module, "layer_idx", -1))
        if idx in rec.layers:
            # (batch=1, H, q, D) -> (H, q, D); copied so the recorder owns it.
            rec.queries.setdefault(idx, []).append(query[0].detach().clone())
            scale = kwargs.get("scaling")
            rec.scales[idx] = float(scale) if scale is not None else query.shape[-1] ** -0.5
    return _sdpa(module, query, key, value, mask, **kwargs)


def _sdpa(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: Any, **kw: Any):
    """The stock SDPA forward, except that GQA heads are never materialised when a mask is given.

    Stock transformers repeats the kv heads (a copy of every key and value, per layer) whenever a mask
    is present, which is every incremental prefill chunk. SDPA's ``enable_gqa`` does the same math
    without the copy: incremental steps get ~20% faster on CPU with identical results.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    plain = not any(kw.get(k) is not None for k in ("softcap", "position_bias", "s_aux", "sinks"))
    if groups > 1 and plain and isinstance(mask, torch.Tensor) and mask.dtype == torch.bool and query.shape[2] > 1:
        out = torch.nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, scale=kw.get("scaling"), enable_gqa=True
        )
        return out.transpose(1, 2).contiguous(), None
    return sdpa_attention_forward(module, query, key, value, mask, **kw)


def _register_attention() -> None:
    """Register our attention function *and* the SDPA mask function under the same name.

    Without the mask registration transformers silently passes no mask for an unknown attention
    name: Gemma's sliding window is lost and incremental prefill goes wrong, with no error.
    """
    global _REGISTERED
    with _REGISTER_LOCK:
        if _REGISTERED:
            return
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        AttentionInterface.register(ATTN_NAME, _capture_attention)
        AttentionMaskInterface.register(ATTN_NAME, sdpa_mask)
        _REGISTERED = True


# --------------------------------------------------------------------------- results
@dataclass
class Importance:
    """Per-token importance of one scoring pass, and what it cost."""

    scores: torch.Tensor  # (n_context,) float32
    reused_tokens: int
    prefilled_tokens: int
    prefill_s: float
    scoring_s: float


# --------------------------------------------------------------------------- the model
class DraftModel:
    """A tokenizer + causal LM pair, loaded once per process and shared (see :meth:`load`)."""

    _registry: dict[tuple[str, str, str], DraftModel] = {}  # noqa: RUF012 - process-wide by design
    _registry_lock = threading.Lock()

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "custom") -> None:
        _register_attention()
        model.eval()
        model.set_attn_implementation(ATTN_NAME)
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        cfg = model.config.get_text_config(decoder=True)
        self.n_layers: int = int(cfg.num_hidden_layers)
        types = getattr(cfg, "layer_types", None) or ["full_attention"] * self.n_layers
        # Sliding-window layers keep only the last few hundred keys in their cache: they cannot
        # score a long history, and their caches cannot be cropped far back.
        self.full_layers: tuple[int, ...] = tuple(i for i, t in enumerate(types) if t == "full_attention")
        self.has_sliding: bool = len(self.full_layers) < self.n_layers
        self.context_length: int = int(getattr(cfg, "max_position_embeddings", 8192) or 8192)
        self.dtype = next(model.parameters()).dtype
        self.device = next(model.parameters()).device
        params = inspect.signature(model.forward).parameters
        # transformers 5.24 renamed `past_key_values` to `cache`; 5.23 only knows the old name.
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        # The decoder stack without the LM head (``model.model`` for llama, qwen2, gemma3, ...).
        self._decoder = getattr(model, model.base_model_prefix, model)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, name: str = "smollm2-135m", *, dtype: str = "float32", device: str = "cpu") -> DraftModel:
        """The shared draft for ``name`` (short name, folder, GGUF file or hub id); loads it once."""
        if dtype not in _DTYPES:
            msg = f"dtype={dtype!r} is not supported: use one of {sorted(_DTYPES)}."
            raise ValueError(msg)
        key = (name, dtype, device)
        with cls._registry_lock:
            if key in cls._registry:
                return cls._registry[key]
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from .models import resolve

        path = resolve(name)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=_DTYPES[dtype]).to(device)
        draft = cls(model, tokenizer, name=name)
        with cls._registry_lock:
            return cls._registry.setdefault(key, draft)

    # ------------------------------------------------------------------ forward passes
    def _forward(self, ids: Sequence[int], cache: Any, *, logits: bool = False) -> torch.Tensor | None:
        x = torch.tensor([list(ids)], dtype=torch.long, device=self.device)
        kwargs = {self._cache_kw: cache, "use_cache": True}
        if not logits:
            # The base model skips the LM head entirely: prefill needs no logits at all.
            self._decoder(input_ids=x, **kwargs)
            return None
        out = self.model(input_ids=x, logits_to_keep=1, **kwargs)
        return out.logits[0, -1]

    def new_cache(self) -> Any:
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    @torch.inference_mode()
    def prefill(self, ids: Sequence[int], cache: Any | None = None, *, chunk: int = 512) -> Any:
        """Extend ``cache`` (which holds a prefix of ``ids``) to all of ``ids``; returns the cache."""
        cache = cache if cache is not None else self.new_cache()
        start = cache.get_seq_length()
        if start > len(ids):
            msg = f"the cache holds {start} tokens but only {len(ids)} ids were given; crop it first."
            raise ValueError(msg)
        for s in range(start, len(ids), chunk):
            self._forward(ids[s : s + chunk], cache)
        return cache

    @torch.inference_mode()
    def importance(
        self,
        ids: Sequence[int],
        query_start: int,
        *,
        scoring_config: ScoringConfig | None = None,
        store: PrefixCache | None = None,
        key: str | None = None,
        chunk: int = 512,
        prefix_end: int | None = None,
    ) -> Importance:
        """Score every position of ``ids`` by the attention of the queries at ``query_start:``.

        ``ids[:prefix_end]`` (default: up to ``query_start``) is the reusable prefix: it is looked up
        in (and written back to) ``store``, so a transcript that only grew since the last call
        prefills only its new tokens. Everything after it (tokens that are read but are no queries,
        the queries, any look-ahead) runs on a throw-away cache object.
        """
        sc = scoring_config or ScoringConfig()
        n = len(ids)
        if not 0 < query_start < n:
            msg = f"query_start={query_start} must lie inside the {n} ids (at least one context token)."
            raise ValueError(msg)
        prefix_end = query_start if prefix_end is None else prefix_end
        if not 0 < prefix_end <= query_start:
            msg = f"prefix_end={prefix_end} must lie in [1, query_start={query_start}]."
            raise ValueError(msg)
        if n + sc.lookahead > self.context_length:
            msg = (
                f"{n} tokens (+{sc.lookahead} look-ahead) exceed the draft's context of "
                f"{self.context_length}: score the history in windows (the compressor does this)."
            )
            raise ValueError(msg)
        prefix = list(ids[:prefix_end])
        t0 = time.perf_counter()
        snap: Snapshot | None = None
        reused = 0
        if store is not None:
            snap, reused = store.lookup(prefix, key=key, croppable=not self.has_sliding)
        cache = cache_from_snapshot(self.model.config, snap, self.device) if snap else self.new_cache()
        cache = self.prefill(prefix, cache, chunk=chunk)
        if store is not None:
            store.put(prefix, snapshot_of(cache), key=key)
        t1 = time.perf_counter()

        layers = frozenset(self.full_layers if sc.layers == "auto" else range(self.n_layers))
        layers = layers & frozenset(self.full_layers)  # only layers whose cache holds every key
        rec = _Recorder(layers=layers)
        token = _RECORDER.set(rec)
        try:
            tail = list(ids[prefix_end:])
            logits = self._forward(tail, cache, logits=sc.lookahead > 0)
            for _ in range(sc.lookahead):
                nxt = int(torch.argmax(logits))
                logits = self._forward([nxt], cache, logits=True)
        finally:
            _RECORDER.reset(token)
        captured = []
        for i in sorted(rec.queries):
            q = torch.cat(rec.queries[i], dim=1)[:, query_start - prefix_end :]  # (H, queries + lookahead, D)
            k = cache.layers[i].keys[0]  # (KVH, n + lookahead, D), post-RoPE
            captured.append((q, k, rec.scales[i]))
        # Every position from `query_start` on is a query (the caller chose it), and so is every look-ahead step.
        positions = torch.arange(query_start, n + sc.lookahead, device=self.device)
        scores = scoring.token_importance(
            captured,
            positions,
            n,
            pool_kernel=sc.pool_kernel,
            layer_reduce=sc.layer_reduce,
            head_reduce=sc.head_reduce,
            query_reduce=sc.query_reduce,
        )
        t2 = time.perf_counter()
        return Importance(
            scores=scores.float().cpu(),
            reused_tokens=reused,
            prefilled_tokens=prefix_end - reused,
            prefill_s=t1 - t0,
            scoring_s=t2 - t1,
        )

    def __repr__(self) -> str:
        return f"DraftModel(name={self.name!r}, dtype={self.dtype}, layers={self.n_layers})"
