"""Real text of installed packages (not the standard library), for the late-relevance agent loops.

The older loop kinds read the standard library; held-out loops will be built from other text, so the
late kinds read what this project installs into its environment: package sources, matplotlib's
``matplotlibrc`` and style files, and the log messages the packages really emit (the tables built from
``importlib.metadata`` are in :mod:`package_tables`). Files are found with ``importlib.util.find_spec``
(no package is imported), read once (``functools.cache``), and listed in sorted order, so a seed gives
the same text on one installation. Tests folders, vendored and generated files are skipped.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path

# Packages the project installs (core, agents and bench extras); torch is left out: its tree is huge.
_CORE = ("langchain_core", "langgraph", "langchain", "transformers", "accelerate", "gguf", "tqdm", "regex")
PACKAGES = (*_CORE, "matplotlib")  # matplotlib: the bench extra
_SKIP_DIRS = frozenset({"tests", "test", "testing", "__pycache__", "_vendor", "vendor", "models", "mpl-data"})
_GENERATED = ("automatically generated", "DO NOT EDIT")
SITE = f".venv/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
APP_ROOT = "/srv/app"  # where the service runs; its tracebacks and logs name this folder


@functools.cache
def site_root() -> Path:
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            return Path(next(iter(spec.submodule_search_locations))).parent
    msg = f"none of {PACKAGES} is installed; the late-relevance loops read their files"
    raise RuntimeError(msg)


def display_path(rel: str) -> str:
    """A machine-independent path, as an agent working in the service's checkout sees it."""
    return f"{SITE}/{rel}"


def app_path(rel: str) -> str:
    """The absolute path a traceback of the running service names."""
    return f"{APP_ROOT}/{SITE}/{rel}"


def module_name(rel: str) -> str:
    return rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


@functools.cache
def read_package(rel: str) -> str:
    return (site_root() / rel).read_text(encoding="utf-8", errors="replace").replace("\f", "")


def _generated(path: Path) -> bool:
    with path.open(encoding="utf-8", errors="replace") as f:
        head = f.read(1500)
    return any(mark in head for mark in _GENERATED)


@functools.cache
def package_files() -> tuple[str, ...]:
    """Relative paths (``pkg/sub/mod.py``) of ordinary sources of the installed :data:`PACKAGES`, sorted."""
    root, found = site_root(), []
    for name in PACKAGES:
        top = root / name
        if importlib.util.find_spec(name) is None or not top.is_dir():
            continue
        for path in sorted(top.rglob("*.py")):
            parts = path.relative_to(root).parts
            if _SKIP_DIRS.isdisjoint(parts[1:-1]) and path.stat().st_size > 400 and not _generated(path):
                found.append("/".join(parts))
    return tuple(found)


def files_of(package: str) -> tuple[str, ...]:
    return tuple(f for f in package_files() if f.split("/")[0] == package)


@functools.cache
def source_dirs() -> tuple[str, ...]:
    """Folders holding at least three sources: what a grep or a listing is pointed at."""
    counts: dict[str, int] = {}
    for rel in package_files():
        folder = rel.rsplit("/", 1)[0]
        counts[folder] = counts.get(folder, 0) + 1
    return tuple(d for d, n in sorted(counts.items()) if n >= 3)


def list_dir(rel_dir: str) -> str:
    """An ``ls -l``-like listing (size and name) of a real package folder."""
    lines = []
    for path in sorted((site_root() / rel_dir).iterdir()):
        if path.name == "__pycache__":
            continue
        size = path.stat().st_size if path.is_file() else 4096
        lines.append(f"{'d' if path.is_dir() else '-'}rw-r--r--  {size:>8}  {path.name}")
    return "\n".join(lines)


def grep(files: list[str] | tuple[str, ...], pattern: str) -> list[str]:
    """``grep -n`` over ``files``: ``path:line:text`` hits, paths as :func:`display_path` writes them."""
    return [
        f"{display_path(rel)}:{no}:{line}"
        for rel in files
        for no, line in enumerate(read_package(rel).splitlines(), 1)
        if pattern in line
    ]


# --- functions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FuncDef:
    rel: str
    name: str
    line_no: int  # 0-based, the def line
    end_no: int  # 0-based, the function's last line
    line: str  # the def line, stripped of indentation
    params: tuple[str, ...]
    defaults: tuple[tuple[str, str], ...]  # (parameter, default as written on the def line), guessable ones left out


# Defaults a model would guess without reading the source; a question about them tests nothing.
_GUESSABLE = frozenset({"None", "True", "False", "0", "1", "''", '""', "()", "[]", "{}"})


def _defaults(f: ast.FunctionDef | ast.AsyncFunctionDef, raw: bytes) -> tuple[tuple[str, str], ...]:
    a = f.args
    positional = [*a.posonlyargs, *a.args][len(a.posonlyargs) + len(a.args) - len(a.defaults) :]
    pairs = [*zip(positional, a.defaults, strict=True)]
    pairs += [(p, d) for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is not None]
    written = [
        (p.arg, raw[d.col_offset : d.end_col_offset].decode())
        for p, d in pairs
        if d.lineno == d.end_lineno == f.lineno and d.end_col_offset is not None
    ]
    return tuple((p, v) for p, v in written if v not in _GUESSABLE)


