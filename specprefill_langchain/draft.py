"""The draft model: a small causal LM, and nothing more.

One ``DraftModel`` per (model, dtype, device) per process, shared by every compressor. It does two
things, without ever asking for full logits or an N×N attention matrix:

1. :meth:`DraftModel.prefill`: forward only the tokens past what a KV cache already holds, in chunks
   (bounded memory), with SDPA.
2. :meth:`DraftModel.capture`: forward a *query tail* through a registered attention function that
   calls the stock SDPA kernel and records each layer's post-RoPE query states; the keys are read
   from the cache afterwards.

Which tokens it reads, which cache it extends and what the captured states mean is the business of
:mod:`passes` (the prefix store) and :mod:`scoring` (the arithmetic).
"""

from __future__ import annotations

import copy
import inspect
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .capture import ATTN_NAME, recording, register_attention
from .config import DTYPES, CompressorConfig

_TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
assert {*_TORCH_DTYPES, "auto"} == set(DTYPES), "config.DTYPES and the torch dtypes disagree"


# Tokens per forward while prefilling: bounds the memory of one forward (activations grow with it)
# while staying long enough that the matmuls run at full speed on a CPU.
PREFILL_CHUNK = 512

# (queries (H, Q, D), keys (KVH, K, D), scale) of one layer: what scoring.token_importance reads.
CapturedLayer = tuple[torch.Tensor, torch.Tensor, float]


@dataclass(frozen=True)
class _Stack:
    """The model cut to its first ``depth`` layers: the same weights, a config that says fewer layers.

    Transformers' decoders run ``self.layers[: config.num_hidden_layers]``, so a shallow copy of the
    modules with a copied config runs only the first layers; the layers after are never computed and
    their KV is never stored (docs/design.md, "Early layers").
    """

    depth: int
    model: Any
    decoder: Any
    config: Any


