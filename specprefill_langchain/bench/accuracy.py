"""Target answer accuracy with the full prompt vs the compressed prompt (cross-family targets).

    python -m specprefill_langchain.bench accuracy --targets qwen2.5-coder-0.5b,gemma3-270m --n-per-kind 1

Each task's transcript ends with the question. The target (greedy, a few dozen new tokens) answers it
once from the full transcript and once per compression method; a reply is correct when it contains the
gold answer, case-insensitively and with whitespace collapsed (for ``vartrack``, whose answer is a set
of names, every name must appear). ``ratio`` = compressed accuracy / full accuracy.
A target that cannot act as a chat model (a base model without a chat template) is reported under
``skipped`` with the reason.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from specprefill_langchain.bench import options
from specprefill_langchain.bench.peers import KeepLastTokens, Method, OursMethod, RandomChunks
from specprefill_langchain.bench.tasks import Task, make_tasks

MAX_NEW_TOKENS = 48  # answers are a key, a number or one def line


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


def _method(name: str, draft: str) -> Method:
    table = {"ours": lambda: OursMethod(draft=draft), "random": RandomChunks, "keep-last-tokens": KeepLastTokens}
    if name not in table:
        msg = f"unknown accuracy method {name!r}; choose from {sorted(table)}"
        raise ValueError(msg)
    return table[name]()


def run_accuracy(
    tasks: list[Task],
    targets: list[str],
    methods: list[str],
    keep_ratio: float = 0.3,
    draft: str = "smollm2-135m",
    target_dtype: str = "bfloat16",
    max_new_tokens: int = MAX_NEW_TOKENS,
) -> dict[str, Any]:
    from specprefill_langchain.chat import LocalChatModel

    if not tasks:
        msg = "run_accuracy needs at least one task"
        raise ValueError(msg)
    compressed = {
        name: [_method(name, draft).compress(list(t.messages), keep_ratio, t.question) for t in tasks]
        for name in methods
    }
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for target in targets:
        reason = unusable_reason(target)
        if reason is not None:
            skipped.append({"target": target, "reason": reason})
            _log(f"skipping {target}: {reason}")
            continue
        chat = LocalChatModel(model=target, dtype=target_dtype, max_new_tokens=max_new_tokens)  # type: ignore[arg-type]
        prompts = {"full": [list(t.messages) for t in tasks], **compressed}
        correct: dict[str, list[bool]] = {}
        replies: dict[str, list[str]] = {}
        for name, batch in prompts.items():
            replies[name] = [chat.invoke(msgs).text for msgs in batch]
            correct[name] = [is_correct(t, r) for t, r in zip(tasks, replies[name], strict=True)]
            _log(f"{target} {name}: {sum(correct[name])}/{len(tasks)}")
        full_acc = sum(correct["full"]) / len(tasks)
        for name in methods:
            acc = sum(correct[name]) / len(tasks)
            results.append(
                {
                    "target": target,
                    "method": name,
                    "draft": draft if name == "ours" else None,
                    "keep_ratio": keep_ratio,
                    "n": len(tasks),
                    "accuracy_full": round(full_acc, 4),
                    "accuracy_compressed": round(acc, 4),
                    "ratio": round(acc / full_acc, 4) if full_acc else None,
                    "per_task": [
                        {"task": t.id, "answer": t.answer, "full": f, "compressed": c, "reply": r[:120]}
                        for t, f, c, r in zip(tasks, correct["full"], correct[name], replies[name], strict=True)
                    ],
                }
            )
    return {"keep_ratio": keep_ratio, "targets": targets, "results": results, "skipped": skipped}


def add_args(p: argparse.ArgumentParser, prefix: str = "", with_tasks: bool = True) -> None:
    options.add(p, prefix, "targets", type=options.csv, default=["qwen2.5-coder-0.5b", "gemma3-270m"])
    options.add(p, prefix, "methods", type=options.csv, default=["ours"], help="ours, random, keep-last-tokens")
    options.add(p, prefix, "keep", type=options.ratio, default=0.3, help="keep ratio of the compressed prompt")
    options.add(p, prefix, "draft", default="smollm2-135m")
    options.add(p, prefix, "target-dtype", default="bfloat16", choices=["float32", "bfloat16"])
    if with_tasks:
        options.add(p, prefix, "kinds", type=options.csv, default=None, help="task kinds (default: all)")
        options.add(p, prefix, "n-per-kind", type=int, default=1)
        options.add(p, prefix, "tokens", type=int, default=2000)


def run_args(args: argparse.Namespace, prefix: str = "", tasks: list[Task] | None = None) -> dict[str, Any]:
    def get(name: str) -> Any:
        return options.get(args, prefix, name)

    if tasks is None:
        seed = getattr(args, "seed", 0) or 0
        tasks = make_tasks(get("kinds"), n_per_kind=get("n-per-kind"), target_tokens=get("tokens"), seed=seed)
    return run_accuracy(
        tasks,
        get("targets"),
        get("methods"),
        keep_ratio=get("keep"),
        draft=get("draft"),
        target_dtype=get("target-dtype"),
    )
