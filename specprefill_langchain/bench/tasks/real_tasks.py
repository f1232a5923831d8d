"""Task kinds whose tool outputs are real text: needle, kv_json, multi_hop, code_default, code_signature.

Each generator takes a seeded ``random.Random``, the size budget (chars) of all tool outputs and a
relative depth for the evidence, and returns :class:`TaskParts`; distractor rounds are added later.
"""

from __future__ import annotations

import ast
import functools
import random
from dataclasses import dataclass

from specprefill_langchain.bench.tasks import sources
from specprefill_langchain.bench.tasks.rounds import Round, TaskParts, clip_lines, insert_line, window

# Names for invented services; the facts themselves are the only invented text in these tasks.
_ADJ = ("amber", "brisk", "cobalt", "dusty", "eager", "fuzzy", "gentle", "hollow", "ivory", "jolly")
_NOUN = ("falcon", "harbor", "lantern", "meadow", "nebula", "orchid", "pepper", "quartz", "ridge", "summit")
_WORD = ("maple", "tango", "violet", "walnut", "zephyr", "copper", "delta", "ember", "glacier", "kestrel")


def _service(rng: random.Random) -> str:
    return f"{rng.choice(_ADJ)}-{rng.choice(_NOUN)}-{rng.randint(2, 99)}"


def _share(budget: int, rng: random.Random, lo: float = 0.35, hi: float = 0.6) -> int:
    return int(budget * rng.uniform(lo, hi))


