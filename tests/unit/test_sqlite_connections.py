"""The SQLite index opens a few connections per process, however many threads use it: each
connection keeps its own page cache, and a web worker serves requests on dozens of threads."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

from search.backends import sqlite as sqlite_backend
from search.backends.sqlite import MAX_CONNECTIONS, SQLiteIndex


def test_many_threads_share_a_bounded_pool_of_connections(tmp_path, monkeypatch):
    index = SQLiteIndex(tmp_path / "index.sqlite3")
    index.ensure_schema()
    opened, lock, barrier = [0], threading.Lock(), threading.Barrier(16)
    real_connect = sqlite3.connect

    def counting_connect(*args, **kwargs):  # type: ignore[no-untyped-def]
        with lock:
            opened[0] += 1
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(sqlite_backend.sqlite3, "connect", counting_connect)
    opened[0] = 0

    def count_from_a_new_thread(_: int) -> int:
        barrier.wait()  # all sixteen threads ask at once
        return index.count()

    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(count_from_a_new_thread, range(16))) == [0] * 16
    assert 1 <= opened[0] <= MAX_CONNECTIONS
    index.close()


def test_a_forked_process_opens_its_own_connections(tmp_path):
    """SQLite connections must not be used on both sides of a fork: a child makes its own."""
    import os

    index = SQLiteIndex(tmp_path / "index.sqlite3")
    index.ensure_schema()
    before = list(index._idle.queue)
    assert before
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status
        try:
            index.upsert_many([])  # a write first: it holds the write lock while it connects
            index.count()
            fresh = list(index._idle.queue)
            os._exit(0 if fresh and not any(c in before for c in fresh) else 1)
        except BaseException:  # noqa: BLE001
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert list(index._idle.queue) == before  # the parent's pool is untouched
    index.close()
