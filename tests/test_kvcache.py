"""PrefixCache: longest-common-prefix lookup, byte budget, LRU, thread keys, immutability."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from specprefill_langchain.kvcache import (
    LayerState,
    PrefixCache,
    Snapshot,
    common_prefix,
    crop_snapshot,
)


def snap(n: int, layers: int = 2, heads: int = 2, dim: int = 4, fill: float = 0.0) -> Snapshot:
    mk = lambda: torch.full((1, heads, n, dim), fill)  # noqa: E731
    return Snapshot(n, tuple(LayerState(mk(), mk(), None) for _ in range(layers)))


def test_common_prefix():
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([9], [1]) == 0


def test_lookup_longest_prefix_and_crop():
    store = PrefixCache()
    store.put([1, 2, 3, 4], snap(4, fill=1.0))
    store.put([7, 8], snap(2, fill=2.0))
    got, n = store.lookup([1, 2, 3, 9, 9])
    assert n == 3 and got is not None and got.length == 3
    assert got.layers[0].keys.shape[-2] == 3 and float(got.layers[0].keys[0, 0, 0, 0]) == 1.0
    assert store.lookup([5, 5]) == (None, 0)
    assert store.stats.hits == 1 and store.stats.tokens_reused == 3


def test_sliding_layers_are_not_cropped_past_their_window():
    full = torch.zeros(1, 1, 4, 2)
    s = Snapshot(10, (LayerState(full, full, 10),))  # keeps 4 of 10 tokens: cannot go back
    assert crop_snapshot(s, 10) is s
    assert crop_snapshot(s, 8) is None
    store = PrefixCache()
    store.put(list(range(10)), s)
    assert store.lookup([*range(8), 99], croppable=False) == (None, 0)
    got, n = store.lookup([*range(10), 5], croppable=False)
    assert n == 10 and got is s


def test_byte_budget_respected_under_many_inserts():
    one = snap(16).nbytes
    store = PrefixCache(max_bytes=5 * one)
    for i in range(200):
        store.put([i, i + 1000, *range(14)], snap(16))
        assert store.nbytes <= 5 * one
    assert len(store) == 5
    assert store.stats.max_bytes <= 5 * one
    assert store.stats.evictions == 195


def test_lru_evicts_least_recently_used():
    one = snap(4).nbytes
    store = PrefixCache(max_bytes=2 * one)
    store.put([1, 1, 1, 1], snap(4))
    store.put([2, 2, 2, 2], snap(4))
    store.lookup([1, 1, 1, 1])  # touch 1: now 2 is the oldest
    store.put([3, 3, 3, 3], snap(4))
    assert store.lookup([1, 1, 1, 1])[1] == 4
    assert store.lookup([2, 2, 2, 2]) == (None, 0)


def test_entry_larger_than_budget_is_not_stored_and_zero_disables():
    store = PrefixCache(max_bytes=10)
    store.put([1, 2, 3, 4], snap(4))
    assert len(store) == 0
    assert PrefixCache(0).lookup([1]) == (None, 0)
    with pytest.raises(ValueError, match="max_bytes"):
        PrefixCache(-1)


def test_key_replaces_the_threads_older_entry_and_extensions_supersede():
    store = PrefixCache()
    store.put([1, 2, 3], snap(3), key="a")
    store.put([1, 2, 3, 4, 5], snap(5), key="a")
    assert len(store) == 1
    store.put([9, 9], snap(2), key="b")
    _got, n = store.lookup([9, 9, 1], key="b")
    assert n == 2
    _got, n = store.lookup([1, 2, 3, 4, 5, 6], key="a")
    assert n == 5


def test_put_rejects_length_mismatch():
    with pytest.raises(ValueError, match="snapshot holds 3 tokens"):
        PrefixCache().put([1, 2], snap(3))


def test_readers_never_see_writes_of_others():
    """A snapshot handed out is views of tensors that nobody writes (update() concatenates)."""
    store = PrefixCache()
    store.put([1, 2, 3, 4], snap(4, fill=1.0))
    got, _ = store.lookup([1, 2, 3, 4])
    before = got.layers[0].keys.clone()
    again, _ = store.lookup([1, 2, 3, 4])
    again_keys = torch.cat([again.layers[0].keys, torch.zeros(1, 2, 1, 4)], dim=-2)  # what update() does
    assert torch.equal(got.layers[0].keys, before) and again_keys.shape[-2] == 5


def test_thread_safety_many_writers():
    store = PrefixCache(max_bytes=8 * snap(8).nbytes)
    errors = []

    def work(t: int) -> None:
        try:
            for i in range(50):
                ids = [t, i, *range(6)]
                store.put(ids, snap(8), key=f"t{t}")
                _got, n = store.lookup(ids, key=f"t{t}")
                assert n in (0, 8)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert store.nbytes <= store.max_bytes


# --------------------------------------------------------------------------- several lineages per key
def _fill_of(s: Snapshot) -> float:
    return float(s.layers[0].keys[0, 0, 0, 0])


def test_two_lineages_under_one_key_both_reuse_their_own_prefix():
    """A supervisor and its sub-agent in one thread: each step of each grows its own transcript.

    They share only a 3-token header. Each lookup must return the lineage's own previous step whole,
    not the other lineage cropped to the header, and neither lineage may evict the other.
    """
    store = PrefixCache()
    header = [1, 2, 3]
    grown = {"a": [*header, 100], "b": [*header, 200]}
    fills = {"a": 1.0, "b": 2.0}
    for step in range(6):
        for name in ("a", "b"):
            prev = grown[name]
            ids = [*prev, *[int(fills[name]) * 1000 + step] * (step + 2)]  # a tool result of its own
            got, n = store.lookup(ids, key="thread-1")
            if step == 0 and name == "a":
                assert (got, n) == (None, 0)
            elif step == 0:
                assert n == len(header)  # b's first step: only the header is shared with a
            else:
                assert n == len(prev), f"step {step}, lineage {name}: reused {n} of {len(prev)}"
                assert got is not None and got.length == len(prev) and _fill_of(got) == fills[name]
            store.put(ids, snap(len(ids), fill=fills[name]), key="thread-1")
            grown[name] = ids
            assert len(store) == 2 or (step == 0 and name == "a" and len(store) == 1)
    assert store.stats.hits == 11 and store.stats.evictions == 0


def test_lineages_of_other_keys_are_still_found_and_keys_are_handed_on():
    store = PrefixCache()
    store.put([5, 6, 7], snap(3, fill=3.0), key="a")
    store.put([5, 6, 7, 8], snap(4, fill=4.0), key="b")  # extends a's entry: replaces it
    assert len(store) == 1
    got, n = store.lookup([5, 6, 7, 8, 9], key="a")  # "a" still finds the lineage it started
    assert n == 4 and _fill_of(got) == 4.0
    got, n = store.lookup([5, 6, 7, 8, 9], key="never-seen")  # a key is only a shortcut
    assert n == 4
    got, n = store.lookup([5, 6, 7, 1], key="b")  # the key's entry is cropped where ids diverge
    assert n == 3 and got.length == 3


# --------------------------------------------------------------------------- TTL
def test_ttl_drops_entries_not_used_for_that_long():
    store = PrefixCache(ttl_s=0.05)
    store.put([1, 2, 3, 4], snap(4), key="t")
    assert store.lookup([1, 2, 3, 4, 5], key="t")[1] == 4
    time.sleep(0.12)
    assert len(store) == 0 and store.nbytes == 0
    assert store.lookup([1, 2, 3, 4, 5], key="t") == (None, 0)
    assert store.stats.evictions == 1 and store.stats.bytes == 0


def test_ttl_counts_from_the_last_use_not_the_insert():
    store = PrefixCache(ttl_s=0.6)
    store.put([1, 1, 1], snap(3))
    store.put([2, 2, 2], snap(3))
    time.sleep(0.35)
    assert store.lookup([1, 1, 1, 9])[1] == 3  # used: its clock starts again
    time.sleep(0.35)  # [2, 2, 2] is now 0.7 s unused, [1, 1, 1] only 0.35 s
    assert store.lookup([2, 2, 2]) == (None, 0)
    assert store.lookup([1, 1, 1])[1] == 3
    assert len(store) == 1


@pytest.mark.parametrize("ttl", [0, -1.0, float("nan")])
def test_ttl_must_be_positive(ttl):
    with pytest.raises(ValueError, match=r"ttl_s=.* must be a positive number of seconds"):
        PrefixCache(ttl_s=ttl)


# --------------------------------------------------------------------------- replacing, not growing
def test_a_put_that_extends_an_entry_replaces_it():
    store = PrefixCache()
    ids = [7, 8, 9]
    for extra in range(1, 8):
        ids = [*ids, 100 + extra]
        store.put(ids, snap(len(ids)), key="k")
        assert len(store) == 1, f"after {extra} extensions the store holds {len(store)} entries"
        assert store.nbytes == snap(len(ids)).nbytes  # only the newest snapshot is kept alive
    store.put(ids, snap(len(ids)), key="k")  # the same ids again: still one entry
    assert len(store) == 1
    store.put(ids[:5], snap(5))  # a shorter prefix does not drop the longer entry that holds it
    assert len(store) == 2 and store.lookup([*ids, 1], key="k")[1] == len(ids)
    store.put([*ids[:4], 55, 56], snap(6), key="k")  # a branch: a second lineage, the first stays
    assert len(store) == 3 and store.lookup([*ids, 1], key="k")[1] == len(ids)
    assert store.stats.evictions == 0
