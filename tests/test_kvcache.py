"""PrefixCache: longest-common-prefix lookup, byte budget, LRU, thread keys, immutability."""

from __future__ import annotations

import threading

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
