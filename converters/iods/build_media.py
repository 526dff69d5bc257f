"""Entry points of the ingest pipeline for video and documents, beside ``build_photograph``.

``CapturedVideo`` / ``CapturedDocument`` + ``IngestContext`` -> a dataset; the same domain
decisions as ``build.py`` (issuer of the patient ID, study times in local time, private block).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pydicom import Dataset

from converters.iods.build import INGEST_ROUTES, _operator, _study_id, _tracking_uid
from converters.iods.content import (
    LATERALITY_MODIFIERS,
    NHS_NUMBER_OID,
    AnatomicRegion,
    IssuerOfPatientIDQualifiers,
)
from converters.iods.enum import UNPAIRED_BODY_PARTS, ImageLateralityValues
from converters.iods.media import EncapsulatedPDF, VideoPhotographicImage
from converters.iods.valuerep import person_name
from repository.model import IngestContext
from repository.private_tags import set_private

if TYPE_CHECKING:
    from converters.pdf import CapturedDocument
    from converters.video import CapturedVideo

_SIDES = {"L": "left", "R": "right", "B": "both sides"}

#: Concept Name of a document by kind (CID 7020 is extensible; LOINC document types)
DOCUMENT_KINDS: dict[str, tuple[str, str, str, str]] = {
    # kind: (code value, scheme, meaning, default title)
    "consent": ("59284-0", "LN", "Patient Consent", "Consent for clinical photography"),
    "letter": ("57133-1", "LN", "Referral note", "Referral letter"),
    "document": ("", "", "", "Clinical document"),
}


def _common(context: IngestContext, *, study_instance_uid: str, series_instance_uid: str,
            sop_instance_uid: str, series_number: int, instance_number: int, now: dt.datetime,
            captured_at: dt.datetime | None, local_tz: str, series_description: str,
            manufacturer: str = "", model: str = "", software: str = "") -> dict[str, Any]:
    if not isinstance(context, IngestContext):
        raise TypeError('Argument "context" must be an IngestContext.')
    if not isinstance(now, dt.datetime) or now.utcoffset() is None:
        raise ValueError('Argument "now" must be a timezone-aware datetime.')
    zone = ZoneInfo(local_tz)
    study_at = (captured_at or now).astimezone(zone)
    patient = context.patient
    if patient.is_temporary:
        issuer, qualifiers = context.trust.ods, None
    else:
        issuer, qualifiers = "NHS", IssuerOfPatientIDQualifiers(NHS_NUMBER_OID, "ISO")
    return {
        "study_instance_uid": study_instance_uid,
        "series_instance_uid": series_instance_uid,
        "series_number": series_number,
        "sop_instance_uid": sop_instance_uid,
        "instance_number": instance_number,
        "study_datetime": study_at,
        "content_datetime": captured_at or now,
        "instance_creation_datetime": now,
        "acquisition_datetime": captured_at,
        "patient_id": patient.patient_id,
        "patient_name": person_name(patient.family_name, patient.given_name),
        "patient_birth_date": patient.birth_date,
        "patient_sex": patient.sex.value if patient.sex.value in ("M", "F", "O") else None,
        "issuer_of_patient_id": issuer,
        "issuer_of_patient_id_qualifiers": qualifiers,
        "study_id": _study_id(study_instance_uid),
        "accession_number": context.accession_number,
        "study_description": f"{context.specialty.name} - {context.body_site.meaning}"[:64],
        "series_description": series_description[:64],
        "operators_name": _operator(context.photographer),
        "manufacturer": manufacturer,
        "manufacturer_model_name": model,
        "software_versions": software,
        "institution_name": context.trust.name,
        "institutional_department_name": context.specialty.name,
    }


def _private(ds: Dataset, context: IngestContext, *, original_sha256: str, media_type: str,
             ingest_route: str, time_flags: str = "") -> None:
    if ingest_route not in INGEST_ROUTES:
        raise ValueError(f'Argument "ingest_route" must be one of {sorted(INGEST_ROUTES)}.')
    set_private(
        ds,
        TrustODSCode=context.trust.ods,
        SpecialtyCode=context.specialty.code,
        ConsentLevel=context.consent.value.upper().replace("-", "_"),
        ConsentRecordedBy=context.consent_recorded_by,
        ConsentStatus="ACTIVE",
        OriginalSHA256=original_sha256,
        OriginalMediaType=media_type,
        IngestRoute=ingest_route,
        TimeFlags=time_flags,
        PatientIdIsTemporary="YES" if context.patient.is_temporary else "NO",
    )


def build_video(
    captured: "CapturedVideo",
    context: IngestContext,
    *,
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
    series_number: int,
    instance_number: int,
    ingest_route: str,
    now: dt.datetime,
    local_tz: str = "Europe/London",
) -> VideoPhotographicImage:
    """Build the Video Photographic Image for one recording (write it with ``write_video_file``)."""
    site, side = context.body_site, context.laterality.value
    modifiers = [LATERALITY_MODIFIERS[ImageLateralityValues(side)]] if side in _SIDES else []
    sides = f" ({_SIDES[side]})" if side in _SIDES else ""
    capture = captured.capture
    common = _common(
        context, study_instance_uid=study_instance_uid, series_instance_uid=series_instance_uid,
        sop_instance_uid=sop_instance_uid, series_number=series_number, instance_number=instance_number,
        now=now, captured_at=capture.acquisition_datetime, local_tz=local_tz,
        series_description=f"Video: {site.meaning}{sides}",
        manufacturer=capture.manufacturer, model=capture.model, software=capture.software,
    )  # fmt: skip
    comments = context.description
    ds = VideoPhotographicImage(
        bitstream=captured.mp4_path,
        transfer_syntax_uid=captured.transfer_syntax_uid,
        rows=captured.rows,
        columns=captured.columns,
        number_of_frames=captured.number_of_frames,
        frame_time_ms=captured.frame_time_ms,
        cine_rate=max(1, round(float(captured.frame_rate))),
        duration_s=round(captured.duration_s, 3),
        anatomic_region=AnatomicRegion(site.code, site.scheme, site.meaning, modifiers),
        body_part_examined=site.body_part,
        image_laterality=None if side == "U" and site.paired else side,
        paired_body_part=site.paired and site.body_part not in UNPAIRED_BODY_PARTS,
        image_comments=comments,
        lossy_image_compression_method="ISO_14496_10" if captured.codec == "h264" else "ISO_23008_2",
        tracking_id=context.tracking_id,
        tracking_uid=_tracking_uid(context.patient.patient_id, context.tracking_id),
        **common,
    )
    _private(ds, context, original_sha256=captured.original_sha256, media_type=captured.media_type,
             ingest_route=ingest_route, time_flags="\\".join(capture.time_flags))
    if captured.rotation:
        set_private(ds, VideoRotation=str(captured.rotation))
    return ds


def build_document(
    captured: "CapturedDocument",
    context: IngestContext,
    *,
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
    series_number: int,
    instance_number: int,
    ingest_route: str,
    now: dt.datetime,
    document_kind: str = "consent",
    document_title: str = "",
    source_instances: tuple[tuple[str, str], ...] = (),
    local_tz: str = "Europe/London",
) -> EncapsulatedPDF:
    """Build the Encapsulated PDF for one document in the patient's study."""
    if document_kind not in DOCUMENT_KINDS:
        raise ValueError(f'Argument "document_kind" must be one of {sorted(DOCUMENT_KINDS)}.')
    code, scheme, meaning, default_title = DOCUMENT_KINDS[document_kind]
    concept = None
    if code:
        concept = Dataset()
        concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = code, scheme, meaning
    title = (document_title or captured.title or default_title)[:64]
    common = _common(
        context, study_instance_uid=study_instance_uid, series_instance_uid=series_instance_uid,
        sop_instance_uid=sop_instance_uid, series_number=series_number, instance_number=instance_number,
        now=now, captured_at=None, local_tz=local_tz, series_description=f"Documents: {meaning or 'other'}",
    )  # fmt: skip
    ds = EncapsulatedPDF(
        document=captured.data,
        document_title=title,
        conversion_type="SD" if captured.scanned else "WSD",
        concept_name=concept,
        burned_in_annotation=True,
        source_instances=source_instances,
        **common,
    )
    _private(ds, context, original_sha256=captured.original_sha256, media_type="application/pdf",
             ingest_route=ingest_route)
    return ds
