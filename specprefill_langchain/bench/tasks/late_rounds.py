"""Tool rounds of installed-package text for the late-relevance loops: reads, greps, logs, test runs.

The late kinds need outputs the older kinds never produce (a pytest run, a service log with a
traceback) and distractor rounds that read package text rather than the standard library. Everything
quoted comes from the packages (sources, listings, ``METADATA``, the messages their loggers emit);
only the frames around it are written here: timestamps, pytest's layout, the traceback's format.
A filler round never contains a string its loop forbids (the key, the evidence), so the key is
named only where the task says it is.
"""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta

from specprefill_langchain.bench.tasks import package_sources as ps
from specprefill_langchain.bench.tasks import package_tables, sources
from specprefill_langchain.bench.tasks.rounds import Round, window

_GREP_PATTERNS = (
    "raise ValueError",
    "def __init__",
    "return None",
    "isinstance(",
    "self._",
    "import ",
    "raise TypeError",
    "logger.",
    "kwargs",
)
LOG_PATH = "logs/worker-3.log"


def read_round(
    rel: str, budget: int, rng: random.Random, anchor: int | None = None, depth: float | None = None
) -> Round:
    """``read_file(path, offset, limit)`` of a window of about ``budget`` chars, raw lines (not numbered)."""
    lines = ps.read_package(rel).splitlines()
    start, end = window(lines, budget, rng, anchor=anchor, depth=depth)
    args = {"path": ps.display_path(rel), "offset": start + 1, "limit": end - start}
    return Round("read_file", args, "\n".join(lines[start:end]))


def grep_head(hits: list[str], budget: int) -> int:
    """How many of the first ``hits`` a grep tool shows within ``budget`` chars."""
    end, used = 0, 0
    while end < len(hits) and used + len(hits[end]) + 1 <= budget:
        used += len(hits[end]) + 1
        end += 1
    return end


def grep_round(folder: str, pattern: str, budget: int) -> Round:
    """``grep -rn pattern folder``, the first hits within about ``budget`` chars and how many were left out."""
    hits = ps.grep([f for f in ps.package_files() if f.startswith(f"{folder}/")], pattern)
    end = grep_head(hits, budget - 30)
    more = [f"[{len(hits) - end} more matches]"] if end < len(hits) else []
    return Round("grep", {"pattern": pattern, "path": ps.display_path(folder)}, "\n".join([*hits[:end], *more]))


def table_round(tab: sources.Table, target: int, budget: int, rng: random.Random) -> Round:
    """A JSON window of ``tab`` (one record per line) around record ``target``."""
    lines = [sources.record_line(r) + "," for r in tab.records]
    start, end = window(lines, budget - 60, rng, anchor=target, depth=rng.uniform(0.1, 0.9))
    args = {"url": tab.url, "params": {"offset": start, "limit": end - start}}
    return Round("http_get_json", args, sources.render_table(tab, list(tab.records[start:end])))


def _filler(share: int, rng: random.Random, avoid: frozenset[str]) -> Round:
    kind = rng.choice(("read_file", "read_file", "grep", "metadata", "list_dir"))
    if kind == "grep":
        return grep_round(rng.choice(ps.source_dirs()), rng.choice(_GREP_PATTERNS), share)
    if kind == "list_dir":
        folder = rng.choice(ps.source_dirs())
        lines = ps.list_dir(folder).splitlines()
        start, end = window(lines, share, rng)
        return Round("list_dir", {"path": ps.display_path(folder)}, "\n".join(lines[start:end]))
    if kind == "metadata":
        path, text = package_tables.metadata_text(rng.choice(package_tables.distributions()))
        lines = text.splitlines()
        start, end = window(lines, share, rng)
        return Round(
            "read_file", {"path": path, "offset": start + 1, "limit": end - start}, "\n".join(lines[start:end])
        )
    files = [f for f in ps.package_files() if f not in avoid and len(ps.read_package(f)) >= share]
    return read_round(rng.choice(files), share, rng)


def filler_rounds(
    n: int, share: int, rng: random.Random, avoid: frozenset[str], forbid: tuple[str, ...]
) -> list[Round]:
    """``n`` distractor rounds of ~``share`` chars of package text, none naming a ``forbid`` string."""
    out: list[Round] = []
    for _ in range(50 * n + 50):
        if len(out) == n:
            return out
        rnd = _filler(share, rng, avoid)
        text = f"{rnd.args}\n{rnd.output}"
        if len(rnd.output) >= 0.7 * share and not any(s in text for s in forbid):
            out.append(rnd)
    if len(out) == n:
        return out
    msg = f"found only {len(out)} of {n} filler rounds of ~{share} chars that name none of {forbid}"
    raise RuntimeError(msg)


def assemble(
    own: dict[int, Round], steps: int, chars: int, rng: random.Random, avoid: frozenset[str], forbid: tuple[str, ...]
) -> tuple[Round, ...]:
    """The task's own rounds at their 1-based steps, filler rounds everywhere else."""
    fill = filler_rounds(steps - len(own), chars, rng, avoid, forbid)
    return tuple(own[i] if i in own else fill.pop(0) for i in range(1, steps + 1))


# --- a service log ------------------------------------------------------------------------------


