"""What ``bench fleet`` checks and measures, from the recorded model inputs and the PostgreSQL tables.

A fleet thread is compared with the reference run of the same task (one process, uninterrupted):

* every model input it produced, on any worker, including a worker killed right after producing it,
  must equal the reference's input at the same call index, byte for byte (as JSON);
* its final state must hold the same messages (``lost_messages``: reference messages missing,
  ``extra_messages``: messages the reference does not have), every tool call answered by its
  ToolMessage (``orphaned_tool_calls``), and the same frozen forms. Message ids are random per run, so
  frozen forms are compared by the position of the message they belong to; an entry whose id names
  no message of the state is ``stale_frozen``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any


def load_inputs(inputs_dir: str | Path, thread: str) -> dict[int, list[str]]:
    """Every recorded model input of ``thread``, by call index, oldest first (as JSON text)."""
    folder = Path(inputs_dir) / thread.replace("/", "_")
    out: dict[int, list[tuple[int, str]]] = {}
    for f in folder.glob("*.json") if folder.is_dir() else ():
        k, _pid, ns = f.stem.split("-")
        out.setdefault(int(k), []).append((int(ns), f.read_text()))
    return {k: [text for _, text in sorted(v)] for k, v in sorted(out.items())}


def orphaned_tool_calls(rows: list[list[Any]]) -> int:
    """Tool calls of AI messages that no ToolMessage of the state answers. Rows: [id, type, content, calls, call_id]."""
    answered = {r[4] for r in rows if r[1] == "tool"}
    return sum(1 for r in rows if r[1] == "ai" for call in (r[3] or []) if call["id"] not in answered)


def frozen_positions(state: dict[str, Any]) -> tuple[list[tuple[int, str, Any]], int]:
    """The frozen forms as (message position, digest, content), and how many name no message."""
    pos = {row[0]: i for i, row in enumerate(state["messages"])}
    placed = [(pos[ref], v.get("digest"), v.get("content")) for ref, v in state["frozen"].items() if ref in pos]
    return sorted(placed, key=lambda t: t[0]), len(state["frozen"]) - len(placed)


def _rows(state: dict[str, Any]) -> Counter[str]:
    return Counter(json.dumps(row[1:], sort_keys=True) for row in state["messages"])


def thread_report(
    ref_inputs: dict[int, list[str]], ref_state: dict[str, Any], inputs: dict[int, list[str]], state: dict[str, Any]
) -> dict[str, Any]:
    """How one fleet thread compares with the reference thread of its task."""
    got = [(k, x) for k, xs in inputs.items() for x in xs]
    identical = sum(1 for k, x in got if k in ref_inputs and x == ref_inputs[k][0])
    ref_rows, rows = _rows(ref_state), _rows(state)
    frozen, stale = frozen_positions(state)
    ref_frozen, _ = frozen_positions(ref_state)
    report = {
        "inputs": len(got),
        "inputs_identical": identical,
        "missing_calls": sorted(set(ref_inputs) - set(inputs)),
        "lost_messages": sum((ref_rows - rows).values()),
        "extra_messages": sum((rows - ref_rows).values()),
        "orphaned_tool_calls": orphaned_tool_calls(state["messages"]),
        "frozen_equal": frozen == ref_frozen,
        "frozen_forms": len(frozen),
        "stale_frozen": stale,
        "finished": not state["next"],
    }
    report["resumed_identical"] = (
        identical == len(got)
        and not report["missing_calls"]
        and report["frozen_equal"]
        and not report["lost_messages"]
        and not report["extra_messages"]
        and report["finished"]
    )
    return report


def checkpoint_bytes(url: str, thread_like: str, channels: tuple[str, ...], steps: int) -> dict[str, Any]:
    """Bytes per model call of each channel, in ``checkpoint_blobs`` and in ``checkpoint_writes``.

    ``checkpoint_blobs`` holds a channel's *whole value* once per version (a new version each time it
    changes): what the database keeps and a resuming worker reads, growing with the history.
    ``checkpoint_writes`` holds each task's *increment* (the new AI/Tool message, the newly frozen
    forms): what a step adds. Both are summed over the threads matching ``thread_like`` (SQL LIKE).
    """
    import psycopg  # lazily: the bench CLI imports this module without the `postgres` extra

    out: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("checkpoint_blobs", "checkpoint_writes"):
            rows = conn.execute(
                f"SELECT channel, count(*), coalesce(sum(octet_length(blob)), 0) FROM {table} "
                "WHERE thread_id LIKE %s AND channel = ANY(%s) GROUP BY channel",
                (thread_like, list(channels)),
            ).fetchall()
            found = {ch: (int(n), int(b)) for ch, n, b in rows}
            out[table] = {ch: round(found.get(ch, (0, 0))[1] / max(1, steps)) for ch in channels}
            out[table + "_rows"] = {ch: found.get(ch, (0, 0))[0] for ch in channels}
    return out


def forks(url: str, thread: str) -> int:
    """Checkpoints of ``thread`` that share their parent with another one: branches two writers made."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM checkpoints WHERE thread_id = %s "
            "GROUP BY coalesce(parent_checkpoint_id, '')) AS g",
            (thread,),
        ).fetchone()
    return int(row[0]) if row else 0


def checkpoint_rows(url: str, thread: str) -> dict[str, int]:
    """How many checkpoints and pending writes of ``thread`` the database holds (what a crash left)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        n = conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = %s", (thread,)).fetchone()
        w = conn.execute("SELECT count(*) FROM checkpoint_writes WHERE thread_id = %s", (thread,)).fetchone()
    return {"checkpoints": int(n[0]) if n else 0, "writes": int(w[0]) if w else 0}


def cache_delta(before: list[dict[str, Any]], after: list[dict[str, Any]], events: list[dict[str, Any]]) -> dict:
    """The draft KV cache over one phase: lookups that hit, and the share of draft tokens taken from it."""
    d = {
        k: sum(
            a["cache"][k] - (b["cache"][k] if a["pid"] == b["pid"] else 0) for a, b in zip(after, before, strict=True)
        )
        for k in ("lookups", "hits")
    }  # a respawned worker (another pid) counts from zero
    reused = sum(e.get("reused_tokens") or 0 for e in events)
    prefilled = sum(e.get("prefilled_tokens") or 0 for e in events)
    return {
        **d,
        "hit_rate": round(d["hits"] / d["lookups"], 4) if d["lookups"] else 0.0,
        "tokens_reused": reused,
        "tokens_prefilled": prefilled,
        "tokens_reused_share": round(reused / (reused + prefilled), 4) if reused + prefilled else 0.0,
    }


__all__ = [
    "cache_delta",
    "checkpoint_bytes",
    "checkpoint_rows",
    "forks",
    "frozen_positions",
    "load_inputs",
    "orphaned_tool_calls",
    "thread_report",
]
