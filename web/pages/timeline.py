"""A patient's images as the pages show them: a timeline of days, facets to narrow it, and the
labels (trust names, specialty names) that make the coded values readable.

The index does the searching and counting; this module only shapes its answer for templates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from repository.catalogue import Catalogue
from search.query import InstanceQuery, SearchPage
from web.views import instance_view

# The patient page's filters, in the order their facets are shown.
FILTERS = ("specialty", "body_site", "year", "trust")
FACET_TITLES = {"specialty": "Specialty", "body_site": "Body site", "year": "Year", "trust": "Trust"}
SIDES = {"L": "left", "R": "right", "B": "both sides"}  # Laterality; U (not applicable or not known) is not shown
PATIENT_LIMIT = 500  # the index's largest page; a patient's whole history in one query


@dataclass
class Day:
    date: str  # YYYY-MM-DD, or "" when no capture date is known
    images: list[dict[str, Any]] = field(default_factory=list)


def patient_query(patient_id: str, filters: Mapping[str, str] | None = None, *, facets: bool = True) -> InstanceQuery:
    filters = filters or {}
    year = filters.get("year") or ""
    date_from = date_to = None
    if year.isdigit() and len(year) == 4:
        date_from, date_to = dt.date(int(year), 1, 1), dt.date(int(year), 12, 31)
    return InstanceQuery(
        patient_id=patient_id,
        specialty=filters.get("specialty") or None,
        body_site=filters.get("body_site") or None,
        trust=(filters.get("trust") or "").upper() or None,
        date_from=date_from,
        date_to=date_to,
        limit=PATIENT_LIMIT,
        facets=("specialty", "body_site", "year", "trust") if facets else (),
    )


def views(page: SearchPage) -> list[dict[str, Any]]:
    return [instance_view(doc) for doc in page.items]


def thumbnail_box(view: Mapping[str, Any], box: int) -> tuple[int, int]:
    """The thumbnail's size (it fits inside ``box``), so <img> reserves its space before loading."""
    rows, columns = view.get("rows") or 0, view.get("columns") or 0
    if not rows or not columns:
        return box, box
    scale = min(1.0, box / max(rows, columns))
    return max(1, round(columns * scale)), max(1, round(rows * scale))


def by_day(images: list[dict[str, Any]]) -> list[Day]:
    """Newest day first, keeping the index's newest-first order within a day."""
    days: dict[str, Day] = {}
    for image in images:
        date = image.get("capture_date") or image.get("study_date") or ""
        days.setdefault(date, Day(date)).images.append(image)
    return sorted(days.values(), key=lambda d: d.date, reverse=True)


class Labels:
    """Readable names for coded values, falling back to the code for anything unlisted."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    def trust(self, ods: str | None) -> str:
        found = self.catalogue.trusts.get((ods or "").upper())
        return found.name if found else (ods or "")

    def specialty(self, code: str | None) -> str:
        found = self.catalogue.specialties.get(code or "")
        return found.name if found else (code or "")

    def body_site(self, code: str | None, meaning: str | None = None) -> str:
        found = self.catalogue.body_sites.get(code or "")
        return found.meaning if found else (meaning or code or "")

    def place(self, view: Mapping[str, Any]) -> str:
        """The body site and the side of an image, as "Forearm (left)"."""
        site = view.get("body_site") or {}
        side = SIDES.get(view.get("laterality") or "")
        return self.body_site(site.get("code"), site.get("meaning")) + (f" ({side})" if side else "")

    def facet(self, name: str, value: str) -> str:
        if name == "trust":
            return self.trust(value)
        if name == "specialty":
            return self.specialty(value)
        if name == "body_site":
            return self.body_site(value)
        return value


def facet_groups(page: SearchPage, filters: Mapping[str, str], labels: Labels, base: str) -> list[dict[str, Any]]:
    """Each facet as links that add (or, when chosen, remove) one filter, keeping the others."""
    groups = []
    for name in FILTERS:
        counts = page.facets.get(name) or {}
        chosen = filters.get(name) or ""
        options = []
        for value, count in counts.items():
            selected = value.upper() == chosen.upper() if name == "trust" else value == chosen
            changed = {k: v for k, v in filters.items() if v and k != name}
            if not selected:
                changed[name] = value
            href = base + ("?" + urlencode(changed) if changed else "")
            options.append({"label": labels.facet(name, value), "count": count, "selected": selected, "href": href})
        if name == "year":
            options.sort(key=lambda o: o["label"], reverse=True)
        if options:
            groups.append({"name": name, "title": FACET_TITLES[name], "options": options, "chosen": bool(chosen)})
    return groups
