"""``docs/RESULTS.md`` from the JSON of ``bench all``: tables, the exact command, the machine.

Every accuracy or retention figure is printed with its sample size and 95 % Wilson interval, e.g.
``0.917 [0.74, 0.98] (n=24)``: from the stored counts (``retained``, ``correct``) when present, else
from the stored rate and ``n`` (results written before the counts were stored).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path
from typing import Any

from specprefill_langchain.bench.intervals import format_rate, successes
from specprefill_langchain.bench.provenance import provenance
from specprefill_langchain.bench.sections import (
    cost_section,
    depth_section,
    fleet_section,
    long_history_section,
    merged_depth,
    note,
)
from specprefill_langchain.bench.sections import table as _table


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM and library versions: what a reader needs to compare numbers."""
    import torch
    import transformers

    cpu, ram_gb = platform.processor() or "unknown", None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram_gb = round(int(line.split()[1]) / 1024**2, 1)
                break
    except OSError:
        pass  # not Linux: keep what platform gives
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ram_gb": ram_gb,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _label(row: dict[str, Any]) -> str:
    return f"{row['method']} [{row['draft']}]" if row.get("draft") else str(row["method"])


def _retention(row: dict[str, Any]) -> str:
    n = int(row["n"])
    k = row.get("retained")
    return format_rate(int(k) if k is not None else successes(row["retention"], n), n)


def _fidelity(res: dict[str, Any], title: str) -> list[str]:
    rows = [r for r in res.get("results", []) if r["task"] == "overall"]
    if not rows:
        return []
    ratios = sorted({r["keep_ratio"] for r in rows})
    grid: dict[str, dict[float, str]] = {}
    for r in rows:
        grid.setdefault(_label(r), {})[r["keep_ratio"]] = _retention(r)
    body = [[m, *(grid[m].get(k) for k in ratios)] for m in grid]
    sizes = sorted({r["n"] for r in rows})
    intro = (
        f"Evidence retention (all evidence kept verbatim) over {', '.join(map(str, sizes))} tasks, "
        "with its 95 % Wilson interval."
    )
    out = [f"## {title}", "", intro, ""]
    return [*out, *_table(["method", *(f"keep {k}" for k in ratios)], body), *_skipped(res), ""]


def _skipped(res: dict[str, Any]) -> list[str]:
    return (
        ["", *(f"- skipped {s.get('method') or s.get('target')}: {s['reason']}" for s in res["skipped"])]
        if res.get("skipped")
        else []
    )