@functools.cache
def _functions(rel: str) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, ...]:
    try:
        tree = ast.parse(read_package(rel))
    except SyntaxError:
        return ()
    return tuple(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))


@functools.cache
def function_defs(rel: str) -> tuple[FuncDef, ...]:
    """One-line ``def`` statements whose name and line are unique in the file, with distinctive names."""
    src = read_package(rel)
    lines = src.splitlines()
    funcs = _functions(rel)
    names = [f.name for f in funcs]
    found = []
    for f in funcs:
        line = lines[f.lineno - 1].strip()
        if not (line.endswith(":") and f"def {f.name}(" in line and len(line) < 150) or f.name.startswith("__"):
            continue
        if names.count(f.name) != 1 or src.count(line) != 1 or len(f.name) < 6 or f.end_lineno is None:
            continue
        params = tuple(p.arg for p in [*f.args.posonlyargs, *f.args.args, *f.args.kwonlyargs])
        defaults = _defaults(f, lines[f.lineno - 1].encode())
        found.append(FuncDef(rel, f.name, f.lineno - 1, f.end_lineno - 1, line, params, defaults))
    return tuple(found)


@dataclass(frozen=True)
class NoneSite:
    """A line of function ``func`` that reads an attribute of ``expr``: where ``expr`` being None would raise."""

    func: FuncDef
    line_no: int  # 0-based
    expr: str  # as written, rooted at a parameter: ``config`` or ``self._client``
    attr: str


def _expr(node: ast.expr, params: tuple[str, ...]) -> bool:
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name) and node.id in params


def none_sites(rel: str) -> tuple[NoneSite, ...]:
    """Attribute reads ``expr.attr`` in :func:`function_defs`, ``expr`` a parameter (``self`` only dotted).

    The line is unique in the file and holds ``expr.attr`` once; nested functions are left out.
    """
    src = read_package(rel)
    lines, raw = src.splitlines(), src.encode().splitlines()
    nodes = {(f.lineno - 1, f.name): f for f in _functions(rel)}
    found = []
    for d in function_defs(rel):
        f = nodes[(d.line_no, d.name)]
        scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
        inner = [(n.lineno, n.end_lineno or n.lineno) for n in ast.walk(f) if n is not f and isinstance(n, scopes)]
        for n in ast.walk(f):
            if not (isinstance(n, ast.Attribute) and n.lineno == n.end_lineno and n.lineno > f.lineno):
                continue
            if any(a <= n.lineno <= b for a, b in inner) or not _expr(n.value, d.params):
                continue
            expr = raw[n.lineno - 1][n.value.col_offset : n.value.end_col_offset].decode(errors="replace")
            line = lines[n.lineno - 1]
            if expr in ("self", "cls") or len(line.strip()) < 20 or src.count(line.strip()) != 1:
                continue
            if line.count(f"{expr}.") == 1 and line.count(f".{n.attr}") == 1:
                found.append(NoneSite(d, n.lineno - 1, expr, n.attr))
    return tuple(found)


# --- configuration files and log messages --------------------------------------------------------

_RC_LINE = re.compile(r"^#?([a-z][a-z0-9_.\-]*\.[a-z0-9_.\-]+)\s*:\s*([^#\s][^#]*?)\s*(?:#.*)?$")


@functools.cache
def config_files() -> tuple[str, ...]:
    """matplotlib's ``matplotlibrc`` and its long style files (relative paths), if matplotlib is installed."""
    if importlib.util.find_spec("matplotlib") is None:
        return ()
    data = site_root() / "matplotlib" / "mpl-data"
    paths = [data / "matplotlibrc", *sorted((data / "stylelib").glob("*.mplstyle"))]
    return tuple(str(p.relative_to(site_root())) for p in paths if p.is_file() and p.stat().st_size > 8000)


@functools.cache
def config_entries(rel: str) -> tuple[tuple[int, str, str, str], ...]:
    """(0-based line, line, key, value) of ``key: value`` lines whose key is named nowhere else in the file."""
    text = read_package(rel)
    out = []
    for no, line in enumerate(text.splitlines()):
        m = _RC_LINE.match(line)
        if m and text.count(m.group(1)) == 1 and text.count(line) == 1:
            out.append((no, line, m.group(1), m.group(2)))
    return tuple(out)


_LOG_CALL = re.compile(
    r"""\b(?:logger|_log|log|LOGGER|_logger)\.(debug|info|warning|error)\(\s*(["'])([^"'\n%{}\\]{15,140})\2\s*\)"""
)


@functools.cache
def log_messages() -> tuple[tuple[str, str, str], ...]:
    """(logger, level, message) of constant log calls in the packages' sources: what their logs really say."""
    return tuple(
        (module_name(rel), m.group(1).upper(), m.group(3).strip())
        for rel in package_files()
        for m in _LOG_CALL.finditer(read_package(rel))
    )
