"""The Repository service: store, find and read instances, with the write ordering that makes
an acknowledged upload survive a crash or an index outage (DECISIONS.md 2-5).

Write ordering for one instance:
  1. a durable ``pending-index/{uid}`` marker naming the instance key (the intent);
  2. the DICOM object itself, atomically and only if absent, at its UID-derived key (an object
     already there, from a concurrent upload or one that died, stands: this one must be the
     same image, else it is refused, so two uploads never overwrite each other's object);
  3. the ``locators/{uid}`` claim, create-if-absent, which makes the instance findable by UID
     without the index and decides races between concurrent uploads of the same instance;
  4. the index upsert; only if that succeeds is the marker removed.
A crash after any step leaves a marker that the reconciler completes; an index outage leaves the
object stored (acknowledged as 202 "not yet searchable") and the marker drains later.

Every step is idempotent, so reconcilers may run in every app server at once: two of them
completing one marker both re-claim the locator (the second gets ``AlreadyExists``), both write
the same document under the same UID, and both delete the marker (deleting a missing key is no
error). After an index failure, uploads skip the index for ``index_retry_seconds`` (they are
acknowledged as pending at once instead of each waiting out the index's timeouts); a reconcile
pass that completes ends that early.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import logging
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

from pydicom import Dataset, dcmread

from repository import keys
from repository.errors import AlreadyExists, Conflict, IndexUnavailable, NotFound, StoreUnavailable
from repository.hashing import sha256_of_stream
from repository.private_tags import get_private
from repository.store import DICOM_MEDIA_TYPE, ObjectStore, StoredObject
from search.document import document_from_dataset
from search.index import SearchIndex

log = logging.getLogger(__name__)

#: a marker whose object is still missing after this long belongs to an upload that died
#: before its object was written (never acknowledged), so it may be dropped
ABANDONED_MARKER_SECONDS = 120.0


@dataclass(frozen=True)
class PreparedInstance:
    """A serialised DICOM object on local disk, ready to be stored."""

    path: Path
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient_id: str
    #: SHA-256 of the serialised object, when its writer digested it as it wrote it (lets the
    #: store adopt the file, and recognises a repeat when the UID is not derived from content)
    sha256: str | None = None
    #: True when the SOP Instance UID was derived from the uploaded bytes, so an existing
    #: instance with this UID is by construction the same image (DECISIONS.md 4)
    uid_derived_from_content: bool = True
    #: for DICOM input: digest of the content without our provenance block (private
    #: ContentSHA256); equal digests are the same instance even when the bytes differ
    content_sha256: str | None = None


@dataclass(frozen=True)
class StoreOutcome:
    status: Literal["created", "existing"]
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    key: str
    indexed: bool
    #: for ``store_instance(defer_index=True)``: the index document to write with the others of
    #: the request (``index_deferred``); its pending marker stays until then
    deferred: dict[str, object] | None = field(default=None, compare=False, repr=False)


@dataclass
class ConsistencyReport:
    objects: int = 0
    indexed: int = 0
    missing_from_index: list[str] = field(default_factory=list)
    missing_from_store: list[str] = field(default_factory=list)
    #: locators naming an instance that is not stored (would answer a UID with a missing object)
    locators_without_object: list[str] = field(default_factory=list)
    #: stored instances without a locator (not findable by UID until a reconcile or reindex)
    objects_without_locator: list[str] = field(default_factory=list)
    pending_markers: int = 0

    @property
    def consistent(self) -> bool:
        return not (self.missing_from_index or self.missing_from_store
                    or self.locators_without_object or self.objects_without_locator)  # fmt: skip


@dataclass
class ReindexReport:
    """What ``Repository.reindex`` did; the index-specific details are in ``rebuild``."""

    instances: int = 0
    #: skipped because an interrupted rebuild being resumed already holds them (not read again)
    already_indexed: int = 0
    locators_restored: int = 0
    #: locators naming an object no longer stored (deleted from the store directly), removed
    locators_removed: int = 0
    markers_cleared: int = 0
    unreadable: int = 0
    rebuild: object | None = None  # e.g. ElasticsearchIndex.last_rebuild


class _Rewindable(io.RawIOBase):
    """A forward-only stream (an S3 GET body) made seekable over the bytes read so far, which it
    keeps: pydicom tells and seeks back a few bytes as it parses. Used for headers only, so what
    it keeps is the header, never the pixel data."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw, self._kept, self._pos = raw, bytearray(), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            raise io.UnsupportedOperation("cannot seek from the end of a stream")
        target = offset + (self._pos if whence == io.SEEK_CUR else 0)
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        self._pos = target
        return target

    def readinto(self, buffer: Any) -> int:
        want = self._pos + len(buffer)
        while len(self._kept) < want and (chunk := self._raw.read(max(want - len(self._kept), 64 * 1024))):
            self._kept += chunk
        data = self._kept[self._pos : want]
        memoryview(buffer).cast("B")[: len(data)] = data
        self._pos += len(data)
        return len(data)


