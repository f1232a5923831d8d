"""The local target answers each loop's question from each arm's final model input (``bench cost --answers``).

Retention says whether the evidence string survived; accuracy says whether a real model can still use
what it was sent, as the speculative-prefill paper measures it. The final input of an arm (what its
last model call read) gets the loop's question as a new human turn (a ``follow_up`` loop's last turn
already is its question), and the target (greedy, a few dozen tokens, no tools bound) answers. A reply
is correct when it contains the gold answer, case-insensitively with whitespace collapsed.
"""

from __future__ import annotations

import sys
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage

from specprefill_langchain.bench.runs.cost_loop import LoopRun
from specprefill_langchain.bench.tasks.agent_loops import LoopTask

MAX_NEW_TOKENS = 48  # answers are a value, a name or one line


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def question_input(task: LoopTask, final: list[BaseMessage]) -> list[BaseMessage]:
    """The arm's final input with the loop's question as the last human turn."""
    if task.follow_up is not None:
        return list(final)  # the follow-up turn is the question
    return [*final, HumanMessage(task.question)]


def answer_all(
    tasks: list[LoopTask], runs: dict[tuple[str, str], LoopRun], rows: list[dict[str, Any]], target: str, dtype: str
) -> None:
    """Add ``answer_correct`` and ``reply`` to every row of a task that has a question."""
    from specprefill_langchain.bench.target import LocalChatModel

    chat = LocalChatModel(model=target, dtype=dtype, max_new_tokens=MAX_NEW_TOKENS)  # type: ignore[arg-type]
    by_id = {t.id: t for t in tasks}
    for row in rows:
        task = by_id[row["task"]]
        if not task.question or not task.answer:
            continue
        reply = chat.invoke(question_input(task, runs[(task.id, row["arm"])].inputs[-1])).text
        row["answer_correct"] = _norm(task.answer) in _norm(reply)
        row["reply"] = reply[:160]
        print(f"[cost] answer {task.id} {row['arm']}: {row['answer_correct']}", file=sys.stderr, flush=True)
