"""Query capture: an attention function that is the stock SDPA kernel, and records queries on demand.

Registered under one name together with the SDPA *mask* function (without the mask registration
transformers silently passes no mask for an unknown attention name: Gemma's sliding window is lost
and incremental prefill goes wrong, with no error). A capture is active only inside
:func:`recording`; the recorder lives in a context variable, so concurrent forwards in other threads
or tasks never see each other's captures.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

ATTN_NAME = "specprefill_sdpa"


@dataclass
class Recorder:
    """Collects query states per layer during one capture forward (one per thread/task)."""

    layers: frozenset[int]
    queries: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    scales: dict[int, float] = field(default_factory=dict)


_RECORDER: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar("specprefill_rec", default=None)
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


def register_attention() -> None:
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


@contextlib.contextmanager
def recording(layers: frozenset[int]) -> Iterator[Recorder]:
    """Record the query states of ``layers`` during the forwards inside the block."""
    rec = Recorder(layers=layers)
    token = _RECORDER.set(rec)
    try:
        yield rec
    finally:
        _RECORDER.reset(token)
