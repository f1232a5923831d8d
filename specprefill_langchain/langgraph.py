"""LangGraph faces: a graph node, a ``pre_model_hook``, and a ``MessagesState`` with the node's keys.

The graph state keeps the *uncompressed* history; only what the model reads is compressed. By
default the node writes the compressed list to ``llm_input_messages`` (the key that
``create_react_agent``'s model node reads), so the checkpointed ``messages`` never change.

``mode="stable"`` (default): each tool result's compressed form is decided once and kept in the
state under ``frozen_key`` (checkpointed with the thread), so the model input grows append-only and
a target's prefix cache keeps hitting (module ``schedule``). ``mode="per_step"``: the whole history
is compressed again on every call (for targets without a prefix cache). The thread id of the run
config keys the draft's KV cache; correctness never depends on it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langgraph.graph import MessagesState
from pydantic import ConfigDict

from .compressor import SpecPrefillCompressor, acompress_and_emit, compress_and_emit, thread_key
from .config import Mode
from .schedule import FROZEN_KEY, Frozen, arun_stable, merge_frozen, run_stable


class SpecPrefillState(MessagesState):
    """``MessagesState`` plus the keys :class:`SpecPrefillNode` writes; subclass it for your own keys."""

    llm_input_messages: list[AnyMessage]
    specprefill: Annotated[Frozen, merge_frozen]


def _get(state: Any, key: str) -> Any:
    return state.get(key) if isinstance(state, Mapping) else getattr(state, key, None)


def _messages_of(state: Any, key: str) -> list[BaseMessage]:
    value = _get(state, key)
    if value is None:
        msg = f"the graph state has no {key!r} key: pass messages_key=... to SpecPrefillNode."
        raise KeyError(msg)
    return list(value)


class SpecPrefillNode(RunnableSerializable[Any, dict[str, Any]]):
    """A node for hand-built ``StateGraph``s: reads ``messages_key``, returns the compressed list.

    Args:
        compressor: the :class:`SpecPrefillCompressor` to use (share one across a graph).
        mode: ``"stable"`` (default: decide each tool result once, keep it byte for byte) or
            ``"per_step"`` (compress the whole history again on every call).
        messages_key: where the history lives in the state.
        output_key: where the compressed messages go (default ``llm_input_messages``; add that
            key to your state schema, e.g. by using :class:`SpecPrefillState`).
        frozen_key: where stable mode keeps the frozen forms (a key of the state schema with the
            :func:`~specprefill_langchain.schedule.merge_frozen` reducer, as in ``SpecPrefillState``).
    """

    compressor: SpecPrefillCompressor
    mode: Mode = "stable"
    messages_key: str = "messages"
    output_key: str = "llm_input_messages"
    frozen_key: str = FROZEN_KEY
    name: str | None = "specprefill"
    model_config = ConfigDict(arbitrary_types_allowed=True)

    def __init__(self, compressor: SpecPrefillCompressor, **kwargs: Any) -> None:
        if not isinstance(compressor, SpecPrefillCompressor):
            msg = f"SpecPrefillNode needs a SpecPrefillCompressor, got {type(compressor).__name__}."
            raise TypeError(msg)
        if "persist" in kwargs:
            msg = (
                "persist= was removed: the history stays whole in the state, and stable mode (the default) "
                "keeps each message's compressed form in the state under frozen_key instead."
            )
            raise TypeError(msg)
        mode = kwargs.get("mode", "stable")
        if mode not in ("stable", "per_step"):
            msg = f"mode={mode!r} is not valid: use 'stable' (default) or 'per_step'."
            raise ValueError(msg)
        super().__init__(compressor=compressor, **kwargs)
        if self.output_key in (self.messages_key, self.frozen_key):
            msg = (
                f"output_key={self.output_key!r} would overwrite the state's {self.output_key!r}: "
                "use output_key='llm_input_messages'."
            )
            raise ValueError(msg)

    def _frozen(self, state: Any, messages: list[BaseMessage]) -> Frozen:
        frozen = _get(state, self.frozen_key)
        if frozen is None and sum(isinstance(m, AIMessage) for m in messages) > 1:
            warnings.warn(
                f"SpecPrefillNode: the state has no {self.frozen_key!r} key after several model calls, so stable "
                "mode cannot keep its decisions and the prompt will not stay cache-stable. Add the key to the "
                "state schema (use SpecPrefillState, or SpecPrefillAgentState with create_react_agent).",
                RuntimeWarning,
                stacklevel=3,
            )
        return dict(frozen or {})

    def _invoke(self, state: Any, run_manager: Any, config: RunnableConfig) -> dict[str, Any]:
        original = _messages_of(state, self.messages_key)
        if self.mode == "per_step":
            return {self.output_key: compress_and_emit(self.compressor, original, thread_key(config)).messages}
        step = run_stable(self.compressor, original, self._frozen(state, original), cache_key=thread_key(config))
        return {self.output_key: step.messages, self.frozen_key: step.updates}

    async def _ainvoke(self, state: Any, run_manager: Any, config: RunnableConfig) -> dict[str, Any]:
        original = _messages_of(state, self.messages_key)
        if self.mode == "per_step":
            result = await acompress_and_emit(self.compressor, original, thread_key(config))
            return {self.output_key: result.messages}
        frozen = self._frozen(state, original)
        step = await arun_stable(self.compressor, original, frozen, cache_key=thread_key(config))
        return {self.output_key: step.messages, self.frozen_key: step.updates}

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict[str, Any]:
        return self._call_with_config(self._invoke, input, config, **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict[str, Any]:
        return await self._acall_with_config(self._ainvoke, input, config, **kwargs)


def pre_model_hook(
    compressor: SpecPrefillCompressor, *, mode: Mode = "stable", messages_key: str = "messages"
) -> SpecPrefillNode:
    """A ``create_react_agent(..., pre_model_hook=...)`` hook returning ``{"llm_input_messages": ...}``.

    In stable mode give the agent a state schema with the frozen key:
    ``create_react_agent(..., state_schema=SpecPrefillAgentState)``.
    """
    return SpecPrefillNode(compressor, mode=mode, messages_key=messages_key, output_key="llm_input_messages")


def _agent_state() -> Any:
    """``create_react_agent``'s state plus the frozen key (None where langgraph has no prebuilt agent)."""
    try:
        from langgraph.prebuilt.chat_agent_executor import AgentState
    except ImportError:  # pragma: no cover - a langgraph without the prebuilt agent
        return None

    class SpecPrefillAgentState(AgentState):
        """``create_react_agent``'s ``AgentState`` plus the key stable mode keeps its frozen forms in."""

        specprefill: Annotated[Frozen, merge_frozen]

    return SpecPrefillAgentState


SpecPrefillAgentState = _agent_state()
