"""The upload and search forms: their choices, their values, and their errors in the NHS style.

An error is shown twice, as the design system asks: in the summary at the top of the page (a
link to the field) and beside the field itself. Messages are the domain's own (they are precise:
"NHS number fails the Modulus 11 check digit"), in the form's words: "x is required" becomes the
"Enter ..." / "Select ..." form the NHS style guide uses, and a field's name becomes its label
("family_name is longer than 64 characters" reads "Last name must be 64 characters or fewer").
A message that starts with a file name keeps it as it was typed (``img_0001.jpg``, not
``Img_0001.jpg``). The API's JSON keeps the domain's codes, fields and messages.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from repository.catalogue import Catalogue
from repository.errors import OlogiesError

# The element each field's error links to (a date's first box, a radio group's first radio;
# the file upload component moves the "file" id onto its drop button).
ANCHORS = {"birth_date": "birth_date-day"}

REQUIRED = {
    "nhs_number": "Enter the patient's NHS number",
    "family_name": "Enter the patient's last name",
    "birth_date": "Enter the patient's date of birth",
    "trust": "Select the trust",
    "specialty": "Select the specialty",
    "body_site": "Select the body site",
    "consent": "Select the consent the patient gave",
    "photographer": "Enter the photographer's name",
    "file": "Choose at least one photograph",
}

# The form's label of each field, for messages (the same table is in static/js/upload.js).
LABELS = {
    "nhs_number": "NHS number",
    "family_name": "Last name",
    "given_name": "First name",
    "birth_date": "Date of birth",
    "sex": "Sex",
    "trust": "Trust",
    "specialty": "Specialty",
    "body_site": "Body site",
    "laterality": "Side of the body",
    "description": "Description",
    "modality": "Kind of image",
    "accession_number": "Accession number",
    "consent": "Consent",
    "consent_recorded_by": "Consent recorded by",
    "photographer": "Photographer",
    "study_uid": "Study UID",
    "tracking_id": "Tracking ID",
}
REWORDED = {
    "Date of birth is in the future": "Date of birth must be today or in the past",
    "Date of birth is before 1880": "Date of birth must be in 1880 or later",
}
# The API tells a program to send ``confirm_identity=true`` after an identity mismatch
# (repository/identity.py); the page has a box to tick for it instead.
_CONFIRM_FIELD = re.compile(r"\bsend confirm_identity=\w+(?: to [^.;]*)?")
CONFIRM_INSTEAD = "tick the box “I have checked” under the patient's details, then upload again"
_SNAKE_FIELDS = re.compile(r"\b(" + "|".join(n for n in LABELS if "_" in n) + r")\b")
_LONGER = re.compile(r"\b(?:is|are) longer than (\d+) characters$")


def page_message(message: str) -> str:
    """A domain message in the form's words (mirrored by ``pageMessage`` in static/js/upload.js).

    Field names become labels: any ``snake_case`` one wherever it is, a one-word one only as
    the first word (``trust`` or ``modality`` may be ordinary words later on). Only a first word
    of lower-case letters is capitalised, so a file name at the start is left as it was. An
    identity mismatch's "send confirm_identity=true" becomes the box to tick on the form.
    """
    message = _CONFIRM_FIELD.sub(CONFIRM_INSTEAD, message)
    first, space, rest = message.partition(" ")
    if first in LABELS:
        message = LABELS[first] + space + rest
    message = _SNAKE_FIELDS.sub(lambda m: _label_inside(LABELS[m.group(1)]) if m.start() else LABELS[m.group(1)], message)
    message = _LONGER.sub(r"must be \1 characters or fewer", message)
    message = REWORDED.get(message, message)
    first = message.split(" ", 1)[0]
    return message[:1].upper() + message[1:] if first.isalpha() and first.islower() else message


def _label_inside(label: str) -> str:
    """A label within a sentence: "first name", but "NHS number" keeps its capitals."""
    return label if label[:2].isupper() else label[:1].lower() + label[1:]


SEX = [("F", "Female"), ("M", "Male"), ("O", "Other"), ("U", "Not known")]
LATERALITY = [("L", "Left"), ("R", "Right"), ("B", "Both sides"), ("U", "Not applicable or not known")]
CONSENT = [
    ("clinical-care", "For clinical care only", "The image may be used only for the patient's care."),
    ("teaching", "For teaching", "Also for teaching healthcare staff, without the patient's name."),
    ("publication", "For publication", "Also for publication in journals or other media."),
]
MODALITY = [("XC", "Clinical photograph"), ("DMS", "Dermoscopy (taken through a dermatoscope)")]


@dataclass(frozen=True)
class FieldError:
    field: str
    text: str

    @property
    def href(self) -> str:
        return "#" + ANCHORS.get(self.field, self.field)


class FormErrors:
    """Errors keyed by field, in the order they were found (the summary lists them so)."""

    def __init__(self) -> None:
        self._errors: dict[str, FieldError] = {}

    def add(self, field: str, text: str) -> None:
        self._errors.setdefault(field, FieldError(field, text))

    def add_exception(self, exc: OlogiesError, *, nothing_stored: int = 0) -> None:
        """``nothing_stored``: how many photographs a refused all-or-nothing batch held; a
        photograph's refusal then says that none of them was stored, and what to do."""
        field = exc.field or "file"
        message = exc.message
        if message.endswith(" is required") or message == "NHS number is required":
            message = REQUIRED.get(field, message)
        message = page_message(message)
        if nothing_stored and field == "file":
            message = message.rstrip(".") + (
                ". None of the photographs was stored: choose them again without this one and upload them"
                if nothing_stored > 1 else ". The photograph was not stored"
            )
        self.add(field, message)

    def get(self, field: str) -> str | None:
        error = self._errors.get(field)
        return error.text if error else None

    def summary(self) -> list[dict[str, str]]:
        return [{"text": e.text, "href": e.href} for e in self._errors.values()]

    def __bool__(self) -> bool:
        return bool(self._errors)