def _cpu_has_native_bf16() -> bool:
    """Does this CPU compute bfloat16 natively (AVX512-BF16 or AMX)? Read from /proc/cpuinfo (Linux).

    oneDNN also *emulates* bfloat16 on plain AVX-512, and that is slower than float32: measured here,
    a 1,024-token prefill took about 3x as long in bfloat16 on a Xeon without avx512_bf16. So only
    the native instructions count.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def resolve_dtype(dtype: str, device: str = "cpu") -> str:
    """``"auto"``: bfloat16 where the device computes it natively (a GPU that supports it, a CPU with
    AVX512-BF16 or AMX), else float32."""
    if dtype != "auto":
        return dtype
    if str(device).startswith("cuda"):
        return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"
    return "bfloat16" if _cpu_has_native_bf16() else "float32"


# --------------------------------------------------------------------------- the model
class DraftModel:
    """A tokenizer + causal LM pair, loaded once per process and shared (see :meth:`load`)."""

    _registry: dict[tuple[str, str, str], DraftModel] = {}  # noqa: RUF012 - process-wide by design
    _registry_lock = threading.Lock()
    _loading: dict[tuple[str, str, str], threading.Lock] = {}  # noqa: RUF012 - one lock per model being loaded

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "custom") -> None:
        register_attention()
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
        self._stacks = {self.n_layers: _Stack(self.n_layers, model, self._decoder, model.config)}
        self._stacks_lock = threading.Lock()

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        name: str = CompressorConfig.draft,
        *,
        dtype: str = CompressorConfig.dtype,
        device: str = CompressorConfig.device,
    ) -> DraftModel:
        """The shared draft for ``name`` (short name, folder, GGUF file or hub id); loads it once.

        ``dtype="auto"`` picks bfloat16 where the device computes it fast, else float32.
        """
        dtype = resolve_dtype(dtype, device)
        if dtype not in _TORCH_DTYPES:
            msg = f"dtype={dtype!r} is not supported: use one of {sorted(_TORCH_DTYPES)}."
            raise ValueError(msg)
        key = (name, dtype, device)
        with cls._registry_lock:
            if key in cls._registry:
                return cls._registry[key]
            lock = cls._loading.setdefault(key, threading.Lock())
        # One load per key: a second caller waits for the first instead of loading the model again;
        # loads of other models go on in parallel.
        with lock:
            with cls._registry_lock:
                if key in cls._registry:
                    return cls._registry[key]
            draft = cls._load(name, dtype, device)
            with cls._registry_lock:
                cls._registry[key] = draft
                cls._loading.pop(key, None)
            return draft

    @classmethod
    def _load(cls, name: str, dtype: str, device: str) -> DraftModel:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from .models import resolve

        path = resolve(name)
        # A local folder (every packaged model) loads with local_files_only, so no code path reaches
        # for a hub; a hub id is left to transformers and works wherever a hub is reachable. The
        # process environment (HF_HUB_OFFLINE, ...) is the user's and is never changed here.
        local = path.is_dir()
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=local)
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=_TORCH_DTYPES[dtype], local_files_only=local)
        return cls(model.to(device), tokenizer, name=name)

    # ------------------------------------------------------------------ depth
    def depth_of(self, depth: float) -> int:
        """Layers to run for ``depth``: a fraction of the draft's layers (1.0 = all), or a layer count.

        Raised, if needed, to reach the first full-attention layer: only those can score.
        """
        if isinstance(depth, bool) or not (0 < depth <= self.n_layers):
            msg = (
                f"depth={depth!r} must be a fraction in (0, 1] of the draft's layers or a count up to {self.n_layers}."
            )
            raise ValueError(msg)
        n = int(depth) if isinstance(depth, int) and depth > 1 else max(1, round(float(depth) * self.n_layers))
        return max(min(n, self.n_layers), self.full_layers[0] + 1 if self.full_layers else 1)

    def _stack(self, depth: int | None) -> _Stack:
        depth = self.n_layers if depth is None else depth
        with self._stacks_lock:
            if depth not in self._stacks:
                if not 1 <= depth <= self.n_layers:
                    msg = f"depth={depth} must lie in [1, {self.n_layers}] layers."
                    raise ValueError(msg)
                config = copy.deepcopy(self.model.config)
                text = config.get_text_config(decoder=True)
                text.num_hidden_layers = depth
                if getattr(text, "layer_types", None):
                    text.layer_types = list(text.layer_types[:depth])
                decoder = copy.copy(self._decoder)  # shares every submodule (the weights)
                object.__setattr__(decoder, "config", text)
                model = copy.copy(self.model)
                object.__setattr__(model, "_modules", dict(self.model._modules))  # not the original's dict
                object.__setattr__(model, "config", config)
                model._modules[self.model.base_model_prefix] = decoder
                self._stacks[depth] = _Stack(depth, model, decoder, config)
            return self._stacks[depth]

    # ------------------------------------------------------------------ forward passes
    def _forward(self, ids: Sequence[int], cache: Any, *, depth: int | None = None) -> None:
        """Extend ``cache`` by ``ids`` through the decoder only: the LM head never runs (no logits)."""
        x = torch.tensor([list(ids)], dtype=torch.long, device=self.device)
        self._stack(depth).decoder(input_ids=x, use_cache=True, **{self._cache_kw: cache})

    def config_at(self, depth: int | None = None) -> Any:
        """The model config of the first ``depth`` layers (what a KV cache of that depth is built from)."""
        return self._stack(depth).config

    def new_cache(self, depth: int | None = None) -> Any:
        """An empty KV cache for the first ``depth`` layers (default: all)."""
        from transformers import DynamicCache

        return DynamicCache(config=self._stack(depth).config)

    @torch.inference_mode()
    def prefill(
        self, ids: Sequence[int], cache: Any | None = None, *, chunk: int = PREFILL_CHUNK, depth: int | None = None
    ) -> Any:
        """Extend ``cache`` (which holds a prefix of ``ids``) to all of ``ids``; returns the cache.

        ``depth``: run only the first layers (the cache must be one of that depth).
        """
        cache = cache if cache is not None else self.new_cache(depth)
        start = cache.get_seq_length()
        if start > len(ids):
            msg = f"the cache holds {start} tokens but only {len(ids)} ids were given; crop it first."
            raise ValueError(msg)
        for s in range(start, len(ids), chunk):
            self._forward(ids[s : s + chunk], cache, depth=depth)
        return cache

    @torch.inference_mode()
    def capture(
        self, ids: Sequence[int], cache: Any, *, layers: Sequence[int], depth: int | None = None
    ) -> list[CapturedLayer]:
        """Forward ``ids`` after what ``cache`` holds and capture the query states of ``layers``.

        Returns, for each captured layer in order, (queries (H, len(ids), D), keys (KVH, cached +
        len(ids), D) post-RoPE, scale). ``cache`` is extended by everything forwarded here: pass a
        throw-away copy when the store's prefix must stay clean. ``depth``: run only the first layers
        (``layers`` must lie below it).
        """
        wanted = frozenset(layers)
        usable = frozenset(i for i in self.full_layers if i < (depth or self.n_layers))
        if not wanted <= usable:
            msg = (
                f"layers {sorted(wanted - usable)} cannot be captured: only full-attention layers below the "
                f"depth (their cache holds every key) can score: {sorted(usable)}."
            )
            raise ValueError(msg)
        with recording(wanted) as rec:
            self._forward(ids, cache, depth=depth)
        return [(torch.cat(rec.queries[i], dim=1), cache.layers[i].keys[0], rec.scales[i]) for i in sorted(rec.queries)]

    @torch.inference_mode()
    def warmup(self, depth: int | None = None) -> None:
        """One tiny forward, so that a first real call does not pay one-off allocation and kernel setup."""
        self.prefill(self.tokenizer("warm up", add_special_tokens=False)["input_ids"] or [0], depth=depth)

    @property
    def decoder_layers(self) -> torch.nn.ModuleList:
        """The decoder's layers (for cost models such as the KV-reuse benchmark's FLOP count)."""
        return self._decoder.layers

    def __repr__(self) -> str:
        return f"DraftModel(name={self.name!r}, dtype={self.dtype}, layers={self.n_layers})"
