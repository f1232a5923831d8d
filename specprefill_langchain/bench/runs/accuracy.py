"""Target answer accuracy per arm: the full prompt, ours and a peer at the same keep ratio.

    python -m specprefill_langchain.bench accuracy --targets qwen2.5-coder-0.5b --tasks 48 \
        --methods ours,keep-last-tokens --keep 0.3

Each task's transcript ends with the question. The target (greedy, a few dozen new tokens) answers it
once from the full transcript (the ``full`` arm, always run) and once per compression method; a reply
is correct when it contains the gold answer, case-insensitively and with whitespace collapsed (for
``vartrack``, whose answer is a set of names, every name must appear). Every arm answers the same
``--tasks`` transcripts (spread evenly over the task kinds) and reports ``n``, ``correct``,
``accuracy`` and its 95 % Wilson interval ``ci95``: with n tasks the interval, not the point, says how
far two arms may really be apart. ``ratio`` = compressed accuracy / full accuracy. A target that
cannot act as a chat model (a base model without a chat template) is reported under ``skipped``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any

from specprefill_langchain.bench import options
from specprefill_langchain.bench.intervals import wilson
from specprefill_langchain.bench.methods import METHODS, SETUP_ERRORS, build_methods
from specprefill_langchain.bench.tasks import Task, make_count, spread

MAX_NEW_TOKENS = 48  # answers are a key, a number or one def line
DEFAULT_TASKS = 48  # per arm: below ~40 the 95 % interval of a single arm spans more than 0.25


def _log(msg: str) -> None:
    print(f"[accuracy] {msg}", file=sys.stderr, flush=True)


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def is_correct(task: Task, reply: str) -> bool:
    got = _norm(reply)
    if task.kind == "vartrack":
        return all(name in got for name in _norm(task.answer).split())
    return _norm(task.answer) in got


def unusable_reason(target: str) -> str | None:
    """Why ``target`` cannot be a chat target here, checked from its tokenizer alone (cheap), or None."""
    try:
        from transformers import AutoTokenizer

        from specprefill_langchain import models

        tokenizer = AutoTokenizer.from_pretrained(models.resolve(target), local_files_only=True)
    except (ImportError, OSError, ValueError, RuntimeError) as exc:
        return f"could not load: {type(exc).__name__}: {exc}"
    if not getattr(tokenizer, "chat_template", None):
        return "base model without a chat template: it cannot render a chat prompt (system/tool roles)"
    return None


def arm_row(target: str, arm: str, draft: str | None, keep_ratio: float | None, correct: list[bool]) -> dict:
    """One arm's summary: n, correct, accuracy and its 95 % Wilson interval."""
    k, n = sum(correct), len(correct)
    lo, hi = wilson(k, n)
    return {
        "target": target,
        "arm": arm,
        "draft": draft,
        "keep_ratio": keep_ratio,
        "n": n,
        "correct": k,
        "accuracy": round(k / n, 4) if n else None,
        "ci95": [round(lo, 4), round(hi, 4)],
    }


def _compress_all(
    methods: list[str], tasks: list[Task], keep_ratio: float, draft: str, seed: int
) -> tuple[dict[str, list[list[Any]]], dict[str, str | None], list[dict[str, Any]]]:
    """Compressed prompts per method name (one list per task), the drafts used, and what was skipped."""
    objs, skipped = build_methods(methods, [draft], seed=seed)
    prompts: dict[str, list[list[Any]]] = {}
    drafts: dict[str, str | None] = {}
    for method in objs:
        try:
            setup = getattr(method, "setup", None)
            if setup is not None:
                setup()
            prompts[method.name] = [method.compress(list(t.messages), keep_ratio, t.question) for t in tasks]
            drafts[method.name] = getattr(method, "draft", None)
        except SETUP_ERRORS as exc:
            skipped.append({"method": method.name, "draft": draft, "reason": f"{type(exc).__name__}: {exc}"})
    return prompts, drafts, skipped


