"""Prefixed command-line options, so ``bench all`` can carry every benchmark's flags side by side.

``latency`` has ``--tokens``; inside ``all`` the same option is ``--latency-tokens`` (dest
``latency_tokens``). Each benchmark module adds and reads its options through these two helpers.
"""

from __future__ import annotations

import argparse
from typing import Any


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


def ratio(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        msg = f"a keep ratio must be in (0, 1], got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value
