"""Streaming helpers shared by the adapters: hash while copying, never hold a whole object."""

from __future__ import annotations

import hashlib
from typing import BinaryIO

CHUNK = 1024 * 1024


def as_stream(source: BinaryIO | bytes) -> BinaryIO:
    import io

    return io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source


def copy_and_hash(source: BinaryIO, target: BinaryIO) -> tuple[int, str]:
    """Copy ``source`` to ``target`` in chunks; return (size, sha256 hex)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        target.write(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def sha256_of_stream(source: BinaryIO) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()