def _items(pairs: list[tuple[str, str]], placeholder: str | None = None) -> list[dict[str, Any]]:
    items = [{"value": value, "text": text} for value, text in pairs]
    return ([{"value": "", "text": placeholder}] if placeholder else []) + items


def choices(catalogue: Catalogue) -> dict[str, Any]:
    """The form's coded lists as the design system's ``items``; body sites sorted by meaning."""
    sites = sorted(catalogue.body_sites.values(), key=lambda s: s.meaning)
    site_items = _items([(s.code, s.meaning) for s in sites], "Select a body site")
    for item, site in zip(site_items[1:], sites):
        item["attributes"] = {"data-paired": "true" if site.paired else "false"}
    return {
        "trust_items": _items([(t.ods, t.name) for t in sorted(catalogue.trusts.values(), key=lambda t: t.name)], "Select a trust"),
        "specialty_items": _items([(s.code, s.name) for s in catalogue.specialties.values()], "Select a specialty"),
        "body_site_items": site_items,
        "sex_items": _items(SEX),
        "laterality_items": _items(LATERALITY),
        "consent_items": [{"value": v, "text": t, "hint": {"text": h}} for v, t, h in CONSENT],
        "modality_items": _items(MODALITY),
    }


def birth_date_from_parts(form: Mapping[str, Any], errors: FormErrors, prefix: str = "birth_date") -> str:
    """Join the day, month and year boxes into ``YYYY-MM-DD`` (or ``""`` when all are blank)."""
    parts = [str(form.get(f"{prefix}[{p}]") or "").strip() for p in ("day", "month", "year")]
    if not any(parts):
        return ""
    day, month, year = parts
    if not all(parts):
        errors.add(prefix, "Date of birth must include a day, month and year")
        return ""
    try:
        born = dt.date(int(year), int(month), int(day))
    except (ValueError, OverflowError):  # OverflowError: a box holding 2**31 or more (a pasted NHS number)
        errors.add(prefix, "Date of birth must be a real date")
        return ""
    if len(year) != 4:
        errors.add(prefix, "Year must include 4 numbers")
        return ""
    return born.isoformat()


def birth_date_parts(value: str | None) -> dict[str, str]:
    try:
        born = dt.date.fromisoformat(value or "")
    except ValueError:
        return {}
    return {"day": str(born.day), "month": str(born.month), "year": str(born.year)}


def demographics_from(view: Mapping[str, Any]) -> dict[str, str]:
    """Prefill the new upload from the patient's latest stored image."""
    patient = view.get("patient") or {}
    name = patient.get("name") or {}
    return {
        "family_name": name.get("family") or "",
        "given_name": name.get("given") or "",
        "birth_date": patient.get("birth_date") or "",
        "sex": patient.get("sex") or "",
    }
