"""``ologies reindex`` on S3 + Elasticsearch, interrupted and run again.

A few thousand stored instances (copies of one converted photograph with new UIDs, written
straight to the bucket as uploads leave them, so the index knows nothing of them); a reindex
process is SIGKILLed once its new index holds a first bulk, then another is stopped with Ctrl-C
(SIGINT); the third run resumes the same index, reads only what is missing, and swaps it in.
Throughout, the live alias stays on the old index: search keeps answering from it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from elasticsearch import Elasticsearch

from repository.registry import open_store
from tests.integration.conftest import poll
from tests.integration.objects import Copier, template, write_copies

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COUNT = 3000


def ologies(env: dict[str, str], *args: str, **options) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    return subprocess.Popen(
        [sys.executable, "-m", "ingest.cli", *args], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, preexec_fn=_ctrl_c_default, **options,
    )  # fmt: skip


def _ctrl_c_default() -> None:
    # A test run started in the background (`.ci/run &`) inherits SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler: the "Ctrl-C" below would be lost and the run finish.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def building_count(es: Elasticsearch, alias: str) -> int:
    """Documents in the index being rebuilt (0 while there is none, or its shard is starting).
    Refreshed first: otherwise what a run has written shows only at its own last refresh, just
    before it swaps, and on a fast machine the interrupt below then came after the swap."""
    es.options(ignore_status=(404, 503), max_retries=0).indices.refresh(index=alias)
    found = es.options(ignore_status=(404, 503), max_retries=0).count(index=alias)
    return int(found.body.get("count", 0)) if found.meta.status == 200 else 0


def test_reindex_killed_then_interrupted_then_resumed(backends, tmp_path):
    env = backends.environment(OLOGIES_SPOOL_DIR=str(tmp_path), OLOGIES_REINDEX_WORKERS="4")
    assert subprocess.run([sys.executable, "-m", "ingest.cli", "init"], env=env, capture_output=True).returncode == 0
    store = open_store(backends.settings(tmp_path))
    uids = write_copies(store, Copier(template(tmp_path)), COUNT, workers=8)
    store.close()
    live, building = f"{backends.es_prefix}-instances", f"{backends.es_prefix}-instances-rebuilding"
    with Elasticsearch(backends.es_url, request_timeout=30) as es:
        live_index = set(es.indices.get_alias(name=live).body)
        assert es.count(index=live)["count"] == 0

        # 1. killed (SIGKILL) once the new index holds a first bulk of documents
        first = ologies(env, "reindex", "--quiet")
        poll(lambda: building_count(es, building) >= 1000 or first.poll() is not None, timeout=240, every=0.1,
             what="the first bulk of the rebuild")  # fmt: skip
        assert first.poll() is None, f"reindex finished before it could be killed: {first.communicate()}"
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        assert set(es.indices.get_alias(name=live).body) == live_index  # nothing swapped
        assert es.count(index=live)["count"] == 0
        killed_at = building_count(es, building)
        assert 1000 <= killed_at < COUNT

        # 2. interrupted with Ctrl-C once it has added to what the first run left
        second = ologies(env, "reindex", "--quiet")
        poll(lambda: building_count(es, building) > killed_at or second.poll() is not None, timeout=240,
             every=0.1, what="the resumed rebuild to add documents")  # fmt: skip
        if second.poll() is None:
            second.send_signal(signal.SIGINT)
            out, err = second.communicate(timeout=60)
            assert second.returncode == 130, (out, err)
            assert "run `ologies reindex` again to resume" in err
            assert set(es.indices.get_alias(name=live).body) == live_index
        else:  # finished first on a fast machine: still a valid resume, checked below
            out, _ = second.communicate()
            assert "resumed an interrupted rebuild" in out

        # 3. run to the end: resumes the same index, reads only what is missing, swaps it in
        started = time.monotonic()
        third = subprocess.run([sys.executable, "-m", "ingest.cli", "reindex"], env=env, capture_output=True,
                               text=True, timeout=600)  # fmt: skip
        assert third.returncode == 0, third.stderr[-2000:]
        assert f"/{COUNT}" in third.stderr  # the progress bar knows the total
        summary = re.search(r"\((resumed an interrupted rebuild|new index)\): (\d+) created, (\d+) skipped.*?, "
                            r"(\d+) already there", third.stdout)  # fmt: skip
        assert summary, third.stdout
        how, created, skipped, carried = summary[1], *map(int, summary.groups()[1:])
        if second.returncode == 130:
            assert how == "resumed an interrupted rebuild" and carried >= killed_at
            assert created + skipped + carried == COUNT
        assert es.count(index=live)["count"] == COUNT
        assert not es.indices.exists_alias(name=building)
        assert set(es.indices.get_alias(name=live).body) != live_index
        print(f"second run exit {second.returncode}; killed at {killed_at}; last run: {created} created, {carried} carried over, "
              f"{time.monotonic() - started:.1f} s")

    check = subprocess.run([sys.executable, "-m", "ingest.cli", "check"], env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    assert f'"objects": {COUNT}' in check.stdout and f'"indexed": {COUNT}' in check.stdout
    assert len(set(uids)) == COUNT
