"""Prefixed command-line options, so ``bench all`` can carry every benchmark's flags side by side.

``latency`` has ``--tokens``; inside ``all`` the same option is ``--latency-tokens`` (dest
``latency_tokens``). Each benchmark module adds and reads its options through these two helpers.
Also the option types shared by several runs, and the command line recorded in the results. This
module imports nothing of the bench: the CLI, ``run_all`` and every run may use it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from typing import Any

# The models the runs use unless told otherwise (signatures and CLI defaults alike).
DRAFT = "smollm2-135m"
TARGET = "qwen2.5-coder-0.5b"


def add(p: argparse.ArgumentParser, prefix: str, name: str, **kwargs: Any) -> None:
    """Add ``--{prefix}{name}``; ``prefix`` is ``""`` for a benchmark's own subcommand."""
    p.add_argument(f"--{prefix}{name}", dest=dest(prefix, name), **kwargs)


def dest(prefix: str, name: str) -> str:
    return f"{prefix}{name}".replace("-", "_")


def get(args: argparse.Namespace, prefix: str, name: str) -> Any:
    return getattr(args, dest(prefix, name))


def csv(text: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        msg = f"expected a comma-separated list, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return items


def csv_of(kind: type, allowed: tuple[str, ...] | None = None) -> Callable[[str], list[Any]]:
    """A parser of comma lists of ``kind``, each item one of ``allowed`` when given."""

    def parse(text: str) -> list[Any]:
        items = [kind(x.strip()) for x in text.split(",") if x.strip()]
        bad = [x for x in items if allowed is not None and x not in allowed]
        if not items or bad:
            msg = f"expected a comma list of {list(allowed) if allowed else kind.__name__}, got {text!r}"
            raise argparse.ArgumentTypeError(msg)
        return items

    return parse


def ratios(text: str) -> list[float]:
    """A comma list of keep ratios, each in (0, 1]."""
    values = csv_of(float)(text)
    if any(not 0 < r <= 1 for r in values):
        msg = f"keep ratios must be in (0, 1], got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return values


def ratio(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        msg = f"a keep ratio must be in (0, 1], got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def command_line(argv: list[str] | None) -> str:
    """The command as a user would type it (``argv`` None: this process's own arguments)."""
    return shlex.join(["python", "-m", "specprefill_langchain.bench", *(argv if argv is not None else sys.argv[1:])])
