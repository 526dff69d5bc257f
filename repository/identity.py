"""Positive patient identification at upload: the details an upload gives for an NHS number must
agree with those the trust already holds for it, or the photographer must confirm that the
patient's details have changed. A mistyped (but valid) NHS number otherwise files photographs
in another patient's record, silently, and the patient's page then shows the wrong identity.

Names are compared as a person reads them: case, accents, spaces, hyphens and apostrophes do not
count (``O'Brien-Jones`` is ``OBRIEN JONES``; ``Siân`` is ``Sian``). A date of birth or a sex
(female or male) that differs does. An unknown sex or a missing date on either side is no
difference.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

from repository.errors import IdentityMismatch
from repository.model import PatientIdentity
from search.index import SearchIndex
from search.query import InstanceQuery

CONFIRM_FIELD = "confirm_identity"
_TRUE = {"1", "true", "yes", "on"}
#: how many of the patient's records (with the upload's date of birth) are compared when the
#: newest differs
LOOK_BACK = 50


def confirmed(fields: Mapping[str, str | None]) -> bool:
    return (fields.get(CONFIRM_FIELD) or "").strip().lower() in _TRUE


def _name_key(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if c.isalnum())


def differences(held: Mapping[str, object], patient: PatientIdentity) -> list[str]:
    """What differs between an index document's patient and the upload's, as phrases."""
    family, _, given = str(held.get("PatientName") or "").partition("^")
    given = given.split("^")[0]
    found = []
    if _name_key(family) != _name_key(patient.family_name):
        found.append("last name")
    if given and patient.given_name and _name_key(given) != _name_key(patient.given_name):
        found.append("first name")
    birth = str(held.get("PatientBirthDate") or "")
    if birth and patient.birth_date and birth != patient.birth_date.strftime("%Y%m%d"):
        found.append("date of birth")
    sex = str(held.get("PatientSex") or "")
    if sex in {"F", "M"} and patient.sex.value in {"F", "M"} and sex != patient.sex.value:
        found.append("sex")
    return found


def _describe(held: Mapping[str, object]) -> str:
    family, _, given = str(held.get("PatientName") or "").partition("^")
    birth = str(held.get("PatientBirthDate") or "")
    born = f", born {birth[:4]}-{birth[4:6]}-{birth[6:8]}" if len(birth) == 8 else ""
    sex = {"F": ", female", "M": ", male"}.get(str(held.get("PatientSex") or ""), "")
    return f"{family.upper()}, {given.split('^')[0]}{born}{sex}"


def check_identity(
    index: SearchIndex, patient: PatientIdentity, trust: str, fields: Mapping[str, str | None], *, trust_name: str = "",
) -> None:
    """Raise ``IdentityMismatch`` unless the upload's patient agrees with a record the trust holds
    for that NHS number (the newest, or, after a confirmed change, an earlier one: old and new
    details are both the patient's), or the caller confirms the change. Only the uploading
    trust's records are compared: another trust's are not revealed. Raises ``IndexUnavailable``
    when the index cannot be asked: the caller then goes ahead (an upload must survive an
    outage) and pauses index use as after any index failure."""
    if confirmed(fields):
        return
    newest = index.search(InstanceQuery(patient_id=patient.patient_id, limit=1, facets=(), trusts_visible=(trust,)))
    if not newest.items or not differences(newest.items[0], patient):
        return
    # Not the newest details: the same person under details held before (a confirmed change of
    # name, say) is still no mismatch. Up to LOOK_BACK records are compared.
    earlier = index.search(InstanceQuery(
        patient_id=patient.patient_id, limit=LOOK_BACK, facets=(), trusts_visible=(trust,),
        patient_birth_date=patient.birth_date,
    ))  # fmt: skip
    if any(not differences(held, patient) for held in earlier.items):
        return
    held = newest.items[0]
    raise IdentityMismatch(
        f"NHS number {patient.patient_id} is held at {trust_name or trust} for {_describe(held)}; this upload gives "
        f"a different {', '.join(differences(held, patient))}. Check the patient's identity: a wrong "
        f"NHS number files photographs in another patient's record. If the patient's details have "
        f"changed, send {CONFIRM_FIELD}=true to file them under the details given.",
        field="nhs_number",
    )
