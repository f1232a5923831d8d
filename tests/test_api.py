"""The public API is pinned: changing it is a deliberate act that updates this list."""

from __future__ import annotations

import importlib.util

import specprefill_langchain

CORE = {
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
    "SpecPrefillCompressor",
    "SpecPrefillNode",
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
        assert getattr(specprefill_langchain, name) is not None


def test_package_is_typed():
    from importlib.resources import files

    assert files("specprefill_langchain").joinpath("py.typed").is_file()
