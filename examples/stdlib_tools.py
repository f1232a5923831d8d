"""Read-only tools over the Python standard library folder, shared by the examples.

Real text nobody here wrote, on every machine with Python: an agent that browses it produces the
long tool outputs (source files, listings, grep hits) that make compression worth it.
"""

from __future__ import annotations

import re
import sysconfig
from pathlib import Path

from langchain_core.tools import BaseTool, tool

STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()
# Folders that are tests or bundled data: huge, and not what an agent browsing code wants.
_SKIP = frozenset({"test", "tests", "idlelib", "lib2to3", "site-packages", "__pycache__", "pydoc_data"})


def _inside(path: str) -> Path:
    """``path`` relative to the stdlib folder; refuses anything that escapes it."""
    p = (STDLIB / path.strip().lstrip("/")).resolve()
    if p != STDLIB and STDLIB not in p.parents:
        msg = f"{path!r} is outside the standard library folder; use a relative path such as 'json/decoder.py'."
        raise ValueError(msg)
    if not p.exists():
        msg = f"{path!r} does not exist in the standard library; call list_dir to see what does."
        raise ValueError(msg)
    return p


def _cap(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return text[:max_chars] + f"\n[... {len(text) - max_chars} more characters not shown]"


def stdlib_tools(max_chars: int = 12_000, max_hits: int = 60) -> list[BaseTool]:
    """``read_file``, ``list_dir`` and ``grep`` over the standard library, outputs capped at ``max_chars``."""

    @tool
    def read_file(path: str) -> str:
        """Read a file of the Python standard library, e.g. path='json/decoder.py'."""
        return _cap(_inside(path).read_text(encoding="utf-8", errors="replace"), max_chars)

    @tool
    def list_dir(path: str = ".") -> str:
        """List a folder of the Python standard library (folders end with '/'), e.g. path='json'."""
        p = _inside(path)
        entries = sorted(c.name + ("/" if c.is_dir() else "") for c in p.iterdir() if c.name not in _SKIP)
        return _cap("\n".join(entries), max_chars)

    @tool
    def grep(pattern: str, path: str = ".") -> str:
        """Search Python files under a standard-library path for a regular expression; lines as file:line: text."""
        try:
            rx = re.compile(pattern)
        except re.error as err:
            msg = f"pattern {pattern!r} is not a valid regular expression ({err}); escape special characters."
            raise ValueError(msg) from err
        root = _inside(path)
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        hits: list[str] = []
        for f in files:
            if _SKIP & set(f.relative_to(STDLIB).parts):
                continue
            for n, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                if rx.search(line):
                    hits.append(f"{f.relative_to(STDLIB)}:{n}: {line.strip()}")
                    if len(hits) >= max_hits:
                        return _cap("\n".join([*hits, f"[stopped after {max_hits} matches]"]), max_chars)
        return _cap("\n".join(hits), max_chars) if hits else f"no match for {pattern!r} under {path!r}"

    return [read_file, list_dir, grep]
