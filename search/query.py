"""A backend-neutral query model for instance searches, and parsing of its parameters.

Field names are DICOM keywords where one exists; the index adapters translate this model into
SQL or Elasticsearch queries, and both must answer identically (contract tests).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from repository.errors import QueryError

MAX_LIMIT = 500
FACETS = ("specialty", "body_site", "trust", "year", "modality")


@dataclass(frozen=True)
class InstanceQuery:
    """Filters are ANDed; ``text`` is free text over description, body site and patient name."""

    text: str = ""
    patient_id: str | None = None
    specialty: str | None = None
    body_site: str | None = None  # SNOMED CT code
    trust: str | None = None  # ODS code
    modality: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    sop_instance_uids: tuple[str, ...] = ()
    tracking_id: str | None = None
    date_from: dt.date | None = None  # on the capture (content) date
    date_to: dt.date | None = None
    patient_name: str | None = None  # case- and accent-insensitive prefix on any name part
    patient_birth_date: dt.date | None = None
    trusts_visible: tuple[str, ...] | None = None  # scope: None = all
    limit: int = 50
    offset: int = 0
    facets: tuple[str, ...] = FACETS
    newest_first: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise QueryError(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
        if self.offset < 0:
            raise QueryError("offset must not be negative", field="offset")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise QueryError("from is after to", field="from")
        unknown = set(self.facets) - set(FACETS)
        if unknown:
            raise QueryError(f"unknown facet {sorted(unknown)[0]!r}", field="facets")


def parse_date(value: str | None, name: str) -> dt.date | None:
    if not value:
        return None
    text = value.strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise QueryError(f"{name} must be a date written YYYY-MM-DD", field=name)


@dataclass
class SearchPage:
    """One page of instance documents with the total match count and facet counts."""

    total: int
    items: list[dict[str, object]]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    limit: int = 50
    offset: int = 0
