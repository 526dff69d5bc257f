"""Filesystem object store: the embedded default (``file:///path``).

Writes are atomic and durable: the bytes go to a temporary file in the target folder, are
fsynced, then renamed into place (or hard-linked, for create-if-absent), and the folder is
fsynced, so that a crash leaves either the whole object or nothing.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from repository.errors import AlreadyExists, InvalidInput, NotFound, StorageFull, StoreUnavailable
from repository.hashing import as_stream, copy_and_hash
from repository.store import DICOM_MEDIA_TYPE, StoredObject

_SAFE_KEY = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
_MEDIA_TYPES = {
    ".dcm": DICOM_MEDIA_TYPE,
    ".jpg": "image/jpeg",
    ".json": "application/json",
    ".mp4": "video/mp4",
    ".pdf": "application/pdf",
}
_TEMP_PREFIX = ".tmp-"
_CANNOT_LINK = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP)


def _media_type_for(key: str) -> str:
    return _MEDIA_TYPES.get(os.path.splitext(key)[1], "application/octet-stream")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemObjectStore:
    supports_range = True
    supports_object_lock = False

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        # Keys come from repository.keys, but check anyway: a key must never escape the root.
        if not _SAFE_KEY.match(key) or any(part in {".", ".."} for part in key.split("/")):
            raise InvalidInput(f"invalid object key {key!r}")
        return self.root / key

    def put(
        self,
        key: str,
        source: BinaryIO | bytes,
        *,
        media_type: str = DICOM_MEDIA_TYPE,
        if_none_match: bool = False,
    ) -> StoredObject:
        target = self._path(key)
        fd, tmp = self._temporary(target, key, lambda folder: tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=folder))
        with self._discarded_on_failure(tmp, key), os.fdopen(fd, "wb") as handle:
            size, digest = copy_and_hash(as_stream(source), handle)
            handle.flush()
            os.fsync(handle.fileno())
        self._place(tmp, target, key, if_none_match)
        return StoredObject(key, size, digest, media_type)

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        sha256: str,
        media_type: str = DICOM_MEDIA_TYPE,
        if_none_match: bool = False,
    ) -> StoredObject:
        """Link the caller's finished file into place instead of copying it (a 4 MB photograph
        was written, read and written again); copied when it is on another filesystem."""
        target = self._path(key)
        try:
            with path.open("rb") as handle:  # durable before it is named: its writer did not fsync
                os.fsync(handle.fileno())
                size = os.fstat(handle.fileno()).st_size
        except OSError as exc:
            raise self._translate(exc, key) from exc

        def link(folder: Path) -> tuple[bool, str]:
            name = str(folder / f"{_TEMP_PREFIX}{uuid.uuid4().hex}")
            try:
                os.link(path, name)
            except OSError as exc:
                if exc.errno not in _CANNOT_LINK:
                    raise
                return False, name
            return True, name

        linked, tmp = self._temporary(target, key, link)
        if not linked:
            with path.open("rb") as handle:  # another filesystem, or one without hard links
                return self.put(key, handle, media_type=media_type, if_none_match=if_none_match)
        self._place(tmp, target, key, if_none_match)
        return StoredObject(key, size, sha256, media_type)

    def _temporary(self, target: Path, key: str, make):  # type: ignore[no-untyped-def]
        """A temporary name beside ``target`` made by ``make(folder)``, which returns (anything,
        name); returns (that thing, the name as a path), retrying if the folder is tidied away."""
        for attempt in range(5):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                handle, name = make(target.parent)
                return handle, Path(name)
            except (FileNotFoundError, FileExistsError) as exc:
                # A concurrent delete tidied the folder away between mkdir and mkstemp (or during
                # mkdir, which then reports "exists" for a folder that no longer does): again.
                if attempt == 4:
                    raise self._translate(exc, key) from exc
            except OSError as exc:
                raise self._translate(exc, key) from exc
        raise AssertionError("unreachable")

    def _place(self, tmp: Path, target: Path, key: str, if_none_match: bool) -> None:
        """Give the finished temporary file its name, atomically, and make the name durable."""
        with self._discarded_on_failure(tmp, key):
            if if_none_match:
                try:  # link() fails if the name exists: an atomic create-if-absent
                    os.link(tmp, target)
                except FileExistsError:
                    raise AlreadyExists(f"object {key} already exists") from None
                tmp.unlink()
            else:
                os.replace(tmp, target)
            _fsync_dir(target.parent)

    @contextmanager
    def _discarded_on_failure(self, tmp: Path, key: str) -> Iterator[None]:
        """Remove the temporary file if anything fails, reporting an OS error as the store's."""
        try:
            yield
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise self._translate(exc, key) from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @staticmethod
    def _translate(exc: OSError, key: str) -> Exception:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return StorageFull(f"no space left to store {key}")
        return StoreUnavailable(f"filesystem store failed on {key}: {exc.strerror}")

    def set_legal_hold(self, key: str, on: bool) -> None:
        raise NotImplementedError("this store has no object lock (supports_object_lock is False)")

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            raise NotFound(f"object {key} not found") from None
        except OSError as exc:
            raise self._translate(exc, key) from exc

    def read_range(self, key: str, start: int, end: int) -> bytes:
        with self.open(key) as handle:
            handle.seek(start)
            return handle.read(max(0, end - start + 1))

    def head(self, key: str) -> StoredObject:
        try:
            size = self._path(key).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"object {key} not found") from None
        return StoredObject(key, size, None, _media_type_for(key))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        # Tidy empty folders so listings stay fast; never remove the root.
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        # Walk in sorted order so that listings are lexical like S3's.
        base = self.root
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, base)
            rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
            if prefix and not (rel_dir.startswith(prefix) or prefix.startswith(rel_dir)):
                dirnames[:] = []
                continue
            for name in sorted(filenames):
                if name.startswith(_TEMP_PREFIX):
                    continue
                key = rel_dir + name
                if key.startswith(prefix):
                    yield key

    def ping(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise StoreUnavailable(f"store folder {self.root} is not writable")

    def close(self) -> None:
        return None
