"""Smoke tests of every ``bench`` subcommand at tiny sizes: exit code and the documented JSON keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from specprefill_langchain.bench import cli
from specprefill_langchain.bench.report import README_END, README_START


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, dict[str, Any]]:
    code = cli.main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_fidelity_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["fidelity", "--methods", "full,random", "--kinds", "needle", "--n-per-kind", "1", "--tokens", "600"]
    code, data = _run(capsys, [*argv, "--keep-ratios", "0.3"])
    assert code == 0
    assert {"results", "skipped", "config"} <= set(data)
    assert {r["method"] for r in data["results"]} == {"full", "random"}


@pytest.mark.real
def test_latency_ours_and_random(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = _run(capsys, ["latency", "--methods", "random,ours", "--tokens", "600", "--n", "1"])
    assert code == 0
    assert {"keep_ratio", "tokens", "results", "skipped", "note"} <= set(data)
    rows = {r["method"]: r for r in data["results"]}
    assert set(rows) == {"random", "ours"}
    for row in rows.values():
        assert {"method", "draft", "seconds_median", "seconds_all", "n"} <= set(row)
        assert row["n"] == 1
    assert rows["ours"]["cache"] == "cold"
    assert rows["ours"]["seconds_median"] > rows["random"]["seconds_median"]


@pytest.mark.real
def test_agent_step_with_real_target(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = _run(capsys, ["agent-step", "--steps", "2", "--output-chars", "1200"])
    assert code == 0
    keys = {"draft_vs_target_cached_step", "draft_vs_target_cached_step_last", "draft_parts_s", "efficiency",
            "target_cached_full_s", "summed_ttft_full_s", "summed_ttft_stable_s", "per_step"}  # fmt: skip
    assert keys <= set(data)
    assert data["steps_with_draft"] >= 1 and data["draft_vs_target_cached_step"] > 0
    assert set(data["draft_parts_s"]) == {"prefill", "scoring", "hop"}
    assert data["draft_s"] >= sum(data["draft_parts_s"].values()) * 0.99  # the parts are within the whole step
    rows = data["per_step"]
    assert len(rows) == 3 and rows[0]["draft_passes"] == 0  # the first call has no tool output yet
    ran = [r for r in rows if r["draft_passes"] > 0]
    assert all(r["target_new_tokens_stable"] < r["target_new_tokens_full"] for r in ran)  # compressed on arrival
    eff = data["efficiency"]
    assert eff["draft_matmul_ceiling_gflop_s"] > 0 and eff["target_matmul_ceiling_gflop_s"] > 0
    assert 0 < eff["flop_ratio_draft_prefill_vs_target"] < 1


@pytest.mark.real
def test_kv_reuse_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = _run(capsys, ["kv-reuse", "--history", "1100", "--append", "64", "--repeats", "1"])
    assert code == 0
    assert {"scratch_s", "incremental_s", "speedup", "reused_tokens"} <= set(data)
    assert data["reused_tokens"] > 0
    # Appending 64 tokens to 1100 cannot beat the token ratio: every new token attends to the history.
    assert 1 < data["flop_ceiling"] < (1100 + 64) / 64


@pytest.mark.real
@pytest.mark.slow
def test_all_quick_writes_results_plots_and_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out, report, readme = tmp_path / "results.json", tmp_path / "RESULTS.md", tmp_path / "README.md"
    readme.write_text(f"# Title\n\n## Results\n{README_START}\nold figures\n{README_END}\n\n## After\n")
    argv = ["all", "--quick", "--plots", str(tmp_path), "--out", str(out), "--report", str(report)]
    code, data = _run(capsys, [*argv, "--readme", str(readme)])
    assert code == 0, data.get("failed")
    for key in ("fidelity", "accuracy", "latency", "agent_step", "kv_reuse", "machine"):
        assert key in data and "error" not in data[key], key
    assert json.loads(out.read_text())["quick"] is True
    for name in ("fidelity_overall.png", "latency.png", "agent_step_latency.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    text = report.read_text()
    assert "## Agent step" in text and "## Target answer accuracy" in text and "Machine:" in text
    # Tiny --quick figures never land in the README; `report` writes the block from the JSON alone.
    assert "old figures" in readme.read_text()
    report.unlink()
    code, info = _run(capsys, ["report", "--results", str(out), "--report", str(report), "--readme", str(readme)])
    assert code == 0 and info["readme_updated"] is True
    block = readme.read_text()
    # The block is rewritten in place; what surrounds it stays.
    assert "old figures" not in block and block.startswith("# Title") and block.endswith("## After\n")
    assert "### Agent step" in block and "### Fidelity" in block and "## Agent step" in report.read_text()
    assert "Measured " in block and "by `python -m specprefill_langchain.bench all" in block
    assert "| step |" not in block  # the per-step table stays in RESULTS.md
    acc = data["accuracy"]["results"][0]
    assert {"target", "accuracy_full", "accuracy_compressed", "ratio"} <= set(acc)
