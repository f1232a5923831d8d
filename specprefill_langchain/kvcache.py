"""The draft's prefix KV cache store: LRU by longest common prefix, with a byte budget.

An agent transcript only grows by appending, so the KV cache of step N is a prefix of what step N+1
needs. The store keeps, per prefix of token ids, an immutable *snapshot* of the cache: per layer the
key and value tensors. Transformers' dynamic cache layers never write into these tensors (``update``
concatenates into a new tensor, ``crop`` takes a view), so a snapshot can be handed to any number of
readers as a fresh cache object without copying, and no reader ever sees another's writes.

Lookup is by longest common prefix of token ids; an optional key (a LangGraph ``thread_id``) finds
the candidates in O(1), but the ids are always compared, so correctness never depends on the key.
A key may hold several lineages (a supervisor and its sub-agent in one thread, two hooks in one
graph, ``batch`` with one config): a new entry replaces only the entries it extends, never the other
lineages of its key. An optional TTL drops entries that were not used for that long.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class LayerState:
    keys: torch.Tensor  # (1, KVH, T, D)
    values: torch.Tensor
    cumulative_length: int | None  # sliding-window layers count every token they have seen


@dataclass(frozen=True)
class Snapshot:
    """An immutable view of a KV cache holding ``length`` tokens."""

    length: int
    layers: tuple[LayerState, ...]

    def storages(self) -> dict[int, int]:
        """data pointer -> bytes of each distinct storage the snapshot keeps alive."""
        out: dict[int, int] = {}
        for layer in self.layers:
            for t in (layer.keys, layer.values):
                st = t.untyped_storage()
                out[st.data_ptr()] = st.nbytes()
        return out

    @property
    def nbytes(self) -> int:
        return sum(self.storages().values())


def snapshot_of(cache: Any) -> Snapshot:
    """Freeze the current state of a transformers ``DynamicCache``."""
    layers = []
    for layer in cache.layers:
        if not getattr(layer, "is_initialized", False):
            msg = "cannot snapshot a cache with an empty layer: prefill at least one token first."
            raise ValueError(msg)
        cum = getattr(layer, "cumulative_length", None)
        layers.append(LayerState(layer.keys, layer.values, int(cum) if cum is not None else None))
    return Snapshot(length=int(cache.get_seq_length()), layers=tuple(layers))


def crop_snapshot(snap: Snapshot, length: int) -> Snapshot | None:
    """The first ``length`` tokens of ``snap`` as views, or None where a layer cannot go back that far."""
    if length == snap.length:
        return snap
    layers = []
    for layer in snap.layers:
        if layer.cumulative_length is not None and layer.keys.shape[-2] < layer.cumulative_length:
            return None  # a sliding window already forgot tokens we would need to roll back to
        layers.append(
            LayerState(
                layer.keys[..., :length, :],
                layer.values[..., :length, :],
                None if layer.cumulative_length is None else length,
            )
        )
    return Snapshot(length=length, layers=tuple(layers))


def cache_from_snapshot(config: Any, snap: Snapshot, device: Any) -> Any:
    """A fresh ``DynamicCache`` whose layers start at ``snap`` (shared tensors, never written)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=config)
    if len(cache.layers) != len(snap.layers):
        msg = f"snapshot has {len(snap.layers)} layers but the model's cache has {len(cache.layers)}."
        raise ValueError(msg)
    for layer, state in zip(cache.layers, snap.layers, strict=True):
        layer.lazy_initialization(state.keys, state.values)
        layer.keys, layer.values = state.keys, state.values
        if state.cumulative_length is not None:
            layer.cumulative_length = state.cumulative_length
    return cache


def common_prefix(a: Sequence[int] | torch.Tensor, b: Sequence[int] | torch.Tensor) -> int:
    """Length of the longest common prefix of two id sequences (vectorised)."""
    ta = a if isinstance(a, torch.Tensor) else torch.tensor(list(a), dtype=torch.long)
    tb = b if isinstance(b, torch.Tensor) else torch.tensor(list(b), dtype=torch.long)
    m = min(len(ta), len(tb))
    if m == 0:
        return 0
    diff = (ta[:m] != tb[:m]).nonzero()
    return int(diff[0]) if len(diff) else m


@dataclass
class CacheStats:
    lookups: int = 0
    hits: int = 0
    tokens_reused: int = 0
    inserts: int = 0
    evictions: int = 0
    bytes: int = 0
    max_bytes: int = 0


@dataclass
class _Entry:
    ids: torch.Tensor
    snap: Snapshot
    keys: set[str]  # the keys that find it in O(1) (an entry it superseded hands its keys on)
    nbytes: int = field(default=0)
    used: float = field(default=0.0)  # time.monotonic() of the last put or hit


