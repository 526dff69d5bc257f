"""The one entry point of the ingest pipeline: ``CapturedImage`` + ``IngestContext`` -> DICOM.

Domain decisions live here (which SOP class, how an NHS number is issued, which placeholders,
what goes in the private block); the SOP classes in ``photograph.py`` only know DICOM.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydicom import Dataset

from converters.base import CapturedImage
from converters.iods.content import (
    LATERALITY_MODIFIERS,
    NHS_NUMBER_OID,
    AnatomicRegion,
    IssuerOfPatientIDQualifiers,
    VLPhotographicAcquisition,
)
from converters.iods.enum import (
    UNPAIRED_BODY_PARTS,
    ImageLateralityValues,
    PhotometricInterpretationValues,
)
from converters.iods.photograph import DermoscopicPhotographyImage, VLPhotographicImage
from converters.iods.valuerep import person_name
from repository.model import IngestContext, ModalityValues
from repository.private_tags import set_private

# Values of the private IngestRoute element (repository/private_tags.py).
INGEST_ROUTES = frozenset({"web", "api", "stowrs", "cstore", "watch", "cli"})
# Type 1 equipment attributes of the DMS IOD that a camera may not report: an explicit,
# searchable placeholder is more honest than an invented value (and is what PS3.3 allows).
UNKNOWN = "UNKNOWN"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SIDES = {"L": "left", "R": "right", "B": "both sides"}
_TRACKING_NAMESPACE = uuid.UUID("5f0c3a52-6a3e-5b8e-9c61-0b1e6a0d7c41")  # fixed for Ologies


def build_photograph(
    captured: CapturedImage,
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
) -> Dataset:
    """Build the stored DICOM object for one photograph.

    Parameters
    ----------
    captured: converters.base.CapturedImage
        The upright image (JPEG bitstream or native pixels) and its capture metadata.
    context: repository.model.IngestContext
        Validated patient, trust, specialty, body site, consent and modality (XC or DMS).
    study_instance_uid, series_instance_uid, sop_instance_uid: str
        UIDs chosen by the pipeline (the SOP Instance UID is derived from the upload's digest).
    series_number, instance_number: int
        Positive numbers of the series and the instance.
    ingest_route: str
        How the file arrived: one of :data:`INGEST_ROUTES`.
    now: datetime.datetime
        Aware current time: instance creation, and the study/content time when the capture
        time is unknown.
    local_tz: str, optional
        IANA zone in which study and content dates and times are written.

    Returns
    -------
    pydicom.Dataset
        A :class:`VLPhotographicImage` or :class:`DermoscopicPhotographyImage`, with file meta.

    Raises
    ------
    ValueError, TypeError
        Naming the argument or field that cannot be encoded.
    """
    if not isinstance(captured, CapturedImage):
        raise TypeError('Argument "captured" must be a CapturedImage.')
    if not isinstance(context, IngestContext):
        raise TypeError('Argument "context" must be an IngestContext.')
    if not isinstance(now, dt.datetime) or now.utcoffset() is None:
        raise ValueError('Argument "now" must be a timezone-aware datetime.')
    try:
        zone = ZoneInfo(local_tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'Argument "local_tz" is not a known time zone: {local_tz!r}.') from None
    if ingest_route not in INGEST_ROUTES:
        raise ValueError(f'Argument "ingest_route" must be one of {sorted(INGEST_ROUTES)}.')
    if not _SHA256.match(captured.original_sha256 or ""):
        raise ValueError('Field "captured.original_sha256" must be 64 lower-case hex digits.')
    if (captured.jpeg is None) == (captured.pixels is None):
        raise ValueError('Exactly one of "captured.jpeg" and "captured.pixels" must be set.')
    if captured.bits_allocated != 8 or captured.bits_stored != 8:
        raise ValueError("VL images allow only 8-bit samples (PS3.3 C.8.12.1.1.2).")
    capture = captured.capture
    acquired = capture.acquisition_datetime
    if acquired is not None and acquired.utcoffset() is None:
        raise ValueError('Field "captured.capture.acquisition_datetime" must be timezone-aware.')

    # Study and content times are the capture time in local time; all DA/TM values of the
    # instance then share its offset (the SOP class converts the others to it).
    study_at = (acquired or now).astimezone(zone)
    patient, site, side = context.patient, context.body_site, context.laterality.value
    if patient.is_temporary:
        # A temporary identifier is issued by the trust, not by the NHS number service.
        issuer, qualifiers = context.trust.ods, None
    else:
        issuer, qualifiers = "NHS", IssuerOfPatientIDQualifiers(NHS_NUMBER_OID, "ISO")
    modifiers = [LATERALITY_MODIFIERS[ImageLateralityValues(side)]] if side in _SIDES else []
    pixel_data = captured.jpeg if captured.jpeg is not None else captured.pixels
    photometric = captured.photometric_interpretation
    if captured.jpeg is not None and photometric in ("YBR_FULL", "YBR_FULL_422"):
        # The VL IODs name every colour lossy JPEG YBR_FULL_422 (C.8.12.1.1.1), even without
        # chroma subsampling; the bitstream itself says how it is sampled.
        photometric = PhotometricInterpretationValues.YBR_FULL_422.value
    dermoscopy = context.modality == ModalityValues.DMS
    placeholder = UNKNOWN if dermoscopy else ""
    sides = f" ({_SIDES[side]})" if side in _SIDES else ""
    common: dict[str, Any] = {
        "pixel_data": pixel_data,
        "photometric_interpretation": photometric,
        "transfer_syntax_uid": captured.transfer_syntax_uid,
        "study_instance_uid": study_instance_uid,
        "series_instance_uid": series_instance_uid,
        "series_number": series_number,
        "sop_instance_uid": sop_instance_uid,
        "instance_number": instance_number,
        "study_datetime": study_at,
        "content_datetime": acquired or now,
        "instance_creation_datetime": now,
        "anatomic_region": AnatomicRegion(site.code, site.scheme, site.meaning, modifiers),
        "patient_id": patient.patient_id,
        "patient_name": person_name(patient.family_name, patient.given_name),
        "patient_birth_date": patient.birth_date,
        # DICOM Patient's Sex has no U: unknown is an empty value (Type 2).
        "patient_sex": patient.sex.value if patient.sex.value in ("M", "F", "O") else None,
        "issuer_of_patient_id": issuer,
        "issuer_of_patient_id_qualifiers": qualifiers,
        "study_id": _study_id(study_instance_uid),
        "accession_number": context.accession_number,
        "study_description": f"{context.specialty.name} - {site.meaning}"[:64],
        "series_description": f"{site.meaning}{sides}"[:64],
        "body_part_examined": site.body_part,
        # U from the form means "unpaired or unknown": for a paired part the side is unknown.
        "image_laterality": None if side == "U" and site.paired else side,
        # A paired site may map to an unpaired Body Part Examined (cheek -> FACE).
        "paired_body_part": site.paired and site.body_part not in UNPAIRED_BODY_PARTS,
        "operators_name": _operator(context.photographer),
        "acquisition_datetime": acquired,
        "manufacturer": capture.manufacturer or placeholder,
        "manufacturer_model_name": capture.model or placeholder,
        "software_versions": capture.software or placeholder,
        "device_serial_number": placeholder,  # EXIF body serial numbers are not read (identifying)
        "institution_name": context.trust.name,
        "institutional_department_name": context.specialty.name,
        "lens_make": capture.lens_make,
        "lens_model": capture.lens_model,
        "acquisition": VLPhotographicAcquisition(
            exposure_time_in_seconds=capture.exposure_time_s,
            f_number=capture.f_number,
            photographic_sensitivity=capture.iso,
            focal_length=capture.focal_length_mm,
            flash_fired=capture.flash_fired,
        ),
        "derived": captured.derived,
        "derivation_description": captured.derivation_description,
        "lossy_image_compression_history": [(s.method, s.ratio) for s in captured.lossy_history],
        # A photograph of a body may show a face, tattoo or other identifying feature, and
        # nobody has checked: assume it does, so de-identification treats it with care.
        "recognizable_visual_features": True,
        "image_comments": context.description,
        "icc_profile": captured.icc_profile,
        "tracking_id": context.tracking_id,
        "tracking_uid": _tracking_uid(patient.patient_id, context.tracking_id),
    }
    ds: Dataset = (DermoscopicPhotographyImage if dermoscopy else VLPhotographicImage)(**common)
    declared = (captured.rows, captured.columns, captured.samples_per_pixel)
    if declared != (ds.Rows, ds.Columns, ds.SamplesPerPixel):
        raise ValueError(
            f'Field "captured" declares rows, columns, samples {declared} but its pixel data has '
            f"{(ds.Rows, ds.Columns, ds.SamplesPerPixel)}."
        )
    set_private(
        ds,
        TrustODSCode=context.trust.ods,
        SpecialtyCode=context.specialty.code,
        # CS allows only upper case, digits, space and "_": clinical-care -> CLINICAL_CARE.
        ConsentLevel=context.consent.value.upper().replace("-", "_"),
        ConsentRecordedBy=context.consent_recorded_by,
        ConsentStatus="ACTIVE",
        OriginalSHA256=captured.original_sha256,
        OriginalMediaType=captured.media_type,
        IngestRoute=ingest_route,
        TimeFlags="\\".join(capture.time_flags),
        PatientIdIsTemporary="YES" if patient.is_temporary else "NO",
    )
    return ds


def _operator(photographer: str) -> str:
    """Operators' Name from the free-text photographer: the whole text is the family component.

    The explicit trailing ``^`` says so; without it, a space-separated name reads as the retired
    ACR-NEMA form (dciodvfy warns) and some systems would split it.
    """
    return photographer if "^" in photographer or not photographer else photographer + "^"


def _study_id(study_instance_uid: str) -> str:
    """A short, stable Study ID (SH) for every instance of a study, from its UID."""
    return hashlib.sha256(study_instance_uid.encode("ascii")).hexdigest()[:10].upper()


def _tracking_uid(patient_id: str, tracking_id: str) -> str:
    """Tracking UID of a lesion: the same label for the same patient gives the same UID.

    Tracking IDs are unique within a patient's record (PS3.3 C.8.35.3), so the UID is derived
    from both; reconciling a temporary identifier rewrites the objects and so their UIDs.
    """
    if not tracking_id:
        return ""
    # A name-based (SHA-1) UUID as a 2.25 UID; generate_uid(prefix=None) would be random.
    return f"2.25.{uuid.uuid5(_TRACKING_NAMESPACE, f'{patient_id}/{tracking_id}').int}"
