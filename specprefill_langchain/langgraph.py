"""LangGraph faces: a graph node, a ``pre_model_hook``, and a ``MessagesState`` with the node's keys.

The graph state keeps the *uncompressed* history; only what the model reads is compressed. The node
writes the model's input to ``llm_input_messages`` (the key ``create_react_agent``'s model node reads),
so the checkpointed ``messages`` never change, and what stable mode decides to ``frozen_key`` (only
when something was decided). The step itself is the one every face runs (module ``step``); the thread
id of the run config keys the draft's KV cache, and correctness never depends on it.

With the recall note on (default), add the recall tool to the agent's tools: ``[*tools, recall_tool()]``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langgraph.graph import MessagesState
from pydantic import ConfigDict, PrivateAttr

from .compressor import SpecPrefillCompressor, thread_key
from .config import Mode, check_mode
from .recall import RECALL_TOOL
from .schedule import FROZEN_KEY, Frozen, merge_frozen
from .step import AgentStep, StepInput, StepOutput


class SpecPrefillState(MessagesState):
    """``MessagesState`` plus the keys :class:`SpecPrefillNode` writes; subclass it for your own keys."""

    llm_input_messages: list[AnyMessage]
    specprefill: Annotated[Frozen, merge_frozen]


def _get(state: Any, key: str) -> Any:
    return state.get(key) if isinstance(state, Mapping) else getattr(state, key, None)


class SpecPrefillNode(RunnableSerializable[Any, dict[str, Any]]):
    """A node for hand-built ``StateGraph``s: reads ``messages_key``, writes the model's input.

    Args:
        compressor: the :class:`SpecPrefillCompressor` to use (share one across a graph).
        mode: ``"stable"`` (default: decide each tool result once, keep it byte for byte) or
            ``"per_step"`` (compress the whole history again on every call).
        recall: end each compressed output with a note naming the recall tool (default on: add
            ``recall_tool()`` to the agent's tools, or set ``recall=False``).
        messages_key: where the history lives in the state.
        output_key: where the model's input goes (default ``llm_input_messages``; add that key to
            your state schema, e.g. by using :class:`SpecPrefillState`).
        frozen_key: where stable mode keeps its decisions (a key of the state schema with the
            :func:`~specprefill_langchain.schedule.merge_frozen` reducer, as in ``SpecPrefillState``).
    """

    compressor: SpecPrefillCompressor
    mode: Mode = "stable"
    recall: bool = True
    messages_key: str = "messages"
    output_key: str = "llm_input_messages"
    frozen_key: str = FROZEN_KEY
    name: str | None = "specprefill"
    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")  # a misspelt option fails here
    _step: AgentStep = PrivateAttr()

    def __init__(self, compressor: SpecPrefillCompressor, **kwargs: Any) -> None:
        if not isinstance(compressor, SpecPrefillCompressor):
            msg = f"SpecPrefillNode needs a SpecPrefillCompressor, got {type(compressor).__name__}."
            raise TypeError(msg)
        check_mode(kwargs.get("mode", "stable"))
        super().__init__(compressor=compressor, **kwargs)
        if self.output_key in (self.messages_key, self.frozen_key):
            msg = (
                f"output_key={self.output_key!r} would overwrite the state's {self.output_key!r}: "
                "use output_key='llm_input_messages'."
            )
            raise ValueError(msg)
        recall = RECALL_TOOL if self.recall else None
        self._step = AgentStep(compressor.compress, compressor.config, self.mode, recall, compressor.line_scores)

    def _input(self, state: Any, config: RunnableConfig) -> StepInput:
        messages = _get(state, self.messages_key)
        if messages is None:
            msg = f"the graph state has no {self.messages_key!r} key: pass messages_key=... to SpecPrefillNode."
            raise KeyError(msg)
        frozen = _get(state, self.frozen_key)
        if frozen is None and self._step.keeps_state and sum(isinstance(m, AIMessage) for m in messages) > 1:
            warnings.warn(
                f"SpecPrefillNode: the state has no {self.frozen_key!r} key after several model calls, so stable "
                "mode cannot keep its decisions and the prompt will not stay cache-stable. Add the key to the "
                "state schema (use SpecPrefillState, or SpecPrefillAgentState with create_react_agent).",
                RuntimeWarning,
                stacklevel=4,
            )
        return StepInput(list(messages), frozen, thread_key(config))

    def _update(self, out: StepOutput) -> dict[str, Any]:
        update: dict[str, Any] = {self.output_key: out.messages}
        if out.update is not None:  # nothing decided: nothing written, the checkpoint stays small
            update[self.frozen_key] = out.update
        return update

    def _invoke(self, state: Any, run_manager: Any, config: RunnableConfig) -> dict[str, Any]:
        return self._update(self._step.run(self._input(state, config), config))

    async def _ainvoke(self, state: Any, run_manager: Any, config: RunnableConfig) -> dict[str, Any]:
        return self._update(await self._step.arun(self._input(state, config), config))

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict[str, Any]:
        return self._call_with_config(self._invoke, input, config, **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict[str, Any]:
        return await self._acall_with_config(self._ainvoke, input, config, **kwargs)


def pre_model_hook(
    compressor: SpecPrefillCompressor, *, mode: Mode = "stable", recall: bool = True, messages_key: str = "messages"
) -> SpecPrefillNode:
    """A ``create_react_agent(..., pre_model_hook=...)`` hook returning ``{"llm_input_messages": ...}``.

    In stable mode give the agent a state schema with the frozen key:
    ``create_react_agent(..., state_schema=SpecPrefillAgentState)``.
    """
    return SpecPrefillNode(compressor, mode=mode, recall=recall, messages_key=messages_key)


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
