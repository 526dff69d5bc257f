"""The Repository service: store, find and read instances, with the write ordering that makes
an acknowledged upload survive a crash or an index outage (DECISIONS.md 2-5).

Write ordering for one instance:
  1. a durable ``pending-index/{uid}`` marker naming the instance key (the intent);
  2. the DICOM object itself, atomically, at its UID-derived key;
  3. the ``locators/{uid}`` claim, create-if-absent, which makes the instance findable by UID
     without the index and decides races between concurrent uploads of the same instance;
  4. the index upsert; only if that succeeds is the marker removed.
A crash after any step leaves a marker that the reconciler completes; an index outage leaves the
object stored (acknowledged as 202 "not yet searchable") and the marker drains later.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from pydicom import Dataset, dcmread

from repository import keys
from repository.errors import AlreadyExists, Conflict, IndexUnavailable, NotFound
from repository.hashing import sha256_of_stream
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
    #: SHA-256 of the serialised object; needed only when the UID is not derived from content
    sha256: str | None = None
    #: True when the SOP Instance UID was derived from the uploaded bytes, so an existing
    #: instance with this UID is by construction the same image (DECISIONS.md 4)
    uid_derived_from_content: bool = True


@dataclass(frozen=True)
class StoreOutcome:
    status: Literal["created", "existing"]
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    key: str
    indexed: bool


@dataclass
class ConsistencyReport:
    objects: int = 0
    indexed: int = 0
    missing_from_index: list[str] = field(default_factory=list)
    missing_from_store: list[str] = field(default_factory=list)
    pending_markers: int = 0

    @property
    def consistent(self) -> bool:
        return not (self.missing_from_index or self.missing_from_store)


def read_header(stream: BinaryIO) -> Dataset:
    return dcmread(stream, stop_before_pixels=True)


class Repository:
    def __init__(self, store: ObjectStore, index: SearchIndex, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.index = index
        self._clock = clock

    # -- writing -----------------------------------------------------------------------------
    def store_instance(self, item: PreparedInstance) -> StoreOutcome:
        existing = self._existing(item)
        if existing is not None:
            return existing
        key = keys.instance_key(item.study_instance_uid, item.series_instance_uid, item.sop_instance_uid)
        marker = keys.pending_key(item.sop_instance_uid)
        self.store.put(marker, self._marker_body(key), media_type="application/json")
        with item.path.open("rb") as handle:
            stored = self.store.put(key, handle, media_type=DICOM_MEDIA_TYPE)
        try:
            self.store.put(keys.locator_key(item.sop_instance_uid), key.encode(), media_type="text/plain", if_none_match=True)
        except AlreadyExists:
            # Lost a race with a concurrent upload of the same instance: theirs stands.
            winner = self._existing(item)
            if winner is not None:
                if winner.key != key:
                    self.store.delete(key)
                return winner
        indexed = self._index_stored(item.path, stored, marker)
        return StoreOutcome("created", item.sop_instance_uid, item.study_instance_uid, item.series_instance_uid, key, indexed)

    def check_can_store(self, item: PreparedInstance) -> None:
        """Raise ``Conflict`` now if storing ``item`` would be refused (batch preflight)."""
        self._existing(item)

    def _marker_body(self, key: str) -> bytes:
        return json.dumps({"key": key, "created": self._clock()}).encode()

    def _index_stored(self, path: Path, stored: StoredObject, marker: str) -> bool:
        try:
            with path.open("rb") as handle:
                header = read_header(handle)
            self.index.upsert(document_from_dataset(header, stored))
        except IndexUnavailable as exc:
            log.warning("index unavailable, %s stays pending: %s", stored.key, exc)
            return False
        self.store.delete(marker)
        return True

    def _existing(self, item: PreparedInstance) -> StoreOutcome | None:
        """The stored instance with this UID, if any; refuses a different patient or content."""
        try:
            key = self.locate(item.sop_instance_uid)
        except NotFound:
            return None
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
            if stored_sha != incoming_sha:
                raise Conflict(
                    f"SOP Instance UID {item.sop_instance_uid} is already stored with different content"
                )
        study, series, _ = keys.uids_from_instance_key(key)
        indexed = not self.store.exists(keys.pending_key(item.sop_instance_uid))
        return StoreOutcome("existing", item.sop_instance_uid, study, series, key, indexed)

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
            return dcmread(handle)

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
            self.index.upsert(self._document_for_key(key))
            self.store.delete(marker)
            done += 1
        return done

    def pending_count(self) -> int:
        return sum(1 for _ in self.store.iter_keys(keys.PENDING))

    def _document_for_key(self, key: str) -> dict[str, object]:
        stored = self.store.head(key)
        with self.store.open(key) as handle:
            header = read_header(handle)
        return document_from_dataset(header, stored)

    def iter_instance_keys(self) -> Iterator[str]:
        return (k for k in self.store.iter_keys(keys.STUDIES) if keys.is_instance_key(k))

    def iter_documents(self, progress: Callable[[str], None] | None = None) -> Iterator[dict[str, object]]:
        """Index documents for every stored instance, rebuilding missing locators as it goes."""
        for key in self.iter_instance_keys():
            try:
                doc = self._document_for_key(key)
            except NotFound:
                continue  # deleted while we listed
            except Exception as exc:  # noqa: BLE001 - one unreadable object must not stop a rebuild
                log.error("cannot read %s during reindex: %s", key, exc)
                continue
            sop_uid = str(doc["SOPInstanceUID"])
            try:
                self.store.put(keys.locator_key(sop_uid), key.encode(), media_type="text/plain", if_none_match=True)
            except AlreadyExists:
                pass
            if progress:
                progress(key)
            yield doc

    def reindex(self, progress: Callable[[str], None] | None = None) -> int:
        """Rebuild the whole index from a listing of the store; clears pending markers."""
        count = self.index.rebuild(self.iter_documents(progress))
        for marker in list(self.store.iter_keys(keys.PENDING)):
            _, _, sop_uid = marker.partition(keys.PENDING)
            try:
                self.index.get(sop_uid)
                self.store.delete(marker)
            except NotFound:
                pass
        return count

    def check(self) -> ConsistencyReport:
        report = ConsistencyReport()
        stored: set[str] = set()
        for key in self.iter_instance_keys():
            stored.add(keys.uids_from_instance_key(key)[2])
        indexed = set(self.index.iter_uids())
        report.objects, report.indexed = len(stored), len(indexed)
        report.missing_from_index = sorted(stored - indexed)
        report.missing_from_store = sorted(indexed - stored)
        report.pending_markers = self.pending_count()
        return report

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), dt.timezone.utc)
