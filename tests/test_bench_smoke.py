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
    code, data = _run(capsys, ["agent-step", "--steps", "2", "--history", "800"])
    assert code == 0
    keys = {"steps", "history_tokens", "keep_ratio", "full_ttft_s", "compressed_ttft_s_with_reuse",
            "compressed_ttft_s_without_reuse", "speedup_with_reuse", "speedup_without_reuse", "peak_rss_mb",
            "per_step", "aggregate", "sum_over_steps"}  # fmt: skip
    assert keys <= set(data)
    assert data["aggregate"] == "last_step"
    first, last = data["per_step"]
    step_keys = {
        "step",
        "history_draft_tokens",
        "target_tokens_full",
        "target_tokens_compressed",
        "full_ttft_s",
        "draft_s_with_reuse",
        "draft_s_without_reuse",
        "reused_tokens",
        "target_ttft_compressed_s",
    }
    assert step_keys <= set(last)
    assert first["reused_tokens"] == 0 and last["reused_tokens"] > 0  # step 2 reuses step 1's KV
    assert last["prefilled_tokens_without_reuse"] == last["history_draft_tokens"] > first["history_draft_tokens"]
    assert last["target_tokens_compressed"] < last["target_tokens_full"]
    if data["dtype"] == "float32":  # reuse is exact in float32: the same kept text
        assert all(r["same_output"] for r in data["per_step"])  # (bfloat16 may swap a near-tie chunk)


@pytest.mark.real
def test_kv_reuse_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = _run(capsys, ["kv-reuse", "--history", "300", "--append", "64", "--repeats", "1"])
    assert code == 0
    assert {"scratch_s", "incremental_s", "speedup", "reused_tokens"} <= set(data)
    assert data["reused_tokens"] > 0
    # Appending 64 tokens to 300 cannot beat the token ratio: every new token attends to the history.
    assert 1 < data["flop_ceiling"] < (300 + 64) / 64


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
    for name in ("fidelity_overall.png", "latency.png", "agent_step_latency.png", "agent_step_speedup.png"):
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
    assert "python -m specprefill_langchain.bench all" in block
    assert "| step |" not in block  # the per-step table stays in RESULTS.md
    acc = data["accuracy"]["results"][0]
    assert {"target", "accuracy_full", "accuracy_compressed", "ratio"} <= set(acc)
