"""``SpecPrefillMiddleware``: speculative-prefill compression for LangChain v1 ``create_agent``.

    middleware = SpecPrefillMiddleware(draft="smollm2-135m", keep_ratio=0.3)
    agent = create_agent(model, tools, middleware=[middleware], checkpointer=InMemorySaver())

It wraps every model call: the messages of the request are compressed, and the model is called with
``request.override(messages=compressed)``. The agent's state (and its checkpoints) keep the whole
history; the system message is a separate field of the request and is never touched. The thread id
of the run keys the draft's KV cache, so each step prefills only the tokens that are new.

``mode="stable"`` (default) decides each tool result's compressed form once and keeps it in the
agent state (the middleware's ``state_schema`` declares the key), so the model input grows
append-only and the target's prefix cache keeps hitting; a thread resumed from its checkpoint by
another worker sends the same bytes. ``recall_tool=True`` registers a tool that returns a compressed
output in full. ``mode="per_step"`` compresses the whole history again on every call.

Needs ``langchain`` (the ``agents`` extra); everything else in the package works without it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

try:
    from langchain.agents.middleware import (
        AgentMiddleware,
        AgentState,
        ExtendedModelResponse,
        ModelCallResult,
        ModelRequest,
        ModelResponse,
    )
except ImportError as err:  # the one module of the package that needs langchain itself
    msg = (
        "SpecPrefillMiddleware needs LangChain v1 agents (the `langchain` package): "
        'pip install "specprefill-langchain[agents]" (or pip install langchain). '
        "Without it, use SpecPrefillNode or pre_model_hook(compressor) with LangGraph."
    )
    raise ImportError(msg) from err

from typing import Annotated, NotRequired

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from .compressor import SpecPrefillCompressor, acompress_and_emit, compress_and_emit, thread_key
from .config import CompressorConfig, Mode
from .recall import RECALL_TOOL, footer
from .recall import recall_tool as recall_tool_
from .schedule import FROZEN_KEY, Frozen, StableStep, arun_stable, merge_frozen, run_stable
from .stats import CompressionStats
from .targets import tool_schema_messages

DEFAULT_NAME = "SpecPrefillMiddleware"


class SpecPrefillAgentMiddlewareState(AgentState):
    """The agent state plus the frozen forms of stable mode (checkpointed with the thread)."""

    specprefill: NotRequired[Annotated[Frozen, merge_frozen]]


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
            :class:`DraftModel`); ignored when ``compressor`` is given.
        keep_ratio: fraction of the compressible draft tokens to keep.
        compressor: an existing compressor to share (its draft and KV cache) instead of making one.
        mode: ``"stable"`` (default) or ``"per_step"``; see the module docstring.
        recall_tool: register a tool (``read_full_output``) that returns a compressed output in
            full, and say so at the end of each compressed output (stable mode).
        name: the middleware's name; ``create_agent`` needs names to be unique, so give a second
            instance another name.
        **options: any :class:`CompressorConfig` field, or ``target=`` (as for the compressor).
    """

    def __init__(
        self,
        draft: Any = None,
        keep_ratio: float | None = None,
        *,
        compressor: SpecPrefillCompressor | None = None,
        mode: Mode = "stable",
        recall_tool: bool = False,
        name: str = DEFAULT_NAME,
        **options: Any,
    ) -> None:
        super().__init__()
        if mode not in ("stable", "per_step"):
            msg = f"mode={mode!r} is not valid: use 'stable' (default) or 'per_step'."
            raise ValueError(msg)
        if compressor is not None:
            if draft is not None or keep_ratio is not None or options:
                msg = (
                    "pass either compressor=... or the compressor's settings (draft, keep_ratio, ...), "
                    "not both: configure the SpecPrefillCompressor itself."
                )
                raise ValueError(msg)
            if not isinstance(compressor, SpecPrefillCompressor):
                msg = f"compressor must be a SpecPrefillCompressor, got {type(compressor).__name__}."
                raise TypeError(msg)
        else:
            if recall_tool:  # the recall tool's own output is the whole original: never compress it
                policy = options.get("policy") or (options.get("config") or CompressorConfig()).policy
                options["policy"] = replace(policy, skip_tools=policy.skip_tools | {RECALL_TOOL})
            compressor = SpecPrefillCompressor(draft=draft, keep_ratio=keep_ratio, **options)
        if not isinstance(name, str) or not name.strip():
            msg = f"name={name!r} must be a non-empty string, e.g. name='SpecPrefillMiddleware-2'."
            raise ValueError(msg)
        self.compressor = compressor
        self.mode: Mode = mode
        self._name = name
        self._footer = footer() if recall_tool else None
        self.state_schema = SpecPrefillAgentMiddlewareState
        self.tools = [recall_tool_()] if recall_tool else []

    @property
    def name(self) -> str:
        return self._name

    @property
    def last_stats(self) -> CompressionStats | None:
        """Stats of the most recent compression (any thread); the callback event is per call."""
        return self.compressor.last_stats

    def __repr__(self) -> str:
        return f"SpecPrefillMiddleware(name={self._name!r}, config={self.compressor.config!r})"

    def _stable_result(self, request: ModelRequest[Any], step: StableStep, response: Any) -> ModelCallResult[Any]:
        """The model's response plus a state update that stores the newly frozen forms."""
        if not step.updates:
            return response
        update: dict[str, Any] = {FROZEN_KEY: step.updates}
        if isinstance(response, ExtendedModelResponse):  # an inner middleware's command: keep it, add ours
            inner = response.command
            if inner is not None and inner.update is not None:
                pairs = inner.update.items() if isinstance(inner.update, dict) else inner.update
                update = {**dict(pairs), FROZEN_KEY: step.updates}
            return ExtendedModelResponse(model_response=response.model_response, command=Command(update=update))
        if isinstance(response, AIMessage):
            response = ModelResponse(result=[response])
        return ExtendedModelResponse(model_response=response, command=Command(update=update))

    def _extra(self, request: ModelRequest[Any]) -> list[Any]:
        system = [request.system_message] if getattr(request, "system_message", None) is not None else []
        return [*system, *tool_schema_messages(request.tools or [])] if self.compressor.target is not None else []

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelCallResult[Any]:
        config = _run_config()
        key = _thread_id(request, config)
        if self.mode == "per_step":
            result = compress_and_emit(self.compressor, request.messages, key, config=config)
            return handler(request.override(messages=result.messages))
        frozen = (request.state or {}).get(FROZEN_KEY)
        step = run_stable(
            self.compressor,
            request.messages,
            frozen,
            cache_key=key,
            footer=self._footer,
            config=config,
            target_extra=self._extra(request),
        )
        return self._stable_result(request, step, handler(request.override(messages=step.messages)))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelCallResult[Any]:
        config = _run_config()
        key = _thread_id(request, config)
        if self.mode == "per_step":
            result = await acompress_and_emit(self.compressor, request.messages, key, config=config)
            return await handler(request.override(messages=result.messages))
        frozen = (request.state or {}).get(FROZEN_KEY)
        step = await arun_stable(
            self.compressor,
            request.messages,
            frozen,
            cache_key=key,
            footer=self._footer,
            config=config,
            target_extra=self._extra(request),
        )
        return self._stable_result(request, step, await handler(request.override(messages=step.messages)))


__all__ = ["SpecPrefillAgentMiddlewareState", "SpecPrefillMiddleware"]
