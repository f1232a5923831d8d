"""``SpecPrefillMiddleware``: speculative-prefill compression for LangChain v1 ``create_agent``.

    middleware = SpecPrefillMiddleware(draft="smollm2-135m", keep_ratio=0.3)
    agent = create_agent(model, tools, middleware=[middleware], checkpointer=InMemorySaver())

It wraps every model call: the request's messages go through the agent step (module ``step``) and the
model is called with ``request.override(messages=...)``. The agent's state (and its checkpoints) keep
the whole history; the system message is a separate field of the request and is never touched. What
stable mode decides goes to the state under a private key (checkpointed with the thread, left out of
the agent's input and output), returned with the model's response as a state update.

Needs ``langchain`` >= 1.2.9 (the ``agents`` extra); everything else in the package works without it.
"""

from __future__ import annotations

import re
import types
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Annotated, Any, NotRequired

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from .compressor import SpecPrefillCompressor, thread_key
from .config import Mode, check_mode
from .recall import RECALL_TOOL
from .recall import recall_tool as make_recall_tool
from .schedule import FROZEN_KEY, Frozen, merge_frozen
from .stats import CompressionStats
from .step import AgentStep, StepInput, StepOutput
from .targets import tool_schema_messages

MIN_LANGCHAIN = "1.2.9"  # the first release with ExtendedModelResponse (a model call that updates state)

try:
    from langchain.agents.middleware import (
        AgentMiddleware,
        AgentState,
        ExtendedModelResponse,
        ModelCallResult,
        ModelRequest,
        ModelResponse,
    )
    from langchain.agents.middleware.types import PrivateStateAttr
except ImportError as err:  # the one module of the package that needs langchain itself
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = f"langchain {version('langchain')} is installed"
    except PackageNotFoundError:
        found = None
    missing = isinstance(err, ModuleNotFoundError) and (err.name or "").split(".")[0] == "langchain"
    if missing and found is None:
        msg = (
            "SpecPrefillMiddleware needs LangChain v1 agents (the `langchain` package): "
            'pip install "specprefill-langchain[agents]" (or pip install langchain). '
            "Without it, use SpecPrefillNode or pre_model_hook(compressor) with LangGraph."
        )
    else:
        found = found or "the langchain found fails to import"
        msg = (
            f"SpecPrefillMiddleware needs langchain>={MIN_LANGCHAIN}, but {found} ({type(err).__name__}: {err}): "
            f'pip install -U "langchain>={MIN_LANGCHAIN}".'
        )
    raise ImportError(msg) from err

DEFAULT_NAME = "SpecPrefillMiddleware"


def state_schema(key: str = FROZEN_KEY) -> type:
    """The agent state plus the frozen forms under ``key``: checkpointed, private to the agent's schemas."""
    # The reducer goes last: LangGraph takes a field's reducer from its last annotation only (with the
    # private mark last, the channel silently became last-value-wins and each step lost the others).
    fields = {key: NotRequired[Annotated[Frozen, PrivateStateAttr, merge_frozen]]}
    name = "SpecPrefillAgentMiddlewareState" if key == FROZEN_KEY else f"SpecPrefillState_{key}"
    return types.new_class(name, (AgentState,), {}, lambda ns: ns.update(__annotations__=fields, __module__=__name__))


SpecPrefillAgentMiddlewareState = state_schema()


def _run_config() -> RunnableConfig | None:
    """The config of the graph step we run in, or None when called outside a run (a unit test)."""
    from langgraph.config import get_config

    try:
        return get_config()
    except RuntimeError:
        return None


def _thread_id(request: ModelRequest[Any], config: RunnableConfig | None) -> str | None:
    # The runtime carries the thread id when the agent has a checkpointer; the run config also has it
    # when the user passed one without a checkpointer. Either keys the cache; neither is required.
    info = getattr(request.runtime, "execution_info", None) if request.runtime is not None else None
    tid = getattr(info, "thread_id", None)
    return str(tid) if tid is not None else thread_key(config)


