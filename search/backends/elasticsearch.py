"""Elasticsearch search index (``OLOGIES_INDEX_URL=http(s)://host:9200``), for server major 9.

All traffic goes through the alias ``{prefix}-instances``; the concrete index behind it is named
after the mapping version (``search.mappings``). Answers equal ``SQLiteIndex``'s (tests/contract).
No client exception leaves this module: unreachable, overloaded, failing or missing all become
``IndexUnavailable`` with the cause chained, so uploads stay pending and search answers 503.

Rebuild, and what "resumable" means here. (1) The new index is created together with the alias
``{prefix}-instances-rebuilding``, before any document is read: that alias is the durable record of
a rebuild in progress. (2) While it exists, live upserts and deletes go to it as well as to the live
alias, so it misses no change made after its creation, even while its rebuild is dead. (3) Documents
are bulk-indexed with ``op_type=create``: one already there (an earlier attempt, or a newer live
write) is kept and counted as skipped. (4) Refresh, then ONE ``_aliases`` call moves the live alias
and drops the rebuilding one (``must_exist``: of two racing rebuilds only one swaps); then the old
indices are deleted. Until (4) the alias stays on the old index, every old document searchable. The
next ``rebuild`` continues in the interrupted index if its mapping version is current, else deletes
it; objects removed from the store behind ``delete``'s back meanwhile are left to ``Repository.check``.
Through ``rebuild_resuming`` the caller learns which UIDs the interrupted index already holds and
need not read those objects from the store again (``ologies reindex`` prints what was carried over).

Timeouts: writes and maintenance use ``es_timeout`` with two retries; what a person waits for
(search, get, the readiness ping) uses ``es_search_timeout`` and is not retried after a timeout,
so a hung cluster answers 503 within about that time (RELIABILITY.md F5).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

import elasticsearch
from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch, NotFoundError, helpers

from repository.errors import ConfigurationError, IndexUnavailable, NotFound
from search import mappings
from search.attributes import AggregatePage, AttributeQuery, InstancePage
from search.backends import elasticsearch_attributes
from search.query import MAX_LIMIT, InstanceQuery, SearchPage

if TYPE_CHECKING:
    from repository.settings import Settings

log = logging.getLogger(__name__)

SUPPORTED_MAJOR = 9  # client major == server major (REST compatibility headers are major-bound)
KEEP_ALIVE = "2m"
_INDEX_GONE = "index_not_found_exception"


def _error_type(exc: ApiError) -> str:
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    return str(error.get("type", "")) if isinstance(error, dict) else ""


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn every client exception into ``IndexUnavailable``; messages name no document content."""
    try:
        yield
    except ApiError as exc:
        kind = _error_type(exc) or str(exc.meta.status)
        if kind == _INDEX_GONE:
            raise IndexUnavailable(f"{what}: the search index is missing (run ensure_schema or reindex)") from exc
        if exc.meta.status < 500 and exc.meta.status != 429:
            log.error("elasticsearch refused %s: %s %s", what, exc.meta.status, kind)  # our bug
        raise IndexUnavailable(f"{what}: Elasticsearch answered {exc.meta.status} {kind}") from exc
    except (TransportError, helpers.BulkIndexError) as exc:
        raise IndexUnavailable(f"{what}: Elasticsearch is unreachable ({type(exc).__name__})") from exc


@dataclass
class RebuildReport:
    """What the last ``rebuild`` did (for the CLI's summary and for tests)."""

    index: str
    resumed: bool
    #: documents already in the resumed index, which the caller did not read again
    carried_over: int = 0
    documents: int = 0
    created: int = 0
    skipped: int = 0
    seconds: float = 0.0


