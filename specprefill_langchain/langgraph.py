"""LangGraph faces: a graph node and a ``pre_model_hook`` for agent loops.

The graph state keeps the *uncompressed* history; only what the model reads is compressed. By
default the node writes the compressed list to ``llm_input_messages`` (the key that
``create_react_agent``'s model node reads), so the checkpointed ``messages`` never change.
The thread id of the run config keys the draft's prefix cache, so step N+1 of a thread reuses
step N's KV; correctness never depends on it (longest-common-prefix match is the fallback).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from pydantic import ConfigDict

from .compressor import STATS_EVENT, SpecPrefillCompressor, thread_key


def _messages_of(state: Any, key: str) -> list[BaseMessage]:
    value = state.get(key) if isinstance(state, Mapping) else getattr(state, key, None)
    if value is None:
        msg = f"the graph state has no {key!r} key: pass messages_key=... to SpecPrefillNode."
        raise KeyError(msg)
    return list(value)


class SpecPrefillNode(RunnableSerializable[Any, dict[str, Any]]):
    """A node for hand-built ``StateGraph``s: reads ``messages_key``, returns the compressed list.

    Args:
        compressor: the :class:`SpecPrefillCompressor` to use (share one across a graph).
        messages_key: where the history lives in the state.
        output_key: where the compressed messages go (default ``llm_input_messages``; add that
            key to your state schema, or read it from the node's output).
        persist: also write compressed copies of the compressed messages back to
            ``messages_key`` (by id, through ``add_messages``). Off by default: the history stays
            whole and only the model input is compressed.
    """

    compressor: SpecPrefillCompressor
    messages_key: str = "messages"
    output_key: str = "llm_input_messages"
    persist: bool = False
    name: str | None = "specprefill"
    model_config = ConfigDict(arbitrary_types_allowed=True)

    def __init__(self, compressor: SpecPrefillCompressor, **kwargs: Any) -> None:
        if not isinstance(compressor, SpecPrefillCompressor):
            msg = f"SpecPrefillNode needs a SpecPrefillCompressor, got {type(compressor).__name__}."
            raise TypeError(msg)
        super().__init__(compressor=compressor, **kwargs)
        if self.output_key == self.messages_key and not self.persist:
            msg = (
                f"output_key and messages_key are both {self.messages_key!r}: that would overwrite the "
                "history. Use output_key='llm_input_messages', or persist=True to mean it."
            )
            raise ValueError(msg)

    def _update(self, original: list[BaseMessage], compressed: list[BaseMessage]) -> dict[str, Any]:
        update: dict[str, Any] = {self.output_key: compressed}
        if self.persist:
            # Only the messages that changed, by id: add_messages replaces them in place.
            update[self.messages_key] = [
                c for o, c in zip(original, compressed, strict=True) if c is not o and c.id is not None
            ]
        return update

    def _invoke(self, state: Any, run_manager: Any, config: RunnableConfig) -> dict[str, Any]:
        from langchain_core.callbacks import dispatch_custom_event

        original = _messages_of(state, self.messages_key)
        result = self.compressor.compress(original, cache_key=thread_key(config))
        dispatch_custom_event(STATS_EVENT, result.stats.to_dict())
        return self._update(original, result.messages)

    async def _ainvoke(self, state: Any, run_manager: Any, config: RunnableConfig) -> dict[str, Any]:
        from langchain_core.callbacks import adispatch_custom_event

        original = _messages_of(state, self.messages_key)
        result = await self.compressor.acompress(original, cache_key=thread_key(config))
        await adispatch_custom_event(STATS_EVENT, result.stats.to_dict())
        return self._update(original, result.messages)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict[str, Any]:
        return self._call_with_config(self._invoke, input, config, **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict[str, Any]:
        return await self._acall_with_config(self._ainvoke, input, config, **kwargs)


def pre_model_hook(compressor: SpecPrefillCompressor, *, messages_key: str = "messages") -> SpecPrefillNode:
    """A ``create_react_agent(..., pre_model_hook=...)`` hook returning ``{"llm_input_messages": ...}``."""
    return SpecPrefillNode(compressor, messages_key=messages_key, output_key="llm_input_messages")
