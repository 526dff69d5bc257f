"""Change the header of a stored object in place: patient reconciliation (IHE PIR) and consent
withdrawal both rewrite attributes of an object whose UIDs stay the same.

Only the header is parsed; the pixel data (a photograph, or a video of several GB) is streamed
across from the old object, so memory stays flat. The write follows the Repository's ordering:
a pending marker, the object replaced atomically under its key, the index, then the marker
removed; if the index is down the marker stays for the reconciler.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from pydicom import Dataset, dcmwrite

from repository import keys
from repository.errors import IndexUnavailable, NotFound
from repository.media import _header_and_pixel_offset
from repository.service import Repository
from search.document import document_from_dataset


def rewrite_header(
    repository: Repository, uid: str, mutate: Callable[[Dataset], None], *, spool_dir: Path | None = None
) -> dict[str, object]:
    """Apply ``mutate`` to the stored object's header and store the result under the same key;
    return the new index document."""
    store = repository.store
    key = repository.locate(uid)
    with store.open(key) as handle:
        header, tail_at = _header_and_pixel_offset(handle)
    mutate(header)
    with tempfile.NamedTemporaryFile(dir=spool_dir, prefix="ologies-rewrite-", suffix=".dcm") as out:
        dcmwrite(out, header, enforce_file_format=True)
        with store.open(key) as source:
            _skip(source, tail_at)
            shutil.copyfileobj(source, out, 1024 * 1024)
        out.flush()
        out.seek(0)
        marker = keys.pending_key(uid)
        store.put(marker, repository._marker_body(key), media_type="application/json")
        stored = store.put(key, out)
    doc = document_from_dataset(header, stored)
    try:
        repository.index.upsert(doc)
    except IndexUnavailable:
        return doc  # stored; the reconciler indexes it when the index is back
    store.delete(marker)
    return doc


def _skip(handle, count: int) -> None:  # type: ignore[no-untyped-def]
    if handle.seekable():
        handle.seek(count)
        return
    while count > 0:
        chunk = handle.read(min(count, 1024 * 1024))
        if not chunk:
            raise NotFound("the stored object is shorter than its header says")
        count -= len(chunk)
