"""Elasticsearch write visibility under concurrency: an upload's document is searchable when
``upsert`` returns, also while other threads write (one refresh is shared among them, so the
check is that no writer returns before a refresh that covers it). With ``publish_writes=False``
it becomes searchable within the refresh interval instead."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from elasticsearch import Elasticsearch

from search.backends.elasticsearch import ElasticsearchIndex
from search.query import InstanceQuery
from tests.contract.index_contract import make_doc
from tests.integration.conftest import poll, remove_indices

pytestmark = pytest.mark.integration


@pytest.fixture
def make_index(es_url):  # type: ignore[no-untyped-def]
    prefix = f"ologies-it-{uuid.uuid4().hex[:10]}"
    made: list[ElasticsearchIndex] = []

    def make(**options) -> ElasticsearchIndex:  # type: ignore[no-untyped-def]
        index = ElasticsearchIndex(Elasticsearch(es_url, request_timeout=30), prefix=prefix, **options)
        index.ensure_schema()
        made.append(index)
        return index

    yield make
    for index in made:
        index.close()
    remove_indices(es_url, prefix)


def found(index: ElasticsearchIndex, uid: str) -> bool:
    """Found by a search (near real time), not by ``get`` (which reads the translog)."""
    return index.search(InstanceQuery(sop_instance_uids=(uid,), limit=1, facets=())).total == 1


def test_every_concurrent_upsert_is_searchable_when_it_returns(make_index):
    index = make_index()
    misses: list[str] = []

    def writer(w: int) -> None:
        for n in range(12):
            doc = make_doc(1000 * w + n)
            index.upsert(doc)
            if not found(index, str(doc["SOPInstanceUID"])):
                misses.append(str(doc["SOPInstanceUID"]))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert misses == []
    assert index.count() == 72
    assert index._published >= 1 and index._writes_done == 72  # refreshes were shared, not skipped


def test_unpublished_writes_show_within_the_refresh_interval(make_index):
    index = make_index(publish_writes=False)
    doc = make_doc(1)
    started = time.monotonic()
    index.upsert(doc)
    poll(lambda: found(index, str(doc["SOPInstanceUID"])), timeout=5, every=0.05, what="the document")
    assert time.monotonic() - started < 3
