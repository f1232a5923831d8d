"""Message invariants under property-based fuzzing (hypothesis).

Generated histories mix every message type an agent loop produces (system, human, AI with and
without parallel tool calls, tool results in any order, unknown types), string and content-block
contents, unicode that is easy to break (CJK, ZWJ emoji, flags, combining marks, RTL, CRLF), JSON
and code. Whatever the draft decides, the output must keep the conversation intact: see
:func:`check_invariants`. ``scripts/fuzz.py`` runs the same checks for thousands of examples.
"""

from __future__ import annotations

import copy
import json
import unicodedata
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import regex
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from specprefill_langchain import PolicyConfig, SpecPrefillCompressor
from specprefill_langchain.stats import CompressionResult

GAP = " … "
KEEP_RATIOS = (0.1, 0.3, 0.7)

# --------------------------------------------------------------------------- strategies
# Pieces chosen to break naive code: every grapheme here spans several code points (and usually
# several byte-level BPE tokens), or reads right to left, or is structured text.
TRICKY = [
    "漢字",
    "日本語のテキストです",
    "中文测试",
    "한국어",
    "\u1100\u1161\u11a8",  # CJK, Hangul jamo
    "😀",
    "👍🏽",
    "👨\u200d👩\u200d👧\u200d👦",
    "🏳️\u200d🌈",
    "🇺🇸",
    "🇯🇵🇫🇷",
    "1️⃣",  # ZWJ, flags, keycap
    "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # a tag-sequence flag
    "e\u0301",
    "a\u0308\u0323",
    "n\u0303o",
    "नमस्ते",
    "ที่นี่",
    "Z\u0351\u0352\u0353",  # combining marks
    "שלום עולם",
    "مرحبا بالعالم",
    "\u200fRTL\u200e",
    "\u202eevil\u202c",  # RTL and bidi controls
    "\r\n",
    "\t",
    "\u00a0",
    "\u2028",
    "\x00",
    "…",
    "...",
]
WORDS = ["the", "key", "is", "kiwi-4417", "error", "E404", "return", "None", "self", "value", "=", "{", "}", "->"]
CODE = [
    "def f(x: int) -> int:\n    return x + 1\n",
    "class A:\n    pass\n",
    "for (int i = 0; i < n; ++i) { s += a[i]; }",
    json.dumps({"id": 7, "name": "widget", "tags": ["a", "b"], "price": 9.5}),
    json.dumps([{"k": i, "v": "x" * i} for i in range(4)], indent=1),
    json.dumps({"emoji": "👍🏽", "cjk": "漢字"}, ensure_ascii=False),
]

piece = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(TRICKY),
    st.sampled_from(CODE),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=8),  # anything but lone surrogates
)
sep = st.sampled_from([" ", " ", "", "\n", "\n\n", ", "])


@st.composite
def texts(draw: st.DrawFn, max_pieces: int = 40) -> str:
    pieces = draw(st.lists(st.tuples(piece, sep), max_size=max_pieces))
    return "".join(p + s for p, s in pieces)


IMAGE_BLOCKS = [
    {"type": "image", "url": "https://example.com/a.png"},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    {"type": "file", "url": "https://example.com/report.pdf", "mime_type": "application/pdf"},
]


@st.composite
def contents(draw: st.DrawFn) -> str | list[Any]:
    if draw(st.booleans()):
        return draw(texts())
    block = st.one_of(
        texts(),
        texts().map(lambda t: {"type": "text", "text": t}),
        texts().map(lambda t: {"type": "text", "text": t, "cache_control": {"type": "ephemeral"}}),
        st.sampled_from(IMAGE_BLOCKS),
    )
    return draw(st.lists(block, max_size=4))


