"""One agent step, for every face: what the model reads, what the thread's state keeps, what it cost.

The middleware, the graph node and the pre-model hook all call :meth:`AgentStep.run` (or its async
twin) with the same :class:`StepInput`; a face only adapts LangChain's shapes to it. Both modes live
here and nowhere else (docs/design.md, "Agent steps"):

* ``per_step``: the whole history is compressed again on every call;
* ``stable``: tool results are decided once (module ``schedule``), lines a later step names are
  brought back append-only (module ``rescue``), and the decisions go to the state as an update.

Compressed tool outputs carry the recall note (module ``recall``) in both modes; a recall output is
never compressed. The step calls the compressor through the typed :class:`CompressFn` it is given,
so it knows nothing of how a compression runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig

from .config import CompressorConfig, Mode, check_mode
from .events import aemit_stats, emit_stats
from .focus import focus_text
from .recall import RECALL_TOOL, add_note, is_recall_output
from .rescue import RESCUE_FLOOR, RESCUE_SHARE, Rank, Rescue, rescue, source_of, step_text
from .schedule import (
    Frozen,
    Plan,
    apply_frozen,
    decided_form,
    digest,
    draft_window,
    entry_of,
    first_unread,
    plan,
    ref_of,
    stale_refs,
)
from .stats import CompressionResult, CompressionStats

log = logging.getLogger("specprefill_langchain")


class CompressFn(Protocol):
    """What a step calls to compress (``SpecPrefillCompressor.compress``)."""

    def __call__(
        self,
        messages: Sequence[BaseMessage],
        *,
        cache_key: str | None = None,
        only: Collection[int] | None = None,
        target_extra: Sequence[BaseMessage] = (),
        focus: str | None = None,
    ) -> CompressionResult: ...


@dataclass(frozen=True)
class StepInput:
    """What a face hands to a step."""

    messages: Sequence[BaseMessage]  # the model's input as the agent has it (uncompressed)
    frozen: Mapping[str, Any] | None = None  # the state's frozen forms (None: the state has no such key)
    thread: str | None = None  # keys the draft's KV cache (a LangGraph thread id)
    target_extra: Sequence[BaseMessage] = ()  # what the target also reads: a system prompt, tool schemas
    history: Sequence[BaseMessage] | None = None  # the thread's messages in the state (default: ``messages``)


@dataclass(frozen=True)
class StepOutput:
    """What a step decided: the model's input, the state update (None: nothing to write), and the stats
    (None when the step had nothing to decide: no draft ran and nothing was rescued)."""

    messages: list[BaseMessage]
    update: Frozen | None
    stats: CompressionStats | None


@dataclass(frozen=True)
class AgentStep:
    """The step every face runs: ``compress`` with ``config`` in ``mode``; ``recall``: the recall tool's
    name (its note on each compressed output), or None for no note; ``rank``: the draft's scores of
    rescue candidates (``SpecPrefillCompressor.line_scores``)."""

    compress: CompressFn
    config: CompressorConfig
    mode: Mode = "stable"
    recall: str | None = RECALL_TOOL
    rank: Rank | None = None  # the draft's order for a rescue that overflows its budget (module rescue)

    def __post_init__(self) -> None:
        check_mode(self.mode)

    @property
    def keeps_state(self) -> bool:
        """Does this step keep decisions in the thread's state (stable mode)?"""
        return self.mode == "stable"

    def run(self, inp: StepInput, config: RunnableConfig | None = None) -> StepOutput:
        """Decide the step, then emit its stats as the ``specprefill_stats`` event of the run ``config``."""
        out = self.decide(inp)
        if out.stats is not None:
            emit_stats(out.stats, config)
        return out

    async def arun(self, inp: StepInput, config: RunnableConfig | None = None) -> StepOutput:
        """:meth:`run` off the event loop (the draft's forward passes are blocking)."""
        out = await asyncio.to_thread(self.decide, inp)
        if out.stats is not None:
            await aemit_stats(out.stats, config)
        return out

    def decide(self, inp: StepInput) -> StepOutput:
        """The step itself, with no side effect but the draft's KV cache."""
        return self._per_step(inp) if self.mode == "per_step" else self._stable(inp)

    # ------------------------------------------------------------------ the two modes
    def _per_step(self, inp: StepInput) -> StepOutput:
        msgs = list(inp.messages)
        only = [i for i, m in enumerate(msgs) if not self._keep_whole(m)]
        result = self.compress(msgs, cache_key=inp.thread, only=only, target_extra=inp.target_extra)
        out = [self._noted(m, new) for m, new in zip(msgs, result.messages, strict=True)]
        return StepOutput(out, None, result.stats.for_step(mode="per_step"))

    def _stable(self, inp: StepInput) -> StepOutput:
        started = time.perf_counter()
        msgs, frozen = list(inp.messages), dict(inp.frozen or {})
        cfg = self.config
        p = plan(msgs, frozen, cfg.stable, cfg.policy, keep_ratio=cfg.keep_ratio, keep_whole=self._keep_whole)
        updates, result = self._decide_candidates(inp, p, frozen)
        updates.update(self._decide_whole(msgs, p.whole, frozen, "the draft does not read it"))
        found = None
        if cfg.stable.rescue:
            rescued, found = self._rescue(msgs, {**frozen, **updates})
            updates.update(rescued)
        merged = {**frozen, **updates}
        view, _ = apply_frozen(msgs, merged)
        gone = {ref: None for ref in stale_refs(merged, inp.history if inp.history is not None else msgs)}
        if result is None and found is None and not updates:
            return StepOutput(view, gone or None, None)  # nothing to decide: no draft ran, no event
        base = result.stats if result is not None else CompressionStats(reason="no draft pass", cache_key=inp.thread)
        stats = base.for_step(
            mode="stable",
            frozen_reused=sum(isinstance(msgs[i], ToolMessage) for i in p.decided),
            newly_compressed=sum(1 for e in updates.values() if e.get("content") is not None),
            decided_whole=sum(1 for e in updates.values() if "content" in e and e["content"] is None),
            rescues=found.lines if found else 0,
            rescued_chars=found.chars if found else 0,
            total_s=time.perf_counter() - started,
        )
        return StepOutput(view, {**updates, **gone} or None, stats)

    # ------------------------------------------------------------------ parts of a stable step
    def _decide_candidates(
        self, inp: StepInput, p: Plan, frozen: Mapping[str, Any]
    ) -> tuple[Frozen, CompressionResult | None]:
        """Compress this step's candidates, reading a window of the history as the target reads it."""
        if not p.candidates:
            return {}, None
        msgs = inp.messages
        index_map = draft_window(p.view, p.candidates, self.config.stable.context_chars)
        chosen = set(p.candidates)
        only = [pos for pos, i in enumerate(index_map) if i in chosen]
        window = [p.view[i] for i in index_map]
        # The focus comes from the whole history, in its originals: the grep hit that led to a read may lie
        # outside the window, or in the part of the grep's output that was dropped.
        focus = focus_text(msgs, self.config.scoring.focus, chosen)
        result = self.compress(window, cache_key=inp.thread, only=only, target_extra=inp.target_extra, focus=focus)
        if result.stats.error is not None:  # the draft failed (on_error="passthrough"): never retry them
            return self._decide_whole(msgs, p.candidates, frozen, result.stats.error), result
        out_of = {orig: pos for pos, orig in enumerate(index_map)}
        updates: Frozen = {}
        for i in p.candidates:
            m, new = msgs[i], result.messages[out_of[i]]
            content = None if new.content == m.content else self._noted(m, new).content
            updates[ref_of(m)] = decided_form(m, content, entry_of(frozen, m))
        return updates, result

    def _rescue(self, msgs: list[BaseMessage], frozen: Mapping[str, Any]) -> tuple[Frozen, Rescue | None]:
        """Lines of earlier outputs that this step names, appended to the newest message (module ``rescue``)."""
        first_new = first_unread(msgs)
        newest = msgs[-1] if msgs else None
        if first_new >= len(msgs) or not isinstance(newest, ToolMessage | HumanMessage):
            return {}, None
        entry = entry_of(frozen, newest)
        if entry is not None and "rescue" in entry:
            return {}, None  # decided in an earlier run of this same step
        calls = {c.get("id"): c for m in msgs if isinstance(m, AIMessage) for c in m.tool_calls}
        sources = [
            source_of(i, m, calls.get(m.tool_call_id))
            for i, m in enumerate(msgs[:first_new])
            if isinstance(m, ToolMessage) and (entry_of(frozen, m) or {}).get("content") is not None
        ]
        if not sources:
            return {}, None
        new_chars = sum(len(m.text) for m in msgs[first_new:])
        budget = min(self.config.stable.rescue_chars, max(RESCUE_FLOOR, int(RESCUE_SHARE * new_chars)))
        view, _ = apply_frozen(msgs, frozen)
        shown = "\n".join(m.text for m in view)
        asked = "\n".join(m.text for m in msgs[first_new:] if isinstance(m, HumanMessage))
        text = step_text(msgs, first_new)
        found = rescue(sources, text, lambda line: line in shown, budget, self.rank, asked)
        if found is None:
            return {}, None
        return {ref_of(newest): {**(entry or {"digest": digest(newest)}), "rescue": found.text}}, found

    # ------------------------------------------------------------------ helpers
    def _decide_whole(
        self, msgs: Sequence[BaseMessage], indices: Sequence[int], frozen: Mapping[str, Any], why: str
    ) -> Frozen:
        """Decide these tool results whole for good, with a log record naming each and why."""
        for i in indices:
            m = msgs[i]
            if is_recall_output(m, self.recall or RECALL_TOOL):
                log.info("tool result %d (ref %s) is a recall output: sent whole", i, ref_of(m))
            else:
                log.warning("tool result %d (%s, ref %s) is sent whole from now on: %s", i, m.name, ref_of(m), why)
        return {ref_of(msgs[i]): decided_form(msgs[i], None, entry_of(frozen, msgs[i])) for i in indices}

    def _keep_whole(self, m: BaseMessage) -> bool:
        """Never compressed: a recall output (a whole original), or a message the draft cannot read."""
        if is_recall_output(m, self.recall or RECALL_TOOL):
            return True
        return len(m.text) > self.config.max_input_chars

    def _noted(self, original: BaseMessage, new: BaseMessage) -> BaseMessage:
        """``new`` with the recall note, when it is a tool output that lost text and recall is on."""
        if self.recall is None or not isinstance(original, ToolMessage) or new.content == original.content:
            return new
        content = add_note(original, new, self.config.selection.gap_marker, self.recall)
        return new.model_copy(update={"content": content})
