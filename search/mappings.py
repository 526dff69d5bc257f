"""The Elasticsearch index definition, in code and versioned, and the document <-> source mapping.

Why a version: a mapping or analyser change cannot be applied to an existing index, so any change
here bumps ``MAPPING_VERSION``; concrete indices are named ``{prefix}-instances-v{version}-{n}``
behind the alias ``{prefix}-instances``, and ``ElasticsearchIndex.rebuild`` moves the alias to a
fresh index built with the new definition.

Why Python-side tokenising: answers must equal the SQLite adapter's (``tests/contract``), whose
free text is FTS5 ``unicode61`` over ``fold(_fts_body(doc))``. Its word boundaries differ from the
``standard`` tokenizer's (``o'brien``, ``x_y`` and ``2.25.1`` are one standard token but several
unicode61 tokens), and this Elasticsearch build has no other tokenizer. So the derived field
``_text`` holds the unicode61 words already split and joined by spaces; the analyser (standard
tokenizer + lowercase + asciifolding) then only normalises them.

Known residual differences, all confined to the derived free-text and name fields:
  * asciifolding also folds letters that have no Unicode decomposition (ø æ œ ł đ ð þ ħ ı ...),
    which ``search.document.fold`` keeps: "orjan" finds "Ørjan" here but not in SQLite. Extending
    ``fold`` to those letters would make both backends agree (and helps catalogue item K4).
  * the standard tokenizer splits runs of Han ideographs and Hiragana into one token per character
    (SQLite keeps the run whole), so a query word may also match in the middle of such a run.
  * the unicode61 tables of SQLite are older than Python's: characters assigned since then
    (recent emoji, new scripts) may split differently.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from repository.errors import ConfigurationError
from search.document import ALL_FIELDS, INT_KEYWORDS, INTERNAL_INT, fold
from search.query import InstanceQuery

#: bump on any change below that needs a new index (then run ``ologies reindex``)
MAPPING_VERSION = 2  # 2: .raw keyword sub-fields of text fields; ReferringPhysicianName, BitsAllocated

ANALYZER = "ologies_folded"
NORMALIZER = "ologies_folded"
#: derived, search-only fields: kept out of ``_source`` and never returned
TEXT_FIELD = "_text"
NAME_FIELD = "_name_prefixes"

#: the fields of SQLite's ``_fts_body``, in its order (search/backends/sqlite.py)
FREE_TEXT_FIELDS = (
    "ImageComments", "_body_site_meaning", "StudyDescription", "SeriesDescription",
    "PatientName", "DocumentTitle", "TrackingID",
)  # fmt: skip
#: facet name -> field, as SQLite's ``_FACET_COLUMNS``
FACET_FIELDS = {
    "specialty": "_specialty",
    "body_site": "_body_site_code",
    "trust": "_trust",
    "year": "_year",
    "modality": "Modality",
}
#: buckets per facet: every value, as SQLite's GROUP BY returns (one shard: counts are exact)
FACET_SIZE = 10_000
#: from+size bound on our indices; deeper pages are walked with a point in time + search_after
MAX_RESULT_WINDOW = 50_000
#: how often the shard publishes new writes; an acknowledged write waits for the next one
#: (``refresh=wait_for``), so this bounds both the extra upload latency and the refresh rate
REFRESH_INTERVAL = "250ms"
#: largest keyword indexed (8191 chars stay below Lucene's 32766-byte term limit in UTF-8)
KEYWORD_IGNORE_ABOVE = 8191
#: the standard tokenizer cuts tokens at 255 characters; cut ours the same way
MAX_TOKEN_LENGTH = 255

#: the keyword sub-field of each analysed text field: whole-value matching (QIDO-RS, C-FIND)
RAW_SUBFIELD = "raw"
_DESCRIPTIVE = {
    "StudyDescription", "SeriesDescription", "ImageComments", "DocumentTitle",
    "_body_site_meaning", "PatientName", "OperatorsName", "InstitutionalDepartmentName",
}  # fmt: skip
DESCRIPTIVE_FIELDS = frozenset(_DESCRIPTIVE)
_DATE_SUBFIELD = {
    "_capture_date": "strict_date",
    "_stored_at": "strict_date_optional_time",
    "PatientBirthDate": "basic_date",
    "StudyDate": "basic_date",
    "ContentDate": "basic_date",
}
_INT_FIELDS = set(INT_KEYWORDS) | set(INTERNAL_INT)
_SMALL_INTS = {"Rows", "Columns", "_year"}  # US values and years; the rest may exceed 2**31
_INT_LITERAL = re.compile(r"\s*[+-]?\d+\s*")
_NAME = re.compile(r"^(?P<prefix>.+)-instances-v(?P<version>\d+)-(?P<generation>\d+)$")
_BAD_PREFIX = re.compile(r'[A-Z\\/*?"<>|,# :]')

assert not {TEXT_FIELD, NAME_FIELD} & set(ALL_FIELDS)


# -- names ---------------------------------------------------------------------------------------
def check_prefix(prefix: str) -> str:
    """Refuse a prefix Elasticsearch would reject, or one that could widen our wildcards."""
    if not prefix or _BAD_PREFIX.search(prefix) or prefix[0] in "-_+." or len(prefix) > 100:
        raise ConfigurationError(
            f"OLOGIES_ES_INDEX_PREFIX {prefix!r} must be lower case, without spaces or any of "
            '\\ / * ? " < > | , # :, and must not start with - _ + .'
        )
    return prefix


def alias_name(prefix: str) -> str:
    """The alias every search and live write goes through."""
    return f"{prefix}-instances"


def building_alias_name(prefix: str) -> str:
    """The alias that marks the index a rebuild is filling (the resumable-rebuild record)."""
    return f"{prefix}-instances-rebuilding"


def index_pattern(prefix: str) -> str:
    return f"{prefix}-instances-v*"


def index_name(prefix: str, generation: int, version: int = MAPPING_VERSION) -> str:
    return f"{prefix}-instances-v{version}-{generation:06d}"


def parse_index_name(prefix: str, name: str) -> tuple[int, int] | None:
    """``(version, generation)`` if ``name`` is one of our concrete indices, else ``None``."""
    match = _NAME.match(name)
    if match is None or match.group("prefix") != prefix:
        return None
    return int(match.group("version")), int(match.group("generation"))


# -- index definition ----------------------------------------------------------------------------
def _property(name: str) -> dict[str, Any]:
    if name in _INT_FIELDS:
        # ignore_malformed: SQLite keeps a non-numeric value in an INTEGER column, so do we
        # (in _source) instead of refusing the whole document.
        return {"type": "integer" if name in _SMALL_INTS else "long", "ignore_malformed": True}
    if name in _DESCRIPTIVE:
        raw = {RAW_SUBFIELD: {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}}
        return {"type": "text", "analyzer": ANALYZER, "fields": raw}
    prop: dict[str, Any] = {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}
    if name in _DATE_SUBFIELD:
        # Filters and sorting use the keyword (string order, as SQLite compares them); the date
        # sub-field is for date maths and histograms, and tolerates "" and partial dates.
        prop["fields"] = {"date": {"type": "date", "format": _DATE_SUBFIELD[name], "ignore_malformed": True}}
    return prop


def index_body(*, max_result_window: int = MAX_RESULT_WINDOW, refresh_interval: str = REFRESH_INTERVAL) -> dict[str, Any]:
    """Settings, mappings and ``_meta`` for a new concrete index (keyword args of indices.create)."""
    properties = {name: _property(name) for name in ALL_FIELDS}
    properties[TEXT_FIELD] = {
        "type": "text",
        "analyzer": ANALYZER,
        # Edge n-grams of every word: a prefix of 1-19 characters is one term lookup, so a
        # one-letter query word neither expands to thousands of terms nor hits a clause limit.
        "index_prefixes": {"min_chars": 1, "max_chars": 19},
    }
    properties[NAME_FIELD] = {"type": "keyword", "normalizer": NORMALIZER, "ignore_above": KEYWORD_IGNORE_ABOVE}
    return {
        "settings": {
            "index": {
                "number_of_shards": 1,  # exact facet counts; millions of documents fit one shard
                "auto_expand_replicas": "0-1",
                # Explicit, so that a search-idle shard never delays refresh=wait_for writes.
                "refresh_interval": refresh_interval,
                "max_result_window": max_result_window,
            },
            "analysis": {
                "analyzer": {
                    ANALYZER: {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"]}
                },
                "normalizer": {NORMALIZER: {"type": "custom", "filter": ["lowercase", "asciifolding"]}},
            },
        },
        "mappings": {
            "dynamic": "strict",
            "_meta": {"ologies": {"kind": "instances", "mapping_version": MAPPING_VERSION}},
            "_source": {"excludes": [TEXT_FIELD, NAME_FIELD]},
            "properties": properties,
        },
    }


# -- the unicode61 mirror ------------------------------------------------------------------------
def _is_token_char(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category[0] in "LN" or category == "Co"  # FTS5 unicode61: "L* N* Co"


def _is_ideograph(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x3040 <= cp <= 0x309F  # Hiragana
        or 0x3400 <= cp <= 0x4DBF
        or 0x4E00 <= cp <= 0x9FFF
        or 0xF900 <= cp <= 0xFAFF
        or 0x20000 <= cp <= 0x3FFFF
    )


def words(folded: str) -> list[str]:
    """The words unicode61 sees in already folded text, cut where the standard tokenizer cuts.

    Runs of letters, digits and private-use characters; everything else separates. Ideographs
    come out one per word and long runs in 255-character pieces, as the standard tokenizer
    would split them anyway and a query must be split the same way as the document.
    """
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        text = "".join(run)
        out.extend(text[i : i + MAX_TOKEN_LENGTH] for i in range(0, len(text), MAX_TOKEN_LENGTH))
        run.clear()

    for ch in folded:
        if not _is_token_char(ch):
            flush()
        elif _is_ideograph(ch):
            flush()
            out.append(ch)
        else:
            run.append(ch)
    flush()
    return out


def query_terms(text: str) -> list[list[str]] | None:
    """Free text as SQLite reads it: whitespace-separated terms, each a phrase of words whose
    last word is a prefix, all ANDed. ``[]`` means no constraint; ``None`` means nothing can match
    (a term without any word: FTS5 answers an empty phrase with no rows)."""
    terms = [t for t in fold(text).split() if t.strip('"')]
    phrases = [words(t) for t in terms]
    if any(not phrase for phrase in phrases):
        return None
    return phrases


def name_prefixes(folded_name: str) -> list[str]:
    """The folded name from each word start on: a prefix query on these is SQLite's
    ``LIKE 'needle%' OR LIKE '% needle%'`` on ``_patient_name_folded``."""
    return [folded_name] + [folded_name[i:] for i in range(1, len(folded_name)) if folded_name[i - 1] == " "]


# -- documents -----------------------------------------------------------------------------------
def free_text_body(doc: dict[str, object]) -> str:
    """SQLite's ``_fts_body``: the free-text fields joined by spaces, ``^`` read as a space."""
    return " ".join(str(doc.get(p) or "").replace("^", " ") for p in FREE_TEXT_FIELDS)


