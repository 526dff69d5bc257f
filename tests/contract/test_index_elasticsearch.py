"""The index contract against a real Elasticsearch, plus what only Elasticsearch can get wrong.

Runs when ``OLOGIES_TEST_ES_URL`` is set (``bash infra/elasticsearch.sh start``: http://127.0.0.1:9200);
if set and the server does not answer, the tests FAIL (CI must not pass by skipping). Each test uses
its own index prefix and deletes its indices. The tests at the end need no server and always run.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import re
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import elastic_transport
import pytest
from elasticsearch import ApiError, Elasticsearch

from repository.errors import IndexUnavailable, NotFound
from repository.settings import Settings
from search import mappings
from search.backends.elasticsearch import ElasticsearchIndex
from search.backends.sqlite import SQLiteIndex, _fts_body
from search.document import fold
from search.query import InstanceQuery
from tests.contract.index_contract import PATIENT_B, FoldingContract, SearchIndexContract, make_doc, uids

ES_URL = os.environ.get("OLOGIES_TEST_ES_URL", "")
FOLDING = ["lowercase", "asciifolding"]


def needs_es(test):  # type: ignore[no-untyped-def]
    """Integration: skipped without OLOGIES_TEST_ES_URL, failing (never skipping) without a server."""
    reason = "set OLOGIES_TEST_ES_URL=http://127.0.0.1:9200 (bash infra/elasticsearch.sh start)"
    return pytest.mark.integration(pytest.mark.skipif(not ES_URL, reason=reason)(test))


@pytest.fixture(scope="session")
def es_client():
    client = Elasticsearch(ES_URL, request_timeout=30)
    try:
        client.cluster.health(wait_for_status="yellow", timeout="30s")
    except Exception as exc:  # noqa: BLE001 - any failure here must fail loudly, not skip
        pytest.fail(f"OLOGIES_TEST_ES_URL={ES_URL} is set but Elasticsearch does not answer: {exc!r}", pytrace=False)
    yield client
    client.close()


@pytest.fixture
def prefix(es_client):
    name = f"ologies-test-{uuid.uuid4().hex[:12]}"
    yield name
    for index in ours(es_client, name):  # by name: clusters may refuse wildcard deletes
        es_client.options(ignore_status=404).indices.delete(index=index)


@pytest.fixture
def es_index(prefix):
    """A factory of indices under this test's prefix, each with its own client (as processes)."""
    made: list[ElasticsearchIndex] = []

    def make(*, ensure: bool = True, **options) -> ElasticsearchIndex:
        made.append(ElasticsearchIndex(Elasticsearch(ES_URL, request_timeout=30), prefix=prefix, **options))
        if ensure:
            made[-1].ensure_schema()
        return made[-1]

    yield make
    for index in made:
        index.close()


def behind(es_client, alias: str) -> list[str]:
    """The concrete indices behind ``alias``."""
    found = es_client.options(ignore_status=404).indices.get_alias(name=alias)
    return sorted(found.body) if found.meta.status == 200 else []


def ours(es_client, prefix: str) -> list[str]:
    """Every index under the test's prefix."""
    found = es_client.options(ignore_status=404).indices.get(index=f"{prefix}-*", expand_wildcards="all")
    return sorted(found.body) if found.meta.status == 200 else []


def answer(index, query: InstanceQuery) -> tuple[int, list[str], dict[str, dict[str, int]]]:
    page = index.search(query)
    return page.total, uids(page), page.facets


def every_call(index: ElasticsearchIndex) -> list:  # type: ignore[type-arg]
    """One call of each port method that touches the server."""
    return [
        index.ping, index.count, lambda: index.search(InstanceQuery()), lambda: index.get("2.25.1"),
        lambda: index.upsert(make_doc(1)), lambda: index.delete("2.25.1"), lambda: list(index.iter_uids()),
    ]  # fmt: skip


def with_reference(es: ElasticsearchIndex, docs: list[dict[str, object]]) -> tuple[ElasticsearchIndex, SQLiteIndex]:
    """``es`` and an in-memory SQLite index, both holding ``docs``: SQLite is the oracle."""
    reference = SQLiteIndex(":memory:")
    reference.ensure_schema()
    for index in (es, reference):
        index.upsert_many(docs)
    return es, reference


