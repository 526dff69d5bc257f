"""The object-store port: a small, DICOM-agnostic contract shaped after Orthanc's storage area.

Keys are opaque strings chosen by ``repository.keys``. Every adapter (memory, filesystem, S3)
passes the same contract tests in ``tests/contract/test_object_store.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

DICOM_MEDIA_TYPE = "application/dicom"


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What the store knows about one object after a write or a head."""

    key: str
    size: int
    sha256: str | None
    media_type: str


@runtime_checkable
class ObjectStore(Protocol):
    """Durable, atomic object storage.

    ``put`` is all-or-nothing: a reader sees either the whole new object or nothing (never a
    partial one). With ``if_none_match=True`` it raises ``AlreadyExists`` when the key is taken,
    atomically where the backend supports it. Backend failures are raised as
    ``StoreUnavailable`` (retry later) and missing keys as ``NotFound``.
    """

    #: whether ``read_range`` is served by the backend rather than by reading and skipping
    supports_range: bool
    #: whether objects can be locked against deletion (S3 Object Lock), for legal holds
    supports_object_lock: bool

    def put(
        self,
        key: str,
        source: BinaryIO | bytes,
        *,
        media_type: str = DICOM_MEDIA_TYPE,
        if_none_match: bool = False,
    ) -> StoredObject: ...

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        sha256: str,
        media_type: str = DICOM_MEDIA_TYPE,
        if_none_match: bool = False,
    ) -> StoredObject:
        """``put`` of a local file that the caller has finished writing (and will not change),
        with the SHA-256 it computed as it wrote it. The filesystem adapter links the file into
        place rather than copying it; the others upload it as ``put`` does."""
        ...

    def open(self, key: str) -> BinaryIO: ...

    def set_legal_hold(self, key: str, on: bool) -> None:
        """Lock the object against deletion and overwriting (or release it); only where
        ``supports_object_lock``."""
        ...

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` inclusive, as in an HTTP Range header."""
        ...

    def head(self, key: str) -> StoredObject: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the key; removing a missing key is not an error."""
        ...

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """Every key under ``prefix`` (order unspecified), skipping temporary files."""
        ...

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the backend answers."""
        ...

    def close(self) -> None: ...
