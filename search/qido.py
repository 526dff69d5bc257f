"""QIDO-RS (PS3.18 10.6) and C-FIND (PS3.4 C.6) query keys: which attributes can be matched and
returned at each level, and parsing of request values into ``search.attributes`` matches.

Anything the index cannot answer truthfully is refused with the reason (``QueryError``, 400 on
the web): an unknown attribute, an attribute we do not index, a sequence path, a malformed date,
time or range, or a wildcard in a UID. Ignoring such a key, as PS3.18 allows, would return more
than was asked for without saying so, and search must never mislead (DECISIONS.md 3).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from pydicom.datadict import keyword_for_tag, tag_for_keyword

from repository.errors import QueryError
from repository.keys import is_valid_uid
from search.attributes import (
    MAX_LIMIT,
    AttributeQuery,
    Match,
    has_wildcards,
    is_universal,
    name_pattern,
)

Level = Literal["study", "series", "instance"]
LEVELS: tuple[Level, ...] = ("study", "series", "instance")
DEFAULT_LIMIT = 1000


@dataclass(frozen=True)
class Attribute:
    keyword: str
    vr: str
    level: Level
    #: index field it is matched on and returned from; None for computed attributes
    field: str | None
    matchable: bool = True

    @property
    def tag(self) -> int:
        tag = tag_for_keyword(self.keyword)
        assert tag is not None, self.keyword
        return int(tag)


def _a(keyword: str, vr: str, level: Level, field: str | None = "", matchable: bool = True) -> Attribute:
    return Attribute(keyword, vr, level, keyword if field == "" else field, matchable)


ATTRIBUTES: dict[str, Attribute] = {a.keyword: a for a in (
    # study (and patient) level
    _a("StudyDate", "DA", "study"),
    _a("StudyTime", "TM", "study"),
    _a("AccessionNumber", "SH", "study"),
    _a("ModalitiesInStudy", "CS", "study", "Modality"),
    _a("ReferringPhysicianName", "PN", "study"),
    _a("TimezoneOffsetFromUTC", "SH", "study"),
    _a("PatientName", "PN", "study"),
    _a("PatientID", "LO", "study"),
    _a("IssuerOfPatientID", "LO", "study"),
    _a("PatientBirthDate", "DA", "study"),
    _a("PatientSex", "CS", "study"),
    _a("StudyInstanceUID", "UI", "study"),
    _a("StudyID", "SH", "study"),
    _a("StudyDescription", "LO", "study"),
    _a("NumberOfStudyRelatedSeries", "IS", "study", None, matchable=False),
    _a("NumberOfStudyRelatedInstances", "IS", "study", None, matchable=False),
    # series level
    _a("Modality", "CS", "series"),
    _a("SeriesInstanceUID", "UI", "series"),
    _a("SeriesNumber", "IS", "series"),
    _a("SeriesDescription", "LO", "series"),
    _a("BodyPartExamined", "CS", "series"),
    _a("InstitutionName", "LO", "series"),
    _a("InstitutionalDepartmentName", "LO", "series"),
    _a("Manufacturer", "LO", "series"),
    _a("ManufacturerModelName", "LO", "series"),
    _a("OperatorsName", "PN", "series"),
    _a("NumberOfSeriesRelatedInstances", "IS", "series", None, matchable=False),
    # instance level
    _a("SOPClassUID", "UI", "instance"),
    _a("SOPInstanceUID", "UI", "instance"),
    _a("InstanceNumber", "IS", "instance"),
    _a("Rows", "US", "instance"),
    _a("Columns", "US", "instance"),
    _a("BitsAllocated", "US", "instance"),
    _a("NumberOfFrames", "IS", "instance"),
    _a("ContentDate", "DA", "instance"),
    _a("ContentTime", "TM", "instance"),
    _a("AcquisitionDateTime", "DT", "instance"),
    _a("ImageComments", "LT", "instance"),
    _a("TrackingID", "LO", "instance"),
    _a("TrackingUID", "UI", "instance"),
    _a("LossyImageCompression", "CS", "instance"),
    _a("DocumentTitle", "ST", "instance"),
    _a("MIMETypeOfEncapsulatedDocument", "LO", "instance"),
    _a("AvailableTransferSyntaxUID", "UI", "instance", "TransferSyntaxUID"),
    _a("InstanceAvailability", "CS", "instance", None, matchable=False),
)}  # fmt: skip

#: returned at each level without includefield (PS3.18 Tables 10.6.3-3, -4, -5)
DEFAULT_RETURN: dict[Level, tuple[str, ...]] = {
    "study": (
        "StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy", "ReferringPhysicianName",
        "TimezoneOffsetFromUTC", "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate",
        "PatientSex", "StudyInstanceUID", "StudyID", "StudyDescription",
        "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
    ),
    "series": (
        "Modality", "TimezoneOffsetFromUTC", "SeriesDescription", "SeriesInstanceUID", "SeriesNumber",
        "NumberOfSeriesRelatedInstances", "BodyPartExamined",
    ),
    "instance": (
        "SOPClassUID", "SOPInstanceUID", "InstanceAvailability", "TimezoneOffsetFromUTC",
        "InstanceNumber", "Rows", "Columns", "BitsAllocated", "NumberOfFrames", "AvailableTransferSyntaxUID",
    ),
}  # fmt: skip
_LEVEL_RANK = {"study": 0, "series": 1, "instance": 2}
_STUDY_AGGREGATES = frozenset({"ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"})
_SERIES_AGGREGATES = frozenset({"NumberOfSeriesRelatedInstances"})
_AGGREGATES: dict[Level, frozenset[str]] = {"study": _STUDY_AGGREGATES, "series": _SERIES_AGGREGATES, "instance": frozenset()}
_HEX_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
_TM = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
_DT = re.compile(r"^\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_VALUE_LENGTH = 256
#: returned with every result at every level (web.dicomweb.dicomjson.qido_result), indexed nowhere:
#: includefield (or an empty value) may name it, matching on it is refused
ALWAYS_RETURNED = frozenset({"RetrieveURL"})
PARAMETERS = frozenset({"limit", "offset", "fuzzymatching", "includefield"})


@dataclass
class QidoRequest:
    """A parsed search: what to match, what to return, and the warnings to send back."""

    level: Level
    query: AttributeQuery
    returns: tuple[str, ...]
    fuzzy: bool = False
    warnings: list[str] = field(default_factory=list)


def resolve(key: str) -> Attribute:
    """An attribute named by keyword or by 8-digit hexadecimal tag; QueryError otherwise."""
    if "." in key:
        raise QueryError(f"{key}: matching within sequences is not supported", field=key)
    if _HEX_TAG.match(key):
        keyword = keyword_for_tag(int(key, 16))
        if not keyword:
            raise QueryError(f"{key} is not a known DICOM attribute (private tags cannot be searched)", field=key)
    else:
        keyword = key
        if tag_for_keyword(keyword) is None:
            raise QueryError(f"unknown query parameter or attribute {key!r}", field=key)
    found = ATTRIBUTES.get(keyword)
    if found is None:
        raise QueryError(f"{keyword} is not indexed here, so it can be neither matched nor returned", field=key)
    return found


def _always_returned(key: str) -> bool:
    keyword = keyword_for_tag(int(key, 16)) if _HEX_TAG.match(key) else key
    return keyword in ALWAYS_RETURNED


def attributes_at(level: Level) -> list[Attribute]:
    """Every attribute a search at ``level`` may match or return."""
    return [a for a in ATTRIBUTES.values() if _LEVEL_RANK[a.level] <= _LEVEL_RANK[level]]


def parse(
    params: Iterable[tuple[str, str]],
    level: Level,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    trusts_visible: tuple[str, ...] | None = None,
    max_limit: int = MAX_LIMIT,
) -> QidoRequest:
    """Parse QIDO-RS query parameters (already percent-decoded) for a search at ``level``."""
    matches: list[Match] = []
    includes: list[str] = []
    include_all = False
    limit, offset, fuzzy = DEFAULT_LIMIT, 0, False
    warnings: list[str] = []
    seen: set[str] = set()
    pairs = list(params)
    for name, value in pairs:
        if name == "fuzzymatching":
            if value.lower() not in ("true", "false"):
                raise QueryError("fuzzymatching must be true or false", field=name)
            fuzzy = value.lower() == "true"
    for name, value in pairs:
        if len(value) > MAX_VALUE_LENGTH or _CONTROL.search(value):
            raise QueryError(f"{name}: value is too long or contains control characters", field=name)
        if name == "limit":
            limit = _integer(name, value, minimum=1)
            if limit > max_limit:
                warnings.append(f"limit {limit} is above the maximum; {max_limit} results at most are returned")
                limit = max_limit
            continue
        if name == "offset":
            offset = _integer(name, value, minimum=0)
            continue
        if name == "fuzzymatching":
            continue
        if name == "includefield":
            for item in (v.strip() for v in value.split(",")):
                if item == "all":
                    include_all = True
                elif _always_returned(item):
                    continue
                elif item:
                    attribute = resolve(item)
                    _check_level(attribute, level, item)
                    includes.append(attribute.keyword)
            continue
        if _always_returned(name):
            if value:
                raise QueryError(f"{name} can be returned but not matched", field=name)
            continue
        attribute = resolve(name)
        _check_level(attribute, level, name)
        if attribute.keyword in seen:
            raise QueryError(f"{attribute.keyword} is given more than once", field=name)
        seen.add(attribute.keyword)
        includes.append(attribute.keyword)
        match = to_match(attribute, value, fuzzy=fuzzy)
        if match is not None:
            matches.append(match)
    for keyword, uid in (("StudyInstanceUID", study_uid), ("SeriesInstanceUID", series_uid)):
        if uid is not None:
            if not is_valid_uid(uid):
                raise QueryError(f"{uid!r} is not a valid UID", field=keyword)
            matches.append(Match(keyword, "equals", (uid,)))
    returns = _returns(level, includes, include_all, within_study=study_uid is not None, within_series=series_uid is not None)
    query = AttributeQuery(tuple(matches), limit=limit, offset=offset, trusts_visible=trusts_visible)
    return QidoRequest(level, query, returns, fuzzy, warnings)


def _returns(level: Level, includes: list[str], include_all: bool, *, within_study: bool, within_series: bool) -> tuple[str, ...]:
    levels: list[Level] = [level]
    if level in ("series", "instance") and not within_study:
        levels.insert(0, "study")
    if level == "instance" and not within_series:
        levels.insert(-1, "series")
    keywords: list[str] = []
    for each in levels:
        keywords += DEFAULT_RETURN[each]
    # The UIDs above the level always come back: clients need them to build URLs.
    keywords += ["StudyInstanceUID"] if level != "study" else []
    keywords += ["SeriesInstanceUID"] if level == "instance" else []
    if include_all:
        keywords += [a.keyword for a in attributes_at(level)]
    keywords += includes
    # Counts and ModalitiesInStudy describe a whole study (series): only its own level has them.
    # (includefield=all at a lower level leaves them out; naming one there is refused: _check_level.)
    dropped = set().union(*(v for k, v in _AGGREGATES.items() if k != level))
    return tuple(k for k in dict.fromkeys(keywords) if k not in dropped)


def _check_level(attribute: Attribute, level: Level, key: str) -> None:
    if _LEVEL_RANK[attribute.level] > _LEVEL_RANK[level]:
        raise QueryError(
            f"{attribute.keyword} is a {attribute.level}-level attribute: it cannot be used in a {level}-level search",
            field=key,
        )
    if attribute.level != level and attribute.keyword in _AGGREGATES[attribute.level]:
        # Counts and ModalitiesInStudy describe a whole study (series) and are computed only in
        # a search at that level: neither returned nor matched by value in one below it (where
        # ModalitiesInStudy would match the series' own Modality), so refused, not ignored.
        raise QueryError(
            f"{attribute.keyword} describes a whole {attribute.level}: it is returned and matched in a "
            f"{attribute.level}-level search only, not in a {level}-level one",
            field=key,
        )


def _integer(name: str, value: str, *, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise QueryError(f"{name} must be a whole number", field=name) from None
    if number < minimum:
        raise QueryError(f"{name} must be at least {minimum}", field=name)
    return number


def to_match(attribute: Attribute, value: str, *, fuzzy: bool = False) -> Match | None:
    """The match for one key and value; None for universal matching (empty or ``*``)."""
    key = attribute.keyword
    if not attribute.matchable:
        if value == "":
            return None
        raise QueryError(f"{key} can be returned but not matched", field=key)
    assert attribute.field is not None
    if value == "" or is_universal(value):
        return None
    vr = attribute.vr
    if vr == "UI":
        uids = [u.strip() for u in re.split(r"[,\\]", value) if u.strip()]
        if has_wildcards(value):
            raise QueryError(f"{key}: UIDs cannot be matched with wildcards", field=key)
        for uid in uids:
            if not is_valid_uid(uid):
                raise QueryError(f"{key}: {uid!r} is not a valid UID", field=key)
        return Match(attribute.field, "equals", (uids[0],)) if len(uids) == 1 else Match(attribute.field, "any_of", tuple(uids))
    if vr in ("DA", "TM", "DT"):
        if has_wildcards(value):
            raise QueryError(f"{key}: dates and times are matched by value or range, not wildcards", field=key)
        low, high, is_range = _range(key, vr, value)
        if vr == "TM":
            # a single time is the span its precision states (1015: 10:15:00 to 10:15:59.999999)
            return Match(attribute.field, "range", time_bounds(low, high if is_range else low))
        if not is_range:
            return Match(attribute.field, "equals", (low,))
        return Match(attribute.field, "range", (low, high))
    if vr in ("IS", "US"):
        return Match(attribute.field, "equals", (_integer(key, value, minimum=0 if vr == "US" else -(2**31)),))
    if vr == "PN" and key == "PatientName":
        pattern = name_pattern(value)
        if not pattern:
            return None
        return Match("_patient_name_folded", "name", (pattern,), fuzzy=fuzzy)
    if vr == "CS" and ("," in value or "\\" in value):
        items = tuple(v.strip() for v in re.split(r"[,\\]", value) if v.strip())
        if any(has_wildcards(v) for v in items):
            raise QueryError(f"{key}: a list of values cannot contain wildcards", field=key)
        return Match(attribute.field, "any_of", items)
    if has_wildcards(value):
        return Match(attribute.field, "wildcard", (value,))
    return Match(attribute.field, "equals", (value,))


def _range(key: str, vr: str, value: str) -> tuple[str, str, bool]:
    """(low, high, is_range) with each end checked; a single value is (value, value, False)."""
    if vr == "DT" and _valid(vr, value):
        return value, value, False
    if "-" not in value:
        if not _valid(vr, value):
            raise QueryError(f"{key}: {value!r} is not a valid {_NAMES[vr]}", field=key)
        return value, value, False
    splits = [(value[:i], value[i + 1 :]) for i, c in enumerate(value) if c == "-"]
    good = [(lo, hi) for lo, hi in splits if (lo or hi) and (not lo or _valid(vr, lo)) and (not hi or _valid(vr, hi))]
    if len(good) != 1:
        raise QueryError(f"{key}: {value!r} is not a valid {_NAMES[vr]} range (write low-high, low- or -high)", field=key)
    low, high = good[0]
    if vr == "TM" and low and high and _time(low, "0") > _time(high, "9"):
        raise QueryError(f"{key}: the range {value!r} ends before it starts", field=key)
    if vr != "TM" and low and high and _sortable(vr, low) > _sortable(vr, high):
        raise QueryError(f"{key}: the range {value!r} ends before it starts", field=key)
    return low, high, True


_NAMES = {"DA": "date (YYYYMMDD)", "TM": "time (HHMMSS.FFFFFF)", "DT": "date-time (YYYYMMDDHHMMSS.FFFFFF&ZZXX)"}


def _valid(vr: str, value: str) -> bool:
    if vr == "DA":
        if len(value) != 8 or not value.isdigit():
            return False
        try:
            dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
        except ValueError:
            return False
        return True
    if vr == "TM":
        if not _TM.match(value):
            return False
        return int(value[:2]) < 24 and (len(value) < 4 or int(value[2:4]) < 60) and (len(value) < 6 or int(value[4:6]) < 61)
    return bool(_DT.match(value))


def _sortable(vr: str, value: str) -> str:
    return value[:-5] if vr == "DT" and len(value) > 5 and value[-5] in "+-" else value


def _time(value: str, digit: str) -> str:
    """A TM value as HHMMSS.FFFFFF, the digits it leaves out filled with ``digit``: "0" for the
    start of the span it names, "9" for (past) its end (1015 -> 101500.000000 or 101599.999999)."""
    whole, _, fraction = value.partition(".")
    return (whole + digit * 6)[:6] + "." + (fraction + digit * 6)[:6]


def time_bounds(low: str, high: str) -> tuple[str, str]:
    """Range-match bounds for TM values (PS3.4 C.2.2.2.5) that compare by time, as strings, with
    stored values as they are in the object, of any precision (HH, HHMM, HHMMSS, HHMMSS.F...).

    A stored value stands for its start (1015 is 10:15:00). The high end is the end of the span
    the query value names, its missing digits nines (-1015 is up to 101599.999999, which is past
    10:15:60.999999): a stored value is within it exactly when its string is at most that. The low end is the start of the span with
    its trailing zeros (and point) dropped (101500.000000 -> 1015): a stored value, zero-padded,
    is at least the start exactly when its string is at least that, whatever its precision (a
    stored 1015 is at least 1015 and 101500; a stored 10 is below 1015). Both index backends
    compare strings in code-point order, so they agree (tests/contract). An open end stays ""."""
    return (_time(low, "0").rstrip("0.") if low else "", _time(high, "9") if high else "")
