"""The object-key scheme. Keys are derived from UIDs only, so that a listing of the store is
enough to rebuild everything else (DECISIONS.md 1).

    studies/{StudyInstanceUID}/series/{SeriesInstanceUID}/instances/{SOPInstanceUID}.dcm
    locators/{SOPInstanceUID}           -> the instance key (claimed with create-if-absent)
    pending-index/{SOPInstanceUID}      -> durable "stored but not yet indexed" marker
    derived/{SOPInstanceUID}/{name}     -> cached renditions (rendered-srgb.jpg, thumbnail-256-srgb.jpg)
    governance/holds/{PatientID}.json   -> a legal hold on the patient's records
"""

from __future__ import annotations

import re

STUDIES = "studies/"
LOCATORS = "locators/"
PENDING = "pending-index/"
DERIVED = "derived/"
HOLDS = "governance/holds/"
INSTANCE_SUFFIX = ".dcm"

# PS3.5 9.1: digits and dots, no empty component, no leading zero in a component ("0" alone is
# allowed); the hostile-input corpus found "1.02.3" stored by every route (RELIABILITY.md A14)
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def _checked(uid: str) -> str:
    if not _UID.match(uid) or len(uid) > 64:
        raise ValueError(f"not a DICOM UID: {uid!r}")
    return uid


def instance_key(study_uid: str, series_uid: str, sop_uid: str) -> str:
    return (
        f"{STUDIES}{_checked(study_uid)}/series/{_checked(series_uid)}"
        f"/instances/{_checked(sop_uid)}{INSTANCE_SUFFIX}"
    )


def is_instance_key(key: str) -> bool:
    return key.startswith(STUDIES) and key.endswith(INSTANCE_SUFFIX) and "/instances/" in key


def uids_from_instance_key(key: str) -> tuple[str, str, str]:
    """(study, series, instance) UIDs from an instance key."""
    parts = key[len(STUDIES) :].split("/")
    return parts[0], parts[2], parts[4][: -len(INSTANCE_SUFFIX)]


def locator_key(sop_uid: str) -> str:
    return LOCATORS + _checked(sop_uid)


def pending_key(sop_uid: str) -> str:
    return PENDING + _checked(sop_uid)


def hold_key(patient_id: str) -> str:
    return f"{HOLDS}{patient_id}.json"


def derived_key(sop_uid: str, name: str) -> str:
    return f"{DERIVED}{_checked(sop_uid)}/{name}"


def is_valid_uid(uid: str) -> bool:
    return bool(_UID.match(uid or "")) and len(uid) <= 64