@needs_es
class TestElasticsearchIndexContract(SearchIndexContract, FoldingContract):
    @pytest.fixture
    def index(self, prefix):
        index = ElasticsearchIndex.from_settings(Settings(index_url=ES_URL, es_index_prefix=prefix, _env_file=None))
        index.ensure_schema()
        yield index
        index.close()


@needs_es
def test_index_name_carries_the_mapping_version(es_index, es_client, prefix):
    es_index()
    (name,) = behind(es_client, f"{prefix}-instances")
    assert re.fullmatch(rf"{prefix}-instances-v{mappings.MAPPING_VERSION}-\d{{6}}", name)
    mapping = es_client.indices.get_mapping(index=name)[name]["mappings"]
    assert (mapping["dynamic"], mapping["_meta"]["ologies"]["mapping_version"]) == ("strict", mappings.MAPPING_VERSION)
    types = {field: spec["type"] for field, spec in mapping["properties"].items()}
    assert types["SOPInstanceUID"] == types["PatientID"] == types["_body_site_code"] == "keyword"
    assert (types["_year"], types["_size"], types[mappings.TEXT_FIELD]) == ("integer", "long", "text")
    assert mapping["properties"]["_capture_date"]["fields"]["date"]["type"] == "date"
    analyzer = es_client.indices.get_settings(index=name)[name]["settings"]["index"]["analysis"]["analyzer"]
    assert (analyzer[mappings.ANALYZER]["tokenizer"], analyzer[mappings.ANALYZER]["filter"]) == ("standard", FOLDING)


@needs_es
def test_ensure_schema_is_idempotent_and_race_safe(es_index, es_client, prefix):
    with ThreadPoolExecutor(6) as pool:  # six processes starting at once; .result() re-raises
        twice = [pool.submit(lambda i: (i.ensure_schema(), i.ensure_schema()), es_index(ensure=False)) for _ in range(6)]
        assert [done.result() for done in twice]
    assert len(behind(es_client, f"{prefix}-instances")) == 1 and len(ours(es_client, prefix)) == 1


@needs_es
def test_missing_alias_is_unavailable_never_empty(es_index, es_client, prefix):
    index = es_index(ensure=False)
    for call in every_call(index):
        with pytest.raises(IndexUnavailable, match="missing") as caught:
            call()
        assert caught.value.__cause__ is None or isinstance(caught.value.__cause__, ApiError)
    assert ours(es_client, prefix) == []  # a write never auto-creates an index with a guessed mapping


@needs_es
def test_a_failed_bulk_item_is_never_silent(es_index):
    index = es_index()
    bad = make_doc(2, _size={"bytes": 1})  # an object where a number belongs: that item fails
    with pytest.raises(IndexUnavailable):
        index.upsert_many([make_doc(1), bad])
    assert index.get("2.25.1001")["SOPInstanceUID"] == "2.25.1001"  # the good one is in
    with pytest.raises(NotFound):
        index.get("2.25.1002")


@needs_es
def test_rebuild_swaps_the_alias_while_searches_keep_answering(es_index, es_client, prefix):
    index = es_index(chunk_size=50)
    index.upsert_many(make_doc(n) for n in range(200))
    (old,), seen, stop = behind(es_client, f"{prefix}-instances"), [], threading.Event()

    def search_all_the_time() -> None:
        while not stop.is_set():
            try:
                seen.append(index.search(InstanceQuery(limit=1, facets=())).total)
            except Exception as exc:  # noqa: BLE001
                seen.append(exc)

    def documents():
        for n in range(1000, 1300):
            if n == 1150:
                index.upsert(make_doc(5000))  # an upload while the rebuild runs
            time.sleep(0.002)
            yield make_doc(n)

    (searcher := threading.Thread(target=search_all_the_time)).start()
    try:
        assert index.rebuild(documents()) == 300
    finally:
        stop.set()
        searcher.join()
    # Never an error, never a half-built answer: the old count (before or after the live upload),
    # then the new one from the swap on.
    assert set(seen) <= {200, 201, 301} and seen[0] in (200, 201) and seen[-1] == 301
    assert seen[seen.index(301) :] == [301] * (len(seen) - seen.index(301))
    (new,) = ours(es_client, prefix)
    assert new != old and behind(es_client, f"{prefix}-instances") == [new]
    assert index.count() == 301 and index.get("2.25.6000")["SOPInstanceUID"] == "2.25.6000"