def read_header(stream: BinaryIO) -> Dataset:
    """The dataset up to its pixel data; reads only that far, also from a forward-only stream."""
    if not stream.seekable():
        stream = cast(BinaryIO, _Rewindable(stream))
    return dcmread(stream, stop_before_pixels=True)


def read_whole(stream: BinaryIO) -> Dataset:
    """The whole dataset; a forward-only stream is first spooled (to disk beyond 16 MiB)."""
    if stream.seekable():
        return dcmread(stream)
    with tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024) as spool:
        shutil.copyfileobj(stream, spool, 1024 * 1024)
        spool.seek(0)
        return dcmread(spool)


class Repository:
    def __init__(
        self, store: ObjectStore, index: SearchIndex, *, clock: Callable[[], float] = time.time,
        index_retry_seconds: float = 0.0, reindex_workers: int = 1,
    ) -> None:  # fmt: skip
        self.store = store
        self.index = index
        self._clock = clock
        self.index_retry_seconds = index_retry_seconds
        self.reindex_workers = reindex_workers
        self._index_down_until = 0.0  # monotonic; uploads skip the index until then
        self._breaker_lock = threading.Lock()
        self.last_reindex: ReindexReport | None = None

    # -- writing -----------------------------------------------------------------------------
    def store_instance(self, item: PreparedInstance, *, known_absent: bool = False, defer_index: bool = False) -> StoreOutcome:
        """Store ``item`` (or answer the instance already stored). ``known_absent``: the caller's
        :meth:`check_can_store` found no such instance moments ago, so it is not looked up twice
        (on S3 a lookup is a request); a concurrent upload is still caught by the locator.
        ``defer_index``: stored and marked pending, its index document kept in the outcome for
        :meth:`index_deferred` to write with the other instances of the request, in one go
        (Elasticsearch then publishes them with one refresh, not one each)."""
        existing = None if known_absent else self._existing(item)
        if existing is not None:
            return existing
        key = keys.instance_key(item.study_instance_uid, item.series_instance_uid, item.sop_instance_uid)
        marker = keys.pending_key(item.sop_instance_uid)
        self.store.put(marker, self._marker_body(key), media_type="application/json")
        try:
            # Create-if-absent: two uploads of one UID at once must not overwrite each other's
            # object (the index would then describe one and the store hold the other).
            stored, wrote = self._put_object(item, key), True
        except AlreadyExists:
            # A concurrent upload of this instance, or one that died before its locator: the
            # object there stands, and this one is only accepted as the same image.
            self._check_same(item, key)
            stored, wrote = self.store.head(key), False
        try:
            self.store.put(keys.locator_key(item.sop_instance_uid), key.encode(), media_type="text/plain", if_none_match=True)
        except AlreadyExists:
            # Lost a race with a concurrent upload of the same instance: theirs stands.
            try:
                winner = self._existing(item)
            except Conflict:
                theirs = self.locate(item.sop_instance_uid)
                if wrote and theirs != key:
                    self.store.delete(key)  # ours, under other study or series UIDs: never named
                    # The marker (one per UID) now names our key; name theirs, so that if their
                    # index write fails the reconciler still completes their instance.
                    self.store.put(marker, self._marker_body(theirs), media_type="application/json")
                raise
            if winner is not None:
                if wrote and winner.key != key:
                    self.store.delete(key)
                return winner
        if self.store.supports_object_lock and self.store.exists(keys.hold_key(item.patient_id)):
            self.store.set_legal_hold(key, True)  # a held patient's new images are locked too
        # Read now (the spool file goes with the request); the stored object, if it was not ours.
        with item.path.open("rb") if wrote else self.store.open(key) as handle:
            document = document_from_dataset(read_header(handle), stored)
        outcome = StoreOutcome("created", item.sop_instance_uid, item.study_instance_uid, item.series_instance_uid,
                               key, False, document)  # fmt: skip
        return outcome if defer_index else self.index_deferred([outcome])[0]

    def index_deferred(self, outcomes: list[StoreOutcome]) -> list[StoreOutcome]:
        """Index the instances stored with ``defer_index`` in one write and drop their pending
        markers; if the index is unavailable, they stay pending for the reconciler (as one
        instance would). Returns the outcomes, with ``indexed`` set where it now is."""
        waiting = [o for o in outcomes if o.deferred is not None]
        if not waiting or time.monotonic() < self._index_down_until:
            return outcomes
        documents = [cast(dict[str, object], o.deferred) for o in waiting]
        try:
            if len(documents) == 1:
                self.index.upsert(documents[0])
            else:
                self.index.upsert_many(documents)
        except IndexUnavailable as exc:
            log.warning("index unavailable, %d instance(s) stay pending (first %s): %s", len(waiting), waiting[0].key, exc)
            self.pause_index()
            for o in waiting:
                self._keep_marker(keys.pending_key(o.sop_instance_uid), o.key)
            return outcomes
        for o in waiting:
            self.store.delete(keys.pending_key(o.sop_instance_uid))
        return [dataclasses.replace(o, indexed=True, deferred=None) if o.deferred is not None else o for o in outcomes]

    def check_can_store(self, item: PreparedInstance) -> StoreOutcome | None:
        """Raise ``Conflict`` now if storing ``item`` would be refused (batch preflight); returns
        the instance when it is already stored."""
        return self._existing(item)

    def _marker_body(self, key: str) -> bytes:
        return json.dumps({"key": key, "created": self._clock()}).encode()

    def _keep_marker(self, marker: str, key: str) -> None:
        """Re-write the marker if it has gone: a reconciler elsewhere may have dropped it as
        abandoned while a very slow upload was still writing its object."""
        try:
            if not self.store.exists(marker):
                self.store.put(marker, self._marker_body(key), media_type="application/json")
        except StoreUnavailable as exc:  # the object is stored; check/reindex will still find it
            log.error("could not re-check the pending marker of %s: %s", key, exc)

    def index_recovered(self) -> None:
        """End the pause on index writes (called after a reconcile pass succeeds)."""
        with self._breaker_lock:
            self._index_down_until = 0.0

    def index_paused(self) -> bool:
        """Whether the index failed in the last ``index_retry_seconds`` (and no reconcile pass
        has succeeded since): callers with another way to an answer should take it."""
        return time.monotonic() < self._index_down_until

    def pause_index(self) -> None:
        """Note that the index just failed (a read as well as a write may find it so)."""
        with self._breaker_lock:
            self._index_down_until = time.monotonic() + self.index_retry_seconds

    def _put_object(self, item: PreparedInstance, key: str) -> StoredObject:
        if item.sha256:  # digested as it was written: the store may take the file as it is
            return self.store.put_file(key, item.path, sha256=item.sha256, media_type=DICOM_MEDIA_TYPE, if_none_match=True)
        with item.path.open("rb") as handle:
            return self.store.put(key, handle, media_type=DICOM_MEDIA_TYPE, if_none_match=True)

    def _existing(self, item: PreparedInstance) -> StoreOutcome | None:
        """The stored instance with this UID, if any; refuses a different patient or content."""
        try:
            key = self.locate(item.sop_instance_uid)
        except NotFound:
            return None
        self._check_same(item, key)
        study, series, _ = keys.uids_from_instance_key(key)
        indexed = not self.store.exists(keys.pending_key(item.sop_instance_uid))
        return StoreOutcome("existing", item.sop_instance_uid, study, series, key, indexed)

    def _check_same(self, item: PreparedInstance, key: str) -> None:
        """Refuse ``item`` unless it is the image stored at ``key``: the same patient, and (when
        its UID was not derived from its content) the same bytes or the same content."""
        with self.store.open(key) as handle:
            header = read_header(handle)
        if str(header.get("PatientID", "")) != item.patient_id:
            # Never name the other patient: this is a possible misfiling (DECISIONS.md 5).
            raise Conflict(
                "this image is already stored for a different patient; "
                "an administrator must review it before it can be filed again"
            )
        if not item.uid_derived_from_content:
            stored_sha = self.store.head(key).sha256 or self._sha256_of(key)
            with item.path.open("rb") as handle:
                incoming_sha = item.sha256 or sha256_of_stream(handle)[1]
            same_content = item.content_sha256 and get_private(header).get("ContentSHA256") == item.content_sha256
            if stored_sha != incoming_sha and not same_content:
                raise Conflict(
                    f"SOP Instance UID {item.sop_instance_uid} is already stored with different content"
                )

    def _sha256_of(self, key: str) -> str:
        with self.store.open(key) as handle:
            return sha256_of_stream(handle)[1]

    # -- reading -----------------------------------------------------------------------------
    def locate(self, sop_instance_uid: str) -> str:
        """The object key of an instance, from the store alone (works while the index is down)."""
        if not keys.is_valid_uid(sop_instance_uid):
            raise NotFound(f"instance {sop_instance_uid!r} not found")
        try:
            with self.store.open(keys.locator_key(sop_instance_uid)) as handle:
                return handle.read().decode()
        except NotFound:
            raise NotFound(f"instance {sop_instance_uid} not found") from None

    def open_instance(self, sop_instance_uid: str) -> BinaryIO:
        return self.store.open(self.locate(sop_instance_uid))

    def read_instance_header(self, sop_instance_uid: str) -> Dataset:
        with self.open_instance(sop_instance_uid) as handle:
            return read_header(handle)

    def read_instance(self, sop_instance_uid: str) -> Dataset:
        with self.open_instance(sop_instance_uid) as handle:
            return read_whole(handle)

    # -- maintenance -------------------------------------------------------------------------
    def reconcile_pending(self, *, force: bool = False) -> int:
        """Complete every interrupted or deferred write; return how many were indexed.

        Raises ``IndexUnavailable`` if the index is still down (the markers stay).
        """
        done = 0
        for marker in list(self.store.iter_keys(keys.PENDING)):
            try:
                with self.store.open(marker) as handle:
                    body = json.loads(handle.read() or b"{}")
            except NotFound:
                continue
            except ValueError:
                body = {}
            sop_uid = marker[len(keys.PENDING) :]
            key = body.get("key", "")
            if not key or not self.store.exists(key):
                age = self._clock() - float(body.get("created", 0))
                if force or age > ABANDONED_MARKER_SECONDS:
                    self.store.delete(marker)  # the upload died before its object was written
                continue
            try:
                self.store.put(keys.locator_key(sop_uid), key.encode(), media_type="text/plain", if_none_match=True)
            except AlreadyExists:
                pass
            self.index.upsert(self.document_for_key(key))
            self.store.delete(marker)
            done += 1
        self.index_recovered()
        return done

    def pending_count(self) -> int:
        return sum(1 for _ in self.store.iter_keys(keys.PENDING))

    def document_for_key(self, key: str) -> dict[str, object]:
        """The index document of the object at ``key``, read from the store (its header only)."""
        open_stored = getattr(self.store, "open_stored", None)  # one request where the store can
        stored, handle = open_stored(key) if open_stored else (self.store.head(key), self.store.open(key))
        with handle:
            header = read_header(handle)
        return document_from_dataset(header, stored)

    def iter_instance_keys(self) -> Iterator[str]:
        return (k for k in self.store.iter_keys(keys.STUDIES) if keys.is_instance_key(k))

    def iter_documents(
        self, progress: Callable[[str], None] | None = None, *, skip: Collection[str] = (),
        report: ReindexReport | None = None,
    ) -> Iterator[dict[str, object]]:  # fmt: skip
        """Index documents for every stored instance (in listing order), restoring missing
        locators as it goes. Objects are read by ``reindex_workers`` threads; instances whose
        UIDs are in ``skip`` are not read at all. ``progress`` is called once per listed key."""
        report = report if report is not None else ReindexReport()
        located = {k[len(keys.LOCATORS) :] for k in self.store.iter_keys(keys.LOCATORS)}

        def read(key: str) -> dict[str, object] | None:
            try:
                doc = self.document_for_key(key)
            except NotFound:
                return None  # deleted while we listed
            except Exception as exc:  # noqa: BLE001 - one unreadable object must not stop a rebuild
                log.error("cannot read %s during reindex: %s", key, exc)
                report.unreadable += 1
                return None
            sop_uid = str(doc["SOPInstanceUID"])
            if sop_uid not in located:
                try:
                    self.store.put(keys.locator_key(sop_uid), key.encode(), media_type="text/plain", if_none_match=True)
                    report.locators_restored += 1
                except AlreadyExists:
                    pass
            return doc

        listing = self.iter_instance_keys()
        with ThreadPoolExecutor(self.reindex_workers, thread_name_prefix="ologies-reindex") as pool:
            # Reads run ahead of the consumer (whose index writes then overlap them), at most
            # ``ahead`` chunks: memory stays bounded whatever the size of the store.
            in_flight: deque[list[tuple[str, Future[dict[str, object] | None] | None]]] = deque()
            ahead, size = 4, 32 * self.reindex_workers

            def submit() -> bool:
                chunk = list(islice(listing, size))
                in_flight.extend([[
                    (key, None if keys.uids_from_instance_key(key)[2] in skip else pool.submit(read, key))
                    for key in chunk
                ]] if chunk else [])  # fmt: skip
                return bool(chunk)

            try:
                while len(in_flight) < ahead and submit():
                    pass
                while in_flight:
                    chunk = in_flight.popleft()
                    submit()
                    for key, future in chunk:
                        if progress:
                            progress(key)
                        if future is None:
                            report.already_indexed += 1
                        elif (doc := future.result()) is not None:
                            report.instances += 1
                            yield doc
            finally:  # stopped early (an error, Ctrl-C): do not finish reads nobody will use
                pool.shutdown(wait=True, cancel_futures=True)

    def reindex(self, progress: Callable[[str], None] | None = None, *, force: bool = False) -> int:
        """Rebuild the whole index from a listing of the store and clear the pending markers it
        covers. An index that can resume an interrupted rebuild (Elasticsearch) is told which
        instances it already holds, so those objects are not read again. Returns the number of
        instances indexed now; ``last_reindex`` has the details.

        Unless ``force``, a store that lists fewer than half the instances the live index holds
        is refused (``Conflict``) before anything changes: that is a store URL with a mistyped
        prefix far more often than a real loss, and the rebuilt index would replace the live one,
        leaving every search an empty 200."""
        if not force:
            self._check_listing_covers_index()
        report = ReindexReport()
        # Listed before the objects (as check does): a locator is written after its object, so
        # one listed now whose object is not in the later listing names an object that is gone.
        located = [k[len(keys.LOCATORS) :] for k in self.store.iter_keys(keys.LOCATORS)]
        resuming = getattr(self.index, "rebuild_resuming", None)
        if resuming is not None:
            resuming(lambda present: self.iter_documents(progress, skip=present, report=report))
        else:
            self.index.rebuild(self.iter_documents(progress, report=report))
        report.rebuild = getattr(self.index, "last_rebuild", None)
        for marker in list(self.store.iter_keys(keys.PENDING)):
            _, _, sop_uid = marker.partition(keys.PENDING)
            try:
                self.index.get(sop_uid)
                self.store.delete(marker)
                report.markers_cleared += 1
            except NotFound:
                pass
        stored = {keys.uids_from_instance_key(key)[2] for key in self.iter_instance_keys()}
        for uid in located:
            if uid not in stored:
                self.store.delete(keys.locator_key(uid))
                report.locators_removed += 1
        self.last_reindex = report
        self.index_recovered()
        return report.instances

    def _check_listing_covers_index(self) -> None:
        from search.query import InstanceQuery

        try:
            indexed = self.index.search(InstanceQuery(limit=1, facets=())).total
        except (IndexUnavailable, NotFound):
            return  # no live index (deleted, or never made): nothing to lose
        if not indexed:
            return
        stored = sum(1 for _ in self.iter_instance_keys())
        if stored * 2 < indexed:
            raise Conflict(
                f"the store lists {stored} instances but the live index holds {indexed}: check "
                f"OLOGIES_STORE_URL (bucket, prefix, case) before rebuilding; if the store really "
                f"holds only these, run reindex --force"
            )

    def check(self) -> ConsistencyReport:
        """Compare the listing of the store with the index and the locators. The index and the
        locators are listed before the objects: as each is written after its object, an upload in
        flight can then only show as "missing from index" or "without locator" (as a pending
        instance does), never as an index entry or a locator without its object."""
        report = ConsistencyReport()
        indexed = set(self.index.iter_uids())
        located = {k[len(keys.LOCATORS) :] for k in self.store.iter_keys(keys.LOCATORS)}
        stored = {keys.uids_from_instance_key(key)[2] for key in self.iter_instance_keys()}
        report.objects, report.indexed = len(stored), len(indexed)
        report.missing_from_index = sorted(stored - indexed)
        report.missing_from_store = sorted(indexed - stored)
        report.locators_without_object = sorted(located - stored)
        report.objects_without_locator = sorted(stored - located)
        report.pending_markers = self.pending_count()
        return report

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), dt.timezone.utc)
