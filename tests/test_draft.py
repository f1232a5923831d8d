"""DraftModel on the real SmolLM2: exact KV reuse, look-ahead hygiene, threads, a needle test."""

from __future__ import annotations

import inspect
import json.decoder
import threading

import pytest
import torch

from specprefill_langchain import DraftModel, PrefixCache
from specprefill_langchain.chatformat import chat_format
from specprefill_langchain.kvcache import snapshot_of
from specprefill_langchain.passes import score_pass

pytestmark = pytest.mark.real


def _ids(draft: DraftModel, n: int, module=json.decoder) -> list[int]:
    text = inspect.getsource(module) * 4
    return draft.tokenizer(text, add_special_tokens=False)["input_ids"][:n]


def _tail(draft: DraftModel, question: str) -> list[int]:
    fmt = chat_format(draft.tokenizer)
    text = fmt.header("human") + question + fmt.end + fmt.generation_prompt()
    return draft.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_load_is_shared_and_uses_the_capture_attention(smol):
    assert DraftModel.load("smollm2-135m", dtype="float32") is smol
    assert smol.model.config._attn_implementation == "specprefill_sdpa"
    assert smol.full_layers == tuple(range(30)) and not smol.has_sliding
    assert smol.context_length == 8192


def test_kv_reuse_gives_the_same_scores_as_from_scratch(smol):
    hist = _ids(smol, 1024)  # two whole prefill chunks: all of it is reused
    more = _ids(smol, 1224)[1024:]
    tail = _tail(smol, "Which exception does the decoder raise?")
    full = hist + more + tail
    qs = len(hist) + len(more)
    scratch = score_pass(smol, full, qs)
    store = PrefixCache()
    score_pass(smol, hist + tail, len(hist), store=store, key="t")  # step N caches the history
    incr = score_pass(smol, full, qs, store=store, key="t")  # step N+1 reads only the new tokens
    assert incr.reused_tokens == len(hist)
    assert incr.prefilled_tokens == len(more)
    assert scratch.reused_tokens == 0
    assert torch.max(torch.abs(incr.scores - scratch.scores)) < 1e-4


def test_prefill_in_chunks_equals_one_pass(smol):
    ids = _ids(smol, 300)
    one = snapshot_of(smol.prefill(ids, chunk=1024))
    chunked = snapshot_of(smol.prefill(ids, chunk=64))
    diff = (one.layers[-1].keys - chunked.layers[-1].keys).abs().max()
    assert one.length == chunked.length == 300 and diff < 1e-4


def test_query_tokens_never_reach_the_cache(smol):
    ids = _ids(smol, 1024) + _tail(smol, "What does scanstring return?")  # two whole prefill chunks
    store = PrefixCache()
    queries = len(_tail(smol, "What does scanstring return?"))
    imp = score_pass(smol, ids, len(ids) - queries, store=store)
    assert imp.scores.shape == (len(ids),)
    snap, n = store.lookup(ids + [0] * 10)
    assert n == 1024  # only the prefix before the queries, in whole chunks; the focus tail is thrown away
    assert all(layer.keys.shape[-2] == 1024 for layer in snap.layers)


def test_query_capture_matches_eager_attention(smol):
    """The recorded queries reproduce eager attention probabilities of the last layer."""
    from specprefill_langchain import scoring

    ids = _ids(smol, 120)
    cache = smol.prefill(ids[:100])
    [(q, k, scale)] = smol.capture(ids[100:], cache, layers=[29])
    probs = scoring.attention_probs(q, k, torch.arange(100, 120), scale=scale, n_context=120)
    eager = _eager_last_layer(ids)  # a 120-token eager pass: small, no memory concern
    assert torch.allclose(probs, eager[:, 100:120, :], atol=1e-5)


def _eager_last_layer(ids):
    from transformers import AutoModelForCausalLM

    from specprefill_langchain.models import resolve

    m = AutoModelForCausalLM.from_pretrained(str(resolve("smollm2-135m")), attn_implementation="eager")
    with torch.no_grad():
        att = m(torch.tensor([ids]), output_attentions=True).attentions[29][0]
    return att.float()


def test_two_threads_score_like_serial(smol):
    a = _ids(smol, 400) + _tail(smol, "What is JSONDecodeError?")
    import textwrap

    b = _ids(smol, 400, textwrap) + _tail(smol, "What does dedent do?")
    serial = [score_pass(smol, x, len(x) - 20).scores for x in (a, b)]
    results: dict[int, torch.Tensor] = {}
    store = PrefixCache()

    def run(i, x):
        results[i] = score_pass(smol, x, len(x) - 20, store=store, key=str(i)).scores

    threads = [threading.Thread(target=run, args=(i, x)) for i, x in enumerate((a, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        assert torch.max(torch.abs(results[i] - serial[i])) < 1e-5


def test_needle_lands_in_top_chunks(smol):
    from specprefill_langchain import selection

    filler = inspect.getsource(json.decoder)
    needle = "\nThe secret launch code of the orbital station is PURPLE-MONKEY-42.\n"
    text = filler[:4000] + needle + filler[4000:8000]
    enc = smol.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"][:2000]
    tail = _tail(smol, "What is the secret launch code of the orbital station?")
    imp = score_pass(smol, ids + tail, len(ids))
    chunks = [(s, min(s + 32, len(ids))) for s in range(0, len(ids), 32)]
    cs = selection.chunk_scores(imp.scores[: len(ids)], chunks)
    start = text.index("PURPLE")
    needle_tok = next(i for i, (a, b) in enumerate(enc["offset_mapping"]) if a <= start < b)
    rank = int((cs > cs[needle_tok // 32]).sum())
    assert rank < 0.05 * len(chunks), f"needle chunk ranked {rank} of {len(chunks)}"


def test_bad_query_start_and_too_long(smol):
    with pytest.raises(ValueError, match="query_start"):
        score_pass(smol, [1, 2, 3], 0)
    with pytest.raises(ValueError, match="exceed the draft's context"):
        score_pass(smol, [1] * 9000, 8990)
    with pytest.raises(ValueError, match="dtype"):
        DraftModel.load("smollm2-135m", dtype="int8")


def test_tiny_model_mechanics(tiny):
    ids = list(range(100, 700))
    store = PrefixCache()
    a = score_pass(tiny, ids, 580, store=store)
    b = score_pass(tiny, [*ids, 5, 6, 7], 583, store=store)
    # The store holds whole prefill chunks: 512 of the 580 prefix tokens (the rest is prefilled again).
    assert b.reused_tokens == 512 and b.prefilled_tokens == 583 - 512
    assert a.scores.shape == (600,) and b.scores.shape == (603,)
