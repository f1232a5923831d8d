"""One compressor shared by many agent threads and tasks: same outputs as serial runs, a prefix cache
that stays within its byte budget, and cache entries that no reader ever sees change."""

from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from specprefill_langchain import DraftModel, PolicyConfig, SpecPrefillCompressor

THREADS, STEPS = 8, 20
WORDS = "alpha beta gamma delta error warning retry timeout config value key user id token cache".split()  # noqa: SIM905


def step_messages(tid: int, step: int) -> list[BaseMessage]:
    """What agent thread ``tid`` appends at ``step``: a tool call and its (thread-specific) output."""
    rng = random.Random(tid * 1000 + step)
    lines = [f"{tid}:{step}:{i} " + " ".join(rng.choices(WORDS, k=6)) for i in range(4)]
    call = {"name": "search", "args": {"q": f"t{tid} s{step}"}, "id": f"c{tid}-{step}", "type": "tool_call"}
    return [
        AIMessage("", tool_calls=[call], id=f"a{tid}-{step}"),
        ToolMessage("\n".join(lines), tool_call_id=call["id"], name="search", id=f"t{tid}-{step}"),
    ]


def thread_history(tid: int, steps: int) -> list[BaseMessage]:
    """Thread ``tid``'s history after ``steps`` steps: it only grows by appending (the question last)."""
    msgs: list[BaseMessage] = [SystemMessage("You are an agent."), HumanMessage(f"Task {tid}: find the config key.")]
    for s in range(steps):
        msgs += step_messages(tid, s)
    return [*msgs, HumanMessage(f"Thread {tid}: which config key failed?", id=f"q{tid}")]


def make(draft: DraftModel, cache_bytes: int) -> SpecPrefillCompressor:
    return SpecPrefillCompressor(
        draft=draft, keep_ratio=0.3, cache_bytes=cache_bytes, policy=PolicyConfig(min_compressible_tokens=0)
    )


def run_thread(comp: SpecPrefillCompressor, tid: int, steps: int, keyed: bool) -> list[list[BaseMessage]]:
    key = f"thread-{tid}" if keyed else None
    return [comp.compress(thread_history(tid, s + 1), cache_key=key).messages for s in range(steps)]


def run_concurrent(comp: SpecPrefillCompressor, threads: int, steps: int, keyed: bool) -> dict:
    with ThreadPoolExecutor(threads) as pool:
        futures = {tid: pool.submit(run_thread, comp, tid, steps, keyed) for tid in range(threads)}
        return {tid: f.result() for tid, f in futures.items()}


def serial_reference(draft: DraftModel, threads: int, steps: int) -> dict:
    comp = make(draft, 0)  # no prefix cache: every step from scratch
    return {tid: run_thread(comp, tid, steps, keyed=False) for tid in range(threads)}


# --------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def reference(tiny, one_thread) -> dict:
    return serial_reference(tiny, THREADS, STEPS)


# Small enough that the 8 threads' entries cannot all stay: evictions happen all the time.
BUDGET = 1_500_000


@pytest.mark.parametrize("keyed", [True, False], ids=["thread-keys", "no-keys"])
def test_threads_match_serial(tiny, reference: dict, keyed: bool) -> None:
    """8 threads x 20 steps on one compressor == the same steps run one by one without a cache;
    the prefix store never holds more than its budget, and it did evict."""
    comp = make(tiny, BUDGET)
    got = run_concurrent(comp, THREADS, STEPS, keyed)
    diffs = [(tid, s) for tid in range(THREADS) for s in range(STEPS) if got[tid][s] != reference[tid][s]]
    assert not diffs, f"{len(diffs)} outputs differ from serial, first {diffs[:5]}"
    stats = comp.cache.stats
    assert stats.max_bytes <= BUDGET and comp.cache.nbytes <= BUDGET, (stats, BUDGET)
    assert stats.evictions > 0 and stats.hits > 0, stats


async def test_async_gather_matches_serial(tiny, reference: dict) -> None:
    """``ainvoke`` under ``asyncio.gather`` (thread ids in the run config) == the serial outputs."""
    comp = make(tiny, BUDGET)
    steps = 6

    async def agent(tid: int) -> list[list[BaseMessage]]:
        config = {"configurable": {"thread_id": f"t{tid}"}}
        return [await comp.ainvoke(thread_history(tid, s + 1), config=config) for s in range(steps)]

    got = await asyncio.gather(*(agent(tid) for tid in range(THREADS)))
    for tid in range(THREADS):
        assert got[tid] == reference[tid][:steps], f"thread {tid} differs"
    assert comp.cache.stats.max_bytes <= BUDGET


def test_cache_entry_never_mutated_under_reader(tiny, one_thread) -> None:
    """A snapshot handed to a reader stays bit-identical, in the same storage, while 8 threads extend
    the same prefix in different ways (inference tensors keep no version counter to check)."""
    comp = make(tiny, 64 * 2**20)
    base = thread_history(0, 25)  # past one whole prefill chunk: the store holds whole chunks only
    comp.compress(base)
    t = comp.compress(base).transcript
    assert t is not None
    prefix = t.scoring_sequence()[0][: len(t.ids)]
    snap, n = comp.cache.lookup(prefix)
    assert snap is not None and n > 0
    tensors = [x for layer in snap.layers for x in (layer.keys, layer.values)]
    copies = [x.clone() for x in tensors]
    pointers = [x.data_ptr() for x in tensors]

    def extend(tid: int) -> None:
        for s in range(3):
            comp.compress([*base[:-1], *step_messages(100 + tid, s), base[-1]])

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(extend, range(THREADS)))
    assert all(torch.equal(x, c) for x, c in zip(tensors, copies, strict=True))
    assert [x.data_ptr() for x in tensors] == pointers


@pytest.mark.real
def test_deterministic_across_runs_and_thread_counts(smol) -> None:
    """The same history gives the same output on every run, with 1 or 2 torch threads (real SmolLM2).

    Thread counts change the float reduction order of the forward passes (score noise ~1e-7); the
    selection must not flip on it."""
    from transcripts import agent_transcript

    msgs = agent_transcript(1500)
    old = torch.get_num_threads()
    outputs = []
    try:
        for threads in (1, 2, 2):
            torch.set_num_threads(threads)
            comp = SpecPrefillCompressor(draft=smol, keep_ratio=0.3, policy=PolicyConfig(min_compressible_tokens=0))
            outputs.append(comp.compress(msgs).messages)
    finally:
        torch.set_num_threads(old)
    assert all(o == outputs[0] for o in outputs[1:])
