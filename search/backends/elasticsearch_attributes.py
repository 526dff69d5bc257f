"""``search.attributes`` queries on Elasticsearch, answering exactly as
``search.backends.sqlite_attributes`` does (tests/contract). ``ElasticsearchIndex`` delegates here.

Studies (series) are found with a composite aggregation over the matching instances, ordered by
UID and paged by walking its ``after_key`` (exact at any depth, unlike a terms aggregation); their
counts, modalities and representative instance come from a second request over all the visible
instances of the studies on the page. Fields that are analysed text for free-text search are
matched on their ``.raw`` keyword sub-field, as SQLite compares the whole value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search import mappings
from search.attributes import (
    RANGE_HIGH_SUFFIX,
    AggregatePage,
    AggregateRow,
    AttributeQuery,
    InstancePage,
    Match,
    es_wildcard,
    name_globs,
)

if TYPE_CHECKING:
    from search.backends.elasticsearch import ElasticsearchIndex

COMPOSITE_PAGE = 10_000
MAX_SERIES_PER_STUDY = 10_000


def _field(name: str) -> str:
    return f"{name}.{mappings.RAW_SUBFIELD}" if name in mappings.DESCRIPTIVE_FIELDS else name


def _not_empty(field: str) -> dict[str, Any]:
    return {"bool": {"must_not": [{"term": {field: ""}}]}}


def _clause(match: Match) -> dict[str, Any]:
    field = _field(match.field)
    if match.kind == "equals":
        return {"term": {field: match.values[0]}}
    if match.kind == "any_of":
        return {"terms": {field: list(match.values)}}
    if match.kind == "wildcard":
        return {"bool": {"filter": [{"wildcard": {field: {"value": es_wildcard(str(match.values[0]))}}}, _not_empty(field)]}}
    if match.kind == "range":
        low, high = (str(v) for v in match.values)
        bounds = {k: v for k, v in (("gte", low), ("lte", high + RANGE_HIGH_SUFFIX if high else "")) if v}
        return {"bool": {"filter": [{"range": {field: bounds}}, _not_empty(field)]}}
    if match.kind == "name":
        pattern = str(match.values[0])
        if match.fuzzy and match.field == "_patient_name_folded":
            # _name_prefixes holds the folded name from each word start on (mappings.name_prefixes)
            return {"wildcard": {mappings.NAME_FIELD: {"value": es_wildcard(pattern + "*")}}}
        globs = name_globs(pattern, match.fuzzy)
        return {"bool": {"should": [{"wildcard": {field: {"value": es_wildcard(g)}}} for g in globs], "minimum_should_match": 1}}
    raise ValueError(f"unknown match kind {match.kind!r}")


def _scope(trusts_visible: tuple[str, ...] | None) -> list[dict[str, Any]]:
    if trusts_visible is None:
        return []
    if not trusts_visible:
        return [{"match_none": {}}]
    return [{"terms": {"_trust": list(trusts_visible)}}]


def query_for(query: AttributeQuery) -> dict[str, Any]:
    return {"bool": {"filter": [_clause(m) for m in query.matches] + _scope(query.trusts_visible)}}


def _client(index: ElasticsearchIndex) -> Any:
    return getattr(index, "_reader", None) or index._es


def search_instances(index: ElasticsearchIndex, query: AttributeQuery) -> InstancePage:
    from search.backends.elasticsearch import _translated

    with _translated("search"):
        response = _client(index).search(
            index=index.alias, query=query_for(query), from_=query.offset, size=query.limit + 1,
            sort=[
                {"StudyInstanceUID": {"order": "asc", "missing": "_first"}},
                {"SeriesInstanceUID": {"order": "asc", "missing": "_first"}},
                {"InstanceNumber": {"order": "asc", "missing": "_first"}},
                {"SOPInstanceUID": {"order": "asc", "missing": "_first"}},
            ],
            track_total_hits=False, allow_partial_search_results=False,
        )  # fmt: skip
    items = [mappings.from_source(hit["_source"]) for hit in response["hits"]["hits"]]
    return InstancePage(items[: query.limit], len(items) > query.limit)


def search_studies(index: ElasticsearchIndex, query: AttributeQuery) -> AggregatePage:
    return _aggregate(index, query, "StudyInstanceUID")


def search_series(index: ElasticsearchIndex, query: AttributeQuery) -> AggregatePage:
    return _aggregate(index, query, "SeriesInstanceUID")


def _aggregate(index: ElasticsearchIndex, query: AttributeQuery, group: str) -> AggregatePage:
    from search.backends.elasticsearch import _translated

    client = _client(index)
    wanted = query.offset + query.limit + 1
    keys: list[str] = []
    with _translated("search"):
        after: dict[str, Any] | None = None
        while len(keys) < wanted:
            composite: dict[str, Any] = {
                "size": min(COMPOSITE_PAGE, wanted - len(keys)),
                "sources": [{"uid": {"terms": {"field": group, "order": "asc"}}}],
            }
            if after is not None:
                composite["after"] = after
            response = client.search(
                index=index.alias, size=0, query=query_for(query), aggs={"groups": {"composite": composite}},
                allow_partial_search_results=False,
            )  # fmt: skip
            buckets = response["aggregations"]["groups"]["buckets"]
            keys.extend(str(b["key"]["uid"]) for b in buckets)
            after = response["aggregations"]["groups"].get("after_key")
            if not buckets or after is None or len(buckets) < composite["size"]:
                break
        has_more = len(keys) > query.offset + query.limit
        page = keys[query.offset : query.offset + query.limit]
        if not page:
            return AggregatePage([], has_more)
        response = client.search(
            index=index.alias, size=0,
            query={"bool": {"filter": [{"terms": {group: page}}] + _scope(query.trusts_visible)}},
            aggs={"groups": {
                "terms": {"field": group, "size": len(page)},
                "aggs": {
                    "series": {"terms": {"field": "SeriesInstanceUID", "size": MAX_SERIES_PER_STUDY}},
                    "modalities": {"terms": {"field": "Modality", "size": 1000, "exclude": [""]}},
                    "first": {"top_hits": {"size": 1, "sort": [{"SOPInstanceUID": {"order": "asc"}}]}},
                },
            }},
            allow_partial_search_results=False,
        )  # fmt: skip
    found: dict[str, AggregateRow] = {}
    for bucket in response["aggregations"]["groups"]["buckets"]:
        uid = str(bucket["key"])
        hits = bucket["first"]["hits"]["hits"]
        if not hits:
            continue
        found[uid] = AggregateRow(
            uid,
            mappings.from_source(hits[0]["_source"]),
            int(bucket["doc_count"]),
            len(bucket["series"]["buckets"]),
            tuple(sorted(str(b["key"]) for b in bucket["modalities"]["buckets"])),
        )
    return AggregatePage([found[u] for u in page if u in found], has_more)
