"""The draft's passes: the second hop and the prefix it shares with the first, on the real SmolLM2."""

from __future__ import annotations

import pytest
import torch
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from transcripts import stdlib_source

from specprefill_langchain import CompressorConfig, PrefixCache, ScoringConfig
from specprefill_langchain.draft import PREFILL_CHUNK
from specprefill_langchain.passes import score_pass, token_scores
from specprefill_langchain.selection import chunks_of
from specprefill_langchain.transcript import Transcript

pytestmark = pytest.mark.real

NOTE = "Note: uploads to the bucket amber-falcon-17 are stored with the extension .qzx."
RECORD = '{"extension": ".qzx", "type": "application/x-quartz-archive"},'


def _two_hop_transcript():
    """The question names the bucket; a note maps it to an extension; a table maps that to a type."""
    code = stdlib_source("textwrap", 3500)
    lines = code.splitlines()
    code = "\n".join([*lines[: len(lines) // 2], "# " + NOTE, *lines[len(lines) // 2 :]])
    rows = [f'{{"extension": ".x{i:02d}", "type": "application/x-filler-{i}"}},' for i in range(60)]
    rows.insert(23, RECORD)
    return [
        SystemMessage("You are a careful assistant."),
        HumanMessage("Which MIME type does the bucket amber-falcon-17 use for its uploads?"),
        AIMessage("", tool_calls=[{"name": "read_file", "args": {"path": "uploads.py"}, "id": "c1"}]),
        ToolMessage(code, tool_call_id="c1", name="read_file"),
        AIMessage("", tool_calls=[{"name": "http_get_json", "args": {"url": "/mime"}, "id": "c2"}]),
        ToolMessage("\n".join(rows), tool_call_id="c2", name="http_get_json"),
    ]


def _scores(smol, hop_chunks: int, store: PrefixCache | None = None):
    cfg = CompressorConfig(scoring=ScoringConfig(hop_chunks=hop_chunks, focus="request"))
    t = Transcript(_two_hop_transcript(), smol.tokenizer, cfg.policy)
    scores, cost = token_scores(t, smol, store, cfg, None)
    return t, scores, cost


def test_second_hop_only_adds_and_does_not_count_the_prefix_twice(smol) -> None:
    t, one, stats1 = _scores(smol, 0)
    store = PrefixCache()
    _, two, stats2 = _scores(smol, 3, store)
    assert one.shape == two.shape == (len(t.ids),)
    # Combined by maximum: the second pass can raise a token's score, never lower it.
    assert bool((two >= one - 1e-6).all())
    # And it raises the record the note points at far more than the rest (measured: 3.7x the mean
    # lift elsewhere, the record's mean score 4.7x its one-pass score).
    record = _record_tokens(t)
    rest = torch.ones(len(t.ids), dtype=torch.bool)
    rest[record] = False
    lift = two - one
    assert float(lift[record].mean()) >= 2 * float(lift[rest].mean())
    assert float(two[record].mean()) >= 2.5 * float(one[record].mean())
    # The second pass re-reads the cached prefix; the stats count the transcript once.
    assert stats2.prefilled_tokens + stats2.reused_tokens == stats1.prefilled_tokens + stats1.reused_tokens
    # And the store holds the history prefix only (never the restated chunks after the question).
    ids, query_start = t.scoring_sequence()
    snap, reused = store.lookup(ids, croppable=True)
    assert snap is not None and reused == query_start - query_start % PREFILL_CHUNK  # in whole prefill chunks


def _record_tokens(t: Transcript) -> list[int]:
    """Transcript positions of the tokens of RECORD."""
    part = next(p for p in t.parts if p.compressible and RECORD in p.text)
    a = part.text.index(RECORD)
    return [part.start + i for i, s in enumerate(part.starts) if a <= s < a + len(RECORD)]


def test_second_hop_follows_the_note_to_its_record(smol) -> None:
    """The record never mentions the bucket; only the note's own tokens can point at it.

    Measured (89 chunks): the note ranks first either way; the record ranks 16th with one pass and
    5th with the hop. So a 10 % budget (8 chunks) keeps the record only with the hop.
    """
    t, one, _ = _scores(smol, 0)
    _, two, _ = _scores(smol, 3)

    def rank_of(scores: torch.Tensor, *needles: str) -> tuple[int, int]:
        chunks = sorted(chunks_of(t, scores, 32), key=lambda c: -c.score)
        for r, c in enumerate(chunks):
            part = t.parts[c.part]
            a, b = part.char_span(c.t0, c.t1)
            if all(x in part.text[a:b] for x in needles):
                return r, len(chunks)
        raise AssertionError(f"{needles} is in no chunk")

    (note_one, _), (note_two, _) = rank_of(one, "amber-falcon-17", ".qzx"), rank_of(two, "amber-falcon-17", ".qzx")
    assert note_one <= 2 and note_two <= 2  # the first hop finds the note by the bucket's name
    (one_rank, n), (two_rank, _) = rank_of(one, ".qzx", "quartz"), rank_of(two, ".qzx", "quartz")
    top = n // 10
    assert two_rank < top <= one_rank, f"record rank {one_rank} -> {two_rank} of {n} chunks (top {top})"
    assert one_rank - two_rank >= 6, f"record rank {one_rank} -> {two_rank}: the hop should lift it by 6+"


def test_prefix_end_keeps_tokens_out_of_queries_and_cache(smol) -> None:
    ids = smol.tokenizer("The quick brown fox jumps over the lazy dog. " * 20)["input_ids"]
    store = PrefixCache()
    full = score_pass(smol, ids, len(ids) - 8, store=store)
    # Same 8 queries, but the 8 tokens before them are read on the throw-away cache.
    split = score_pass(smol, ids, len(ids) - 8, store=PrefixCache(), prefix_end=len(ids) - 16)
    torch.testing.assert_close(split.scores, full.scores, atol=1e-5, rtol=1e-4)
    assert split.prefilled_tokens == len(ids) - 16
    with pytest.raises(ValueError, match="prefix_end"):
        score_pass(smol, ids, 10, prefix_end=11)


def test_hop_chunks_is_validated() -> None:
    with pytest.raises(ValueError, match="hop_chunks=33"):
        ScoringConfig(hop_chunks=33)
    with pytest.raises(ValueError, match="hop_chunks=-1"):
        ScoringConfig(hop_chunks=-1)
