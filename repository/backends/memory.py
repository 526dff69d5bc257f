"""In-memory object store, for unit tests and ``memory://`` URLs."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from repository.errors import AlreadyExists, NotFound
from repository.hashing import as_stream
from repository.store import DICOM_MEDIA_TYPE, StoredObject


class MemoryObjectStore:
    supports_range = True
    supports_object_lock = False

    def __init__(self) -> None:
        self._objects: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    def put(
        self,
        key: str,
        source: BinaryIO | bytes,
        *,
        media_type: str = DICOM_MEDIA_TYPE,
        if_none_match: bool = False,
    ) -> StoredObject:
        data = as_stream(source).read()
        with self._lock:
            if if_none_match and key in self._objects:
                raise AlreadyExists(f"object {key} already exists")
            self._objects[key] = (bytes(data), media_type)
        return StoredObject(key, len(data), hashlib.sha256(data).hexdigest(), media_type)

    def put_file(
        self, key: str, path: Path, *, sha256: str, media_type: str = DICOM_MEDIA_TYPE,
        if_none_match: bool = False,
    ) -> StoredObject:
        with path.open("rb") as handle:
            return self.put(key, handle, media_type=media_type, if_none_match=if_none_match)

    def _get(self, key: str) -> tuple[bytes, str]:
        try:
            return self._objects[key]
        except KeyError:
            raise NotFound(f"object {key} not found") from None

    def set_legal_hold(self, key: str, on: bool) -> None:
        raise NotImplementedError("this store has no object lock (supports_object_lock is False)")

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self._get(key)[0])

    def read_range(self, key: str, start: int, end: int) -> bytes:
        return self._get(key)[0][start : end + 1]

    def head(self, key: str) -> StoredObject:
        data, media_type = self._get(key)
        return StoredObject(key, len(data), hashlib.sha256(data).hexdigest(), media_type)

    def exists(self, key: str) -> bool:
        return key in self._objects

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        yield from sorted(k for k in list(self._objects) if k.startswith(prefix))

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None
