"""The :class:`Task` and :class:`LoopTask` records, shared by the task generators, the metrics and the
cost benchmark (so none of them imports another for a record)."""

from __future__ import annotations

from dataclasses import dataclass

from langchain_core.messages import BaseMessage

from specprefill_langchain.bench.tasks.rounds import Round


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


@dataclass(frozen=True)
class LoopTask:
    """One scripted agent loop: the request, one round per step, the evidence and where things arrive."""

    id: str
    kind: str
    request: str
    rounds: tuple[Round, ...]
    evidence: tuple[str, ...]
    evidence_step: int  # 1-based step whose output holds the evidence
    key: str  # what names the evidence (a table key or a function name)
    key_step: int  # where the key is first named: 0 = the request, else the 1-based step (call or output)
    follow_up: str | None = None  # a human turn after the loop's answer (read at call steps + 1)
    question: str = ""  # for an accuracy check on the final input; may name the key
    answer: str = ""  # the gold answer, verbatim in the evidence

    @property
    def steps(self) -> int:
        return len(self.rounds)

    @property
    def calls(self) -> int:
        """Model calls of the loop: one per round, the answer, and the follow-up's answer if any."""
        return self.steps + 1 + (self.follow_up is not None)