class SpecPrefillMiddleware(AgentMiddleware):
    """Compresses the model's input on every agent step; the agent's state keeps the full history.

    Args:
        draft: as for :class:`SpecPrefillCompressor` (a short name, folder, GGUF file or
            :class:`DraftModel`); not with ``compressor``.
        keep_ratio: fraction of the compressible draft tokens to keep.
        compressor: an existing compressor to share (its draft and KV cache) instead of making one.
        mode: ``"stable"`` (default: each tool result decided once and sent byte for byte, so the
            target's prefix cache keeps hitting) or ``"per_step"`` (everything compressed again on
            every call).
        recall_tool: register ``read_full_output`` (a compressed output back in full) and say so at
            the end of each compressed output (default on; ``recall_tool=False`` turns both off).
        name: the middleware's name; ``create_agent`` needs names to be unique.
        state_key: where stable mode keeps its decisions in the agent state (default ``"specprefill"``
            for the default name, ``"specprefill_<name>"`` otherwise).
        **options: any :class:`CompressorConfig` field, or ``target=`` (as for the compressor).

    Two instances in one agent (say, different keep ratios for two tools' outputs) need two names,
    and so get two state keys: the outer one compresses first, and the inner one reads the outer
    one's output as its input, each keeping its own decisions (give them ``policy`` with disjoint
    ``tools`` so that no output is compressed twice).
    """

    def __init__(
        self,
        draft: Any = None,
        keep_ratio: float | None = None,
        *,
        compressor: SpecPrefillCompressor | None = None,
        mode: Mode = "stable",
        recall_tool: bool = True,
        name: str = DEFAULT_NAME,
        state_key: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        check_mode(mode)
        if not isinstance(name, str) or not name.strip():
            msg = f"name={name!r} must be a non-empty string, e.g. name='SpecPrefillMiddleware-2'."
            raise ValueError(msg)
        self.compressor = _compressor(compressor, draft, keep_ratio, options)
        self._name = name
        self.state_key = state_key or _default_key(name)
        recall = RECALL_TOOL if recall_tool else None
        self.step = AgentStep(
            self.compressor.compress, self.compressor.config, mode, recall, self.compressor.line_scores
        )
        self.state_schema = state_schema(self.state_key)
        self.tools = [make_recall_tool()] if recall_tool else []

    @property
    def name(self) -> str:
        return self._name

    @property
    def mode(self) -> Mode:
        return self.step.mode

    @property
    def last_stats(self) -> CompressionStats | None:
        """Stats of the most recent compression (any thread); the callback event is per call."""
        return self.compressor.last_stats

    def __repr__(self) -> str:
        return f"SpecPrefillMiddleware(name={self._name!r}, mode={self.mode!r}, config={self.compressor.config!r})"

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]
    ) -> ModelCallResult[Any]:
        config = _run_config()
        out = self.step.run(self._input(request, config), config)
        return self._result(out, handler(request.override(messages=out.messages)))

    async def awrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]]
    ) -> ModelCallResult[Any]:
        config = _run_config()
        out = await self.step.arun(self._input(request, config), config)
        return self._result(out, await handler(request.override(messages=out.messages)))

    # ------------------------------------------------------------------ LangChain shapes <-> the step
    def _input(self, request: ModelRequest[Any], config: RunnableConfig | None) -> StepInput:
        state = request.state if isinstance(request.state, Mapping) else {}
        extra: list[Any] = []
        if self.compressor.target is not None:  # only a target's token budget reads them
            extra = [request.system_message] if request.system_message is not None else []
            extra += tool_schema_messages(request.tools or [])
        history = state.get("messages")
        frozen = state.get(self.state_key)
        return StepInput(request.messages, frozen, _thread_id(request, config), extra, history)

    def _result(self, out: StepOutput, response: Any) -> ModelCallResult[Any]:
        """The model's response, plus a state update with what the step decided (if anything)."""
        if out.update is None:
            return response
        update: dict[str, Any] = {self.state_key: out.update}
        if isinstance(response, ExtendedModelResponse):  # an inner middleware's command: keep it, add ours
            inner = response.command
            if inner is None:
                return ExtendedModelResponse(model_response=response.model_response, command=Command(update=update))
            pairs = inner.update.items() if isinstance(inner.update, dict) else (inner.update or [])
            command = replace(inner, update={**dict(pairs), **update})
            return ExtendedModelResponse(model_response=response.model_response, command=command)
        if isinstance(response, AIMessage):
            response = ModelResponse(result=[response])
        return ExtendedModelResponse(model_response=response, command=Command(update=update))


def _default_key(name: str) -> str:
    return FROZEN_KEY if name == DEFAULT_NAME else f"{FROZEN_KEY}_{re.sub(r'[^0-9A-Za-z]+', '_', name).strip('_')}"


def _compressor(
    compressor: SpecPrefillCompressor | None, draft: Any, keep_ratio: float | None, options: dict[str, Any]
) -> SpecPrefillCompressor:
    if compressor is None:
        return SpecPrefillCompressor(draft=draft, keep_ratio=keep_ratio, **options)
    if draft is not None or keep_ratio is not None or options:
        msg = (
            "pass either compressor=... or the compressor's settings (draft, keep_ratio, ...), "
            "not both: configure the SpecPrefillCompressor itself."
        )
        raise ValueError(msg)
    if not isinstance(compressor, SpecPrefillCompressor):
        msg = f"compressor must be a SpecPrefillCompressor, got {type(compressor).__name__}."
        raise TypeError(msg)
    return compressor


__all__ = ["SpecPrefillAgentMiddlewareState", "SpecPrefillMiddleware", "state_schema"]
