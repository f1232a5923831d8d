"""PNG plots of benchmark results (matplotlib with the Agg backend: no display needed)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any


def _label(row: dict[str, Any]) -> str:
    return f"{row['method']} [{row['draft']}]" if row.get("draft") else str(row["method"])


def plot_fidelity(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Retention vs keep ratio, one line per method: overall, and one panel per task kind."""
    try:
        import matplotlib
    except ImportError as exc:
        msg = "plots need matplotlib: pip install 'specprefill-langchain[bench]'"
        raise ImportError(msg) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    series: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for row in result["results"]:
        series[row["task"]][_label(row)].append((row["keep_ratio"], row["retention"]))
    if not series:
        return []
    kinds = ["overall", *sorted(k for k in series if k != "overall")]

    paths = []
    fig, ax = plt.subplots(figsize=(6, 4))
    _draw(ax, series["overall"], "evidence retention, all tasks")
    paths.append(_save(fig, out / "fidelity_overall.png"))

    cols = min(4, len(kinds))
    rows = -(-len(kinds) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, kind in zip(axes.flat, kinds, strict=False):
        _draw(ax, series[kind], kind)
    for ax in list(axes.flat)[len(kinds) :]:
        ax.set_visible(False)
    paths.append(_save(fig, out / "fidelity_by_kind.png"))
    return paths


def _draw(ax: Any, lines: dict[str, list[tuple[float, float]]], title: str) -> None:
    for label, points in sorted(lines.items()):
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(xs, ys, marker="o", label=label)
    ax.set_title(title)
    ax.set_xlabel("keep ratio")
    ax.set_ylabel("retention")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_agent_step(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Per step: the draft's step and the target's cached prefill (full and stable loops), and TTFT."""
    plt, out = _pyplot(), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = result["per_step"]
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (
        ("draft_s", "draft step (stable)"),
        ("target_cached_full_s", "target cached prefill, full loop"),
        ("target_cached_stable_s", "target cached prefill, stable loop"),
        ("ttft_stable_s", "stable TTFT (draft + target)"),
    ):
        ax.plot(steps, [r[key] for r in rows], marker="o", label=label)
    ax.set(title="agent step against a prefix-cached target", xlabel="model call", ylabel="s")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return [_save(fig, out / "agent_step_latency.png")]


def plot_latency(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Median compression seconds per method (log scale: heuristics take microseconds)."""
    rows = result["results"]
    if not rows:
        return []
    plt, out = _pyplot(), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.barh([_label(r) for r in rows], [max(r["seconds_median"], 1e-6) for r in rows])
    ax.set_xscale("log")
    ax.set(title=f"compression time, ~{result['tokens']} tokens, keep {result['keep_ratio']}", xlabel="s")
    return [_save(fig, out / "latency.png")]


def plot_cost(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Cumulative input bill per step of the first loop, per arm, over the full loop's total bill."""
    curves = result.get("cumulative_bill") or {}
    if not curves:
        return []
    plt, out = _pyplot(), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for arm, ys in curves.items():
        style = {"color": "black", "ls": "--", "lw": 1.5} if arm == "full" else {"lw": 1.2}
        ax.plot(range(len(ys)), ys, marker="o", markersize=3, label=arm, **style)
    ax.xaxis.get_major_locator().set_params(integer=True)
    cfg = result.get("config", {})
    sheet = (cfg.get("price_sheets") or {}).get(cfg.get("cumulative_bill_sheet"), {})
    prices = f"read {sheet['read']}, write {sheet['write']}" if sheet else "cached prices"
    ax.set(
        title=f"cumulative input bill ({prices}), keep {cfg.get('keep_ratio')}",
        xlabel="model call (agent step)",
        ylabel="bill / full loop's total",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return [_save(fig, out / "cost_cumulative_bill.png")]


def plot_depth(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Overall evidence retention against the share of layers the draft runs, one line per draft x keep."""
    rows = [r for r in result.get("results", []) if r.get("task") == "overall"]
    if not rows:
        return []
    plt, out = _pyplot(), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for draft in sorted({r["draft"] for r in rows}):
        for keep in sorted({r["keep_ratio"] for r in rows}, reverse=True):
            pts = sorted((r["depth"], r["retention"]) for r in rows if r["draft"] == draft and r["keep_ratio"] == keep)
            ax.plot(*zip(*pts, strict=True), marker="o", label=f"{draft}, keep {keep}")
    n = rows[0].get("n")
    ax.set(
        title=f"evidence retention vs scoring depth (n={n} tasks per point)",
        xlabel="share of the draft's layers run and scored",
        ylabel="retention",
        ylim=(0, 1.05),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return [_save(fig, out / "depth_retention.png")]
