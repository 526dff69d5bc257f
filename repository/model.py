"""The domain model of an upload: who the patient is and what the images are of.

``IngestContext.parse`` validates raw form, CLI or manifest fields once, raising
``InvalidInput`` that names the field at fault; everything downstream can trust it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from repository.catalogue import BodySite, Catalogue, Specialty, Trust
from repository.errors import InvalidInput
from repository.keys import is_valid_uid
from repository.patients import normalise_patient_id

_MAX_TEXT = 1024
PN_MAX = 64  # Patient's Name (PN): 64 characters for the whole of Family^Given


class SexValues(str, Enum):
    """Patient's Sex (0010,0040); the form's ``O`` and ``U`` both mean not male or female recorded."""

    F = "F"
    M = "M"
    O = "O"  # noqa: E741 - the DICOM defined term
    U = "U"


class LateralityValues(str, Enum):
    """Laterality as the form takes it; ``B`` (both) and ``U`` (unpaired or unknown)."""

    L = "L"
    R = "R"
    B = "B"
    U = "U"


class ConsentValues(str, Enum):
    """Consent levels for clinical photography (IMI guidance: record only, teaching, publication)."""

    CLINICAL_CARE = "clinical-care"
    TEACHING = "teaching"
    PUBLICATION = "publication"


class ModalityValues(str, Enum):
    XC = "XC"  # VL Photographic Image (external-camera photography)
    DMS = "DMS"  # Dermoscopic Photography Image


@dataclass(frozen=True)
class PatientIdentity:
    patient_id: str
    is_temporary: bool
    family_name: str
    given_name: str
    birth_date: dt.date | None
    sex: SexValues


@dataclass(frozen=True)
class IngestContext:
    """Validated patient and study context shared by every file of one upload."""

    patient: PatientIdentity
    trust: Trust
    specialty: Specialty
    body_site: BodySite
    laterality: LateralityValues
    consent: ConsentValues
    consent_recorded_by: str
    description: str
    photographer: str
    accession_number: str = ""
    study_uid: str | None = None
    modality: ModalityValues = ModalityValues.XC
    tracking_id: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(
        cls,
        fields: Mapping[str, str | None],
        *,
        catalogue: Catalogue,
        allow_test_numbers: bool,
        today: dt.date | None = None,
    ) -> "IngestContext":
        today = today or dt.date.today()

        def text(name: str, *, required: bool = False, max_len: int = _MAX_TEXT) -> str:
            value = (fields.get(name) or "").strip()
            if required and not value:
                raise InvalidInput(f"{name} is required", field=name)
            if len(value) > max_len:
                raise InvalidInput(f"{name} is longer than {max_len} characters", field=name)
            if any(ord(c) < 32 and c not in "\t\n\r" for c in value) or "\\" in value:
                raise InvalidInput(f"{name} contains control characters or a backslash", field=name)
            return value

        def name_part(name: str, *, required: bool) -> str:
            # A component of a Person Name (PN): ^ and = separate components and groups, \
            # separates values, and no control character (a tab, say) is allowed. Refused here,
            # naming the field, rather than by the DICOM builder later, which would blame each file.
            if any(c in "^=\\" or ord(c) < 32 or ord(c) == 127 for c in (fields.get(name) or "").strip()):
                raise InvalidInput(f"{name} must not contain ^, =, \\, a tab or a line break", field=name)
            return text(name, required=required, max_len=PN_MAX)

        patient_id, temporary = normalise_patient_id(
            text("nhs_number", required=True, max_len=64), allow_test_numbers=allow_test_numbers
        )
        # An unidentified patient (temporary ID) may have no name or birth date yet.
        family = name_part("family_name", required=not temporary)
        given = name_part("given_name", required=False)
        if len(family) + 1 + len(given) > PN_MAX:  # stored as Family^Given: 64 characters in all
            if not given:
                raise InvalidInput(f"family_name is longer than {PN_MAX - 1} characters", field="family_name")
            raise InvalidInput(f"family_name and given_name together are longer than {PN_MAX - 1} characters", field="given_name")
        birth_date = _parse_birth_date(text("birth_date", required=not temporary, max_len=10), today)
        sex = _enum(SexValues, text("sex") or "U", "sex")
        laterality = _enum(LateralityValues, text("laterality") or "U", "laterality")
        consent = _enum(ConsentValues, text("consent", required=True).lower(), "consent")
        modality = _enum(ModalityValues, (text("modality") or "XC").upper(), "modality")
        study_uid = text("study_uid", max_len=64) or None
        if study_uid is not None and not is_valid_uid(study_uid):
            raise InvalidInput("study_uid is not a valid DICOM UID", field="study_uid")
        photographer = text("photographer", required=True, max_len=64)
        trust = catalogue.trust(text("trust", required=True))
        if temporary and patient_id.split("-")[1] != trust.ods:
            # TMP-<ODS>-<reference> is issued by one trust, and only that trust reconciles it
            raise InvalidInput(f"a temporary identifier for {trust.ods} starts TMP-{trust.ods}-", field="nhs_number")
        return cls(
            patient=PatientIdentity(patient_id, temporary, family, given, birth_date, sex),
            trust=trust,
            specialty=catalogue.specialty(text("specialty", required=True)),
            body_site=catalogue.body_site(text("body_site", required=True)),
            laterality=laterality,
            consent=consent,
            consent_recorded_by=text("consent_recorded_by", max_len=64) or photographer,
            description=text("description"),
            photographer=photographer,
            accession_number=text("accession_number", max_len=16),
            study_uid=study_uid,
            modality=modality,
            tracking_id=text("tracking_id", max_len=64),
        )


def _enum(kind: type[Enum], value: str, name: str):  # type: ignore[no-untyped-def]
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in kind)  # type: ignore[attr-defined]
        raise InvalidInput(f"{name} must be one of {allowed}", field=name) from None


def _parse_birth_date(value: str, today: dt.date) -> dt.date | None:
    if not value:
        return None
    try:
        born = dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput("birth_date must be a real date written YYYY-MM-DD", field="birth_date") from None
    if len(value) != 10:
        raise InvalidInput("birth_date must be written YYYY-MM-DD", field="birth_date")
    if born > today:
        raise InvalidInput("birth_date is in the future", field="birth_date")
    if born.year < 1880:
        raise InvalidInput("birth_date is before 1880", field="birth_date")
    return born
