"""The examples run offline to completion and print their stats; the notebook executes cleanly.

Each runs as a user would run it (a subprocess with the venv's Python), so these also catch broken
imports and argument parsing. The real target model (Qwen2.5-Coder-0.5B) runs in react_agent only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.real

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_example(name: str, *args: str, timeout: float) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
        cwd=EXAMPLES.parent,
    )
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def step_lines(out: str) -> list[tuple[int, int, int, int]]:
    """(draft in, draft out, reused, prefilled) of every printed step line."""
    rx = r"step \d+: draft (\d+) -> (\d+) tok, .*?reused (\d+), prefilled (\d+)"
    return [tuple(map(int, m)) for m in re.findall(rx, out)]  # type: ignore[misc]


def test_quickstart():
    out = run_example("quickstart.py", "--max-chars", "3000", timeout=600)
    assert "an echo that reports its input size" in out  # says plainly that no model ran
    assert "draft tokens in -> out" in out and "reused / prefilled (KV)" in out
    # The explain() pass runs on the chain's thread: the whole prefix comes from the KV cache.
    warm = out.split("warm cache")[1]
    assert re.search(r"reused / prefilled \(KV\)\s+(\d+) / 0\b", warm)
    assert "[-" in out  # something was dropped, and shown as dropped


@pytest.mark.slow
def test_langgraph_node_scripted():
    out = run_example("langgraph_node.py", "--scripted", "--max-chars", "3000", timeout=900)
    steps = step_lines(out)
    assert len(steps) == 3
    (_, _, _, p2), (_, _, r3, _) = steps[1], steps[2]
    assert r3 >= p2  # step 3 reused step 2's whole prefix
    assert "tool outputs in the checkpoint" in out and "answer: [scripted]" in out


@pytest.mark.slow
def test_react_agent_real_target():
    out = run_example("react_agent.py", "--steps", "2", "--max-new-tokens", "40", "--max-chars", "2500", timeout=1200)
    steps = step_lines(out)
    assert 1 <= len(steps) <= 2
    assert "checkpointed history" in out


@pytest.mark.slow
def test_notebook_executes():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(EXAMPLES / "notebook.ipynb", as_version=4)
    old = dict(os.environ)
    os.environ.update(_env())  # the kernel inherits this process's environment: the venv and offline mode
    try:
        nbclient.NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLES)}}
        ).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("text/html" in o.get("data", {}) for o in outputs)  # the explain() view rendered
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the plot
