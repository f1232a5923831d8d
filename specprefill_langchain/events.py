"""The ``specprefill_stats`` custom callback event every face emits (LangSmith traces, ``astream_events``)."""

from __future__ import annotations

import contextlib

from langchain_core.callbacks import adispatch_custom_event, dispatch_custom_event
from langchain_core.runnables import RunnableConfig

from .stats import CompressionStats

STATS_EVENT = "specprefill_stats"


def emit_stats(stats: CompressionStats, config: RunnableConfig | None = None) -> None:
    """Send ``stats`` as the ``specprefill_stats`` custom event (shows in traces and ``astream_events``).

    ``config``: the run to attach the event to when it is not the current context (the middleware
    runs inside a graph node but outside a Runnable of ours). Outside any run there is no parent for
    an event, and none is sent.
    """
    with contextlib.suppress(RuntimeError):  # no parent run (a direct call outside a chain or graph)
        dispatch_custom_event(STATS_EVENT, stats.to_dict(), config=config)


async def aemit_stats(stats: CompressionStats, config: RunnableConfig | None = None) -> None:
    """The async twin of :func:`emit_stats`."""
    with contextlib.suppress(RuntimeError):
        await adispatch_custom_event(STATS_EVENT, stats.to_dict(), config=config)
