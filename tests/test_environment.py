"""The library never changes the process environment (HF_HUB_OFFLINE and friends are the user's).

Checked in a fresh process whose model cache is empty, so that the packaged GGUF is converted there
for the first time: the conversion is the path that used to set ``HF_HUB_OFFLINE``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import json, os, sys
from pathlib import Path
before = dict(os.environ)
import specprefill_langchain
from langchain_core.messages import HumanMessage, ToolMessage, AIMessage
from specprefill_langchain import SpecPrefillCompressor
after_import = dict(os.environ)
c = SpecPrefillCompressor(draft="smollm2-135m", keep_ratio=0.3)
msgs = [
    HumanMessage("Which function parses the header?"),
    AIMessage("", tool_calls=[{"name": "read", "args": {"path": "x.py"}, "id": "c1"}]),
    ToolMessage("def parse_header(line):\\n    return line.split(':')\\n" * 60, tool_call_id="c1", name="read"),
]
out = c.compress(msgs)
after_use = dict(os.environ)
print(json.dumps({
    "import": sorted(set(after_import.items()) ^ set(before.items())),
    "use": sorted(set(after_use.items()) ^ set(before.items())),
    "compressed": not out.stats.passthrough,
    "converted": any(Path(os.environ["SPECPREFILL_CACHE"]).rglob("*.safetensors")),
}))
"""


@pytest.mark.real
@pytest.mark.slow
def test_import_first_conversion_and_use_leave_os_environ_unchanged(smol, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}  # the library must not need it
    env["SPECPREFILL_CACHE"] = str(tmp_path / "cache")  # empty: the draft is converted in that process
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=root, capture_output=True, text=True, check=False, timeout=600
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["import"] == [] and report["use"] == [], report
    assert report["compressed"] and report["converted"]