@st.composite
def histories(draw: st.DrawFn) -> list[BaseMessage]:
    """A plausible agent history: every tool call gets its result, in any order."""
    out: list[BaseMessage] = []
    n = 0

    def mid() -> str | None:
        nonlocal n
        n += 1
        return f"m{n}" if draw(st.booleans()) else None

    if draw(st.booleans()):
        out.append(SystemMessage(draw(contents()), id=mid()))
    kinds = st.sampled_from(["human", "human", "ai", "tools", "tools", "unknown"])
    for kind in draw(st.lists(kinds, min_size=1, max_size=8)):
        if kind == "human":
            out.append(HumanMessage(draw(contents()), id=mid()))
        elif kind == "ai":
            out.append(AIMessage(draw(contents()), id=mid()))
        elif kind == "tools":
            k = draw(st.integers(1, 3))  # parallel tool calls
            calls = []
            for _ in range(k):
                n += 1
                args = draw(st.dictionaries(st.sampled_from(["path", "q", "n"]), texts(3), max_size=2))
                calls.append(
                    {
                        "name": draw(st.sampled_from(["read_file", "search", "run"])),
                        "args": args,
                        "id": f"call_{n}",
                        "type": "tool_call",
                    }
                )
            out.append(AIMessage(draw(contents()), tool_calls=calls, id=mid()))
            for call in draw(st.permutations(calls)):
                status = draw(st.sampled_from(["success", "error"]))
                out.append(
                    ToolMessage(draw(contents()), tool_call_id=call["id"], name=call["name"], status=status, id=mid())
                )
        else:
            text = draw(texts())
            if draw(st.booleans()):
                out.append(ChatMessage(text, role="critic", id=mid()))
            else:
                out.append(FunctionMessage(text, name="legacy_fn", id=mid()))
    if draw(st.booleans()):
        out.append(HumanMessage(draw(texts(12)) or "why?", id=mid()))
    return out


# --------------------------------------------------------------------------- the checks
def _protected(messages: Sequence[BaseMessage], i: int) -> bool:
    """Our own reading of docs/design.md, "Policy", under the default roles (not the engine's code)."""
    m = messages[i]
    humans = [j for j, x in enumerate(messages) if isinstance(x, HumanMessage)]
    latest = humans[-1] if humans else None
    if isinstance(m, ToolMessage):
        return False
    if isinstance(m, HumanMessage | AIMessage):
        return latest is None or i >= latest
    return True  # system, ChatMessage, FunctionMessage, anything unknown


def _texts(m: BaseMessage) -> Iterator[tuple[int | None, str]]:
    if isinstance(m.content, str):
        yield None, m.content
        return
    for k, b in enumerate(m.content):
        if isinstance(b, str):
            yield k, b
        elif isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str):
            yield k, b["text"]


def grapheme_bounds(text: str) -> set[int]:
    bounds = {0, len(text)}
    for g in regex.finditer(r"\X", text):
        bounds.add(g.start())
    return bounds


def _pieces_by_split(original: str, compressed: str, gap: str) -> list[str] | None:
    """The kept pieces, read back from the text alone (only unambiguous when the text has no marker)."""
    core = gap.strip()
    if core and core in original:
        return None
    if compressed == core:
        return []
    s = compressed
    if s.startswith(gap.lstrip()):
        s = s[len(gap.lstrip()) :]
    if s.endswith(gap.rstrip()):
        s = s[: -len(gap.rstrip())]
    return s.split(gap)


def _spans_of(result: CompressionResult, i: int, block: int | None) -> list[tuple[int, int]] | None:
    t = result.transcript
    if t is None:
        return None
    for pi, part in enumerate(t.parts):
        if part.message == i and part.block == block and pi in result.kept:
            return sorted(result.kept[pi])
    return None