@needs_es
def test_an_interrupted_rebuild_leaves_the_old_index_then_resumes(es_index, es_client, prefix):
    index = es_index(chunk_size=100)
    index.upsert_many(make_doc(n) for n in range(10))
    (old,) = behind(es_client, f"{prefix}-instances")

    def broken():
        for n in range(1000, 1250):
            if n == 1230:
                raise RuntimeError("the store listing failed")
            yield make_doc(n)

    with pytest.raises(RuntimeError, match="store listing"):
        index.rebuild(broken())
    assert behind(es_client, f"{prefix}-instances") == [old] and index.count() == 10
    assert sorted(uids(index.search(InstanceQuery(limit=500)))) == [f"2.25.{1000 + n}" for n in range(10)]
    (half,) = behind(es_client, f"{prefix}-instances-rebuilding")
    es_client.indices.refresh(index=half)
    assert es_client.count(index=half)["count"] == 200  # two chunks went in, the third did not

    index.upsert(make_doc(7000))  # while interrupted, live writes still reach the half-built index
    index.delete("2.25.2000")

    again = es_index()  # as another process would
    assert again.rebuild(make_doc(n) for n in range(1000, 1250)) == 250
    report = again.last_rebuild
    assert report and (report.index, report.resumed, report.created, report.skipped) == (half, True, 51, 199)
    assert behind(es_client, f"{prefix}-instances") == [half] == ours(es_client, prefix)
    assert behind(es_client, f"{prefix}-instances-rebuilding") == []
    assert sorted(again.iter_uids()) == sorted([f"2.25.{1000 + n}" for n in range(1000, 1250)] + ["2.25.8000"])


@needs_es
def test_rebuild_discards_leftovers_and_needs_no_prior_index(es_index, es_client, prefix):
    index = es_index(ensure=False)  # as after losing the index (catalogue F6): no alias at all
    stale = mappings.index_name(prefix, 41, version=mappings.MAPPING_VERSION + 1)
    orphan = mappings.index_name(prefix, 40)
    es_client.indices.create(index=stale, aliases={f"{prefix}-instances-rebuilding": {}}, **mappings.index_body())
    es_client.indices.create(index=orphan, **mappings.index_body())
    assert index.rebuild([make_doc(1)]) == 1
    assert index.last_rebuild is not None and not index.last_rebuild.resumed
    (live,) = behind(es_client, f"{prefix}-instances")
    assert ours(es_client, prefix) == [live] and live not in (stale, orphan)
    assert mappings.parse_index_name(prefix, live) == (mappings.MAPPING_VERSION, 41) and index.count() == 1


NAMES = [  # parity with SQLite over awkward names, comments and queries
    "O'Brien-Jones^Siân", "Smith-Jones^Ann", "Llŷr ap Dafydd^Huw", "Ŵyn^Siân", "Ó Súilleabháin^Máire",
    "Nic Dhòmhnaill^Eilidh", "MacGiolla Phádraig^Seán", "de la Cruz^Maria", "van der Berg^Jan", "Zoë^Nfc",
    "Zoe\u0308^Nfd", "张伟", "محمد", "Иванов^Иван", "Nguyễn Thị Minh Khai", "Mononym", "100% Real^Name_x", "",
]  # fmt: skip
COMMENTS = [
    "Café-au-lait macule", "pigmented lesion; ref 2.25.1001 x_y", "BURN (partial thickness) – hand",
    "wound_swab 10mm", "naevus/nevus? query*", "東京 visit 東京都", "", "AND OR NOT", "title:cafe \\ /.*/",
]  # fmt: skip
TEXTS = [
    "cafe", "café au", "au-lait", "CAFE-AU", "caf au", "o'brien", "o’brien", "obrien", "o brien", "smith-jones",
    "smith–jones", "jones", "llyr", "súil", "suilleabhain", "zoe", "zoë", "2.25", "25.10", "x_y", "y", "10mm", "10",
    "*", "query*", "nevus?", '"', '"unbalanced AND OR (', "(", "AND", "and or", "title:cafe", "/.*/", "\\", "иван",
    "محمد", "nguyen thi", "les", "LESION PIG", "東京", "hand burn", "partial thick", "ref", '""', " ",
]  # fmt: skip
PATIENT_NAMES = [
    "sian", "SIAN", "o'brien", "obrien", "jones", "smith-jones", "smith", "zoe", "llyr", "suil", "ó súil", "de la",
    "la cruz", "van der", "张", "伟", "иван", "%", "_", "100%", "name_x", "*", "?", " ", "  sian  ", "mononym",
    "nguyen thi minh",
]  # fmt: skip


