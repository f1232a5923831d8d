"""Where each results section came from: its command, its date, and the library defaults it ran at.

Every section of ``docs/results.json`` is stamped when it is written (``bench all`` or ``--save``):
``commands[key]``, ``dates[key]`` and ``defaults[key]`` (``CompressorConfig().to_dict()`` at run time).
The report prints the command and date under each table, and a test checks that every section shown
was measured at the defaults that ship (tests/test_readme_figures.py): changing a default without
re-running what it affects fails the suite.
"""

from __future__ import annotations

from typing import Any


def defaults() -> dict[str, Any]:
    """The library's defaults as plain data (what a section was measured at)."""
    from specprefill_langchain import CompressorConfig

    return CompressorConfig().to_dict()


def stamp(results: dict[str, Any], key: str, command: str, date: str) -> None:
    """Record in ``results`` that section ``key`` was made by ``command`` on ``date`` at today's defaults."""
    results.setdefault("commands", {})[key] = command
    results.setdefault("dates", {})[key] = date
    results.setdefault("defaults", {})[key] = defaults()


def provenance(results: dict[str, Any], key: str) -> str:
    """The line under a section's table: when and by what command it was measured."""
    command = (results.get("commands") or {}).get(key) or results.get("command") or "?"
    date = (results.get("dates") or {}).get(key) or (results.get("machine") or {}).get("date") or "?"
    return f"Measured {date} by `{command}`."


def stale_sections(results: dict[str, Any], keys: list[str]) -> list[str]:
    """The sections among ``keys`` not measured at today's defaults (or with no record of their defaults)."""
    now = defaults()
    recorded = results.get("defaults") or {}
    return [k for k in keys if recorded.get(k) != now]
