"""The Repository over the behaviours of production backends, without servers: forward-only
object streams (as S3 GET bodies are), a pause on index writes after a failure, reconcilers
running at once in several app servers, a marker dropped under a slow upload, locators in the
consistency check, and a reindex that resumes without reading again what is already indexed.
The same paths run against real MinIO and Elasticsearch in tests/integration."""

from __future__ import annotations

import io
import json
import threading
from typing import BinaryIO

import pytest

from repository import keys
from repository.backends.memory import MemoryObjectStore
from repository.errors import IndexUnavailable
from repository.service import Repository, read_header
from search.backends.sqlite import SQLiteIndex
from tests.unit.test_service import FlakyIndex, write_instance


class ForwardOnly(io.RawIOBase):
    """A stream that cannot seek or tell, like botocore's StreamingBody."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        chunk = self._data[self._pos : self._pos + min(len(buffer), 1000)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


class ForwardOnlyStore(MemoryObjectStore):
    """Memory store whose ``open`` gives a forward-only stream; counts opens per key."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []

    def open(self, key: str) -> BinaryIO:
        self.opened.append(key)
        return io.BufferedReader(ForwardOnly(self._get(key)[0]))  # type: ignore[return-value]


class CountingIndex(FlakyIndex):
    def __init__(self) -> None:
        super().__init__()
        self.upserts = 0

    def upsert(self, document):  # type: ignore[no-untyped-def]
        self.upserts += 1
        super().upsert(document)


def make_repo(store=None, index=None, **options) -> Repository:  # type: ignore[no-untyped-def]
    index = index or CountingIndex()
    index.ensure_schema()
    return Repository(store or MemoryObjectStore(), index, **options)


def test_forward_only_streams_serve_every_read_path(tmp_path):
    repo = make_repo(ForwardOnlyStore())
    item = write_instance(tmp_path, "2.25.100")
    assert repo.store_instance(item).status == "created"
    assert repo.store_instance(item).status == "existing"  # reads the stored header back
    assert repo.read_instance_header("2.25.100").PatientName == "Zoë^Llŷr"
    assert repo.read_instance("2.25.100").SOPInstanceUID == "2.25.100"
    repo.index.rebuild([])
    assert repo.reindex() == 1 and repo.check().consistent


def test_header_read_keeps_only_the_header_of_a_forward_only_stream(tmp_path):
    from pydicom import dcmread

    ds = dcmread(write_instance(tmp_path, "2.25.100").path)
    ds.PixelData = b"\0" * (8 * 1024 * 1024)
    ds["PixelData"].VR = "OB"
    big = tmp_path / "big.dcm"
    ds.save_as(big)
    raw = ForwardOnly(big.read_bytes())
    assert read_header(io.BufferedReader(raw)).SOPInstanceUID == "2.25.100"
    assert raw._pos < 256 * 1024  # stopped at the pixel data


def test_after_an_index_failure_uploads_go_pending_at_once_until_a_reconcile_succeeds(tmp_path):
    repo = make_repo(index_retry_seconds=60)
    repo.index.down = True
    assert not repo.store_instance(write_instance(tmp_path, "2.25.100")).indexed
    repo.index.down = False
    calls = repo.index.upserts
    second = repo.store_instance(write_instance(tmp_path, "2.25.101"))
    assert not second.indexed and repo.index.upserts == calls  # the index was not even tried
    assert repo.pending_count() == 2
    assert repo.reconcile_pending() == 2
    assert repo.store_instance(write_instance(tmp_path, "2.25.102")).indexed  # pause ended
    assert repo.check().consistent and repo.pending_count() == 0


