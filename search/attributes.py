"""Attribute matching over the index (DICOM PS3.4 C.2.2.2), and study- and series-level rows.

This is the query model behind QIDO-RS and C-FIND; ``search.qido`` parses request parameters
into it. Each ``Match`` is on one index field; matches are ANDed on each instance, and the study
and series searches return the studies (series) that have at least one matching instance, with
counts over all of their instances the caller may see. Both index adapters implement it and must
answer identically (tests/contract):

* ``equals``: single value matching (an integer for integer fields);
* ``any_of``: list of UID matching (or a list of code strings);
* ``wildcard``: ``*`` any run of characters, ``?`` exactly one; case-sensitive, as the standard
  says for every VR but PN; never matches an empty value;
* ``range``: ``low``/``high`` inclusive, compared as strings (DA, TM and DT values sort as
  strings); an open end is ``""``; the high end matches any value that starts with it ("11" is
  up to 11:59:59.999999); never matches an empty value. For TM, ``search.qido.time_bounds``
  writes the bounds so that this string comparison is a comparison of times, whatever the
  precision of the stored values;
* ``name``: person name matching on the folded name (``search.document.fold``: case and accents
  ignored, ``^`` read as a space), with wildcards. Without ``fuzzy``, the name matches the whole
  pattern, optionally followed by further components ("Baker^Alice" finds "Baker^Alice^^" and
  "Baker^Alice^Jane"). With ``fuzzy`` (QIDO ``fuzzymatching=true``), the pattern may match from
  the start of any word of the name ("sian" finds "O'Brien-Jones^Siân").

Ordering is fixed so that paging is stable: studies by Study Instance UID, series by Series
Instance UID, instances by (Study, Series, Instance Number, SOP Instance UID); a study's or
series' attributes are those of its instance with the smallest SOP Instance UID.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from repository.errors import QueryError
from search.document import fold

MatchKind = Literal["equals", "any_of", "wildcard", "range", "name"]
#: largest offset + limit; deeper pages are refused rather than answered slowly
MAX_WINDOW = 50_000
MAX_LIMIT = 10_000
#: appended to the high end of a range: sorts after every character of DA, TM and DT values
RANGE_HIGH_SUFFIX = "~"
WILDCARDS = frozenset("*?")


@dataclass(frozen=True)
class Match:
    field: str  # index field: a DICOM keyword, or _patient_name_folded for names
    kind: MatchKind
    values: tuple[object, ...]
    fuzzy: bool = False


@dataclass(frozen=True)
class AttributeQuery:
    matches: tuple[Match, ...] = ()
    limit: int = 100
    offset: int = 0
    trusts_visible: tuple[str, ...] | None = None  # None: every trust

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise QueryError(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
        if self.offset < 0:
            raise QueryError("offset must not be negative", field="offset")
        if self.offset + self.limit > MAX_WINDOW:
            raise QueryError(f"offset + limit must not exceed {MAX_WINDOW}; narrow the query", field="offset")


@dataclass(frozen=True)
class AggregateRow:
    """One study or series: the attributes of its representative instance and its counts."""

    uid: str
    document: dict[str, object]
    instances: int
    series: int
    modalities: tuple[str, ...] = ()


@dataclass
class AggregatePage:
    rows: list[AggregateRow]
    has_more: bool = False  # there are rows after this page


@dataclass
class InstancePage:
    items: list[dict[str, object]] = field(default_factory=list)
    has_more: bool = False


def is_universal(pattern: str) -> bool:
    """A value of only ``*`` matches everything, empty values included (PS3.4 C.2.2.2.4)."""
    return bool(pattern) and set(pattern) == {"*"}


def has_wildcards(value: str) -> bool:
    return any(c in WILDCARDS for c in value)


def name_pattern(value: str) -> str:
    """A person name as the index folds names: accents and case ignored, ``^`` a space."""
    parts = value.split("=")[0].replace("^", " ")
    return " ".join(fold(parts).split())


def sqlite_glob(pattern: str) -> str:
    """DICOM wildcards as a GLOB pattern; ``[`` is GLOB syntax and is matched literally."""
    return pattern.replace("[", "[[]")


def es_wildcard(pattern: str) -> str:
    """DICOM wildcards as an Elasticsearch wildcard pattern (backslash is its escape)."""
    return pattern.replace("\\", "\\\\")


def name_globs(pattern: str, fuzzy: bool) -> tuple[str, ...]:
    """The patterns (``*``/``?`` wildcards) any one of which a folded name must match."""
    if fuzzy:
        return (pattern + "*", "* " + pattern + "*")
    return (pattern, pattern + " *")
