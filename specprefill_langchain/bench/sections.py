"""Report sections of the agent-loop benchmarks: cost under prompt caches, scoring depth, long histories."""

from __future__ import annotations

import itertools
from typing import Any

from specprefill_langchain.bench.intervals import format_rate


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table; floats to 3 significant digits, None as a dash."""

    def cell(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else "–" if v is None else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]


def note(res: dict[str, Any]) -> str:
    """A run's note (``bench ... --note``: how it was made), as a sentence for a section's intro."""
    return f" Note: {res['note']}." if res.get("note") else ""


def section(res: dict[str, Any], title: str, intro: str, head: list[str], rows: list[list[Any]]) -> list[str]:
    """A report section: the title, the intro with the run's :func:`note`, and the table."""
    return [f"## {title}", "", intro + note(res), "", *table(head, rows), ""]


def merged_depth(results: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """The ``depth`` section with every ``depth_*`` section (a depth run on its own) that measured the
    same tasks the same way (every config key but ``depths`` equal), and the names merged in.

    One table then holds every depth of those tasks, and the shallowest depth within 2 points of full
    depth is chosen over all of them; a later run's rows replace an earlier run's at the same depth.
    """
    from specprefill_langchain.bench.runs.depth import shallowest_within  # light: loads no model

    base = results.get("depth")
    if not isinstance(base, dict) or "error" in base:
        return None, []

    def same_tasks(cfg: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in (cfg or {}).items() if k != "depths" and v is not None}  # None: a default

    merged, rows, notes = [], {}, [base.get("note")]  # the base's note, then each merged run's, named
    for name in ["depth", *sorted(k for k in results if k.startswith("depth_"))]:
        res = results[name]
        if name != "depth" and (
            not isinstance(res, dict) or same_tasks(res.get("config")) != same_tasks(base.get("config"))
        ):
            continue
        merged.append(name)
        notes.append(f"{name}: {res['note']}" if name != "depth" and res.get("note") else None)
        for r in res.get("results", []):
            rows[(r["draft"], r["depth"], r["keep_ratio"], r["task"])] = {**r, "run": name}
    out = {**base, "results": list(rows.values())}
    drafts = sorted({r["draft"] for r in out["results"]})
    out["shallowest_within_2_points"] = {d: shallowest_within(out["results"], d) for d in drafts}
    out["note"] = "; ".join(n for n in notes if n) or None
    return out, merged[1:]


def depth_section(
    res: dict[str, Any], title: str = "Early-layer scoring", dates: dict[str, str] | None = None
) -> list[str]:
    """Retention per draft and depth; with ``dates`` (section name -> date), a column says which run
    measured each row (rows of merged runs: :func:`merged_depth`)."""
    rows = [r for r in res.get("results", []) if r.get("task") == "overall"]
    if not rows:
        return []
    keeps = sorted({r["keep_ratio"] for r in rows}, reverse=True)
    body = []
    for (draft, depth), group in itertools.groupby(
        sorted(rows, key=lambda r: (r["draft"], -r["depth"])), key=lambda r: (r["draft"], r["depth"])
    ):
        by_keep = {r["keep_ratio"]: r for r in group}
        first = next(iter(by_keep.values()))
        cells = [format_rate(int(by_keep[k]["retained"]), int(by_keep[k]["n"])) if k in by_keep else "" for k in keeps]
        run = [f"{first.get('run', 'depth')} ({dates.get(first.get('run', 'depth'), 'bench all')})"] if dates else []
        body.append([draft, depth, first["layers"], *cells, *run])
    chosen = res.get("shallowest_within_2_points") or {}
    intro = (
        "Evidence retention (all evidence kept verbatim) against the share of the draft's layers that run and "
        "score, on every task kind (what each depth costs is timed by `bench kv-reuse --depths`). Shallowest "
        "depth within 2 points of full depth at every keep ratio: "
        + ", ".join(f"{d}: {v if v is not None else '– (no depth 1.0 in this run)'}" for d, v in chosen.items())
        + "."
        + (f" Settings: hop_chunks={hop}." if (hop := (res.get("config") or {}).get("hop_chunks")) is not None else "")
    )
    head = ["draft", "depth", "layers", *(f"keep {k} [95 % CI] (n)" for k in keeps), *(["run (date)"] if dates else [])]
    return section(res, title, intro, head, body)


def long_history_section(res: dict[str, Any]) -> list[str]:
    rows = res.get("per_task") or []
    if not rows:
        return []
    cfg = res.get("config") or {}
    intro = (
        f"Per-step mode on transcripts of ~{cfg.get('tokens')} tokens (past the draft's context: scored in "
        f"windows), keep {cfg.get('keep_ratio')}. Evidence kept: {format_rate(int(res['retained']), int(res['n']))}. "
        "Next step: one more tool output and a new question; the earlier windows come from the KV cache."
    )
    keys = ["task", "draft_tokens", "windows", "retained", "cold_s", "next_step_new_tokens",
            "next_step_reused_tokens", "next_step_prefilled_tokens", "next_step_s"]  # fmt: skip
    return section(res, "Long histories", intro, keys, [[r.get(k) for k in keys] for r in rows])


def _rate_of(value: Any) -> str:
    """A ``{k, n}`` rate of the cost section as ``0.917 [0.74, 0.98] (n=24)``, or – where not measured."""
    return format_rate(int(value["k"]), int(value["n"])) if isinstance(value, dict) and value.get("n") else "–"


def _cost_rows(res: dict[str, Any]) -> list[list[Any]]:
    ttft = (res.get("ttft") or {}).get("arms") or {}
    rows = []
    for arm, a in res["arms"].items():
        bill, timed = a["bill_vs_full"], ttft.get(arm) or {}
        rows.append([
            arm, a["tokens_vs_full"], a.get("kept_share"),
            f"{a['prefix_stability_mean']:.3f} ({a['prefix_stability_min']:.3f})",
            bill.get("r0.1_w1.25"), bill.get("r0.1_w1.0"), format_rate(int(a["evidence_kept"]), int(a["n"])),
            _rate_of(a.get("recoverable")), _rate_of(a.get("accuracy")), a.get("rescued_chars_per_step"),
            a["draft_s_per_step"], timed.get("summed_ttft_s"), timed.get("ttft_vs_full"),
        ])  # fmt: skip
    return rows


def _cost_intro(cfg: dict[str, Any]) -> str:
    ce = cfg.get("context_editing") or {}
    return (
        f"{cfg.get('n_tasks')} agent loops ({', '.join(cfg.get('kinds') or [])}) of {cfg.get('steps')} tool steps "
        f"(~{cfg.get('output_chars', 3000)} characters of real text each) through a `create_agent` graph whose "
        "tool calls a scripted chat model makes (the tool outputs and the agent graph are real), keep "
        f"{cfg.get('keep_ratio')}, draft {cfg.get('draft')} ({cfg.get('draft_dtype')}). Tokens are the "
        f"{cfg.get('target_tokenizer')} chat template's (system prompt, tool schemas, messages), summed over the "
        "model calls. Prefix stability: per step, the longest common prefix with the previous step's input over "
        "that input's length (mean over steps and loops; minimum in brackets). Bill: per step read x cached + "
        "write x (tokens - cached), cached = that common prefix, over the uncompressed loop's bill (Anthropic-like "
        "read 0.1 / write 1.25, OpenAI-like read 0.1 / write 1.0). Evidence: every evidence string verbatim in "
        "the last model input, with its 95 % Wilson interval; recoverable: kept, or the output that held it "
        "carries the recall note (its original is in the state). Accuracy: the local target answers the loop's "
        "question from each arm's last input (where measured). Kept share: the last input's characters over the "
        "full loop's. Rescued: characters brought back per step. TTFT: the draft's seconds plus the local "
        "target's prefill with its own prefix cache, summed over the loop, and over the full loop's. Context "
        f"editing: LangChain's ClearToolUsesEdit(trigger={ce.get('trigger_tokens')}, keep={ce.get('keep')})."
    )


def cost_section(
    res: dict[str, Any], *, short: bool = False, title: str = "Agent loops under prompt caches"
) -> list[str]:
    arms = res.get("arms") or {}
    if not arms:
        return []
    head = ["arm", "tokens vs full", "kept share", "prefix stability mean (min)", "bill vs full r0.1/w1.25",
            "bill vs full r0.1/w1.0", "evidence kept [95 % CI] (n)", "recoverable", "accuracy", "rescued chars/step",
            "draft s/step", "summed TTFT s", "TTFT vs full"]  # fmt: skip
    out = section(res, title, _cost_intro(res.get("config") or {}), head, _cost_rows(res))
    ttft = res.get("ttft") or {}
    ref = (ttft.get("arms") or {}).get("full[no target cache]")
    if ref:
        out += [
            f"Summed TTFT: draft seconds plus the local target's ({ttft.get('target')}, {ttft.get('target_dtype')}) "
            f"prefill with its own prefix cache, over {len(ttft.get('tasks') or [])} loop(s); the full loop "
            f"without a target cache takes {ref['summed_ttft_s']:.3g} s.",
            "",
        ]
    kinds = res.get("per_kind") or {}
    body = [[arm, *(format_rate(int(kinds[k][arm]["evidence_kept"]), int(kinds[k][arm]["n"])) for k in kinds)]
            for arm in arms]  # fmt: skip
    out += ["Evidence kept at the final step, per kind:", "", *table(["arm", *kinds], body), ""]
    if short:
        return out
    rows = [[k, *row[:-2]] for k in kinds for row in _cost_rows({"arms": kinds[k]})]
    return [*out, "Every metric per kind and arm:", "", *table(["kind", *head[:-2]], rows), ""]


def fleet_section(res: dict[str, Any]) -> list[str]:
    """``bench fleet``: same bytes whichever worker runs a step, through faults; throughput and state size."""
    cfg = res.get("config") or {}
    if not cfg:
        return []
    w = str(cfg.get("workers"))
    intro = (
        f"{cfg.get('workers')} worker processes and one PostgreSQL {cfg.get('postgres', '').split(' ')[0]} "
        f"checkpointer serve {cfg.get('threads')} `create_agent` threads of {cfg.get('steps')} tool steps "
        f"(~{cfg.get('output_chars')} characters of real text each; a scripted chat model drives the tool "
        f"calls) at the stable defaults, draft {cfg.get('draft')} ({cfg.get('draft_dtype')}). Every step of every "
        "thread goes to a random worker, then each thread to one worker (affinity), then each fault strikes at a "
        f"step of its own thread. Identical: model inputs byte-identical to one uninterrupted run "
        f"({res.get('identical_share')} of {res.get('inputs_compared')} inputs)."
    )
    rows = [
        [
            name,
            f"{c['inputs_identical']}/{c['inputs']}",
            c["lost_messages"],
            c["orphaned_tool_calls"],
            c["frozen_equal"],
        ]
        for name, c in (res.get("checks") or {}).items()
    ]
    rows += [
        [f"fault: {name}", f"{f['inputs_identical']}/{f['inputs']}", f["lost_messages"], f["orphaned_tool_calls"],
         int(bool(f.get("frozen_equal")))]
        for name, f in (res.get("faults") or {}).items()
    ]  # fmt: skip
    head = ["phase", "inputs identical", "lost messages", "orphaned tool calls", "threads with equal frozen forms"]
    out = section(res, "Many workers on one PostgreSQL checkpointer", intro, head, rows)
    spm, kv = res.get("steps_per_min") or {}, res.get("kv_hit_rate") or {}
    size, rss = res.get("frozen_bytes_vs_messages") or {}, res.get("peak_rss_mb") or {}
    # The share of draft tokens taken from the KV cache, not the store's hit rate: a lookup that shares
    # less than one whole prefill chunk counts as a hit in the store but reuses nothing.
    reused = [(kv.get(routing) or {}).get("tokens_reused_share") for routing in ("random", "affinity")]
    metrics = [
        ["steps per minute", spm.get("1"), spm.get(w), (res.get("steps_per_min_affinity") or {}).get(w)],
        ["draft tokens from the KV cache", "–", *reused],
        ["peak RSS per worker MB", rss.get("reference_worker"), rss.get("max"), "–"],
    ]
    out += [*table(["metric", "1 worker", f"{w} workers, random", f"{w} workers, affinity"], metrics), ""]
    return [
        *out,
        f"Checkpoint bytes per step, frozen forms over the messages channel: {size.get('frozen_to_messages_blobs')} "
        f"(channel values), {size.get('frozen_to_messages_writes')} (pending writes).",
        "",
    ]
