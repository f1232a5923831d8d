"""The one JSON object of ``bench fleet``: the checks of every phase and fault, then the metrics."""

from __future__ import annotations

import time
from typing import Any

from specprefill_langchain.bench.runs.fleet_checks import checkpoint_bytes


def _phase_checks(reports: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "threads": len(reports),
        "inputs": sum(r["inputs"] for r in reports),
        "inputs_identical": sum(r["inputs_identical"] for r in reports),
        "frozen_equal": sum(r["frozen_equal"] for r in reports),
        "lost_messages": sum(r["lost_messages"] for r in reports),
        "extra_messages": sum(r["extra_messages"] for r in reports),
        "orphaned_tool_calls": sum(r["orphaned_tool_calls"] for r in reports),
        "stale_frozen": sum(r["stale_frozen"] for r in reports),
        "all_identical": all(r["resumed_identical"] for r in reports),
    }


def _frozen_bytes(fleet: Any, steps: int) -> dict[str, Any]:
    """Checkpoint bytes per model call of the frozen forms vs the messages, over the reference threads.

    Both tables are reported (``fleet_checks.checkpoint_bytes`` says what each holds); the ratios are
    frozen / messages. Measured on the reference threads: one uninterrupted writer per thread, so no
    branch of a race or a retry adds rows.
    """
    from specprefill_langchain import FROZEN_KEY

    raw = checkpoint_bytes(fleet.url, f"{fleet.nonce}:ref:%", ("messages", FROZEN_KEY), steps)
    blobs, writes = raw["checkpoint_blobs"], raw["checkpoint_writes"]

    def ratio(d: dict[str, int]) -> float | None:
        return round(d[FROZEN_KEY] / d["messages"], 4) if d["messages"] else None

    return {
        "channel": FROZEN_KEY,
        "blob_bytes_per_step": blobs,
        "write_bytes_per_step": writes,
        "blob_rows": raw["checkpoint_blobs_rows"],
        "write_rows": raw["checkpoint_writes_rows"],
        "frozen_to_messages_blobs": ratio(blobs),
        "frozen_to_messages_writes": ratio(writes),
    }


def _postgres_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def _config(fleet: Any) -> dict[str, Any]:
    a, w = fleet.args, fleet.args.workers
    keys = ("workers", "threads", "steps", "output_chars", "seed", "fault_at", "dtype")
    return {
        **{k: getattr(a, k) for k in keys},
        "faults": list(a.faults),
        "cores": fleet.cores,
        "torch_threads": {
            "1": fleet.torch_threads(1),
            str(w): fleet.torch_threads(w),
            "reference": fleet.torch_threads(w),
        },
        "draft": "smollm2-135m",
        "keep_ratio": 0.3,
        "mode": "stable",
        "draft_dtype": fleet.draft_dtype,  # what "auto" resolved to: bfloat16 where the CPU computes it
        "tasks": [t.id for t in fleet.tasks],
        "postgres": _postgres_version(fleet.url),
    }


def _faults_ok(faults: dict[str, dict[str, Any]]) -> bool:
    return all(
        f["resumed_identical"] and not f["orphaned_tool_calls"] and not f["lost_messages"] for f in faults.values()
    )


def summary(
    fleet: Any,
    ref: dict[str, Any],
    phases: dict[str, dict[str, Any]],
    faults: dict[str, dict[str, Any]],
    rss: list[float],
    ref_rss: float,
    respawns: int,
    t0: float,
) -> dict[str, Any]:
    """Every check and metric of a run (see the ``fleet`` module docstring)."""
    w = fleet.args.workers
    checks = {name: _phase_checks(fleet.compare(ref, ph)) for name, ph in phases.items()}
    inputs = sum(c["inputs"] for c in checks.values()) + sum(f["inputs"] for f in faults.values())
    same = sum(c["inputs_identical"] for c in checks.values()) + sum(f["inputs_identical"] for f in faults.values())
    ref_steps = sum(r.calls for r in ref["runs"])
    return {
        "config": _config(fleet),
        "identical_share": round(same / inputs, 4) if inputs else 0.0,
        "inputs_compared": inputs,
        "checks": checks,
        "faults": faults,
        "steps_per_min": {"1": ref["steps_per_min_solo"], str(w): phases["random"]["steps_per_min"]},
        "steps_per_min_affinity": {str(w): phases["affinity"]["steps_per_min"]},
        "kv_hit_rate": {name: ph["cache"] for name, ph in phases.items()},
        "kv_hit_rate_reference": ref["cache"],
        "peak_rss_mb": {
            "per_worker": [round(x, 1) for x in rss],
            "max": round(max(rss), 1),
            "reference_worker": round(ref_rss, 1),
        },
        "frozen_bytes_vs_messages": _frozen_bytes(fleet, ref_steps),
        "respawns": respawns,
        "all_checks_passed": same == inputs and all(c["all_identical"] for c in checks.values()) and _faults_ok(faults),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


__all__ = ["summary"]
