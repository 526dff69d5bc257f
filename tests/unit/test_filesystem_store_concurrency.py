"""A put racing a delete in the same folder: the delete tidies empty folders away, which must
never fail a put that has just made the folder (seen as rare 0xA700 STOW-RS failures at
concurrency 4 before the fix)."""

from __future__ import annotations

import threading

from repository.backends.filesystem import FilesystemObjectStore
from repository.errors import OlogiesError


def test_puts_and_deletes_in_one_folder_from_many_threads(tmp_path):
    store = FilesystemObjectStore(tmp_path)
    errors: list[str] = []

    def work(n: int) -> None:
        for i in range(500):
            key = f"pending-index/2.25.{n}{i:04d}"
            try:
                store.put(key, b"{}", media_type="application/json")
                store.delete(key)
            except OlogiesError as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