def _host_round(rng: random.Random, budget: int, note: str, depth: float) -> Round:
    """A real file or pydoc page of about ``budget`` chars with ``note`` as its own line at ``depth``."""
    if rng.random() < 0.5:
        rel = rng.choice([f for f in sources.stdlib_files() if len(sources.read_stdlib(f)) > budget // 2])
        text, start, end = clip_lines(sources.read_stdlib(rel), budget - len(note) - 3, rng)
        args = {"path": sources.display_path(rel), "offset": start + 1, "limit": end - start}
        return Round("read_file", args, insert_line(text, f"# {note}", depth))
    module = rng.choice(sources.PYDOC_MODULES)
    text, _, _ = clip_lines(sources.pydoc_page(module), budget - len(note) - 5, rng)
    return Round("pydoc", {"name": module}, insert_line(text, f"    {note}", depth))


def needle(rng: random.Random, budget: int, depth: float) -> TaskParts:
    svc = _service(rng)
    key = f"{rng.choice(_WORD)}-{rng.randint(1000, 9999)}"
    note = f"Note: the deployment key for service {svc} is {key}."
    return TaskParts(
        request=f"We lost track of the deployment key for service {svc}. Look through the code and docs.",
        question=f"What is the deployment key for service {svc}? Reply with the key only.",
        answer=key,
        evidence=(note,),
        rounds=(_host_round(rng, _share(budget, rng), note, depth),),
    )


@dataclass(frozen=True)
class _Ask:
    """How to ask for a table's value directly, and through a note that names the key."""

    direct: str
    note: str
    hop: str


_ASK = {
    "http_status": _Ask(
        "What is the reason phrase of HTTP status code {k}?",
        "Note: the health check of service {s} last returned HTTP status {k}.",
        "What is the reason phrase of the HTTP status that the health check of service {s} last returned?",
    ),
    "errno": _Ask(
        "What is the numeric value of errno {k}?",
        "Note: the nightly job {s} last failed with error {k}.",
        "What is the numeric errno value of the error that the nightly job {s} last failed with?",
    ),
    "unicode": _Ask(
        "What is the code point of the character named {k}?",
        "Note: the exporter {s} separates fields with the character {k}.",
        "What is the code point of the character that the exporter {s} uses to separate fields?",
    ),
    "locale_alias": _Ask(
        "Which locale does the alias '{k}' map to?",
        "Note: the support desk {s} runs with the locale alias {k}.",
        "Which locale does the locale alias of the support desk {s} map to?",
    ),
    "mimetypes": _Ask(
        "Which MIME type is registered for the extension '{k}'?",
        "Note: uploads to the bucket {s} are stored with the extension {k}.",
        "Which MIME type is registered for the extension of uploads to the bucket {s}?",
    ),
}


def _table_round(rng: random.Random, budget: int, depth: float) -> tuple[sources.Table, dict[str, object], Round]:
    tab = sources.table(rng.choice(sorted(sources.TABLES)))
    lines = [sources.record_line(r) + "," for r in tab.records]
    target = rng.randrange(len(lines))
    start, end = window(lines, budget - 60, rng, anchor=target, depth=depth)
    records = list(tab.records[start:end])
    args = {"url": tab.url, "params": {"offset": start, "limit": end - start}}
    return tab, tab.records[target], Round("http_get_json", args, sources.render_table(tab, records))


def kv_json(rng: random.Random, budget: int, depth: float) -> TaskParts:
    tab, rec, rnd = _table_round(rng, _share(budget, rng), depth)
    question = _ASK[tab.name].direct.format(k=rec[tab.key])
    return TaskParts(
        request=f"Use the internal {tab.name} API to answer this: {question}",
        question=f"{question} Reply with the value only.",
        answer=str(rec[tab.value]),
        evidence=(sources.record_line(rec),),
        rounds=(rnd,),
    )


def multi_hop(rng: random.Random, budget: int, depth: float) -> TaskParts:
    tab, rec, table_rnd = _table_round(rng, _share(budget, rng, 0.25, 0.4), depth)
    svc = _service(rng)
    ask = _ASK[tab.name]
    note = ask.note.format(s=svc, k=rec[tab.key])
    host = _host_round(rng, _share(budget, rng, 0.2, 0.35), note, rng.random())
    question = ask.hop.format(s=svc)
    return TaskParts(
        request=f"Something is off with {svc}; dig through the code, docs and APIs. {question}",
        question=f"{question} Reply with the value only.",
        answer=str(rec[tab.value]),
        evidence=(note, sources.record_line(rec)),
        rounds=(host, table_rnd),
    )


@dataclass(frozen=True)
class _Def:
    name: str
    line_no: int  # 0-based
    line: str  # the def line, stripped of indentation
    defaults: tuple[tuple[str, str], ...]  # (parameter, default as written)


@functools.cache
def _defs(rel: str) -> tuple[_Def, ...]:
    """One-line ``def`` statements with defaults whose name and line are unique in the file."""
    src = sources.read_stdlib(rel)
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return ()
    lines = src.splitlines()
    funcs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    names = [f.name for f in funcs]
    found = []
    for f in funcs:
        line = lines[f.lineno - 1].strip()
        one_line = line.endswith(":") and f"def {f.name}(" in line and len(line) < 150
        if not one_line or names.count(f.name) != 1 or src.count(line) != 1:
            continue
        a = f.args
        positional = [*a.posonlyargs, *a.args][len(a.posonlyargs) + len(a.args) - len(a.defaults) :]
        pairs = [(p.arg, d) for p, d in zip(positional, a.defaults, strict=True)]
        pairs += [(p.arg, d) for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is not None]
        # Defaults on the def line itself, cut by column (byte offsets; get_source_segment is slow).
        raw = lines[f.lineno - 1].encode()
        written = tuple(
            (p, raw[d.col_offset : d.end_col_offset].decode())
            for p, d in pairs
            if d.lineno == d.end_lineno == f.lineno and d.end_col_offset is not None
        )
        if written:
            found.append(_Def(f.name, f.lineno - 1, line, written))
    return tuple(found)


def _informative(d: _Def) -> tuple[tuple[str, str], ...]:
    # ``None`` is the default a model would guess without reading; ask about other values.
    return tuple((p, v) for p, v in d.defaults if v != "None")


def _code(rng: random.Random, budget: int, depth: float) -> tuple[str, _Def, Round]:
    share = _share(budget, rng)
    files = list(sources.stdlib_files())
    rng.shuffle(files)
    # Parse files lazily in a seeded order: parsing the whole library would cost seconds.
    rel = next(f for f in files if any(_informative(d) for d in _defs(f)))
    d = rng.choice([d for d in _defs(rel) if _informative(d)])
    lines = sources.read_stdlib(rel).splitlines()
    start, end = window(lines, share, rng, anchor=d.line_no, depth=depth)
    args = {"path": sources.display_path(rel), "offset": start + 1, "limit": end - start}
    return rel, d, Round("read_file", args, "\n".join(lines[start:end]))


def code_default(rng: random.Random, budget: int, depth: float) -> TaskParts:
    rel, d, rnd = _code(rng, budget, depth)
    param, default = rng.choice(_informative(d))
    path = sources.display_path(rel)
    return TaskParts(
        request=f"I call `{d.name}` from {path} without passing `{param}`. Which default does it use?",
        question=f"In {path}, what is the default value of the parameter `{param}` of `{d.name}`? "
        "Reply with the value only, as written in the source.",
        answer=default,
        evidence=(d.line,),
        rounds=(rnd,),
        avoid_files=frozenset({rel}),
    )


def code_signature(rng: random.Random, budget: int, depth: float) -> TaskParts:
    rel, d, rnd = _code(rng, budget, depth)
    path = sources.display_path(rel)
    return TaskParts(
        request=f"Find how `{d.name}` is declared in {path}; I need its exact signature.",
        question=f"What is the exact `def` line of `{d.name}` in {path}? Quote it verbatim.",
        answer=d.line,
        evidence=(d.line,),
        rounds=(rnd,),
        avoid_files=frozenset({rel}),
    )
