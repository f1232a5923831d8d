"""The `specprefill` console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from specprefill_langchain import models
from specprefill_langchain.cli import main


def test_models_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == ["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b"]
    assert {"installed", "converted", "path", "size_bytes"} <= set(rows[0])


def test_models_list_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["name", "installed", "converted", "size", "path"]
    for name in models.MODELS:
        assert name in out


@pytest.mark.real
def test_models_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "path", "smollm2-135m"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert (path / "config.json").is_file()
    assert (path / models.MARKER).is_file()


def test_models_path_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "path", "no-such-model"]) == 1
    err = capsys.readouterr().err
    assert "smollm2-135m" in err and "specprefill models install" in err


def test_models_install_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "install", "no-such-model"]) == 1
    assert "known short names" in capsys.readouterr().err


def test_unknown_command_exits_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code != 0
    assert "usage: specprefill" in capsys.readouterr().err


def test_missing_subcommand_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["models"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_bench_forwards_all_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    seen: list[list[str]] = []
    fake = types.ModuleType("specprefill_langchain.bench.cli")
    fake.main = lambda argv: seen.append(argv) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "specprefill_langchain.bench.cli", fake)
    assert main(["bench", "all", "--plots", "docs/", "--help"]) == 0
    assert seen == [["all", "--plots", "docs/", "--help"]]


def test_bench_missing_module_is_reported(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    # None in sys.modules makes the import fail as if the module were absent.
    monkeypatch.setitem(sys.modules, "specprefill_langchain.bench.cli", None)
    assert main(["bench", "all"]) == 2
    assert "error:" in capsys.readouterr().err


def test_python_dash_m() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "specprefill_langchain", "models", "list", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 3
