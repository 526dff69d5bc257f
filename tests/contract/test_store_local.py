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

    def test_put_file_links_the_file_rather_than_copying_it(self, store, tmp_path):
        path = tmp_path / "prepared.dcm"
        path.write_bytes(b"DICM" * 1000)
        store.put_file("studies/1/a.dcm", path, sha256="f" * 64)
        assert (tmp_path / "store" / "studies/1/a.dcm").stat().st_ino == path.stat().st_ino

    def test_put_file_copies_across_filesystems(self, store, tmp_path, monkeypatch):
        import errno
        import os

        path = tmp_path / "prepared.dcm"
        path.write_bytes(b"DICM" * 1000)
        real_link = os.link

        def cross_device(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
            if str(src) == str(path):
                raise OSError(errno.EXDEV, "Invalid cross-device link")
            return real_link(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, "link", cross_device)
        stored = store.put_file("studies/1/b.dcm", path, sha256="f" * 64)
        assert stored.size == 4000
        assert (tmp_path / "store" / "studies/1/b.dcm").read_bytes() == path.read_bytes()
        assert (tmp_path / "store" / "studies/1/b.dcm").stat().st_ino != path.stat().st_ino
