"""Tables of the distributions installed next to the late-relevance loops' packages, and their metadata.

Built from ``importlib.metadata`` (no package is imported) over :func:`package_sources.site_root`,
one record per distribution or entry point, sorted: what an inventory API of the service's host returns.
"""

from __future__ import annotations

import functools
import importlib.metadata
from pathlib import Path

from specprefill_langchain.bench.tasks import package_sources as ps
from specprefill_langchain.bench.tasks.sources import Table


@functools.cache
def distributions() -> tuple[importlib.metadata.Distribution, ...]:
    """The distributions installed in :func:`package_sources.site_root`, one per name, sorted by name."""
    root, seen = ps.site_root().resolve(), {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and Path(str(dist.locate_file(""))).resolve() == root:
            seen.setdefault(name.lower(), dist)
    return tuple(seen[k] for k in sorted(seen))


@functools.cache
def packages_table() -> Table:
    rows = tuple(
        {"name": d.metadata["Name"], "version": d.version, "summary": (d.metadata["Summary"] or "").strip()}
        for d in distributions()
    )
    return Table(
        "python_packages", "https://inventory.internal/api/v1/hosts/worker-3/python-packages", "name", "version", rows
    )


@functools.cache
def entry_points_table() -> Table:
    eps = sorted({(e.name, e.group, e.value) for d in distributions() for e in d.entry_points})
    names = [n for n, _, _ in eps]
    rows = tuple({"name": n, "group": g, "value": v} for n, g, v in eps if names.count(n) == 1)
    return Table("entry_points", "https://inventory.internal/api/v1/hosts/worker-3/entry-points", "name", "value", rows)


def metadata_text(dist: importlib.metadata.Distribution) -> tuple[str, str]:
    """(display path, text) of a distribution's ``METADATA`` file."""
    rel = next(
        (str(p) for p in dist.files or [] if p.name == "METADATA" and p.parent.name.endswith(".dist-info")),
        f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}.dist-info/METADATA",
    )
    return ps.display_path(rel), (dist.read_text("METADATA") or "").replace("\f", "")