def _coerce(name: str, value: object) -> object:
    """Store what SQLite's column affinity would store, so ``get`` returns the same values."""
    if value is None:
        return None
    if isinstance(value, bool):
        value = int(value)
    if name in _INT_FIELDS:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT_LITERAL.fullmatch(value):
            return int(value)
        return value
    return value if isinstance(value, str) else str(value)


def to_source(doc: dict[str, object]) -> dict[str, object]:
    """The ``_source`` to index for ``doc``: every document field that has a value, plus the
    derived fields. An absent field and a null one index alike, and most fields of a photograph
    are empty: leaving them out halves what every search fetches and parses."""
    uid = doc["SOPInstanceUID"]
    if not isinstance(uid, str) or not uid:
        raise ValueError("a document needs a SOPInstanceUID")
    values = ((name, _coerce(name, doc.get(name))) for name in ALL_FIELDS)
    source = {name: value for name, value in values if value is not None}
    source[TEXT_FIELD] = " ".join(words(fold(free_text_body(doc))))
    folded = source.get("_patient_name_folded")
    source[NAME_FIELD] = name_prefixes(folded) if isinstance(folded, str) else []
    return source


def from_source(source: dict[str, Any]) -> dict[str, object]:
    """The document as SQLite returns it: every field, ``None`` where absent, nothing derived."""
    return {name: source.get(name) for name in ALL_FIELDS}


