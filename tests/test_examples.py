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

from specprefill_langchain.draft import PREFILL_CHUNK

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


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def stats_block(out: str, title: str) -> dict[str, str]:
    """The rows of a ``== title`` block that quickstart prints, label -> value."""
    block = out.split(f"== {title}", 1)[1].split("\n\n", 1)[0]
    rows = [re.match(r"\s+(.+?)\s{2,}(.*)$", line) for line in block.splitlines()[1:]]
    return {m.group(1): m.group(2) for m in rows if m}


def test_quickstart():
    out = run_example("quickstart.py", "--max-chars", "3000", "--full", timeout=600)
    assert "an echo that reports its input size" in out  # says plainly that no model ran
    cold, warm = stats_block(out, "chain step (cold draft cache)"), stats_block(out, "explain() on the same thread")
    # The compression it reports: fewer draft tokens out than in, the ratio printed is theirs, and the
    # kept share of the compressible text is the keep_ratio it was given (0.3).
    d_in, d_out, ratio = re.fullmatch(r"(\d+) -> (\d+) \(ratio ([\d.]+)\)", cold["draft tokens in -> out"]).groups()
    assert int(d_out) < 0.6 * int(d_in) and float(ratio) == pytest.approx(int(d_out) / int(d_in), abs=0.006)
    kept, total, pct = map(int, re.fullmatch(r"(\d+)/(\d+) \((\d+)%\)", cold["compressible kept"]).groups())
    assert abs(kept / total - 0.3) <= 0.05 and pct == round(100 * kept / total)
    assert cold["passthrough"] == "False"
    # The explain() pass runs on the chain's thread: the prefix the chain prefilled is reused, in whole
    # prefill chunks (a partial last chunk is prefilled again).
    c_reused, c_prefilled = map(int, cold["reused / prefilled (KV)"].split(" / "))
    w_reused, w_prefilled = map(int, warm["reused / prefilled (KV)"].split(" / "))
    assert c_reused == 0 and w_reused + w_prefilled == c_prefilled and w_reused > 0
    assert w_reused % PREFILL_CHUNK == 0 and w_prefilled < PREFILL_CHUNK
    assert warm["draft tokens in -> out"] == cold["draft tokens in -> out"]  # same input, same decision
    # The echo got every message (none dropped), and the view shows dropped text as [-...-].
    assert re.search(r"received 9 messages, [\d,]+ characters", out)
    source = out.split("--- [5] tool", 1)[1].split("--- [6]", 1)[0]
    kept_source = re.sub(r"\[-.*?-\]", "", source, flags=re.DOTALL)
    assert "[-" in source and len(kept_source) < 0.5 * len(source)
    # What the question needs survives: the class and the attributes its __init__ sets.
    assert "class JSONDecodeError(ValueError):" in kept_source
    assert all(a in kept_source for a in ("lineno", "colno", "pos")), kept_source[:1500]


def checkpoint_rows(out: str) -> list[tuple[str, int, int | None, str]]:
    """(type, history chars, model-read chars or None, tool calls) of langgraph_node's state table."""
    rx = r"^ +\d+ (\w+) +([\d,]+) +([\d,]+|-) *(.*)$"
    rows = re.findall(rx, out.split("checkpointed state of the thread", 1)[1], flags=re.MULTILINE)
    return [(t, _int(h), None if r == "-" else _int(r), c.strip()) for t, h, r, c in rows]


@pytest.mark.slow
def test_langgraph_node_scripted():
    out = run_example("langgraph_node.py", "--scripted", "--max-chars", "3000", timeout=900)
    steps = step_lines(out)
    assert 1 <= len(steps) <= 3
    for d_in, _, reused, prefilled in steps:  # the cache serves whole prefill chunks of what the draft reads
        assert reused % PREFILL_CHUNK == 0 and reused + prefilled <= d_in
    assert any(d_out < 0.6 * d_in for d_in, d_out, _, _ in steps), steps  # something was compressed
    rows = checkpoint_rows(out)
    assert [t for t, *_ in rows] == ["system", "human", "ai", "tool", "ai", "tool", "ai"]
    assert [c for *_, c in rows if c] == ["read_file", "grep"]
    for kind, history, read, _ in rows:
        if read is not None and kind != "tool":
            assert read == history, f"a {kind} message was changed for the model"
    (_, src_history, src_read, _) = rows[3]
    assert src_history > 2000 and src_read < 0.5 * src_history  # the model read the file compressed...
    whole = _int(re.search(r"tool outputs in the checkpoint: ([\d,]+) chars, whole", out).group(1))
    assert whole == sum(h for t, h, _, _ in rows if t == "tool")  # ...while the checkpoint keeps it whole
    assert "answer: [scripted] done after 2 tool calls; I read 6 messages." in out


@pytest.mark.slow
def test_react_agent_real_target():
    out = run_example("react_agent.py", "--steps", "2", "--max-new-tokens", "40", "--max-chars", "2500", timeout=1200)
    steps = step_lines(out)
    assert 1 <= len(steps) <= 2
    returned = [_int(n) for n in re.findall(r"tools: \w+ returned ([\d,]+) chars", out)]
    assert returned and all(n <= 2500 + 200 for n in returned)  # --max-chars caps each tool output
    # With target=model the step lines count the target's tokens too: fewer go out than came in.
    targets = [tuple(map(int, m)) for m in re.findall(r"target (\d+) -> (\d+) tok", out)]
    assert targets and all(t_out < t_in for t_in, t_out in targets)
    summary = re.search(r"(\d+) compressions in \d+ s; checkpointed history: (\d+) messages, ([\d,]+) chars", out)
    assert summary is not None and int(summary.group(1)) == len(steps)
    assert _int(summary.group(3)) >= sum(returned)  # the checkpoint holds the tool outputs whole
    reuse = re.search(r"draft KV reuse over compressed steps: (\d+)/(\d+) tokens", out)
    compressed = [s for s in steps if s[1] < s[0]]
    assert reuse is not None and compressed
    assert int(reuse.group(1)) == sum(s[2] for s in compressed)
    assert int(reuse.group(2)) == sum(s[2] + s[3] for s in compressed)


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


@pytest.mark.slow
def test_postgres_workers_share_one_thread(postgres_url):
    out = run_example("postgres_workers.py", "--db", postgres_url, timeout=900)
    steps = re.findall(r"step (\d+) on worker ([AB]): thread holds (\d+) messages", out)
    assert [w for _, w, _ in steps] == ["A", "B", "A"][: len(steps)] and len(steps) == 3
    assert [int(n) for *_, n in steps] == [3, 5, 6]  # each worker resumed where the other stopped
    assert "the thread finished" in out