def corpus() -> list[dict[str, object]]:
    """Every awkward name and comment, spread over specialties, trusts, dates and empty values."""
    docs = []
    for n, name in enumerate(NAMES):
        comment = COMMENTS[n % len(COMMENTS)]
        doc = make_doc(n, PatientName=name, ImageComments=comment, capture=dt.date(2023 + n % 3, 1 + n % 12, 1))
        doc.update(_specialty=["dermatology", "burns-plastics", ""][n % 3], _trust=["REM", "RBN"][n % 2])
        doc.update(TrackingID=f"TRK-{n}" if n % 4 == 0 else None, ContentTime=None if n % 5 == 0 else "101500")
        doc.update(PatientID=PATIENT_B if n % 6 == 0 else doc["PatientID"], Modality="DMS" if n == 7 else "XC")
        docs.append(doc)
    docs.append(make_doc(99, _capture_date="", ContentTime="", _year=None, PatientName="Empty^Date"))
    docs.append(make_doc(98, _capture_date=None, _year=None, _patient_name_folded=None, PatientName=None))
    return docs


@needs_es
def test_answers_equal_sqlite_for_awkward_text_and_names(es_index):
    es, reference = with_reference(es_index(), corpus())
    queries = [InstanceQuery(text=t, limit=500) for t in TEXTS] + [InstanceQuery(patient_name=n) for n in PATIENT_NAMES]
    queries += [
        InstanceQuery(limit=500), InstanceQuery(limit=500, newest_first=False),
        InstanceQuery(trust="RBN", text="sian", limit=500), InstanceQuery(patient_id=PATIENT_B, limit=500),
        InstanceQuery(date_from=dt.date(2023, 3, 1), date_to=dt.date(2024, 6, 1), limit=500),
        InstanceQuery(tracking_id="TRK-4"), InstanceQuery(modality="DMS"), InstanceQuery(trusts_visible=()),
        InstanceQuery(trusts_visible=("REM", "XYZ")), InstanceQuery(patient_birth_date=dt.date(1980, 1, 1)),
        InstanceQuery(sop_instance_uids=("2.25.1003", "2.25.1098", "2.25.9")), InstanceQuery(limit=3, offset=20),
    ]  # fmt: skip
    for query in queries:
        assert answer(es, query) == answer(reference, query), query
    for uid in (str(doc["SOPInstanceUID"]) for doc in corpus()):
        assert es.get(uid) == reference.get(uid)


@needs_es
@pytest.mark.parametrize(("name", "query"), [
    ("Ørjan^Test", InstanceQuery(patient_name="orjan")), ("Łukasz^Test", InstanceQuery(text="lukasz")),
    ("O’Brien^Pat", InstanceQuery(patient_name="o'brien")), ("Smith–Jones^B", InstanceQuery(patient_name="smith-j")),
])  # fmt: skip
def test_letters_without_combining_accents_fold_alike(es_index, name, query):
    """asciifolding and ``search.document.fold`` agree on ø, ł, typographic apostrophes, dashes."""
    es, reference = with_reference(es_index(), [make_doc(1, PatientName=name)])
    assert answer(es, query) == answer(reference, query)


