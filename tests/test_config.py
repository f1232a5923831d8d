"""The settings a user can tune are few and pinned (docs/design.md, "Settings"): a new knob is a decision."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, fields

import pytest

from specprefill_langchain import (
    CompressorConfig,
    PolicyConfig,
    ScoringConfig,
    SelectionConfig,
    StableConfig,
)

KNOBS = {
    CompressorConfig: [
        "keep_ratio",
        "max_target_tokens",
        "draft",
        "dtype",
        "device",
        "cache_bytes",
        "on_error",
        "max_input_chars",
        "scoring",
        "selection",
        "policy",
        "stable",
    ],
    ScoringConfig: ["focus", "depth", "hop_chunks"],
    SelectionConfig: ["gap_marker", "keep_mentions"],
    PolicyConfig: ["roles", "tools", "skip_tools", "protect_last", "min_compressible_tokens"],
    StableConfig: [
        "keep_recent",
        "trigger_chars",
        "min_saving_chars",
        "min_message_chars",
        "context_chars",
        "rescue",
        "rescue_chars",
    ],
}


def test_the_knobs_are_pinned() -> None:
    for cls, names in KNOBS.items():
        assert [f.name for f in fields(cls)] == names, cls.__name__
    leaves = sum(len(n) for n in KNOBS.values()) - 4  # the four nested groups are not knobs themselves
    assert leaves == 25


@pytest.mark.parametrize(
    ("cls", "bad", "message"),
    [
        (ScoringConfig, {"focus": "both"}, "focus='both' is not valid"),
        (ScoringConfig, {"depth": 0}, "depth=0 must be"),
        (ScoringConfig, {"hop_chunks": 33}, "hop_chunks=33 is out of range"),
        (SelectionConfig, {"gap_marker": "  "}, "must show something"),
        (StableConfig, {"rescue_chars": -1}, "rescue_chars=-1 must be >= 0"),
        (StableConfig, {"keep_recent": -1}, "keep_recent=-1"),
        (CompressorConfig, {"on_error": "ignore"}, "on_error='ignore' is not valid"),
        (CompressorConfig, {"dtype": "int4"}, "dtype='int4' is not supported"),
    ],
)
def test_a_bad_value_fails_where_it_is_written(cls: type, bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cls(**bad)


def test_configs_are_frozen_and_plain_data() -> None:
    cfg = CompressorConfig()
    with pytest.raises(FrozenInstanceError):
        cfg.keep_ratio = 0.5  # type: ignore[misc]
    d = cfg.to_dict()
    assert list(d["stable"]) == KNOBS[StableConfig] and d["policy"]["roles"] == ["ai", "human", "tool"]
    assert cfg.with_(keep_ratio=0.5).keep_ratio == 0.5 and cfg.keep_ratio == 0.3
