"""``SpecPrefillCompressor``: the drop-in LangChain Runnable (messages in, compressed messages out).

    chain = prompt | SpecPrefillCompressor(draft="smollm2-135m", keep_ratio=0.3) | llm

It accepts a list of messages or a ``PromptValue`` and returns a list of messages of the same length,
order, types, ids and tool calls. Every call emits a ``specprefill_stats`` custom callback event
(visible in LangSmith traces and ``astream_events``); ``compress()`` returns the stats directly.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
import warnings
from collections.abc import Collection, Sequence
from typing import Any, overload

from langchain_core.messages import BaseMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from pydantic import ConfigDict, PrivateAttr

from . import engine
from .config import CompressorConfig
from .draft import DraftModel
from .events import aemit_stats, emit_stats
from .kvcache import PrefixCache
from .stats import CompressionResult, CompressionStats
from .targets import TargetCounter

CompressorInput = Sequence[BaseMessage] | PromptValue
_CONFIG_FIELDS = set(CompressorConfig.__dataclass_fields__)
log = logging.getLogger("specprefill_langchain")


def _as_messages(value: Any) -> list[BaseMessage]:
    """Accept what a chain can hand us; fail early, with a fix, on anything else."""
    if isinstance(value, PromptValue):
        return value.to_messages()
    if isinstance(value, BaseMessage):
        return [value]
    if isinstance(value, str | bytes | bytearray) or not isinstance(value, Sequence):
        msg = (
            f"SpecPrefillCompressor expects a list of messages or a PromptValue, got {type(value).__name__}. "
            "Put it after a prompt template (`prompt | compressor | llm`) or pass `[HumanMessage(...)]`."
        )
        raise TypeError(msg)
    if all(isinstance(m, BaseMessage) for m in value):
        return list(value)
    try:
        return convert_to_messages(value)  # tuples, dicts: what chat models accept too
    except (ValueError, TypeError, NotImplementedError) as err:
        msg = f"SpecPrefillCompressor could not read the input as chat messages: {err}"
        raise TypeError(msg) from err


def thread_key(config: RunnableConfig | None) -> str | None:
    """The LangGraph thread id of a run config, used to find the thread's KV cache in O(1)."""
    configurable = (config or {}).get("configurable") or {}
    tid = configurable.get("thread_id")
    return None if tid is None else str(tid)