@needs_es
def test_deep_pages_and_iter_uids_past_the_result_window(es_index):
    day, time_of = (lambda n: dt.date(2024, 1, 1) + dt.timedelta(days=n % 37)), (lambda n: f"{n % 5:02d}0000")
    docs = [make_doc(n, capture=day(n), ContentTime=None if n % 11 == 0 else time_of(n)) for n in range(1300)]
    for n, doc in enumerate(docs):  # undated ones too: an empty date sorts apart from none, across pages
        if n % 13 == 0 or n % 17 == 0:
            doc.update(_capture_date="" if n % 13 == 0 else None, _year=None)
    es, reference = with_reference(es_index(max_result_window=500, page_size=100), docs)
    assert sorted(es.iter_uids()) == sorted(str(d["SOPInstanceUID"]) for d in docs)  # 13 pages, one PIT
    for newest_first in (True, False):
        for offset in (0, 450, 451, 499, 500, 777, 1000, 1250, 1299, 1300, 5000):
            query = InstanceQuery(limit=50, offset=offset, newest_first=newest_first, facets=("year",))
            assert answer(es, query) == answer(reference, query), query
    query = InstanceQuery(text="pigmented", limit=20, offset=900)
    assert answer(es, query) == answer(reference, query)


@needs_es
def test_prefixes_over_many_distinct_words_never_hit_an_expansion_limit(es_index):
    index = es_index()
    long = "abcdefghijklmnopqrstuvwxyz"  # past index_prefixes' 19 characters: terms get expanded
    index.upsert_many(make_doc(n, ImageComments=f"a{n}x{n * 7919} {long}{n:03d} x {long}{n:03d}") for n in range(400))
    cases = [("a", 400), ("a1", 111), (long[:20], 400), (long.upper(), 400), ("ABCDÉFGHIJKLMNOPQRSTUVWXYZ01", 10),
             (f"x {long}", 400), (f"{long}001-x", 1), (f"{long}001-x {long}002", 0)]  # fmt: skip
    for text, total in cases:
        assert index.search(InstanceQuery(text=text, facets=())).total == total, text


# -- no server needed ---------------------------------------------------------------------------
def test_free_text_is_split_as_sqlite_unicode61_splits_it():
    doc = make_doc(1, StudyDescription="Study^x", SeriesDescription="S", DocumentTitle="T", TrackingID="K-1")
    assert mappings.free_text_body(doc) == _fts_body(doc)  # the same fields, the same way
    texts = [*NAMES, *COMMENTS, "a.b_c-d'e’f g–h 10mm 2.25.1001 ŵ ŷ İstanbul ß ﬁ ½ x\u200by"]
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE f USING fts5(body, tokenize = 'unicode61 remove_diacritics 2')")
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(f, 'instance')")
    for n, text in enumerate(texts):
        if any(0x3040 <= ord(c) <= 0x9FFF for c in text):
            continue  # ideographs: split one per character on purpose (search/mappings.py)
        db.execute("INSERT INTO f (rowid, body) VALUES (?, ?)", (n, fold(text)))
        sqlite_words = [w for (w,) in db.execute("SELECT term FROM v WHERE doc = ? ORDER BY offset", (n,))]
        assert [fold(w) for w in mappings.words(fold(text))] == sqlite_words, text


class _Failing(http.server.BaseHTTPRequestHandler):
    """Answers every request with ``status`` (set per test) and an Elasticsearch-shaped error body."""

    status: int

    def _answer(self) -> None:
        body = json.dumps({"error": {"type": "test_failure", "reason": "x"}, "status": self.status}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Elastic-Product", "Elasticsearch")  # else the client refuses the product
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _answer
    log_message = lambda *args: None


@pytest.mark.parametrize("status", [None, 503, 429, 500, 400, 403])
def test_failures_become_index_unavailable_quickly(status):
    """A closed port (``None``: refused) or a server answering ``status``: never a hang, never a
    client exception, always ``IndexUnavailable`` with the cause chained."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Failing,), {"status": status}))
    port = server.server_address[1]
    if status is None:
        server.server_close()  # the port is closed now: connections are refused
    else:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = Settings(index_url=f"http://127.0.0.1:{port}", es_index_prefix="down", es_timeout=2, _env_file=None)
    index = ElasticsearchIndex.from_settings(settings)
    try:
        for call in [*every_call(index), index.ensure_schema, lambda: index.rebuild([make_doc(1)])]:
            started = time.monotonic()
            with pytest.raises(IndexUnavailable) as caught:
                call()
            assert time.monotonic() - started < 5
            cause = caught.value.__cause__
            assert isinstance(cause, elastic_transport.ConnectionError if status is None else ApiError)
            assert status is None or cause.meta.status == status
    finally:
        index.close()
        if status is not None:
            server.shutdown()
            server.server_close()