@dataclass
class _Answers:
    """One target's answers, per arm (``full`` and each compressed one)."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # the arm's :func:`arm_row`
    correct: dict[str, list[bool]] = field(default_factory=dict)  # per task
    replies: dict[str, list[str]] = field(default_factory=dict)  # per task


def _answer_all(
    chat: Any, target: str, tasks: list[Task], prompts: dict[str, list[list[Any]]], drafts: dict, keep_ratio: float
) -> _Answers:
    """The target's replies to every arm's prompts, in order, each arm logged as it ends."""
    ans = _Answers()
    for name, batch in prompts.items():
        ans.replies[name] = [chat.invoke(msgs).text for msgs in batch]
        ans.correct[name] = [is_correct(t, r) for t, r in zip(tasks, ans.replies[name], strict=True)]
        keep = None if name == "full" else keep_ratio
        ans.rows[name] = arm_row(target, name, drafts.get(name), keep, ans.correct[name])
        _log(f"{target} {name}: {sum(ans.correct[name])}/{len(tasks)}")
    return ans


def _comparison(
    target: str, name: str, tasks: list[Task], ans: _Answers, draft: str | None, keep_ratio: float
) -> dict[str, Any]:
    """One compressed arm against the full prompt on ``target``, with the per-task outcomes."""
    full, arm = ans.rows["full"], ans.rows[name]
    return {
        "target": target,
        "method": name,
        "draft": draft,
        "keep_ratio": keep_ratio,
        "n": len(tasks),
        "correct_full": full["correct"],
        "correct": arm["correct"],
        "accuracy_full": full["accuracy"],
        "accuracy_compressed": arm["accuracy"],
        "ci95_full": full["ci95"],
        "ci95": arm["ci95"],
        "ratio": round(arm["accuracy"] / full["accuracy"], 4) if full["accuracy"] else None,
        "per_task": [
            {"task": t.id, "answer": t.answer, "full": f, "compressed": c, "reply": r[:120]}
            for t, f, c, r in zip(tasks, ans.correct["full"], ans.correct[name], ans.replies[name], strict=True)
        ],
    }


def run_accuracy(
    tasks: list[Task],
    targets: list[str],
    methods: list[str],
    keep_ratio: float = 0.3,
    draft: str = options.DRAFT,
    target_dtype: str = "auto",
    max_new_tokens: int = MAX_NEW_TOKENS,
    seed: int = 0,
) -> dict[str, Any]:
    from specprefill_langchain.bench.target import LocalChatModel

    if not tasks:
        msg = "run_accuracy needs at least one task"
        raise ValueError(msg)
    methods = [m for m in methods if m != "full"]  # the full prompt is always the reference arm
    compressed, drafts, skipped = _compress_all(methods, tasks, keep_ratio, draft, seed)
    arms: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for target in targets:
        reason = unusable_reason(target)
        if reason is not None:
            skipped.append({"target": target, "reason": reason})
            _log(f"skipping {target}: {reason}")
            continue
        chat = LocalChatModel(model=target, dtype=target_dtype, max_new_tokens=max_new_tokens)  # type: ignore[arg-type]
        prompts = {"full": [list(t.messages) for t in tasks], **compressed}
        ans = _answer_all(chat, target, tasks, prompts, drafts, keep_ratio)
        arms.extend(ans.rows.values())
        results += [_comparison(target, name, tasks, ans, drafts.get(name), keep_ratio) for name in compressed]
    return {
        "keep_ratio": keep_ratio,
        "target_dtype": target_dtype,
        "targets": targets,
        "n_tasks": len(tasks),
        "kinds": sorted({t.kind for t in tasks}),
        "arms": arms,
        "results": results,
        "skipped": skipped,
    }


def add_args(p: argparse.ArgumentParser, prefix: str = "", own_tasks: bool = True) -> None:
    """Options; ``own_tasks=False`` when the caller supplies the tasks (only their count is an option)."""
    options.add(p, prefix, "targets", type=options.csv, default=[options.TARGET, "gemma3-270m"])
    options.add(
        p,
        prefix,
        "methods",
        type=options.csv_of(str, METHODS),
        default=["ours", "keep-last-tokens"],
        help="compressed arms besides the full prompt: ours, keep-last-tokens, random, ...",
    )
    options.add(p, prefix, "keep", type=options.ratio, default=0.3, help="keep ratio of every compressed arm")
    options.add(p, prefix, "draft", default=options.DRAFT)
    options.add(p, prefix, "target-dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    options.add(p, prefix, "tasks", type=int, default=DEFAULT_TASKS, help="tasks per arm, spread over the kinds")
    if own_tasks:
        options.add(p, prefix, "kinds", type=options.csv, default=None, help="task kinds (default: all)")
        options.add(p, prefix, "tokens", type=int, default=4000, help="approximate size of each transcript")


def run_args(args: argparse.Namespace, prefix: str = "", tasks: list[Task] | None = None) -> dict[str, Any]:
    """Run from parsed options; ``tasks`` (e.g. the fidelity run's) are spread down to ``--tasks``."""

    def get(name: str) -> Any:
        return options.get(args, prefix, name)

    seed = getattr(args, "seed", 0) or 0
    own = tasks is None
    if tasks is None:
        tasks = make_count(get("tasks"), get("kinds"), target_tokens=get("tokens"), seed=seed)
    else:
        tasks = spread(tasks, get("tasks"))
    result = run_accuracy(
        tasks,
        get("targets"),
        get("methods"),
        keep_ratio=get("keep"),
        draft=get("draft"),
        target_dtype=get("target-dtype"),
        seed=seed,
    )
    if own:
        result["tokens"] = get("tokens")
    return result
