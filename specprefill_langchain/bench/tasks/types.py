"""The :class:`Task` record shared by the task generators and the metrics (so neither imports the other)."""

from __future__ import annotations

from dataclasses import dataclass

from langchain_core.messages import BaseMessage


@dataclass(frozen=True)
class Task:
    """One agent transcript (the question last), its gold answer and the evidence that answer needs."""

    id: str
    kind: str
    messages: list[BaseMessage]
    question: str
    answer: str
    evidence: tuple[str, ...]
    n_draft_tokens_hint: int
