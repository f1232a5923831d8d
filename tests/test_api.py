"""The public API is pinned: changing it is a deliberate act that updates this list."""

from __future__ import annotations

import importlib.util

import specprefill_langchain

CORE = {
    "FROZEN_KEY",
    "STATS_EVENT",
    "CompressionResult",
    "CompressionStats",
    "CompressorConfig",
    "DraftModel",
    "Explanation",
    "ModelNotInstalledError",
    "PolicyConfig",
    "PrefixCache",
    "ScoringConfig",
    "SelectionConfig",
    "SpecPrefillAgentState",
    "SpecPrefillCompressor",
    "SpecPrefillNode",
    "SpecPrefillState",
    "StableConfig",
    "compress_messages",
    "pre_model_hook",
}


def test_all_is_pinned():
    expected = set(CORE)
    if importlib.util.find_spec("langchain") is not None:
        expected.add("SpecPrefillMiddleware")
    assert set(specprefill_langchain.__all__) == expected
    assert len(specprefill_langchain.__all__) == len(expected)  # no duplicates
    for name in specprefill_langchain.__all__:
        obj = getattr(specprefill_langchain, name)
        if isinstance(obj, str):  # the two constants: a state key and an event name
            assert obj in ("specprefill", "specprefill_stats"), name
        else:  # every class and function is the package's own, defined where the docs say
            assert obj.__module__.startswith("specprefill_langchain."), (name, obj.__module__)


def test_package_is_typed():
    from importlib.resources import files

    assert files("specprefill_langchain").joinpath("py.typed").is_file()


def test_a_broken_langchain_is_not_hidden(tmp_path):
    """Only a missing `langchain` is silent; one that is installed but broken raises with its cause."""
    import subprocess
    import sys

    fake = tmp_path / "langchain"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('broken on purpose')\n")
    code = "import specprefill_langchain"
    env = {"PYTHONPATH": str(tmp_path), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert run.returncode != 0
    assert "broken on purpose" in run.stderr