def test_reconcilers_in_several_app_servers_at_once_are_harmless(tmp_path):
    store, index = MemoryObjectStore(), CountingIndex()
    writer = make_repo(store, index)
    index.down = True
    for n in range(40):
        writer.store_instance(write_instance(tmp_path, f"2.25.{300 + n}"))
    index.down = False
    assert writer.pending_count() == 40
    replicas = [Repository(store, index) for _ in range(4)]
    done: list[int] = []
    start = threading.Barrier(len(replicas))

    def run(repo: Repository) -> None:
        start.wait()
        done.append(repo.reconcile_pending())

    threads = [threading.Thread(target=run, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(done) >= 40  # some markers may be completed twice, which changes nothing
    assert writer.pending_count() == 0
    report = writer.check()
    assert report.consistent and report.objects == report.indexed == 40
    # and a marker completed twice in a row, as by a replica with a stale listing
    index.down = True
    writer.store_instance(write_instance(tmp_path, "2.25.400"))
    index.down = False
    marker = keys.pending_key("2.25.400")
    body = store.open(marker).read()
    assert replicas[0].reconcile_pending() == 1
    store.put(marker, body)  # the stale replica still sees it
    assert replicas[1].reconcile_pending() == 1
    assert writer.check().consistent and index.count() == 41


class DroppingStore(MemoryObjectStore):
    """Drops the pending marker while the object is written: what a reconciler in another app
    server does to the marker of an upload slower than ABANDONED_MARKER_SECONDS."""

    def put(self, key, source, **options):  # type: ignore[no-untyped-def]
        if keys.is_instance_key(key):
            self.delete(keys.pending_key(keys.uids_from_instance_key(key)[2]))
        return super().put(key, source, **options)


def test_a_marker_dropped_under_a_slow_upload_is_written_again_if_the_index_then_fails(tmp_path):
    repo = make_repo(DroppingStore())
    repo.index.down = True
    assert not repo.store_instance(write_instance(tmp_path, "2.25.100")).indexed
    marker = json.loads(repo.store.open(keys.pending_key("2.25.100")).read())
    assert marker["key"] == keys.instance_key("2.25.1", "2.25.2", "2.25.100")
    repo.index.down = False
    assert repo.reconcile_pending() == 1 and repo.check().consistent


def test_check_reports_locators_without_objects_and_objects_without_locators(tmp_path):
    repo = make_repo()
    repo.store_instance(write_instance(tmp_path, "2.25.100"))
    repo.store_instance(write_instance(tmp_path, "2.25.101"))
    assert repo.check().consistent
    repo.store.put(keys.locator_key("2.25.999"), b"studies/x/series/y/instances/2.25.999.dcm")
    repo.store.delete(keys.locator_key("2.25.101"))
    report = repo.check()
    assert report.locators_without_object == ["2.25.999"]
    assert report.objects_without_locator == ["2.25.101"]
    assert not report.consistent
    repo.reindex()  # restores the missing locator, removes the one whose object is gone
    assert repo.check().consistent
    assert repo.last_reindex.locators_restored == 1 and repo.last_reindex.locators_removed == 1


class ResumingIndex(SQLiteIndex):
    """An index that says it already holds some documents, as an interrupted Elasticsearch
    rebuild does; checks that the repository did not read those objects again."""

    def __init__(self, present: set[str]) -> None:
        super().__init__(":memory:")
        self.present = present

    def rebuild_resuming(self, documents_for):  # type: ignore[no-untyped-def]
        fresh = list(documents_for(set(self.present)))
        assert not {d["SOPInstanceUID"] for d in fresh} & self.present
        kept = [self.get(uid) for uid in self.present]
        return self.rebuild(kept + fresh) - len(kept)


def test_a_resumed_reindex_does_not_read_what_the_index_already_holds(tmp_path):
    store = ForwardOnlyStore()
    repo = make_repo(store, reindex_workers=4)
    for n in range(30):
        repo.store_instance(write_instance(tmp_path, f"2.25.{500 + n}"))
    present = {f"2.25.{500 + n}" for n in range(20)}
    index = ResumingIndex(present)
    index.ensure_schema()
    index.upsert_many(repo.index.get(uid) for uid in present)
    resumed = Repository(store, index, reindex_workers=4)
    store.opened.clear()
    seen: list[str] = []
    assert resumed.reindex(progress=seen.append) == 10
    assert len(seen) == 30  # the progress bar still counts every listed object
    assert not any(keys.uids_from_instance_key(k)[2] in present for k in store.opened if keys.is_instance_key(k))
    assert resumed.last_reindex.already_indexed == 20
    assert index.count() == 30 and resumed.check().consistent


def test_reindex_of_an_unavailable_index_raises_and_leaves_markers(tmp_path):
    repo = make_repo()
    repo.index.down = True
    repo.store_instance(write_instance(tmp_path, "2.25.100"))

    def broken(documents):  # type: ignore[no-untyped-def]
        list(documents)
        raise IndexUnavailable("down")

    repo.index.rebuild = broken  # type: ignore[method-assign]
    with pytest.raises(IndexUnavailable):
        repo.reindex()
    assert repo.pending_count() == 1
