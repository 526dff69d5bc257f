from __future__ import annotations

import pytest

from repository.backends.filesystem import FilesystemObjectStore
from repository.backends.memory import MemoryObjectStore
from repository.errors import InvalidInput
from tests.contract.store_contract import ObjectStoreContract


class TestMemoryObjectStore(ObjectStoreContract):
    @pytest.fixture
    def store(self):
        return MemoryObjectStore()


class TestFilesystemObjectStore(ObjectStoreContract):
    @pytest.fixture
    def store(self, tmp_path):
        return FilesystemObjectStore(tmp_path / "store")

    def test_keys_cannot_escape_the_root(self, store):
        for bad in ("../outside", "a/../../b", "/etc/passwd", "a//b", ""):
            with pytest.raises(InvalidInput):
                store.put(bad, b"x")

    def test_failed_write_leaves_nothing(self, store, tmp_path):
        class Exploding:
            def __init__(self):
                self.calls = 0

            def read(self, n=-1):
                self.calls += 1
                if self.calls > 2:
                    raise OSError("client went away")
                return b"x" * 1024

        with pytest.raises(Exception):
            store.put("half/written.dcm", Exploding())
        assert not store.exists("half/written.dcm")
        assert list(store.iter_keys()) == []
        leftovers = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
        assert leftovers == []