# -- queries over these fields (they change together, under one MAPPING_VERSION) ------------------
def search_sort(newest_first: bool) -> list[dict[str, Any]]:
    """SQLite's ORDER BY: NULL sorts lowest (last when descending), UID ascending as tiebreak."""
    order, missing = ("desc", "_last") if newest_first else ("asc", "_first")
    return [
        # On the date sub-field: Lucene skips non-competitive documents by the points of a date,
        # not of a keyword, and uploads arrive in date order, the worst case for a keyword sorted
        # newest first (10 ms against 1.7 ms a search over 5,000 dates). The same order: the
        # document builder writes only real dates or "" (search.document._capture_date). The
        # keyword, compared only between documents of one date, puts "" apart from no value.
        {"_capture_date.date": {"order": order, "missing": missing}},
        {"_capture_date": {"order": order, "missing": missing}},
        {"ContentTime": {"order": order, "missing": missing}},
        {"SOPInstanceUID": {"order": "asc", "missing": "_first"}},
    ]


def search_query(query: InstanceQuery) -> dict[str, Any]:
    """SQLite's ``_where`` as a bool filter. User text only ever becomes term values, prefixes or
    analysed interval text: never query syntax."""
    filters: list[dict[str, Any]] = []
    for field, value in (
        ("PatientID", query.patient_id), ("_specialty", query.specialty),
        ("_body_site_code", query.body_site), ("_trust", query.trust), ("Modality", query.modality),
        ("StudyInstanceUID", query.study_instance_uid), ("SeriesInstanceUID", query.series_instance_uid),
        ("TrackingID", query.tracking_id),
        ("PatientBirthDate", query.patient_birth_date.strftime("%Y%m%d") if query.patient_birth_date else None),
    ):  # fmt: skip
        if value not in (None, ""):
            filters.append({"term": {field: value}})
    if query.sop_instance_uids:
        filters.append({"terms": {"SOPInstanceUID": list(query.sop_instance_uids)}})
    if query.trusts_visible is not None:
        if not query.trusts_visible:
            return {"match_none": {}}
        filters.append({"terms": {"_trust": list(query.trusts_visible)}})
    dates = {k: d.isoformat() for k, d in (("gte", query.date_from), ("lte", query.date_to)) if d}
    if dates:
        filters.append({"range": {"_capture_date": dates}})
    if query.patient_name:
        filters.append({"prefix": {NAME_FIELD: {"value": fold(query.patient_name.strip())}}})
    if query.text.strip():
        phrases = query_terms(query.text)
        if phrases is None:
            return {"match_none": {}}
        for phrase in phrases:
            filters.extend(_phrase_prefix(phrase))
    return {"bool": {"filter": filters}}


