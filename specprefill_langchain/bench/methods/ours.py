"""Ours as a benchmark method: ``SpecPrefillCompressor`` with a given draft, warm or cold.

Warm (the default) shares one KV store across keep ratios, so the same transcript at another ratio
re-reads nothing. Cold empties that store before every call, so the draft prefills the whole
transcript each time, as LLMLingua does: the fair setting for a latency comparison.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage

from specprefill_langchain.bench.methods.peers import check_ratio


class OursMethod:
    """``SpecPrefillCompressor`` over one loaded draft; one compressor per keep ratio."""

    name = "ours"

    def __init__(self, draft: str = "smollm2-135m", *, cold: bool = False, **config: Any) -> None:
        self.draft = draft
        self.cold = cold
        self.config = config
        self.last_stats: Any = None
        self._model: Any = None
        self._store: Any = None
        self._compressors: dict[float, Any] = {}

    def setup(self) -> None:
        """Loads the draft (outside any timing); ImportError/RuntimeError/OSError when it is unavailable."""
        from specprefill_langchain import DraftModel, PrefixCache  # lazy: importing the bench loads no model

        if self._model is None:
            self._model = DraftModel.load(self.draft, dtype=self.config.get("dtype", "float32"))
            self._store = PrefixCache()

    def _compressor(self, keep_ratio: float) -> Any:
        if keep_ratio not in self._compressors:
            self.setup()
            from specprefill_langchain import SpecPrefillCompressor

            self._compressors[keep_ratio] = SpecPrefillCompressor(
                draft=self._model, keep_ratio=keep_ratio, cache=self._store, **self.config
            )
        return self._compressors[keep_ratio]

    def compress(self, messages: list[BaseMessage], keep_ratio: float, question: str) -> list[BaseMessage]:
        check_ratio(keep_ratio)
        compressor = self._compressor(keep_ratio)
        if self.cold:
            compressor.cache.clear()
        result = compressor.compress(messages)
        self.last_stats = result.stats
        return list(result.messages)
