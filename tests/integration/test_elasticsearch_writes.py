"""Elasticsearch write visibility under concurrency: an upload's document is searchable when
``upsert`` returns, also while other threads write (each write waits for the shard's next
scheduled refresh, which publishes them all). With ``publish_writes=False`` it becomes searchable
within the refresh interval instead. The interval is the index's, set by ``ensure_schema``."""

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


def test_unpublished_writes_show_within_the_refresh_interval(make_index):
    index = make_index(publish_writes=False)
    doc = make_doc(1)
    started = time.monotonic()
    index.upsert(doc)
    poll(lambda: found(index, str(doc["SOPInstanceUID"])), timeout=5, every=0.05, what="the document")
    assert time.monotonic() - started < 3


def refresh_interval(es_url: str, index: ElasticsearchIndex) -> str:
    settings = Elasticsearch(es_url).indices.get_settings(index=index.alias).body
    return str(next(iter(settings.values()))["settings"]["index"]["refresh_interval"])


def test_the_refresh_interval_is_the_settings_one_on_new_and_existing_indices(make_index, es_url):
    first = make_index(refresh_interval="2s")
    assert refresh_interval(es_url, first) == "2s"
    # an index made by an earlier release (or another setting) takes this one's at start-up
    second = make_index(refresh_interval="300ms")
    assert refresh_interval(es_url, second) == "300ms"
    doc = make_doc(7)
    second.upsert(doc)
    assert found(second, str(doc["SOPInstanceUID"]))
    # one made without the setting at all (Elasticsearch's default, with search-idle shards)
    Elasticsearch(es_url).indices.put_settings(index=second.alias, settings={"index": {"refresh_interval": None}})
    make_index(refresh_interval="250ms")
    assert refresh_interval(es_url, second) == "250ms"


def test_a_batch_larger_than_a_chunk_is_searchable_when_it_returns(make_index):
    index = make_index(chunk_size=5)
    docs = [make_doc(500 + n) for n in range(12)]
    assert index.upsert_many(docs) == 12
    page = index.search(InstanceQuery(sop_instance_uids=tuple(str(d["SOPInstanceUID"]) for d in docs),
                                      limit=50, facets=()))  # fmt: skip
    assert page.total == 12
