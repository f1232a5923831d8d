"""Report truthfulness: Wilson intervals, and every accuracy or retention figure printed with n and its CI."""

from __future__ import annotations

import json
import re

import pytest

from specprefill_langchain.bench.intervals import format_rate, successes, wilson
from specprefill_langchain.bench.report import render
from specprefill_langchain.bench.runs.accuracy import arm_row

CELL = re.compile(r"\d\.\d{3} \[\d\.\d{2}, \d\.\d{2}\] \(n=\d+\)")


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        (22, 24, 0.7415, 0.9768),  # worked by hand: center 0.8592, half-width 0.1177
        (0, 10, 0.0, 0.2775),  # z^2 / (n + z^2)
        (10, 10, 0.7225, 1.0),
        (5, 10, 0.2366, 0.7634),
        (24, 48, 0.3639, 0.6361),
    ],
)
def test_wilson_known_values(k: int, n: int, lo: float, hi: float) -> None:
    got = wilson(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-4)


def test_wilson_properties() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    for n in (1, 7, 48, 500):
        for k in range(0, n + 1, max(1, n // 7)):
            lo, hi = wilson(k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0
    # More tasks, narrower interval at the same rate.
    assert (lambda a, b: b - a)(*wilson(36, 48)) < (lambda a, b: b - a)(*wilson(6, 8))
    assert wilson(6, 8, z=2.58)[0] < wilson(6, 8)[0]  # 99 % is wider than 95 %
    with pytest.raises(ValueError, match="k <= n"):
        wilson(5, 4)
    with pytest.raises(ValueError, match="k <= n"):
        wilson(-1, 4)


def test_format_rate_and_successes() -> None:
    assert format_rate(22, 24) == "0.917 [0.74, 0.98] (n=24)"
    assert format_rate(0, 0) == "– (n=0)"
    assert successes(0.9167, 24) == 22
    assert successes(1.0, 8) == 8 and successes(0.0, 8) == 0


def test_arm_row() -> None:
    row = arm_row("qwen", "ours", "smollm2-135m", 0.3, [True] * 3 + [False])
    assert (row["n"], row["correct"], row["accuracy"]) == (4, 3, 0.75)
    assert row["ci95"] == pytest.approx(list(wilson(3, 4)), abs=1e-4)


def _fidelity_row(method: str, ratio: float, retention: float, n: int) -> dict:
    return {"method": method, "draft": None, "keep_ratio": ratio, "task": "overall", "retention": retention, "n": n}


def test_report_prints_n_and_interval_for_every_rate() -> None:
    old_accuracy = {  # written before counts and arms were stored: k is derived from rate x n
        "results": [
            {"target": "qwen", "method": "ours", "draft": "smollm2-135m", "keep_ratio": 0.3, "n": 8,
             "accuracy_full": 0.5, "accuracy_compressed": 0.75, "ratio": 1.5},
            {"target": "qwen", "method": "random", "draft": None, "keep_ratio": 0.3, "n": 8,
             "accuracy_full": 0.5, "accuracy_compressed": 0.25, "ratio": 0.5},
        ],
        "skipped": [],
    }  # fmt: skip
    results = {
        "machine": {"cpu": "test"},
        "fidelity": {
            "results": [
                _fidelity_row("ours", 0.3, 22 / 24, 24),
                {**_fidelity_row("random", 0.3, 0.5, 24), "retained": 12},
            ],
            "skipped": [],
        },
        "accuracy": old_accuracy,
    }
    text = render(results, "python -m specprefill_langchain.bench all")
    assert "0.917 [0.74, 0.98] (n=24)" in text
    assert "0.500 [0.31, 0.69] (n=24)" in text
    table = text[text.index("## Target answer accuracy") :]
    rows = [line for line in table.splitlines() if line.startswith("| qwen")]
    assert len(rows) == 3  # full once, then each compressed arm
    assert "| full |" in rows[0] and format_rate(4, 8) in rows[0]
    assert format_rate(6, 8) in rows[1] and format_rate(2, 8) in rows[2]
    assert all(CELL.search(r) for r in rows)


def test_report_uses_stored_arms() -> None:
    arms = [arm_row("qwen", "full", None, None, [True] * 40 + [False] * 8),
            arm_row("qwen", "keep-last-tokens", None, 0.3, [True] * 20 + [False] * 28)]  # fmt: skip
    text = render({"machine": {}, "accuracy": {"arms": arms, "results": [], "skipped": []}}, "cmd")
    assert format_rate(40, 48) in text and format_rate(20, 48) in text


def _depth_run(depths: dict[float, tuple[int, int]], **config: object) -> dict:
    rows = [
        {"draft": "d", "task": "overall", "depth": depth, "layers": round(30 * depth), "keep_ratio": keep,
         "retained": k, "n": 33, "retention": k / 33}
        for depth, ks in depths.items()
        for keep, k in zip((0.3, 0.15), ks, strict=True)
    ]  # fmt: skip
    cfg = {"depths": list(depths), "loop_tasks": 3, "dtype": "float32", **config}
    return {"results": rows, "config": cfg, "shallowest_within_2_points": {"d": None}}


def test_depth_runs_of_the_same_tasks_share_one_table_and_one_choice() -> None:
    results = {
        "machine": {},
        "depth": _depth_run({1.0: (28, 25), 0.75: (28, 26), 0.5: (26, 24)}),
        "depth_0_65": {**_depth_run({0.65: (29, 25)}), "note": "one thread"},
        "depth_nohop": _depth_run({0.65: (20, 18)}, hop_chunks=0),  # another setting: its own table
        "dates": {"depth": "day 1", "depth_0_65": "day 2"},
    }
    text = render(results, "cmd")
    main = text[text.index("## Early-layer scoring\n") : text.index("## Early-layer scoring, other")]
    assert "full depth at every keep ratio: d: 0.65." in main  # chosen over both runs
    assert main.count("| d |") == 4 and "| 0.65 | 20 | " + format_rate(29, 33) in main
    assert "depth_0_65 (day 2)" in main and "depth_0_65: one thread" in main
    other = text[text.index("## Early-layer scoring, other tasks or settings (`depth_nohop`)") :]
    assert format_rate(20, 33) in other and format_rate(20, 33) not in main and "hop_chunks=0" in other


def test_a_saved_section_records_the_machine_and_the_report_reads_only_the_file(tmp_path) -> None:
    from specprefill_langchain.bench.cli import save_section
    from specprefill_langchain.bench.report import readme_block

    path = tmp_path / "results.json"
    save_section(path, "kv_reuse", {"rows": []}, "bench kv-reuse")
    results = json.loads(path.read_text())
    assert "date" not in results["machine"] and results["machine"]["cores"] >= 1
    assert results["dates"]["kv_reuse"]  # the date lives with the section
    # Rendered twice (later), the same bytes: nothing of the rendering machine or clock goes in.
    assert readme_block(results, tmp_path) == readme_block(json.loads(path.read_text()), tmp_path)
    assert "Machine: not recorded" in readme_block({}, tmp_path)
