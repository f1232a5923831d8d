"""Where the late-relevance loops anchor their evidence in installed-package sources.

A helper with a default worth asking about, called at a site that a grep of its folder finds
(``grep_then_read``), and a real caller of a function (the frame above it in a traceback). Searches
go through :mod:`package_sources` in a seeded random order.
"""

from __future__ import annotations

import keyword
import random
import re

from specprefill_langchain.bench.tasks import package_sources as ps
from specprefill_langchain.bench.tasks.late_rounds import grep_head

_TOO_COMMON = frozenset({"self", "args", "kwargs", "None", "True", "False"})  # nobody greps for these
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{3,}")
_DEF_AT = re.compile(r"^(\s*)(?:async\s+)?def (\w+)\(")


def shuffled(rng: random.Random, items: tuple | list) -> list:
    out = list(items)
    rng.shuffle(out)
    return out


def _grep_for(rng: random.Random, d: ps.FuncDef, chars: int) -> tuple[str, str, str] | None:
    """(folder, pattern, call-site hit): the fullest grep of ``d``'s folder whose first hits show a call of ``d``."""
    folder = d.rel.rsplit("/", 1)[0]
    scope = [f for f in ps.package_files() if f.startswith(f"{folder}/")]
    calls = [h for h in ps.grep(scope, f"{d.name}(") if f"def {d.name}(" not in h]
    if not calls:
        return None
    call = rng.choice(calls)
    best: tuple[bool, int, str] | None = None
    for token in sorted(set(_IDENT.findall(call.split(":", 2)[2]))):
        if token in d.name or d.name in token or keyword.iskeyword(token) or token in _TOO_COMMON:
            continue
        hits = ps.grep(scope, token)
        shown = hits[: grep_head(hits, chars - 30)]
        size = sum(len(h) + 1 for h in shown)
        full = len(shown) >= min(5, chars // 200) and size >= 0.5 * chars
        if full and call in shown and not any(d.line in h for h in shown):  # the def line is the evidence
            best = max(best or (False, 0, ""), (len(shown) == len(hits), size, token))  # whole greps first
    return None if best is None else (folder, best[2], call)


def grep_site(rng: random.Random, chars: int) -> tuple[ps.FuncDef, str, str, str]:
    """A helper (with a default worth asking about) and a grep of its folder whose hits include its call."""
    for rel in shuffled(rng, ps.package_files()):
        # A def past the file's first lines, so that the read window can hold it below its top.
        for d in shuffled(rng, [d for d in ps.function_defs(rel) if d.defaults and d.line_no >= 10]):
            found = _grep_for(rng, d, chars)
            if found is not None:
                return d, *found
    msg = "no helper with a call site that a grep of the right size finds"
    raise RuntimeError(msg)


def caller(rng: random.Random, func: str, package: str) -> tuple[str, int, str] | None:
    """(file, 1-based line, enclosing function) of a real call of ``func`` in ``package``."""
    sites = [
        (rel, no)
        for rel in ps.files_of(package)
        for no, line in enumerate(ps.read_package(rel).splitlines(), 1)
        if f"{func}(" in line and f"def {func}(" not in line
    ]
    if not sites:
        return None
    rel, no = rng.choice(sites)
    lines = ps.read_package(rel).splitlines()
    indent = len(lines[no - 1]) - len(lines[no - 1].lstrip())
    for prev in reversed(lines[: no - 1]):
        m = _DEF_AT.match(prev)
        if m and len(m.group(1)) < indent:
            return rel, no, m.group(2)
    return rel, no, "<module>"