def log_round(rng: random.Random, budget: int, insert: str, depth: float, forbid: tuple[str, ...]) -> Round:
    """``read_log`` of a service log: real package log messages, timestamped, with ``insert`` at ``depth``.

    ``insert`` is one log line or a block (a traceback); ``{ts}`` in it becomes its timestamp.
    """
    messages = [m for m in ps.log_messages() if not any(s in m[2] or s in m[0] for s in forbid)]
    entries: list[str] = []
    used = len(insert) + 1
    while True:
        logger, level, message = rng.choice(messages)
        entry = f"{{ts}} {level:<7} {logger}: {message}"
        if used + len(entry) + 20 > budget:
            break
        entries.append(entry)
        used += len(entry) + 20
    entries.insert(round(depth * len(entries)), insert)
    clock = datetime(2025, rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59))
    lines = []
    for entry in entries:
        clock += timedelta(milliseconds=rng.randint(5, 40_000))
        lines.append(entry.replace("{ts}", clock.strftime("%Y-%m-%d %H:%M:%S,") + f"{clock.microsecond // 1000:03d}"))
    return Round("read_log", {"path": LOG_PATH, "lines": len("\n".join(lines).splitlines())}, "\n".join(lines))


def traceback_text(frames: list[tuple[str, int, str]], error: str) -> str:
    """Python's traceback format for frames whose source the process could not read (no code lines)."""
    body = "".join(f'  File "{path}", line {no}, in {name}\n' for path, no, name in frames)
    return f"Traceback (most recent call last):\n{body}{error}"


# --- a pytest run -------------------------------------------------------------------------------

_DEF = re.compile(r"^\s*def ([a-z][a-z0-9_]{3,})\(", re.M)
_GOT = ("None", "[]", "{}", "0", "''", "False")
_WANT = ("['a', 'b']", "{'key': 'value'}", "3", "'expected'", "True", "[1, 2, 3]")


def unit_test_path(rel: str) -> str:
    """Where a package keeps the tests of module ``rel``: ``pkg/sub/mod.py`` -> ``tests/unit_tests/sub/test_mod.py``."""
    parts = rel.removesuffix("/__init__.py").removesuffix(".py").split("/")
    return "/".join(["tests", "unit_tests", *parts[1:-1], f"test_{parts[-1]}.py"])


def _ids(rel: str, rng: random.Random, forbid: tuple[str, ...], k: int = 4) -> list[str]:
    """Up to ``k`` test ids of module ``rel``, named after its real functions."""
    names = sorted(set(_DEF.findall(ps.read_package(rel))))
    ids = [f"{unit_test_path(rel)}::test_{n}" for n in rng.sample(names, min(len(names), k))]
    return [i for i in ids if not any(s in i for s in forbid)]


def _run_order(rng: random.Random, budget: int, rel: str, failing: str, forbid: tuple[str, ...]) -> list[str]:
    """The ids of a run of ~``budget`` chars, module by module; ``failing`` among its module's tests, mid-run."""
    own = _ids(rel, rng, forbid, 3)
    own.insert(rng.randint(0, len(own)), failing)
    files = [f for f in ps.files_of(rel.split("/")[0]) if f != rel]
    used = sum(max(80, len(i) + 16) for i in own)
    groups: list[list[str]] = []
    for f in rng.sample(files, min(len(files), 60)):
        ids = _ids(f, rng, forbid)
        cost = sum(max(80, len(i) + 16) for i in ids)
        if used + cost > budget:
            break
        groups.append(ids)
        used += cost
    groups.insert(rng.randint(len(groups) // 4, max(len(groups) // 4, 3 * len(groups) // 4)), own)
    return [i for g in groups for i in g]


def _failure(rng: random.Random, rel: str, func: str) -> list[str]:
    """pytest's report of the failing test (its assertion explained) and its summary line."""
    got, want = rng.choice(_GOT), rng.choice(_WANT)
    alias = ps.module_name(rel).rsplit(".", 1)[-1]
    fn = f"<function {func} at 0x7f{rng.getrandbits(40):010x}>"
    where = f"<module '{ps.module_name(rel)}' from '{ps.app_path(rel)}'>.{func}"
    return [
        " FAILURES ".center(80, "="),
        f" test_{func} ".center(80, "_"),
        "",
        f"    def test_{func}(case: Case) -> None:",
        f">       assert {alias}.{func}(*case.args, **case.kwargs) == case.expected",
        f"E       AssertionError: assert {got} == {want}",
        f"E        +  where {got} = {fn}(*(), **{{}})",
        f"E        +    where {fn} = {where}",
        f"E        +  and   {want} = <Case {func}-{rng.randint(0, 9)}>.expected",
        "",
        f"{unit_test_path(rel)}:{rng.randint(20, 400)}: AssertionError",
        " short test summary info ".center(80, "="),
        f"FAILED {unit_test_path(rel)}::test_{func} - AssertionError: assert {got} == {want}",
    ]


def pytest_round(rng: random.Random, budget: int, rel: str, func: str, forbid: tuple[str, ...]) -> Round:
    """``run_tests``: pytest ``-v``, all passed but ``test_<func>``, whose failure names ``func`` and its module."""
    failure = _failure(rng, rel, func)
    failing = f"{unit_test_path(rel)}::test_{func}"
    run = _run_order(rng, budget - sum(len(x) + 1 for x in failure) - 450, rel, failing, (*forbid, func))
    body = []
    for k, test in enumerate(run, 1):
        left, pct = f"{test} {'FAILED' if test == failing else 'PASSED'}", f"[{100 * k // len(run):>3}%]"
        body.append(left + " " * max(1, 80 - len(left) - len(pct)) + pct)
    head = [
        " test session starts ".center(80, "="),
        f"platform linux -- Python 3.11.9, pytest-8.3.4, pluggy-1.5.0 -- {ps.APP_ROOT}/.venv/bin/python",
        f"rootdir: {ps.APP_ROOT}",
        "configfile: pyproject.toml",
        f"collecting ... collected {len(run)} items",
        "",
    ]
    tail = f" 1 failed, {len(run) - 1} passed in {rng.uniform(1.5, 30):.2f}s ".center(80, "=")
    text = "\n".join([*head, *body, "", *failure, tail])
    return Round("run_tests", {"path": "tests/unit_tests", "options": "-v"}, text)
