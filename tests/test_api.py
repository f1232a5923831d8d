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
    "recall_tool",
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


def _import_in(tmp_path, code: str):
    import subprocess
    import sys

    env = {"PYTHONPATH": str(tmp_path), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)


def test_a_broken_langchain_is_not_hidden(tmp_path):
    """A broken `langchain` never breaks the package; the middleware raises with the real cause."""
    fake = tmp_path / "langchain"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('broken on purpose')\n")
    ok = _import_in(tmp_path, "import specprefill_langchain as s; assert 'SpecPrefillMiddleware' not in s.__all__")
    assert ok.returncode == 0, ok.stderr[-2000:]
    run = _import_in(tmp_path, "from specprefill_langchain import SpecPrefillMiddleware")
    assert run.returncode != 0
    assert "broken on purpose" in run.stderr and "langchain>=1.2.9" in run.stderr


def test_a_too_old_langchain_names_the_version_it_needs(tmp_path):
    """A langchain 1.x without ExtendedModelResponse: the error says which version is needed, not 'install'."""
    pkg = tmp_path / "langchain" / "agents" / "middleware"
    pkg.mkdir(parents=True)
    for folder in (tmp_path / "langchain", tmp_path / "langchain" / "agents"):
        (folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("AgentMiddleware = AgentState = ModelRequest = ModelResponse = object\n")
    info = tmp_path / "langchain-1.2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: langchain\nVersion: 1.2.0\n")
    run = _import_in(tmp_path, "import specprefill_langchain as s; s.SpecPrefillMiddleware")
    assert run.returncode != 0
    assert "langchain 1.2.0 is installed" in run.stderr and 'pip install -U "langchain>=1.2.9"' in run.stderr
