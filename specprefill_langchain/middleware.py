"""``SpecPrefillMiddleware``: speculative-prefill compression for LangChain v1 ``create_agent``.

    middleware = SpecPrefillMiddleware(draft="smollm2-135m", keep_ratio=0.3)
    agent = create_agent(model, tools, middleware=[middleware], checkpointer=InMemorySaver())

It wraps every model call: the messages of the request are compressed, and the model is called with
``request.override(messages=compressed)``. The agent's state (and its checkpoints) keep the whole
history; the system message is a separate field of the request and is never touched. The thread id
of the run keys the draft's KV cache, so each step prefills only the tokens that are new.

Needs ``langchain`` (the ``agents`` extra); everything else in the package works without it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

try:
    from langchain.agents.middleware import AgentMiddleware, ModelCallResult, ModelRequest, ModelResponse
except ImportError as err:  # the one module of the package that needs langchain itself
    msg = (
        "SpecPrefillMiddleware needs LangChain v1 agents (the `langchain` package): "
        'pip install "specprefill-langchain[agents]" (or pip install langchain). '
        "Without it, use SpecPrefillNode or compressor.as_pre_model_hook() with LangGraph."
    )
    raise ImportError(msg) from err

from langchain_core.callbacks import adispatch_custom_event, dispatch_custom_event
from langchain_core.runnables import RunnableConfig

from .compressor import STATS_EVENT, SpecPrefillCompressor, thread_key
from .engine import CompressionStats

DEFAULT_NAME = "SpecPrefillMiddleware"


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
        name: str = DEFAULT_NAME,
        **options: Any,
    ) -> None:
        super().__init__()
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
            compressor = SpecPrefillCompressor(draft=draft, keep_ratio=keep_ratio, **options)
        if not isinstance(name, str) or not name.strip():
            msg = f"name={name!r} must be a non-empty string, e.g. name='SpecPrefillMiddleware-2'."
            raise ValueError(msg)
        self.compressor = compressor
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def last_stats(self) -> CompressionStats | None:
        """Stats of the most recent compression (any thread); the callback event is per call."""
        return self.compressor.last_stats

    def __repr__(self) -> str:
        return f"SpecPrefillMiddleware(name={self._name!r}, config={self.compressor.config!r})"

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelCallResult[Any]:
        config = _run_config()
        result = self.compressor.compress(request.messages, cache_key=_thread_id(request, config))
        if config is not None:  # an event needs a parent run; outside a graph there is none
            dispatch_custom_event(STATS_EVENT, result.stats.to_dict(), config=config)
        return handler(request.override(messages=result.messages))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelCallResult[Any]:
        config = _run_config()
        result = await self.compressor.acompress(request.messages, cache_key=_thread_id(request, config))
        if config is not None:
            await adispatch_custom_event(STATS_EVENT, result.stats.to_dict(), config=config)
        return await handler(request.override(messages=result.messages))


__all__ = ["SpecPrefillMiddleware"]
