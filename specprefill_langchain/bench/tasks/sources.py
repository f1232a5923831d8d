"""Real text that ships with Python, used as tool outputs in benchmark transcripts.

Nothing here is downloaded or written by hand: source files of the standard library, pydoc pages,
and tables built from data modules (``http``, ``errno``, ``unicodedata``, ``locale``, ``mimetypes``).
Everything is deterministic for one Python installation, so a seed always yields the same tasks.
"""

from __future__ import annotations

import errno
import functools
import json
import locale
import mimetypes
import os
import pydoc
import re
import sysconfig
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

# Folders of the standard library that are tests, GUIs or generated data rather than ordinary code.
_SKIP_DIRS = frozenset(
    {
        "test",
        "tests",
        "idlelib",
        "lib2to3",
        "tkinter",
        "turtledemo",
        "ensurepip",
        "site-packages",
        "dist-packages",
        "pydoc_data",
        "__pycache__",
        "__phello__",
        "encodings",
    }
)

# Modules whose pydoc pages are long, varied prose; a fixed list keeps the pages stable.
PYDOC_MODULES = (
    "json",
    "textwrap",
    "string",
    "shlex",
    "fractions",
    "heapq",
    "bisect",
    "difflib",
    "csv",
    "argparse",
    "functools",
    "pathlib",
    "statistics",
    "ipaddress",
    "urllib.parse",
    "queue",
    "shutil",
    "tempfile",
    "zipfile",
    "base64",
    "hashlib",
    "uuid",
    "calendar",
    "dataclasses",
    "graphlib",
    "secrets",
    "fnmatch",
    "glob",
    "gzip",
    "sched",
)


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


@functools.cache
def stdlib_files() -> tuple[str, ...]:
    """Relative paths of ordinary ``.py`` files at depth 0 or 1 of the standard library, sorted."""
    root = stdlib_root()
    found: list[str] = []
    for entry in sorted(os.listdir(root)):
        path = root / entry
        if entry.endswith(".py") and path.is_file():
            found.append(entry)
        elif path.is_dir() and entry not in _SKIP_DIRS and not entry.startswith("config-"):
            found.extend(f"{entry}/{sub}" for sub in sorted(os.listdir(path)) if sub.endswith(".py"))
    if not found:
        msg = f"no standard-library sources found under {root}; the benchmark needs a full Python install"
        raise RuntimeError(msg)
    return tuple(found)


@functools.cache
def read_stdlib(rel: str) -> str:
    return (stdlib_root() / rel).read_text(encoding="utf-8", errors="replace").replace("\f", "")


def display_path(rel: str) -> str:
    """A machine-independent path, as an agent working in a CPython checkout would see it."""
    return f"cpython/Lib/{rel}"


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]{6,}")


@functools.cache
def pydoc_page(module: str) -> str:
    # Defaults that are objects render with their memory address (`<function f at 0x7fb3...>`),
    # which changes from run to run; without it the same seed gives the same transcripts.
    return _ADDRESS.sub("", pydoc.render_doc(module, renderer=pydoc.plaintext))


def list_dir(rel_dir: str) -> str:
    """An ``ls -l``-like listing (size and name) of a real standard-library folder."""
    root = stdlib_root() / rel_dir
    lines = []
    for name in sorted(os.listdir(root)):
        path = root / name
        if name == "__pycache__":
            continue
        size = path.stat().st_size if path.is_file() else 4096
        kind = "d" if path.is_dir() else "-"
        lines.append(f"{kind}rw-r--r--  {size:>8}  {name}")
    return "\n".join(lines)


def package_dirs() -> tuple[str, ...]:
    return tuple(sorted({rel.split("/")[0] for rel in stdlib_files() if "/" in rel}))


# --- tables --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """Records of real data, one key field that is unique, and the field a question asks for."""

    name: str
    url: str
    key: str
    value: str
    records: tuple[dict[str, object], ...]


def _http() -> Table:
    rows = tuple({"code": s.value, "phrase": s.phrase, "description": s.description} for s in HTTPStatus)
    return Table("http_status", "https://status.internal/api/v1/http-status", "code", "phrase", rows)


def _errno() -> Table:
    names = sorted(n for n in dir(errno) if n.startswith("E") and isinstance(getattr(errno, n), int))
    rows = tuple({"name": n, "code": getattr(errno, n), "message": os.strerror(getattr(errno, n))} for n in names)
    return Table("errno", "https://status.internal/api/v1/errno", "name", "code", rows)


def _unicode() -> Table:
    rows: list[dict[str, object]] = []
    # Latin, Greek, Cyrillic, punctuation and symbols: named code points with varied names.
    for cp in range(0x00A0, 0x2BFF):
        name = unicodedata.name(chr(cp), "")
        if name:
            cat = unicodedata.category(chr(cp))
            rows.append({"codepoint": f"U+{cp:04X}", "name": name, "category": cat})
    return Table("unicode", "https://charmap.internal/api/v2/codepoints", "name", "codepoint", tuple(rows))


def _locale() -> Table:
    rows = tuple({"alias": k, "locale": v} for k, v in sorted(locale.locale_alias.items()))
    return Table("locale_alias", "https://i18n.internal/api/locale-aliases", "alias", "locale", rows)


def _mimetypes() -> Table:
    # A fresh MimeTypes() holds only Python's built-in map, not the host's /etc/mime.types.
    types = mimetypes.MimeTypes().types_map[True]
    rows = tuple({"extension": ext, "type": t} for ext, t in sorted(types.items()))
    return Table("mimetypes", "https://cdn.internal/api/mime-types", "extension", "type", rows)


TABLES: dict[str, Callable[[], Table]] = {
    "http_status": _http,
    "errno": _errno,
    "unicode": _unicode,
    "locale_alias": _locale,
    "mimetypes": _mimetypes,
}


@functools.cache
def table(name: str) -> Table:
    if name not in TABLES:
        msg = f"unknown table {name!r}; choose one of {sorted(TABLES)}"
        raise ValueError(msg)
    return TABLES[name]()


def record_line(record: dict[str, object]) -> str:
    return json.dumps(record, ensure_ascii=False)


def render_table(tab: Table, records: list[dict[str, object]]) -> str:
    """JSON with one record per line, so that a record is a line a compressor can keep whole."""
    body = ",\n".join(record_line(r) for r in records)
    return f'{{"table": "{tab.name}", "count": {len(records)}, "records": [\n{body}\n]}}'
