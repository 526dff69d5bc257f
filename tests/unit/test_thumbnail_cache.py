"""Thumbnails recently served are kept in the worker's memory, bounded in bytes; the store is
read once per thumbnail, and the least recently used go first."""

from __future__ import annotations

from repository.renditions import Renditions, _Recent


class CountingRepository:
    """Just what Renditions needs from a Repository for a thumbnail already made."""

    def __init__(self) -> None:
        from repository.backends.memory import MemoryObjectStore

        self.store = MemoryObjectStore()
        self.reads = 0
        original = self.store.open

        def counting_open(key):  # type: ignore[no-untyped-def]
            self.reads += 1
            return original(key)

        self.store.open = counting_open  # type: ignore[method-assign]


def test_a_thumbnail_is_read_from_the_store_once():
    from repository import keys

    repository = CountingRepository()
    for n in range(3):
        repository.store.put(keys.derived_key(f"1.2.3.{n}", "thumbnail-256-srgb.jpg"), b"\xff\xd8" + bytes([n]) * 1000)
    renditions = Renditions(repository, cache_bytes=1 << 20)  # type: ignore[arg-type]
    assert renditions.thumbnail("1.2.3.0") == b"\xff\xd8" + b"\x00" * 1000
    assert renditions.thumbnail("1.2.3.0") == b"\xff\xd8" + b"\x00" * 1000
    assert repository.reads == 1
    uncached = Renditions(repository, cache_bytes=0)  # type: ignore[arg-type]
    uncached.thumbnail("1.2.3.1")
    uncached.thumbnail("1.2.3.1")
    assert repository.reads == 3


def test_the_least_recently_used_go_first_and_the_bound_holds():
    recent = _Recent(10_000)
    for n in range(5):
        recent.put(str(n), bytes(2_400))
    assert recent.get("0") is None and recent.get("1") is not None  # 0 went; 1 is now the newest
    recent.put("5", bytes(2_400))
    assert recent.get("2") is None and recent.get("1") is not None
    assert recent.size <= 10_000
    recent.put("huge", bytes(5_000))  # more than a quarter of the bound: not kept
    assert recent.get("huge") is None