def _phrase_prefix(words: list[str]) -> list[dict[str, Any]]:
    """FTS5 ``"w1 w2 w3"*`` (adjacent words, the last one a prefix) as filter clauses.

    ``match_bool_prefix`` analyses the last word (so "Øy" finds the folded "oy...") and its prefix
    query has no expansion cap. Adjacency needs intervals, whose prefix rule fails beyond 128
    expansions unless ``index_prefixes`` serves it (19 characters at most, after folding, which can
    double a non-ASCII word): so the positional check uses a cut prefix and the full word is checked
    by ``match_bool_prefix``. The one superset of SQLite this leaves: two long words sharing the
    cut prefix, one adjacent to the phrase and the other elsewhere in the same document.
    """
    whole = {"match_bool_prefix": {TEXT_FIELD: {"query": words[-1], "operator": "and"}}}
    if len(words) == 1:
        return [whole]
    cut = words[-1][: 19 if words[-1].isascii() else 9]
    head = {"match": {"query": " ".join(words[:-1]), "ordered": True, "max_gaps": 0}}
    adjacent = {"all_of": {"ordered": True, "max_gaps": 0, "intervals": [head, {"prefix": {"prefix": cut}}]}}
    return [{"intervals": {TEXT_FIELD: adjacent}}] + ([whole] if cut != words[-1] else [])


def search_aggs(facets: tuple[str, ...]) -> dict[str, Any]:
    """SQLite's facet GROUP BY: non-empty values, by count descending then value ascending."""
    aggs: dict[str, Any] = {}
    for name in facets:
        order = [{"_count": "desc"}, {"_key": "asc"}]
        terms: dict[str, Any] = {"field": FACET_FIELDS[name], "size": FACET_SIZE, "order": order}
        if name != "year":
            terms["exclude"] = [""]
        aggs[name] = {"terms": terms}
    return aggs


def facet_counts(aggregations: dict[str, Any], facets: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """``{facet: {value: count}}`` in bucket order; year keys as strings, as SQLite gives them."""
    return {name: {str(b["key"]): int(b["doc_count"]) for b in aggregations[name]["buckets"]} for name in facets}
