"""Counting *target* tokens: once per distinct message, with the system prompt and tool schemas.

A budget in target tokens (``max_target_tokens``) is counted with the target model's own
``get_num_tokens_from_messages``. With a provider whose counter is an API call, counting the whole
prompt again in every round of the budget loop would be network per step; so each distinct message
is counted once and remembered (by its role, name, tool_call_id, content and tool calls), and a
prompt's count is the sum of its messages' counts plus the per-call overhead that the counter adds
to an empty list.
"""

from __future__ import annotations

import json
import numbers
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, SystemMessage

from .chatformat import message_key


class TargetCounter:
    """Target-token counts of messages, each distinct message counted once (thread-safe, bounded).

    ``target``: a LangChain chat model (its ``get_num_tokens_from_messages``), or, as ``trim_messages``'
    ``token_counter`` may be, a callable that takes a list of messages and returns their token count.
    """

    def __init__(self, target: Any, *, max_entries: int = 8192) -> None:
        counter = getattr(target, "get_num_tokens_from_messages", None)
        if not callable(counter):
            if not callable(target):
                msg = (
                    f"target={type(target).__name__} can count no tokens: pass a LangChain chat model, or a "
                    "callable that takes a list of messages and returns their token count."
                )
                raise TypeError(msg)
            counter = target
        self._counter = counter
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            msg = f"max_entries={max_entries!r} must be a whole number of remembered messages, at least 1."
            raise ValueError(msg)
        self.target = target
        self.calls = 0  # how often the target's counter ran (for tests and stats)
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()
        self._overhead_lock = threading.Lock()
        self._overhead: int | None = None

    def _raw(self, messages: list[BaseMessage]) -> int:
        with self._lock:
            self.calls += 1
        n = self._counter(messages)
        if isinstance(n, bool) or not isinstance(n, numbers.Real):
            msg = (
                f"the token counter of {type(self.target).__name__} returned {n!r}, not a number: "
                "max_target_tokens needs a target whose counter returns an int."
            )
            raise TypeError(msg)
        return int(n)

    @property
    def overhead(self) -> int:
        """What the counter adds per call regardless of messages (0 where it cannot count an empty list)."""
        if self._overhead is None:
            with self._overhead_lock:  # one call to the target, even when threads ask at once
                if self._overhead is None:
                    try:
                        self._overhead = max(0, self._raw([]))
                    except Exception:  # some counters refuse an empty list: then no overhead to remove
                        self._overhead = 0
        return self._overhead

    def message(self, m: BaseMessage) -> int:
        key = message_key(m, wire=True)
        with self._lock:
            if key in self._counts:
                self._counts.move_to_end(key)
                return self._counts[key]
        n = max(0, self._raw([m]) - self.overhead)
        with self._lock:
            self._counts[key] = n
            while len(self._counts) > self._max:
                self._counts.popitem(last=False)
        return n

    def count(self, messages: Sequence[BaseMessage], *, extra: Sequence[BaseMessage] = ()) -> int:
        """Target tokens of ``messages`` plus ``extra`` (a system prompt, tool schemas as text)."""
        return self.overhead + sum(self.message(m) for m in [*extra, *messages])


def tool_schema_messages(tools: Sequence[Any]) -> list[BaseMessage]:
    """The tools' JSON schemas as system text, so that the budget counts what the target reads for them."""
    if not tools:
        return []
    from langchain_core.utils.function_calling import convert_to_openai_tool

    schemas = []
    for tool in tools:
        try:
            schemas.append(convert_to_openai_tool(tool))
        except Exception:  # a tool the converter does not know: count its name at least
            schemas.append({"name": str(getattr(tool, "name", tool))})
    return [SystemMessage(json.dumps(schemas, ensure_ascii=False, sort_keys=True, default=str))]