def check_invariants(
    before: list[BaseMessage], inp: list[BaseMessage], result: CompressionResult, gap: str = GAP
) -> None:
    """Everything an agent loop relies on; raises AssertionError with the message index on a break."""
    out = result.messages
    assert inp == before, "the input messages were mutated"
    assert len(out) == len(inp), f"{len(inp)} messages in, {len(out)} out"
    call_ids = {c["id"] for m in inp if isinstance(m, AIMessage) for c in m.tool_calls}
    answered = {m.tool_call_id for m in out if isinstance(m, ToolMessage)}
    assert call_ids <= answered | {None}, f"tool calls without their result: {call_ids - answered}"
    for i, (a, b) in enumerate(zip(inp, out, strict=True)):
        where = f"message {i} ({type(a).__name__})"
        assert type(b) is type(a), f"{where}: type became {type(b).__name__}"
        for attr in (
            "id",
            "name",
            "tool_call_id",
            "tool_calls",
            "invalid_tool_calls",
            "status",
            "artifact",
            "role",
            "additional_kwargs",
            "response_metadata",
        ):
            assert getattr(a, attr, None) == getattr(b, attr, None), f"{where}: {attr} changed"
        if _protected(inp, i):
            assert b == a and b.content == a.content and type(b.content) is type(a.content), f"{where} changed"
            continue
        if isinstance(a.content, str):
            assert isinstance(b.content, str), f"{where}: str content became {type(b.content).__name__}"
        else:
            assert isinstance(b.content, list) and len(b.content) == len(a.content), f"{where}: blocks changed"
            for k, (x, y) in enumerate(zip(a.content, b.content, strict=True)):
                if isinstance(x, dict) and x.get("type") == "text":
                    assert isinstance(y, dict) and {**y, "text": x["text"]} == x, f"{where} block {k}: keys changed"
                elif not isinstance(x, str):
                    assert y == x, f"{where} block {k}: a non-text block changed"
        for (k, orig), (k2, new) in zip(_texts(a), _texts(b), strict=True):
            assert k == k2
            new.encode("utf-8")  # no lone surrogate can come out of valid input
            if new == orig:
                continue
            pieces = _pieces_by_split(orig, new, gap)
            if pieces is not None:
                pos = 0
                for p in pieces:
                    assert p, f"{where} block {k}: an empty kept piece between two gap markers"
                    found = orig.find(p, pos)
                    assert found >= 0, f"{where} block {k}: kept piece {p!r} is not in order in the original"
                    pos = found + len(p)
            spans = _spans_of(result, i, k)
            assert spans is not None, f"{where} block {k}: text changed but no kept spans were recorded"
            bounds = grapheme_bounds(orig)
            for s0, s1 in spans:
                assert 0 <= s0 < s1 <= len(orig)
                assert s0 in bounds and s1 in bounds, (
                    f"{where} block {k}: kept span ({s0}, {s1}) splits a grapheme: "
                    f"{orig[max(0, s0 - 3) : s0 + 3]!r} / {orig[max(0, s1 - 3) : s1 + 3]!r}"
                )
                first = orig[s0]
                if s0 > 0:
                    assert not unicodedata.combining(first) and unicodedata.category(first) not in ("Mn", "Me")
            if pieces is not None:
                assert [orig[s0:s1] for s0, s1 in _merge(spans)] == pieces, f"{where} block {k}: pieces != spans"


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def run_one(compressor: SpecPrefillCompressor, history: list[BaseMessage]) -> CompressionResult:
    before = copy.deepcopy(history)
    result = compressor.compress(history)
    check_invariants(before, history, result, compressor.config.selection.gap_marker)
    assert result.stats.error is None, result.stats.error
    return result


# --------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def tiny_compressors(tiny, one_thread) -> dict[float, SpecPrefillCompressor]:
    policy = PolicyConfig(min_compressible_tokens=0)
    return {kr: SpecPrefillCompressor(draft=tiny, keep_ratio=kr, policy=policy) for kr in KEEP_RATIOS}


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(history=histories(), kr=st.sampled_from(KEEP_RATIOS))
def test_invariants_tiny(tiny_compressors, history: list[BaseMessage], kr: float) -> None:
    run_one(tiny_compressors[kr], history)


@pytest.mark.real
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(history=histories(), kr=st.sampled_from(KEEP_RATIOS))
def test_invariants_smollm2(smol, one_thread, history: list[BaseMessage], kr: float) -> None:
    compressor = SpecPrefillCompressor(draft=smol, keep_ratio=kr, policy=PolicyConfig(min_compressible_tokens=0))
    run_one(compressor, history)


