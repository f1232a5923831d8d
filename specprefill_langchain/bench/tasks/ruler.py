"""RULER-style synthetic kinds: passkey, multikey and variable tracking in a repeated-filler haystack.

These follow the shape of the RULER benchmark's tasks (a noise haystack with planted sentences), but
are generated here; the haystack is split over 2–5 ``read_file`` rounds of a "memo".
"""

from __future__ import annotations

import itertools
import random
import string

from specprefill_langchain.bench.tasks.rounds import Round, TaskParts

FILLER = (
    "The grass is green.",
    "The sky is blue.",
    "The sun is yellow.",
    "Here we go.",
    "There and back again.",
)
_ADJ = ("abashed", "brave", "curious", "dapper", "elated", "fierce", "gaudy", "humble", "icy", "jaunty")
_NOUN = ("brother", "canyon", "dolphin", "engine", "forest", "garden", "hammer", "island", "jacket", "kettle")


def _haystack(budget: int, needles: list[tuple[float, str]]) -> list[str]:
    """Filler sentences of about ``budget`` chars with each needle planted at its relative depth."""
    per = sum(len(s) + 1 for s in FILLER) / len(FILLER)
    room = budget - sum(len(s) + 1 for _, s in needles)
    sentences = [FILLER[i % len(FILLER)] for i in range(max(len(FILLER), int(room / per)))]
    # Plant from the deepest so earlier insertions do not shift later positions.
    for depth, sentence in sorted(needles, key=lambda n: n[0], reverse=True):
        sentences.insert(round(depth * len(sentences)), sentence)
    return sentences


def _rounds(rng: random.Random, sentences: list[str]) -> tuple[Round, ...]:
    """Lines of filler (a line ends after each 'There and back again.'), split into 2–5 memo parts."""
    lines: list[str] = []
    line: list[str] = []
    for s in sentences:
        line.append(s)
        if s == FILLER[-1]:
            lines.append(" ".join(line))
            line = []
    if line:
        lines.append(" ".join(line))
    n = rng.randint(2, 5)
    cuts = [round(i * len(lines) / n) for i in range(n + 1)]
    return tuple(
        Round("read_file", {"path": f"shared/memo/part-{i + 1}.txt"}, "\n".join(lines[cuts[i] : cuts[i + 1]]))
        for i in range(n)
        if cuts[i] < cuts[i + 1]
    )


def passkey(rng: random.Random, budget: int, depth: float) -> TaskParts:
    key = rng.randint(10000, 99999)
    needle = f"The pass key is {key}. Remember it."
    return TaskParts(
        request="There is a pass key hidden in the memo in shared/memo/. Read it and find the pass key.",
        question="What is the pass key mentioned in the memo? Reply with the number only.",
        answer=str(key),
        evidence=(needle,),
        rounds=_rounds(rng, _haystack(budget, [(depth, needle)])),
        fill=False,
    )


def multikey(rng: random.Random, budget: int, depth: float) -> TaskParts:
    n_keys = 4 + budget // 8000  # more distractors in longer haystacks, as RULER scales them
    keys = rng.sample([f"{a}-{b}" for a in _ADJ for b in _NOUN], n_keys)
    values = rng.sample(range(1_000_000, 10_000_000), n_keys)
    sentences = [f"One of the special magic numbers for {k} is: {v}." for k, v in zip(keys, values, strict=True)]
    needles = [(depth, sentences[0])] + [(rng.random(), s) for s in sentences[1:]]
    return TaskParts(
        request="The memo in shared/memo/ lists special magic numbers. Read it.",
        question=f"What is the special magic number for {keys[0]} mentioned in the memo? Reply with the number.",
        answer=str(values[0]),
        evidence=(sentences[0],),
        rounds=_rounds(rng, _haystack(budget, needles)),
        fill=False,
    )


def _names(rng: random.Random, n: int) -> list[str]:
    names: set[str] = set()
    while len(names) < n:
        names.add("".join(rng.choices(string.ascii_uppercase, k=5)))
    return rng.sample(sorted(names), n)


def vartrack(rng: random.Random, budget: int, depth: float, hops: int = 4) -> TaskParts:
    names = _names(rng, 2 * (hops + 1))
    value, other = rng.sample(range(10000, 100000), 2)
    chains = []
    for chain_names, val in ((names[: hops + 1], value), (names[hops + 1 :], other)):
        first = f"VAR {chain_names[0]} = {val}"
        chains.append([first] + [f"VAR {b} = VAR {a}" for a, b in itertools.pairwise(chain_names)])
    # Statements of a chain keep their order; the two chains interleave at random depths.
    slots = sorted(rng.random() for _ in range(2 * (hops + 1)))
    order = rng.sample([0] * (hops + 1) + [1] * (hops + 1), 2 * (hops + 1))
    queues = [list(c) for c in chains]
    needles = [(d, queues[c].pop(0) + ".") for d, c in zip(slots, order, strict=True)]
    return TaskParts(
        request="The memo in shared/memo/ assigns values to variables. Read it and track the assignments.",
        question=f"Find all variables that are assigned the value {value} in the memo, directly or through "
        "other variables. List their names separated by spaces.",
        answer=" ".join(names[: hops + 1]),
        evidence=tuple(chains[0]),
        rounds=_rounds(rng, _haystack(budget, needles)),
        fill=False,
    )
