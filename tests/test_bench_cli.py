"""The benchmark CLI's plumbing: every subcommand parses, and --save merges one section into results.json."""

from __future__ import annotations

import json
from pathlib import Path

from specprefill_langchain import CompressorConfig
from specprefill_langchain.bench import cli
from specprefill_langchain.bench.report import render
from specprefill_langchain.bench.runs.depth import shallowest_within


def test_every_subcommand_parses() -> None:
    parser = cli.build_parser()
    for argv in (
        ["cost", "--ttft-arms", "full,stable", "--ttft-no-cache-reference"],
        ["depth", "--depths", "1.0,0.5", "--loop-tasks", "1"],
        ["long-history", "--n-per-kind", "1"],
        ["kv-reuse", "--depths", "0.5"],
        ["report"],
    ):
        args = parser.parse_args([*argv, "--save", "x.json", "--section", "s"])
        assert callable(args.run) and args.save == "x.json" and args.section == "s"


def test_save_merges_a_section_and_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"fidelity": {"results": []}, "command": "bench all"}))
    cli.save_section(path, "long_history", {"per_task": [], "plots": ["docs/a.png"]}, "bench long-history")
    cli.save_section(path, "cost", {"arms": {}}, "bench cost")
    saved = json.loads(path.read_text())
    assert set(saved) >= {"fidelity", "long_history", "cost", "commands", "plots"}
    assert saved["commands"] == {"long_history": "bench long-history", "cost": "bench cost"}
    assert set(saved["dates"]) == {"long_history", "cost"}  # when each section ran
    assert set(saved["defaults"]) == {"long_history", "cost"}  # and at which library defaults
    assert saved["defaults"]["cost"] == CompressorConfig().to_dict()
    saved["long_history"] = {"config": {"keep_ratio": 0.3}, "retained": 1, "n": 1, "per_task": [{"task": "t"}]}
    text = render(saved, saved["command"])
    assert f"Measured {saved['dates']['long_history']} by `bench long-history`." in text  # under its table


def test_note_is_stored_and_shown_under_its_table(tmp_path: Path, monkeypatch) -> None:
    from specprefill_langchain.bench.runs import accuracy

    def fake_run(args):  # the accuracy section's shape, without a target model
        rows = [accuracy.arm_row("t", "full", None, None, [True, False]), accuracy.arm_row("t", "ours", "d", 0.3, [1])]
        return 0, {"arms": rows, "results": [], "skipped": [], "kinds": ["needle"], "tokens": 2000}

    parser = cli.build_parser()
    args = parser.parse_args(["accuracy", "--note", "timed beside another run"])
    assert args.note == "timed beside another run"
    monkeypatch.setattr(cli, "build_parser", lambda: _Fixed(parser, fake_run))
    path = tmp_path / "results.json"
    assert cli.main(["accuracy", "--note", "timed beside another run", "--save", str(path)]) == 0
    saved = json.loads(path.read_text())
    assert saved["accuracy"]["note"] == "timed beside another run"
    assert "Note: timed beside another run." in render(saved, "bench all")


class _Fixed:
    """A parser whose parsed arguments run ``fn`` instead of the real command."""

    def __init__(self, parser, fn) -> None:
        self.parser, self.fn = parser, fn

    def parse_args(self, argv):
        args = self.parser.parse_args(argv)
        args.run = self.fn
        return args


def test_shallowest_depth_within_two_points() -> None:
    def row(depth: float, keep: float, retention: float) -> dict:
        return {"draft": "d", "task": "overall", "depth": depth, "keep_ratio": keep, "retention": retention}

    rows = [row(1.0, 0.3, 0.90), row(1.0, 0.15, 0.80), row(0.5, 0.3, 0.89), row(0.5, 0.15, 0.79)]
    rows += [row(0.3, 0.3, 0.89), row(0.3, 0.15, 0.70)]
    assert shallowest_within(rows, "d") == 0.5  # 0.3 loses 10 points at keep 0.15
    assert shallowest_within(rows, "other") is None