class SpecPrefillCompressor(RunnableSerializable[CompressorInput, list[BaseMessage]]):
    """Compresses chat messages with a draft model's attention before a target model reads them.

    Args:
        draft: a short name (``specprefill models list``), a local folder, a GGUF file, or a
            loaded :class:`DraftModel`.
        keep_ratio: fraction of the compressible draft tokens to keep.
        target: the target chat model, used to count target tokens (``max_target_tokens`` and
            the stats; it is never called), or a callable ``messages -> int`` (as the
            ``token_counter`` of ``trim_messages``).
        config: a full :class:`CompressorConfig`; keyword arguments override its fields.
        cache: a :class:`PrefixCache` to share between compressors of the same draft (default:
            a private one of ``cache_bytes``).
        **options: any :class:`CompressorConfig` field (``max_target_tokens``, ``dtype``,
            ``on_error``, ``scoring``, ``selection``, ``policy``, ...).
    """

    config: CompressorConfig
    target: Any = None
    model_config = ConfigDict(arbitrary_types_allowed=True)

    _draft: DraftModel | None = PrivateAttr(default=None)
    _store: PrefixCache = PrivateAttr()
    _load_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _last: CompressionStats | None = PrivateAttr(default=None)
    _counter: TargetCounter | None = PrivateAttr(default=None)

    def __init__(
        self,
        draft: str | DraftModel | None = None,
        keep_ratio: float | None = None,
        *,
        config: CompressorConfig | None = None,
        target: Any = None,
        cache: PrefixCache | None = None,
        **options: Any,
    ) -> None:
        unknown = set(options) - _CONFIG_FIELDS
        if unknown:
            msg = f"unknown option(s) {sorted(unknown)}; valid ones are {sorted(_CONFIG_FIELDS)}."
            raise TypeError(msg)
        cfg = config or CompressorConfig()
        changes = dict(options)
        if keep_ratio is not None:
            changes["keep_ratio"] = keep_ratio
        if isinstance(draft, DraftModel):
            changes["draft"] = draft.name
        elif draft is not None:
            changes["draft"] = draft
        cfg = cfg.with_(**changes) if changes else cfg
        counter = TargetCounter(target) if target is not None else None  # checks the target first
        super().__init__(config=cfg, target=target)
        self._counter = counter
        # One store per compressor unless shared on purpose (e.g. one per draft across keep ratios).
        self._store = cache if cache is not None else PrefixCache(cfg.cache_bytes)
        if isinstance(draft, DraftModel):
            self._draft = draft
        else:
            from .models import check_name

            check_name(cfg.draft)  # an unknown name fails here, not at the first agent step

    # ------------------------------------------------------------------ parts
    @property
    def draft(self) -> DraftModel:
        """The draft model, loaded on first use (shared across compressors of the same draft)."""
        if self._draft is None:
            with self._load_lock:
                if self._draft is None:
                    self._draft = DraftModel.load(self.config.draft, dtype=self.config.dtype, device=self.config.device)
        return self._draft

    def warmup(self) -> SpecPrefillCompressor:
        """Load the draft now (converting its packaged weights on first use) and run one tiny forward,
        so that the first agent step does not pay for it. Returns the compressor, for chaining."""
        self.draft.warmup(depth=self.draft.depth_of(self.config.scoring.depth))
        return self

    def line_scores(self, lines: Sequence[str], focus: str) -> list[float]:
        """The draft's attention from ``focus`` to each of ``lines`` (what orders a rescue that overflows)."""
        from .passes import line_scores

        return line_scores(self.draft, lines, focus, self.config.scoring)

    @property
    def cache(self) -> PrefixCache:
        """The draft's prefix KV cache store (per compressor)."""
        return self._store

    @property
    def last_stats(self) -> CompressionStats | None:
        """Stats of the most recent call (any thread); prefer ``compress()`` or the callback event."""
        return self._last

    # ------------------------------------------------------------------ core
    def compress(
        self,
        messages: CompressorInput,
        *,
        cache_key: str | None = None,
        only: Collection[int] | None = None,
        target_extra: Sequence[BaseMessage] = (),
        focus: str | None = None,
    ) -> CompressionResult:
        """Compress and return messages *and* stats. ``cache_key`` (e.g. a thread id) speeds up KV reuse.

        ``only``: indices of the messages that may be compressed (the policy still applies inside).
        ``target_extra``: what the target reads besides the messages (a system prompt kept apart, tool
        schemas): counted in ``max_target_tokens`` and the stats, never compressed.
        ``focus``: what the draft's queries ask about, when the caller knows more than ``messages`` (an
        agent step that hands the draft a window of its history); by default derived from them.
        """
        msgs = _as_messages(messages)
        started = time.perf_counter()
        call = engine.Call(only=only, target_extra=tuple(target_extra), key=cache_key, focus=focus)
        try:
            result = engine.compress(msgs, self.draft, self.config, store=self._store, target=self._counter, call=call)
        except Exception as err:
            if self.config.on_error == "raise":
                raise
            what = f"compression failed ({type(err).__name__}: {err}); the messages pass through unchanged"
            log.warning("%s", what, exc_info=True)
            warnings.warn(f"specprefill: {what}. Set on_error='raise' to see the error.", RuntimeWarning, stacklevel=2)
            stats = CompressionStats.failed(err, cache_key=cache_key, total_s=time.perf_counter() - started)
            result = CompressionResult(msgs, stats, msgs)
        self._last = result.stats
        return result

    async def acompress(self, messages: CompressorInput, **options: Any) -> CompressionResult:
        """:meth:`compress` (same options) off the event loop: the draft's forward passes are blocking."""
        return await asyncio.to_thread(functools.partial(self.compress, messages, **options))

    def explain(self, messages: CompressorInput, *, cache_key: str | None = None) -> Any:
        """A readable view of what is kept and dropped (``print`` it, or show it in a notebook)."""
        from .explain import Explanation

        return Explanation.from_result(self.compress(messages, cache_key=cache_key))

    # ------------------------------------------------------------------ Runnable
    def _invoke(self, value: CompressorInput, run_manager: Any, config: RunnableConfig) -> list[BaseMessage]:
        result = self.compress(value, cache_key=thread_key(config))
        emit_stats(result.stats, config)
        return result.messages

    async def _ainvoke(self, value: CompressorInput, run_manager: Any, config: RunnableConfig) -> list[BaseMessage]:
        result = await self.acompress(value, cache_key=thread_key(config))
        await aemit_stats(result.stats, config)
        return result.messages

    def invoke(self, input: CompressorInput, config: RunnableConfig | None = None, **kwargs: Any) -> list[BaseMessage]:
        return self._call_with_config(self._invoke, input, config, run_type="prompt", **kwargs)

    async def ainvoke(
        self, input: CompressorInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[BaseMessage]:
        return await self._acall_with_config(self._ainvoke, input, config, run_type="prompt", **kwargs)

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return False  # it holds a loaded model; the config itself is plain data (config.to_dict())


@functools.lru_cache(maxsize=8)
def _shared(config: CompressorConfig, draft: DraftModel | None) -> SpecPrefillCompressor:
    """One compressor (and so one KV cache) per configuration (and loaded draft) for the functional form."""
    return SpecPrefillCompressor(draft=draft, config=config)


@overload
def compress_messages(
    messages: None = None, *, draft: str | DraftModel | None = ..., keep_ratio: float | None = ..., **options: Any
) -> SpecPrefillCompressor: ...


@overload
def compress_messages(
    messages: CompressorInput, *, draft: str | DraftModel | None = ..., keep_ratio: float | None = ..., **options: Any
) -> list[BaseMessage]: ...


def compress_messages(
    messages: CompressorInput | None = None,
    *,
    draft: str | DraftModel | None = None,
    keep_ratio: float | None = None,
    **options: Any,
) -> list[BaseMessage] | SpecPrefillCompressor:
    """Compress ``messages``; called without messages it returns the Runnable (like ``trim_messages``).

    Calls with the same settings share one compressor, so the functional form reuses the draft's KV
    cache from call to call as the Runnable does (``target=`` or ``cache=`` get a compressor of their own).
    """
    if {"target", "cache", "config"} & set(options):
        compressor = SpecPrefillCompressor(draft=draft, keep_ratio=keep_ratio, **options)
    else:
        loaded = draft if isinstance(draft, DraftModel) else None
        named = draft.name if loaded is not None else draft
        changes = {k: v for k, v in {"draft": named, "keep_ratio": keep_ratio, **options}.items() if v is not None}
        unknown = set(changes) - _CONFIG_FIELDS
        if unknown:
            msg = f"unknown option(s) {sorted(unknown)}; valid ones are {sorted(_CONFIG_FIELDS)}."
            raise TypeError(msg)
        compressor = _shared(CompressorConfig(**changes), loaded)
    if messages is None:
        return compressor
    return compressor.invoke(messages)