class PrefixCache:
    """A thread-safe LRU store of (token ids -> KV snapshot) within ``max_bytes``.

    ``ttl_s``: drop entries not used for this many seconds (None: keep until evicted by size).
    """

    def __init__(self, max_bytes: int = 2 * 1024**3, *, ttl_s: float | None = None) -> None:
        if max_bytes < 0:
            msg = f"max_bytes={max_bytes} must be >= 0 (0 disables the store)."
            raise ValueError(msg)
        if ttl_s is not None and not ttl_s > 0:  # `not >` also refuses NaN, which would never expire
            msg = f"ttl_s={ttl_s} must be a positive number of seconds, or None for no expiry."
            raise ValueError(msg)
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._entries: OrderedDict[int, _Entry] = OrderedDict()  # LRU order: oldest first
        self._by_key: dict[str, set[int]] = {}
        self._next = 0
        self._lock = threading.Lock()
        self.stats = CacheStats()

    def __len__(self) -> int:
        with self._lock:
            self._expire_locked()
            return len(self._entries)

    @property
    def nbytes(self) -> int:
        with self._lock:
            self._expire_locked()
            return self._bytes_locked()

    def _bytes_locked(self) -> int:
        seen: dict[int, int] = {}
        for e in self._entries.values():
            seen.update(e.snap.storages())
        return sum(seen.values())

    def lookup(
        self, ids: Sequence[int], *, key: str | None = None, croppable: bool = True
    ) -> tuple[Snapshot | None, int]:
        """The snapshot sharing the longest prefix with ``ids``, cropped to it, and that length.

        ``croppable=False`` (sliding-window models) accepts only entries that are a whole prefix.
        Returns ``(None, 0)`` on a miss. The returned snapshot is the caller's to extend: the
        store's own tensors are never written.
        """
        t = torch.tensor(list(ids), dtype=torch.long)
        with self._lock:
            self._expire_locked()
            self.stats.lookups += 1
            own = sorted(self._by_key.get(key, ())) if key is not None else []
            best = self._best_locked(own, t, croppable)
            if best is None or best[1] < min(len(self._entries[best[0]].ids), len(t)):
                # None of the key's lineages is a whole prefix (a new lineage, or no key): try all.
                mine = set(own)
                others = [eid for eid in self._entries if eid not in mine]
                found = self._best_locked(others, t, croppable)
                if found is not None and (best is None or found[1] > best[1]):
                    best = found
            if best is None:
                return None, 0
            eid, n = best
            snap = crop_snapshot(self._entries[eid].snap, n)
            if snap is None:
                return None, 0
            self._entries.move_to_end(eid)
            self._entries[eid].used = time.monotonic()
            self.stats.hits += 1
            self.stats.tokens_reused += n
            return snap, n

    def _best_locked(self, eids: Sequence[int], t: torch.Tensor, croppable: bool) -> tuple[int, int] | None:
        """(entry, common prefix) of the entry among ``eids`` sharing the longest prefix with ``t``."""
        best: tuple[int, int] | None = None
        for eid in eids:
            e = self._entries[eid]
            n = common_prefix(e.ids, t)
            if not croppable and n < len(e.ids):
                continue
            if n > 0 and (best is None or n > best[1]):
                best = (eid, n)
        return best

    def put(self, ids: Sequence[int], snap: Snapshot, *, key: str | None = None) -> None:
        """Store ``snap`` for ``ids``; it replaces any entry it extends (the key's other lineages stay)."""
        if len(ids) != snap.length:
            msg = f"snapshot holds {snap.length} tokens but {len(ids)} ids were given."
            raise ValueError(msg)
        t = torch.tensor(list(ids), dtype=torch.long)
        nbytes = snap.nbytes
        with self._lock:
            self._expire_locked()
            if nbytes > self.max_bytes or len(ids) == 0:
                return
            keys = {key} if key is not None else set()
            for eid, e in list(self._entries.items()):
                if len(e.ids) <= len(t) and common_prefix(e.ids, t) == len(e.ids):
                    keys |= e.keys  # their keys still find this lineage in O(1)
                    self._drop_locked(eid)  # superseded: the new entry holds all of it
            eid = self._next
            self._next += 1
            self._entries[eid] = _Entry(t, snap, keys, nbytes, time.monotonic())
            for k in keys:
                self._by_key.setdefault(k, set()).add(eid)
            self.stats.inserts += 1
            while self._entries and self._bytes_locked() > self.max_bytes:
                oldest = next(iter(self._entries))
                self._drop_locked(oldest)
                self.stats.evictions += 1
            self.stats.bytes = self._bytes_locked()
            self.stats.max_bytes = max(self.stats.max_bytes, self.stats.bytes)

    def _drop_locked(self, eid: int) -> None:
        e = self._entries.pop(eid)
        for k in e.keys:
            if k in self._by_key:
                self._by_key[k].discard(eid)
                if not self._by_key[k]:
                    del self._by_key[k]

    def _expire_locked(self) -> None:
        if self.ttl_s is None:
            return
        cutoff = time.monotonic() - self.ttl_s
        stale = [eid for eid, e in self._entries.items() if e.used < cutoff]
        for eid in stale:
            self._drop_locked(eid)
            self.stats.evictions += 1
        if stale:
            self.stats.bytes = self._bytes_locked()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._by_key.clear()
            self.stats.bytes = 0