class ElasticsearchIndex:
    """The ``SearchIndex`` port over Elasticsearch 9 (see the module docstring for rebuild)."""

    def __init__(
        self, client: Elasticsearch, *, prefix: str = "ologies", timeout: float = 10.0,
        max_result_window: int = mappings.MAX_RESULT_WINDOW, chunk_size: int = 1000,
        page_size: int = 10_000, retire_delay: float = 0.5, search_timeout: float | None = None,
        publish_writes: bool = True, refresh_interval: str = mappings.REFRESH_INTERVAL,
    ) -> None:  # fmt: skip
        if max_result_window < MAX_LIMIT:
            raise ValueError(f"max_result_window must be at least the page limit {MAX_LIMIT}")
        self._es = client
        # Reads a person waits for (search, get, readiness) get a short timeout and no retry
        # after a timeout: a hung cluster gives a quick 503, not a request held for
        # timeout x (1 + retries). A refused or reset connection is still retried once.
        self._search_timeout = search_timeout or timeout
        self._reader = client.options(request_timeout=self._search_timeout, max_retries=1, retry_on_timeout=False)
        self.prefix = mappings.check_prefix(prefix)
        self.alias = mappings.alias_name(prefix)
        self.building_alias = mappings.building_alias_name(prefix)
        self._timeout, self._window, self._chunk = timeout, max_result_window, chunk_size
        self._shard_wait = f"{max(1, int(timeout / 2))}s"
        self._page = min(page_size, max_result_window)
        self._retire_delay = retire_delay  # lets searches already routed to an old index finish
        self._server_checked = False
        self._interval_checked = False  # ensure_schema runs on every reconciler pass: check once
        self._lock = threading.Lock()
        # True: a write returns once searchable (refresh=wait_for); False: once durable, and it
        # shows within refresh_interval
        self._publish_writes, self.refresh_interval = publish_writes, refresh_interval
        self.last_rebuild: RebuildReport | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ElasticsearchIndex:
        client_major = int(elasticsearch.__versionstr__.split(".")[0])
        if client_major != SUPPORTED_MAJOR:
            raise ConfigurationError(f"elasticsearch client {elasticsearch.__versionstr__} is installed; need 9.x")
        if bool(settings.es_username) != bool(settings.es_password):
            raise ConfigurationError("set both OLOGIES_ES_USERNAME and OLOGIES_ES_PASSWORD, or neither")
        auth = (settings.es_username, settings.es_password) if settings.es_username and settings.es_password else None
        try:
            client = Elasticsearch(
                settings.index_url, basic_auth=auth, request_timeout=settings.es_timeout,
                max_retries=2, retry_on_timeout=True, retry_backoff_base=0.1, retry_backoff_cap=0.5,
            )  # fmt: skip
        except ValueError as exc:
            raise ConfigurationError(f"OLOGIES_INDEX_URL is not usable: {exc}") from exc
        return cls(
            client, prefix=settings.es_index_prefix, timeout=settings.es_timeout,
            search_timeout=settings.es_search_timeout, publish_writes=settings.es_publish_writes,
            refresh_interval=settings.es_refresh_interval,
        )  # fmt: skip

    # -- schema --------------------------------------------------------------------------------
    def _check_server(self) -> None:
        """Refuse a server whose major differs from the client's (once per instance)."""
        if self._server_checked:
            return
        info = self._es.options(ignore_status=(401, 403)).nodes.info(node_id="_local", filter_path="nodes.*.version")
        if info.meta.status != 200:
            log.warning("may not read the Elasticsearch version (%s); not checked", info.meta.status)
        for node in info.body.get("nodes", {}).values() if info.meta.status == 200 else ():
            if int(str(node["version"]).split(".")[0]) != SUPPORTED_MAJOR:
                raise ConfigurationError(f"Elasticsearch server {node['version']} is not {SUPPORTED_MAJOR}.x")
        self._server_checked = True

    def _indices(self) -> dict[str, set[str]]:
        """Our concrete indices and their aliases, read in one request (one consistent view)."""
        found = self._es.indices.get_alias(index=mappings.index_pattern(self.prefix))
        ours = (n for n in found if mappings.parse_index_name(self.prefix, n) is not None)
        return {name: set(found[name].get("aliases", {})) for name in ours}

    def _create(self, alias: str, indices: dict[str, set[str]]) -> str | None:
        """Create the next generation with ``alias`` attached; ``None`` if another process won."""
        generations = [mappings.parse_index_name(self.prefix, n) for n in indices]
        name = mappings.index_name(self.prefix, 1 + max((g[1] for g in generations if g), default=0))
        body = mappings.index_body(max_result_window=self._window, refresh_interval=self.refresh_interval)
        try:
            self._es.indices.create(index=name, aliases={alias: {}}, **body)
        except ApiError as exc:
            if _error_type(exc) == "resource_already_exists_exception":
                return None
            raise
        return name

    def ensure_schema(self) -> None:
        """Create the first index and its alias unless the alias exists (cheap when it does)."""
        with _translated("ensure_schema"):
            self._check_server()
            for _ in range(5):
                indices = self._indices()
                live = [n for n, aliases in indices.items() if self.alias in aliases]
                if live:
                    versions = {(mappings.parse_index_name(self.prefix, n) or (0, 0))[0] for n in live}
                    if versions != {mappings.MAPPING_VERSION}:
                        log.warning("%s has an older mapping than v%d: run reindex", live, mappings.MAPPING_VERSION)
                    self._apply_refresh_interval()
                    return
                if self._create(self.alias, indices):
                    return
        raise IndexUnavailable("ensure_schema: lost five creation races in a row")

    def _apply_refresh_interval(self) -> None:
        """An index made by an earlier release, or under another setting, takes this one's (a
        dynamic setting): uploads' acknowledgements wait for the live index's interval. Once per
        instance, as ``_check_server``: an index this instance creates later has it already."""
        if self._interval_checked:
            return
        path = "*.settings.index.refresh_interval"  # an index without the setting answers {}
        found = self._es.indices.get_settings(index=self.alias, filter_path=path).body or {}
        current = {v.get("settings", {}).get("index", {}).get("refresh_interval") for v in found.values()}
        if current != {self.refresh_interval}:
            self._es.indices.put_settings(index=self.alias, settings={"index": {"refresh_interval": self.refresh_interval}})
            log.info("%s: refresh_interval set to %s", self.alias, self.refresh_interval)
        self._interval_checked = True

    # -- writes --------------------------------------------------------------------------------
    def _targets(self) -> list[str]:
        """The live alias and the rebuilding alias. The second exists only while a rebuild is in
        progress; otherwise its items fail with ``index_not_found`` (``require_alias``), which
        ``_bulk`` ignores. Cheaper than asking first: one request per write, not two."""
        return [self.alias, self.building_alias]

    def _bulk(self, operations: list[dict[str, Any]], targets: list[str], *, refresh: bool | str) -> None:
        """One bulk request; every item is checked (a 200 can carry ``errors: true``)."""
        response = self._es.bulk(
            operations=operations, refresh=refresh, require_alias=True,
            timeout=self._shard_wait,  # a primary still recovering after a restart: fail, do not wait 1 min
        )  # fmt: skip
        failures = []
        for position, item in enumerate(response["items"]):
            action, result = next(iter(item.items()))
            status, kind = int(result.get("status", 500)), str((result.get("error") or {}).get("type", ""))
            if status < 300 or (action == "delete" and status == 404 and not kind):
                continue  # done, or deleting what is not there
            if targets[position % len(targets)] == self.building_alias and kind == _INDEX_GONE:
                continue  # the rebuild finished meanwhile: the live write is the one that counts
            failures.append((result.get("_id"), status, kind))
        for uid, status, kind in failures[:5]:
            log.error("index write of %s failed: %s %s", uid, status, kind)
        if any(kind == _INDEX_GONE for _, _, kind in failures):
            raise IndexUnavailable("write: the search index is missing (run ensure_schema or reindex)")
        if failures:
            raise IndexUnavailable(f"{len(failures)} of {len(response['items'])} index writes failed")

    def upsert(self, document: dict[str, object]) -> None:
        self.upsert_many([document])

    def upsert_many(self, documents: Iterable[dict[str, object]]) -> int:
        """Index in chunks. With ``publish_writes`` the last chunk waits for the shard's next
        scheduled refresh (``refresh=wait_for``), so once this returns every document is
        searchable. Elasticsearch, not each writer, decides when to refresh: one refresh every
        ``refresh_interval`` publishes the writes of every app server, where an explicit refresh
        per upload made a segment per upload and the merges to match (about half the cluster's
        CPU per upload; infra/README.md)."""
        count, targets = 0, None
        with _translated("upsert"):
            docs = iter(documents)
            batches = iter(lambda: list(islice(docs, self._chunk)), [])
            batch = next(batches, None)
            while batch is not None:
                following = next(batches, None)
                targets = targets or self._targets()  # looked up after the objects were stored
                operations: list[dict[str, Any]] = []
                for doc in batch:
                    source = mappings.to_source(doc)
                    for target in targets:
                        operations += [{"index": {"_index": target, "_id": source["SOPInstanceUID"]}}, source]
                self._bulk(operations, targets, refresh=self._refresh_when(last=following is None))
                count += len(batch)
                batch = following
        return count

    def _refresh_when(self, *, last: bool) -> str | bool:
        return "wait_for" if last and self._publish_writes else False

    def delete(self, sop_instance_uid: str) -> None:
        with _translated("delete"):
            targets = self._targets()
            operations = [{"delete": {"_index": t, "_id": sop_instance_uid}} for t in targets]
            self._bulk(operations, targets, refresh=self._refresh_when(last=True))

    # -- reads ---------------------------------------------------------------------------------
    def get(self, sop_instance_uid: str) -> dict[str, object]:
        with _translated("get"):
            try:
                found = self._reader.get(index=self.alias, id=sop_instance_uid)
            except NotFoundError as exc:
                if _error_type(exc) == _INDEX_GONE:
                    raise
                raise NotFound(f"instance {sop_instance_uid} is not indexed") from exc
        return mappings.from_source(found["_source"])

    def count(self) -> int:
        with _translated("count"):
            return int(self._es.count(index=self.alias)["count"])

    def iter_uids(self) -> Iterator[str]:
        """Every indexed UID, from one point in time (consistent even while writes go on)."""
        with _translated("iter_uids"):
            yield from self._iter_ids(self.alias)

    def _iter_ids(self, index: str) -> Iterator[str]:
        with self._point_in_time(self._es, index) as pit:
            after: list[Any] | None = None
            while True:
                page = self._es.search(
                    pit=pit, size=self._page, sort=[{"_shard_doc": "asc"}], source=False,
                    search_after=after, track_total_hits=False,
                )  # fmt: skip
                pit["id"] = str(page.body.get("pit_id") or pit["id"])
                hits = page["hits"]["hits"]
                yield from (str(hit["_id"]) for hit in hits)
                if len(hits) < self._page:
                    return
                after = hits[-1]["sort"]

    def ping(self) -> None:
        with _translated("ping"):
            self._reader.count(index=self.alias)

    def close(self) -> None:
        self._es.close()

    # -- search --------------------------------------------------------------------------------
    # -- attribute matching (QIDO-RS, C-FIND): search/backends/elasticsearch_attributes.py ----
    def search_instances(self, query: AttributeQuery) -> InstancePage:
        return elasticsearch_attributes.search_instances(self, query)

    def search_studies(self, query: AttributeQuery) -> AggregatePage:
        return elasticsearch_attributes.search_studies(self, query)

    def search_series(self, query: AttributeQuery) -> AggregatePage:
        return elasticsearch_attributes.search_series(self, query)

    def search(self, query: InstanceQuery) -> SearchPage:
        try:
            with _translated("search"):
                return self._search(query)
        except IndexUnavailable as exc:
            if not (isinstance(exc.__cause__, ApiError) and _error_type(exc.__cause__) == _INDEX_GONE):
                raise
        with _translated("search"):  # routed to an index that a rebuild just retired: once more
            return self._search(query)

    def _search(self, query: InstanceQuery) -> SearchPage:
        body: dict[str, Any] = {
            "query": mappings.search_query(query),
            "sort": mappings.search_sort(query.newest_first),
            "track_total_hits": True,
            "allow_partial_search_results": False,  # a partial answer would be a lie
            "aggs": mappings.search_aggs(query.facets),
        }
        if query.offset + query.limit <= self._window:
            response = self._reader.search(index=self.alias, from_=query.offset, size=query.limit, **body)
            hits = response["hits"]["hits"]
        else:
            response, hits = self._deep_page(query, body)
        facets = mappings.facet_counts(response.body.get("aggregations", {}), query.facets)
        items = [mappings.from_source(hit["_source"]) for hit in hits]
        return SearchPage(int(response["hits"]["total"]["value"]), items, facets, query.limit, query.offset)

    def _deep_page(self, query: InstanceQuery, body: dict[str, Any]) -> tuple[Any, list[Any]]:
        """Past the result window: skip ``offset`` hits in window-sized steps of sort values only,
        then fetch the page, all from one point in time so the pages fit together."""
        with self._point_in_time(self._reader, self.alias) as pit:
            first, after, remaining = None, None, query.offset
            while True:
                size = query.limit if remaining == 0 else min(remaining, self._window)
                later = {k: v for k, v in body.items() if k != "aggs"} | {"track_total_hits": False}
                extra = body if first is None else later
                page = self._reader.search(pit=pit, size=size, search_after=after, source=remaining == 0, **extra)
                pit["id"] = str(page.body.get("pit_id") or pit["id"])
                first = page if first is None else first
                hits = page["hits"]["hits"]
                if remaining == 0 or len(hits) < size:
                    return first, hits if remaining == 0 else []
                remaining -= size
                after = hits[-1]["sort"]

    @contextlib.contextmanager
    def _point_in_time(self, client: Elasticsearch, index: str) -> Iterator[dict[str, str]]:
        """A point in time on ``index``; callers put each response's ``pit_id`` back into it."""
        opened = client.open_point_in_time(index=index, keep_alive=KEEP_ALIVE)
        pit = {"id": str(opened["id"]), "keep_alive": KEEP_ALIVE}
        try:
            yield pit
        finally:
            with contextlib.suppress(ApiError, TransportError):
                client.close_point_in_time(id=pit["id"])

    # -- rebuild -------------------------------------------------------------------------------
    def rebuild(self, documents: Iterable[dict[str, object]]) -> int:
        """Build a new index from ``documents`` and swap it in (module docstring: resumability)."""
        return self.rebuild_resuming(lambda _present: documents)

    def rebuild_resuming(self, documents_for: Callable[[set[str]], Iterable[dict[str, object]]]) -> int:
        """``rebuild``, where ``documents_for(present)`` gives the documents to index and may leave
        out those whose UIDs are in ``present``: the ones an interrupted rebuild of the same index
        already holds (empty for a fresh start). So a resumed rebuild reads only what is missing.
        Returns the documents indexed this time; ``last_rebuild`` has the details."""
        started = time.monotonic()
        with self._lock, _translated("rebuild"):
            self._check_server()
            target, resumed = self._start_build()
            if resumed:  # what the interrupted attempt wrote, all of it visible to the listing
                self._es.options(request_timeout=max(60.0, self._timeout)).indices.refresh(index=target)
            present = set(self._iter_ids(target)) if resumed else set()
            report = RebuildReport(target, resumed, carried_over=len(present))
            log.info("%s rebuild in %s (%d documents already there)",
                     "resuming" if resumed else "starting", target, len(present))
            documents = documents_for(present)

            def actions() -> Iterator[dict[str, Any]]:
                for doc in documents:  # an exception here leaves the alias where it was
                    report.documents += 1
                    source = mappings.to_source(doc)
                    yield {"_op_type": "create", "_index": target, "_id": source["SOPInstanceUID"], "_source": source}

            bulk_client = self._es.options(request_timeout=max(60.0, self._timeout))
            failures = 0
            for ok, item in helpers.streaming_bulk(
                bulk_client, actions(), chunk_size=self._chunk, max_chunk_bytes=20 * 1024 * 1024,
                raise_on_error=False, max_retries=3, initial_backoff=1, max_backoff=30,
            ):  # fmt: skip
                result = item["create"]
                if ok:
                    report.created += 1
                elif result.get("status") == 409:
                    report.skipped += 1  # already there: an earlier attempt or a newer live write
                else:
                    failures += 1
                    log.error("rebuild could not index %s: %s", result.get("_id"), result.get("status"))
            if failures:
                raise IndexUnavailable(f"rebuild: {failures} documents could not be indexed; nothing was swapped")
            bulk_client.indices.refresh(index=target)
            self._swap(target)
            time.sleep(self._retire_delay)
            self._retire()
        report.seconds = time.monotonic() - started
        self.last_rebuild = report
        log.info("rebuild done: %s", report)
        return report.documents

    def _start_build(self) -> tuple[str, bool]:
        """The index to fill: the interrupted one of this mapping version, or a new one."""
        for _ in range(5):
            indices = self._indices()
            for name, aliases in indices.items():
                if self.building_alias in aliases and self.alias not in aliases:
                    parsed = mappings.parse_index_name(self.prefix, name)
                    if parsed and parsed[0] == mappings.MAPPING_VERSION:
                        return name, True
                    log.warning("discarding %s, an interrupted rebuild of another mapping version", name)
                    self._es.options(ignore_status=404).indices.delete(index=name)
            created = self._create(self.building_alias, self._indices())
            if created:
                return created, False
        raise IndexUnavailable("rebuild: lost five creation races in a row")

    def _swap(self, target: str) -> None:
        """One atomic ``_aliases`` call: live alias off every index of ours and onto ``target``."""
        response = self._es.indices.update_aliases(actions=[
            {"remove": {"index": mappings.index_pattern(self.prefix), "alias": self.alias, "must_exist": False}},
            {"add": {"index": target, "alias": self.alias}},
            # must_exist: if another rebuild swapped this index in already, the whole call fails.
            {"remove": {"index": target, "alias": self.building_alias, "must_exist": True}},
        ])  # fmt: skip
        for position, result in enumerate(response.body.get("action_results", [])):
            if position > 0 and int(result.get("status", 200)) >= 300:
                raise IndexUnavailable(f"rebuild: alias swap step {position} failed ({result.get('status')})")

    def _retire(self) -> None:
        """Delete our indices behind neither alias: the old one and abandoned leftovers."""
        for name, aliases in self._indices().items():
            if not aliases & {self.alias, self.building_alias}:
                self._es.options(ignore_status=404).indices.delete(index=name)

    def discard_rebuild(self) -> None:
        """Drop an interrupted rebuild (it is dual-written until resumed or discarded)."""
        with self._lock, _translated("discard_rebuild"):
            for name, aliases in self._indices().items():
                if self.building_alias in aliases and self.alias not in aliases:
                    self._es.options(ignore_status=404).indices.delete(index=name)