def test_hand_written_tricky_history(tiny_compressors) -> None:
    """Every tricky piece in one tool output, parallel calls answered out of order: all invariants hold."""
    blob = " ".join(TRICKY * 6) + "\n" + "\n".join(CODE * 3)
    calls = [
        {"name": "read", "args": {"p": "a"}, "id": "c1", "type": "tool_call"},
        {"name": "grep", "args": {"q": "漢字"}, "id": "c2", "type": "tool_call"},
    ]
    history = [
        SystemMessage("system 👍🏽"),
        HumanMessage([{"type": "text", "text": blob}, {"type": "image", "url": "https://example.com/a.png"}]),
        AIMessage("", tool_calls=calls, id="ai"),
        ToolMessage(blob, tool_call_id="c2", name="grep", id="t2"),
        ToolMessage([blob, {"type": "image", "url": "https://x/y.png"}], tool_call_id="c1", name="read", id="t1"),
        HumanMessage("what now? 🇯🇵"),
    ]
    for kr in KEEP_RATIOS:
        result = run_one(tiny_compressors[kr], history)
        assert not result.stats.passthrough


DENSE = [
    "각",
    "\u1100\u1161\u11a8",
    "👍🏽",
    "🇺🇸",
    "🇯🇵🇫🇷",
    "1️⃣",
    "x\u20e3",
    "नमस्ते",
    "कि",
    "a\r\nb",
    "👩🏽\u200d💻",
    "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
    "e\u0301",
    "👨\u200d👩\u200d👧\u200d👦",
]


@pytest.mark.parametrize("grapheme", DENSE, ids=[f"g{i}" for i in range(len(DENSE))])
def test_no_cut_inside_a_grapheme(tiny_compressors, grapheme: str) -> None:
    """Text made only of multi-code-point graphemes, with no spaces: chunks may only end between them.

    Before the fix flags, skin tones, keycaps, tag flags, Indic marks, Hangul jamo and CR LF could be
    cut in two (a byte-level BPE boundary falls inside them and was a valid word-level cut).
    """
    from specprefill_langchain.transcript import Transcript

    text = grapheme * 150
    history = [ToolMessage(text, tool_call_id="c1", name="t"), HumanMessage("q")]
    t = Transcript(history, tiny_compressors[0.3].draft.tokenizer, PolicyConfig(min_compressible_tokens=0))
    part = next(p for p in t.parts if p.compressible)
    bounds = grapheme_bounds(text)
    cuts = [part.starts[i + 1] for i, b in enumerate(part.breaks[:-1]) if b > 0]
    assert all(c in bounds for c in cuts)
    for kr in KEEP_RATIOS:
        run_one(tiny_compressors[kr], history)


# --------------------------------------------------------------------------- never a half word
@st.composite
def break_levels(draw: st.DrawFn) -> list[int]:
    """Gap levels (boundaries.Cut) of a text: words, and runs of up to 150 tokens with no word boundary."""
    out: list[int] = []
    for kind in draw(st.lists(st.sampled_from(["gap", "run"]), max_size=30)):
        if kind == "gap":
            out.append(draw(st.integers(0, 4)))
        else:
            out += draw(st.lists(st.integers(0, 1), min_size=1, max_size=150))  # a URL, base64, an id
    return out


