"""The object-store contract: every adapter must pass these (subclass and supply ``store``)."""

from __future__ import annotations

import hashlib
import io
import threading

import pytest

from repository.errors import AlreadyExists, NotFound


class ObjectStoreContract:
    @pytest.fixture
    def store(self):  # pragma: no cover - supplied by subclasses
        raise NotImplementedError

    def test_put_then_read_back(self, store):
        data = b"DICM" * 1000
        stored = store.put("studies/1/series/2/instances/3.dcm", data)
        assert stored.size == len(data)
        assert stored.sha256 == hashlib.sha256(data).hexdigest()
        with store.open("studies/1/series/2/instances/3.dcm") as handle:
            assert handle.read() == data
        assert store.head("studies/1/series/2/instances/3.dcm").size == len(data)

    def test_put_from_stream_larger_than_a_chunk(self, store):
        data = bytes(range(256)) * (5 * 4096 + 7)  # > 5 MiB, not a multiple of the chunk size
        stored = store.put("big/object.dcm", io.BytesIO(data))
        assert stored.sha256 == hashlib.sha256(data).hexdigest()
        with store.open("big/object.dcm") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == stored.sha256

    def test_put_file_stores_a_finished_file_that_may_then_go(self, store, tmp_path):
        data = bytes(range(256)) * 20_000 + b"odd"
        path = tmp_path / "prepared.dcm"
        path.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        stored = store.put_file("studies/9/series/8/instances/7.dcm", path, sha256=digest)
        assert (stored.size, stored.sha256) == (len(data), digest)
        path.unlink()  # the caller tidies its spool away
        with store.open("studies/9/series/8/instances/7.dcm") as handle:
            assert handle.read() == data
        other = tmp_path / "other.dcm"
        other.write_bytes(b"different")
        with pytest.raises(AlreadyExists):
            store.put_file("studies/9/series/8/instances/7.dcm", other, sha256="0" * 64, if_none_match=True)
        with store.open("studies/9/series/8/instances/7.dcm") as handle:
            assert handle.read() == data
        assert not [k for k in store.iter_keys("studies/9/") if not k.endswith("7.dcm")]

    def test_overwrite_replaces_whole_object(self, store):
        store.put("k/a", b"first version, longer")
        store.put("k/a", b"second")
        with store.open("k/a") as handle:
            assert handle.read() == b"second"

    def test_if_none_match_refuses_existing_key(self, store):
        store.put("locators/1.2.3", b"x", if_none_match=True)
        with pytest.raises(AlreadyExists):
            store.put("locators/1.2.3", b"y", if_none_match=True)
        with store.open("locators/1.2.3") as handle:
            assert handle.read() == b"x"

    def test_if_none_match_race_has_one_winner(self, store):
        wins, losses = [], []

        def claim(i: int) -> None:
            try:
                store.put("locators/race", str(i).encode(), if_none_match=True)
                wins.append(i)
            except AlreadyExists:
                losses.append(i)

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1 and len(losses) == 7
        with store.open("locators/race") as handle:
            assert handle.read() == str(wins[0]).encode()

    def test_missing_key_is_not_found(self, store):
        with pytest.raises(NotFound):
            store.open("nothing/here")
        with pytest.raises(NotFound):
            store.head("nothing/here")
        assert not store.exists("nothing/here")

    def test_read_range_is_inclusive(self, store):
        store.put("r/x", b"0123456789")
        assert store.read_range("r/x", 2, 5) == b"2345"
        assert store.read_range("r/x", 8, 100) == b"89"

    def test_delete_is_idempotent(self, store):
        store.put("d/x", b"1")
        store.delete("d/x")
        store.delete("d/x")
        assert not store.exists("d/x")

    def test_iter_keys_by_prefix(self, store):
        for key in ("a/1", "a/2", "ab/3", "b/4", "pending-index/9"):
            store.put(key, b".")
        assert sorted(store.iter_keys("a/")) == ["a/1", "a/2"]
        assert sorted(store.iter_keys("pending-index/")) == ["pending-index/9"]
        assert sorted(store.iter_keys()) == ["a/1", "a/2", "ab/3", "b/4", "pending-index/9"]

    def test_ping(self, store):
        store.ping()
