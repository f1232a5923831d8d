"""Literal mentions (module ``mentions``): which terms a query names, which chunks hold them, and the
effect on a real compression (SmolLM2): the chunk that holds the named function is kept."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from specprefill_langchain import SelectionConfig, SpecPrefillCompressor
from specprefill_langchain.bench.tasks.agent_loops import make_loop_tasks
from specprefill_langchain.focus import mention_text
from specprefill_langchain.mentions import MAX_HITS, MAX_TERMS, key_terms, mark_mentions
from specprefill_langchain.selection import Chunk, kept_spans
from specprefill_langchain.transcript import Part


def test_key_terms_takes_quoted_values_arguments_and_identifiers_not_prose() -> None:
    text = (
        "read_file path=Lib/xmlrpc/client.py offset=1013 symbol=gzip_decode\n"
        "ERROR upload rejected: no mimetypes entry matched extension '.xyz'\n"
        'Tests fail in the "EACCES" branch of os.makedirs; fix `load` and parseHeader, code 503.'
    )
    terms = key_terms(text)
    for want in ("Lib/xmlrpc/client.py", "1013", "gzip_decode", ".xyz", "EACCES", "load", "os.makedirs",
                 "parseHeader", "503", "read_file"):  # fmt: skip
        assert want in terms, want
    for prose in ("Tests", "fail", "upload", "rejected", "branch", "fix", "code", "ERROR"):
        assert prose not in terms, prose
    assert len(terms) == len(set(terms))
    assert terms.index("Lib/xmlrpc/client.py") < terms.index("gzip_decode")  # order of appearance
    assert key_terms(None) == [] and key_terms("just some words here") == []
    many = " ".join(f"name_{i}" for i in range(MAX_TERMS + 50))  # a pasted file: only the first terms are scanned for
    assert key_terms(many) == [f"name_{i}" for i in range(MAX_TERMS)]


def _part(text: str) -> Part:
    """A compressible part with one token per word (what mark_mentions reads: text and char spans)."""
    starts, pos = [], 0
    for word in text.split(" "):
        starts.append(pos)
        pos += len(word) + 1
    return Part(0, None, text, True, 0, len(starts), tuple(starts), ())


class _T:
    def __init__(self, *texts: str) -> None:
        self.parts = [_part(x) for x in texts]


def _chunks(t: _T, size: int) -> list[Chunk]:
    out = []
    for pi, p in enumerate(t.parts):
        n = p.n_tokens
        out += [Chunk(pi, a, min(a + size, n), 0.1) for a in range(0, n, size)]
    return out


def test_mark_mentions_marks_whole_word_hits_only() -> None:
    t = _T("def loads ( x ) : pass def load ( fp ) : return loads ( fp ) end")
    marked = mark_mentions(t, _chunks(t, 4), ["load"])
    # chunks of 4 words: "def loads ( x" | ") : pass def" | "load ( fp )" | ": return loads (" | "fp ) end"
    assert [bool(c.mention) for c in marked] == [False, False, True, False, False]


def test_a_common_term_marks_nothing_and_a_phrase_across_an_edge_marks_both_sides() -> None:
    words = " ".join(f"row {i} key" for i in range(10))
    t = _T(words + " 'two words' here")
    chunks = _chunks(t, 3)
    assert not any(c.mention for c in mark_mentions(t, chunks, ["key"]))  # in 10 chunks > MAX_HITS
    assert MAX_HITS < 10
    marked = mark_mentions(t, _chunks(t, 31), ["two words"])  # 30 words of rows, then the phrase
    assert [c.mention for c in marked] == [2, 2]  # "... 'two" | "words' here": one term in two chunks


def test_a_rarer_mention_outranks_a_commoner_one() -> None:
    t = _T("def helper ( x ) : use helper ; other ( y ) ; z")
    marked = mark_mentions(t, _chunks(t, 4), ["helper", "def"])
    # "def helper ( x" | ") : use helper" | "; other ( y" | ") ; z": def in one chunk, helper in two
    assert [c.mention for c in marked] == [MAX_HITS, MAX_HITS - 1, 0, 0]


def test_a_mention_outranks_every_score_within_the_budget() -> None:
    t = _T("a b c d e f g h i j k l")
    chunks = [Chunk(0, 0, 4, 0.9), Chunk(0, 4, 8, 0.1, mention=1), Chunk(0, 8, 12, 0.5)]
    kept, n = kept_spans(t, chunks, budget=8)  # type: ignore[arg-type]
    assert n == 8
    assert kept[0] == [t.parts[0].char_span(0, 4), t.parts[0].char_span(4, 8)]


def test_mention_text_takes_salient_lines_of_scored_results_in_step_mode_only() -> None:
    log = "ok\n" * 50 + "ERROR upload rejected: no mimetypes entry matched extension '.qzx'\n"
    msgs = [
        HumanMessage("Uploads fail; find out why."),
        AIMessage("", tool_calls=[{"name": "tail_log", "args": {}, "id": "c0"}]),
        ToolMessage(log, tool_call_id="c0"),
    ]
    text = mention_text(msgs, "step", "the focus")
    assert ".qzx" in key_terms(text) and text.endswith("the focus")  # the newest lines first, the focus last
    assert mention_text(msgs, "request", "the focus") == "the focus"


@pytest.mark.real
def test_the_function_a_read_file_call_names_is_kept_on_a_real_draft(smol) -> None:
    """key_in_call loops of ``bench cost``: generic request, the call's ``symbol`` names the function."""
    tasks = make_loop_tasks(["key_in_call"], n_per_kind=3, steps=3, output_chars=3000, seed=0)
    compressor = SpecPrefillCompressor(draft=smol, keep_ratio=0.3)
    for task in tasks:
        rnd = task.rounds[task.evidence_step - 1]
        call = {"name": rnd.tool, "args": dict(rnd.args), "id": "c1", "type": "tool_call"}
        msgs = [
            SystemMessage("You are a coding agent."),
            HumanMessage(task.request),
            AIMessage("", tool_calls=[call]),
            ToolMessage(rnd.output, tool_call_id="c1", name=rnd.tool),
        ]
        result = compressor.compress(msgs)
        out = result.messages[-1].text
        assert task.evidence[0] in out, (task.id, task.key)
        assert len(out) < 0.5 * len(rnd.output)  # still compressed: a mention spends budget, it adds none
        off = SpecPrefillCompressor(draft=smol, keep_ratio=0.3, selection=SelectionConfig(keep_mentions=False))
        assert off.compress(msgs).stats.compressible_kept == pytest.approx(result.stats.compressible_kept, rel=0.15)