@settings(max_examples=400, deadline=None)
@given(levels=break_levels(), target=st.integers(1, 48))
def test_make_chunks_ends_only_at_word_boundaries(levels: list[int], target: int) -> None:
    """Every chunk ends at SPACE or stronger (or the text's end), whatever the levels; lengths stay sane."""
    from specprefill_langchain.boundaries import Cut
    from specprefill_langchain.selection import make_chunks

    n = len(levels)
    chunks = make_chunks(torch.tensor(levels, dtype=torch.long), target)
    assert make_chunks(torch.tensor(levels, dtype=torch.long), target) == chunks
    if n == 0:
        assert chunks == []
        return
    assert chunks[0][0] == 0 and chunks[-1][1] == n
    assert all(a < b and (i + 1 == len(chunks) or b == chunks[i + 1][0]) for i, (a, b) in enumerate(chunks))
    lo, hi = max(1, target // 2), 2 * target
    for a, b in chunks:
        assert b == n or levels[b - 1] >= Cut.SPACE, f"chunk ({a}, {b}) ends inside a word: level {levels[b - 1]}"
        if n >= lo:
            assert b - a >= lo, f"chunk ({a}, {b}) is a sliver of a {n}-token text (target {target})"
        if b - a > hi:
            # Longer than 2*target only for want of a word boundary it could have ended at.
            could = [e for e in range(a + lo, b) if levels[e - 1] >= Cut.SPACE and n - e >= lo]
            assert not could, f"chunk ({a}, {b}) is {b - a} tokens but could have ended at {could[:3]}"


def _random_run(rng: Any, kind: str) -> str:
    """A run of non-space characters of the kind tool outputs are full of."""
    import base64

    if kind == "url":
        path = "/".join(f"{rng.getrandbits(48):012x}" for _ in range(rng.randint(6, 20)))
        return f"https://cdn.example.com/assets/{path}?sig={rng.getrandbits(128):032x}&expires={rng.randint(1, 10**9)}"
    if kind == "base64":
        return base64.b64encode(rng.randbytes(rng.randint(200, 900))).decode()
    if kind == "json":
        record = {f"field_{i}": [rng.randint(0, 999), f"v{rng.getrandbits(20):x}"] for i in range(rng.randint(8, 30))}
        return json.dumps(record, separators=(",", ":"))
    words = [rng.choice(WORDS[:10]).replace("-", "_").capitalize() for _ in range(rng.randint(15, 40))]
    return "get" + "".join(words) + "Factory"


PROSE = [
    "The upload finished and the server answered with the following resource.",
    "Retrying the request once more, with the same credentials as before.",
    "Nothing unusual in this part of the log, only routine health checks.",
    "The billing service reported a warning for the record below.",
]


@pytest.mark.real
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    seed=st.integers(0, 2**32 - 1),
    kinds=st.lists(st.sampled_from(["url", "base64", "json", "identifier"]), min_size=6, max_size=12),
    kr=st.sampled_from((0.2, 0.4)),
)
def test_kept_pieces_never_begin_or_end_inside_a_word_smollm2(
    smol, one_thread, seed: int, kinds: list[str], kr: float
) -> None:
    """Tool output full of URLs, base64, compact JSON and long identifiers, on the real draft: each kept
    piece starts and ends at whitespace or a text edge, never in the middle of a run of non-space text."""
    import random

    rng = random.Random(seed)
    pieces = []
    for kind in kinds:
        pieces.append(rng.choice(PROSE))
        pieces.append(_random_run(rng, kind))
    seps = ["\n", " ", "\n\n"]
    text = "".join(p + rng.choice(seps) for p in pieces)
    history = [
        SystemMessage("You are an agent."),
        HumanMessage("Fetch the billing resources."),
        AIMessage("", tool_calls=[{"name": "fetch", "args": {"url": "/billing"}, "id": "c1", "type": "tool_call"}]),
        ToolMessage(text, tool_call_id="c1", name="fetch"),
        HumanMessage("Which resource did the billing service warn about?"),
    ]
    compressor = SpecPrefillCompressor(draft=smol, keep_ratio=kr, policy=PolicyConfig(min_compressible_tokens=0))
    result = run_one(compressor, history)
    assert not result.stats.passthrough
    out = result.messages[3].content
    assert out != text, "nothing was dropped: the test would prove nothing"
    spans = _spans_of(result, 3, None)
    assert spans

    def at_word_edge(p: int) -> bool:
        return p in (0, len(text)) or text[p - 1].isspace() or text[p].isspace()

    for s0, s1 in _merge(spans):
        assert at_word_edge(s0), f"a kept piece begins inside a word: ...{text[max(0, s0 - 20) : s0 + 20]!r}"
        assert at_word_edge(s1), f"a kept piece ends inside a word: ...{text[max(0, s1 - 20) : s1 + 20]!r}"