def _arms(res: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (target, arm); derived from the per-method rows of results written before arms."""
    if res.get("arms"):
        return list(res["arms"])
    arms: list[dict[str, Any]] = []
    for r in res.get("results", []):
        n, target = int(r["n"]), r["target"]
        if not any(a["target"] == target and a["arm"] == "full" for a in arms):
            k = r["correct_full"] if "correct_full" in r else successes(r["accuracy_full"], n)
            arms.append({"target": target, "arm": "full", "draft": None, "keep_ratio": None, "n": n, "correct": k})
        k = r["correct"] if "correct" in r else successes(r["accuracy_compressed"], n)
        arm = {"target": target, "arm": r["method"], "draft": r.get("draft"), "keep_ratio": r["keep_ratio"]}
        arms.append({**arm, "n": n, "correct": k})
    return arms


def _accuracy(res: dict[str, Any]) -> list[str]:
    rows = [
        [a["target"], _label({"method": a["arm"], "draft": a.get("draft")}), a.get("keep_ratio"),
         format_rate(int(a["correct"]), int(a["n"]))]
        for a in _arms(res)
    ]  # fmt: skip
    intro = (
        "Share of replies that contain the gold answer, with its 95 % Wilson interval; "
        "every arm of a target answers the same tasks."
        + (f" Transcripts of ~{res['tokens']} tokens, kinds {', '.join(res['kinds'])}." if res.get("tokens") else "")
        + note(res)
    )
    head = ["target", "arm", "keep", "accuracy [95 % CI] (n)"]
    return ["## Target answer accuracy", "", intro, "", *_table(head, rows), *_skipped(res), ""]


def _latency(res: dict[str, Any]) -> list[str]:
    rows = [[_label(r), r["seconds_median"], r["n"]] for r in res.get("results", [])]
    intro = f"~{res['tokens']} tokens per transcript, keep {res['keep_ratio']}; {res['note']}."
    return ["## Compression latency", "", intro, "", *_table(["method", "median s", "n"], rows), *_skipped(res), ""]


def _agent(res: dict[str, Any]) -> list[str]:
    eff = res["efficiency"]
    parts = res["draft_parts_s"]
    head = ["draft s", "prefill s", "scoring s", "hop s", "target cached s (full loop)",
            "draft / target cached step", "last step", "summed TTFT full s", "summed TTFT stable s"]  # fmt: skip
    row = [res["draft_s"], parts["prefill"], parts["scoring"], parts["hop"], res["target_cached_full_s"],
           res["draft_vs_target_cached_step"], res["draft_vs_target_cached_step_last"],
           res["summed_ttft_full_s"], res["summed_ttft_stable_s"]]  # fmt: skip
    eff_head = ["part", "GFLOP", "GFLOP/s", "matmul ceiling GFLOP/s", "share of ceiling"]
    eff_rows = [
        ["draft prefill", eff["draft_prefill_gflops"], eff["draft_prefill_gflop_s"],
         eff["draft_matmul_ceiling_gflop_s"], eff["draft_prefill_share_of_ceiling"]],
        ["target cached prefill", eff["target_cached_gflops"], eff["target_cached_gflop_s"],
         eff["target_matmul_ceiling_gflop_s"], eff["target_share_of_ceiling"]],
    ]  # fmt: skip
    intro = (
        f"One `create_agent` loop ({res['task']}, {res['steps']} tool steps of ~{res['output_chars']} characters, "
        f"a scripted model driving the tool calls), uncompressed and at the shipping defaults (keep "
        f"{res['keep_ratio']}, draft {res['draft']} {res['dtype']}). The baseline is the target "
        f"{res['target']} ({res['target_dtype']}) *with* its own prefix cache: each step of the uncompressed "
        f"loop prefills only the tokens it adds. Sums over the {res['steps_with_draft']} steps that ran the "
        f"draft; TTFT summed over every model call. Peak RSS {res['peak_rss_mb']} MB, {res['torch_threads']} "
        "torch threads." + note(res)
    )
    steps = [
        [r["step"], r["draft_new_tokens"], r["draft_s"], r["draft_prefill_s"], r["draft_scoring_s"], r["draft_hop_s"],
         r["target_new_tokens_full"], r["target_cached_full_s"], r["target_new_tokens_stable"],
         r["target_cached_stable_s"]]
        for r in res["per_step"]
    ]  # fmt: skip
    step_head = ["step", "draft new tok", "draft s", "prefill s", "scoring s", "hop s", "target new tok full",
                 "target cached s full", "target new tok stable", "target cached s stable"]  # fmt: skip
    return ["## Agent step: the draft's step against the target's cached step", "", intro, "",
            *_table(head, [row]), "", *_table(eff_head, eff_rows), "", *_table(step_head, steps), ""]  # fmt: skip


def _agent_short(res: dict[str, Any]) -> list[str]:
    # Title, intro and the two summary tables; the per-step rows stay in RESULTS.md.
    return [*_agent(res)[:12], ""]


def _kv(res: dict[str, Any]) -> list[str]:
    keys = ["history_tokens", "append_tokens", "dtype", "depth_layers", "scratch_s", "incremental_s", "speedup",
            "flop_ceiling", "full_depth_prefill_s", "step_vs_full_prefill", "plain_prefill_s", "scoring_overhead",
            "max_abs_score_diff"]  # fmt: skip
    rows = res["runs"] if isinstance(res.get("runs"), list) else [res]
    intro = [note(res).strip(), ""] if res.get("note") else []
    return ["## Draft KV reuse", "", *intro, *_table(keys, [[r.get(k) for k in keys] for r in rows]), ""]


def render(results: dict[str, Any], command: str, base: Path | None = None, *, short: bool = False) -> str:
    """The Markdown report; ``short`` is the README's version (no per-step table, smaller headings)."""
    lines = [] if short else ["# Benchmark results", ""]
    lines += [
        "Generated from `docs/results.json` by `specprefill bench report`. Under each section: the command",
        "that measured it and its date; every section was measured at the library's defaults of that date",
        "(tests/test_readme_figures.py checks they are today's).",
        "",
    ]
    m = results.get("machine")  # never this machine's: the render must depend on the file only
    lines += ["Machine: " + (", ".join(f"{k} {v}" for k, v in m.items()) if m else "not recorded"), ""]
    depth, depth_merged = merged_depth(results)  # depth runs of the same tasks share one table
    sections = [
        ("fidelity", lambda r: _fidelity(r, "Fidelity")),
        ("fidelity_peers", lambda r: _fidelity(r, "Fidelity against LLMLingua (subset)")),
        ("fidelity_drafts", lambda r: _fidelity(r, "Fidelity with other drafts")),
        ("accuracy", _accuracy),
        ("latency", _latency),
        ("agent_step", _agent_short if short else _agent),
        ("kv_reuse", _kv),
        ("cost", lambda r: cost_section(r, short=short)),
        ("cost_ttft", lambda r: cost_section(r, short=True, title="Agent loops: time to first token, local target")),
        ("depth", lambda r: depth_section(r, dates=results.get("dates") or {"depth": "bench all"})),
        *(
            (k, lambda r, k=k: depth_section(r, title=f"Early-layer scoring, other tasks or settings (`{k}`)"))
            for k in sorted(results)
            if k.startswith("depth_") and k not in depth_merged
        ),
        ("long_history", long_history_section),
        ("fleet", fleet_section),
    ]
    for key, fn in sections:
        res = depth if key == "depth" and depth is not None else results.get(key)
        if isinstance(res, dict) and "error" in res:
            lines += [f"## {key}", "", f"failed: {res['error']}", ""]
        elif isinstance(res, dict):
            part = fn(res)
            lines += [*part[:2], provenance(results, key), "", *part[2:]] if part else []
    plots = results.get("plots") or []
    lines += (
        ["## Plots", "", *(f"![{Path(p).stem}]({os.path.relpath(p, base or Path.cwd())})" for p in plots), ""]
        if plots
        else []
    )
    if short:  # the README's own headings are one level up
        lines = [f"#{line}" if line.startswith("## ") else line for line in lines]
    return "\n".join(lines)


def report_text(results: dict[str, Any], base: Path) -> str:
    """The exact text of ``docs/RESULTS.md`` for ``results`` (links relative to ``base``)."""
    return render(results, str(results.get("command") or ""), base)


def write_report(results: dict[str, Any], path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report_text(results, out.parent))
    return out


README_START = "<!-- bench-results:start -->"
README_END = "<!-- bench-results:end -->"


def readme_block(results: dict[str, Any], base: Path) -> str:
    """The exact text between the README's two markers (what :func:`update_readme` writes)."""
    note = "<!-- written by `bench all` / `bench report`; edit the benchmark, not this block -->"
    command = str(results.get("command") or "python -m specprefill_langchain.bench all")
    return f"\n{note}\n\n{render(results, command, base, short=True)}\n"


def update_readme(results: dict[str, Any], readme: str | Path) -> bool:
    """Replace the README's results block (between the two markers); False when it has none."""
    path = Path(readme)
    if not path.is_file():
        return False
    text = path.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    path.write_text(f"{text[: start + len(README_START)]}{readme_block(results, path.parent)}{text[end:]}")
    return True
