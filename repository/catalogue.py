"""Coded lists the service validates against: body sites (SNOMED CT), trusts (ODS), specialties.

They are data, not code (DECISIONS.md 15–17): the shipped JSON files are the defaults and a
deployment may point ``OLOGIES_ORGANISATIONS_FILE`` at its own list.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from repository.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class BodySite:
    code: str
    meaning: str
    cid: int
    body_part: str
    paired: bool
    scheme: str = "SCT"


@dataclass(frozen=True, slots=True)
class Trust:
    ods: str
    name: str
    predecessors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Specialty:
    code: str
    name: str


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@dataclass(frozen=True)
class Catalogue:
    body_sites: dict[str, BodySite]
    trusts: dict[str, Trust]
    specialties: dict[str, Specialty]

    @classmethod
    def load(cls, organisations_file: Path | None = None) -> "Catalogue":
        sites = _load_body_sites()
        if organisations_file is None:
            data = json.loads(resources.files("repository").joinpath("data/organisations.json").read_text("utf-8"))
        else:
            data = json.loads(Path(organisations_file).read_text("utf-8"))
        trusts = {
            t["ods"].upper(): Trust(t["ods"].upper(), t["name"], tuple(t.get("predecessors", ())))
            for t in data["trusts"]
        }
        specialties = {s["code"]: Specialty(s["code"], s["name"]) for s in data["specialties"]}
        return cls(sites, trusts, specialties)

    def body_site(self, code: str, *, field: str = "body_site") -> BodySite:
        site = self.body_sites.get((code or "").strip())
        if site is None:
            raise InvalidInput(f"unknown body site code {code!r} (expected a SNOMED CT code from the list)", field=field)
        return site

    def trust(self, ods: str, *, field: str = "trust") -> Trust:
        key = (ods or "").strip().upper()
        for trust in self.trusts.values():
            if key in trust.predecessors:
                return trust
        found = self.trusts.get(key)
        if found is None:
            raise InvalidInput(f"unknown trust ODS code {ods!r}", field=field)
        return found

    def specialty(self, code: str, *, field: str = "specialty") -> Specialty:
        found = self.specialties.get((code or "").strip().lower())
        if found is None:
            known = ", ".join(sorted(self.specialties))
            raise InvalidInput(f"unknown specialty {code!r} (one of: {known})", field=field)
        return found

    def search_body_sites(self, text: str, limit: int = 20) -> list[BodySite]:
        """Search-as-you-type over meanings and codes, accent- and case-insensitive."""
        needle = _fold(text.strip())
        hits = [s for s in self.body_sites.values() if needle in _fold(s.meaning) or s.code.startswith(needle)]
        hits.sort(key=lambda s: (not _fold(s.meaning).startswith(needle), s.meaning))
        return hits[:limit]


@cache
def _load_body_sites() -> dict[str, BodySite]:
    raw = json.loads(resources.files("repository").joinpath("data/body_sites.json").read_text("utf-8"))
    return {s["code"]: BodySite(**s) for s in raw["sites"]}
