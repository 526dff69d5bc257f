"""JSON views of index documents: stable, documented names for API clients."""

from __future__ import annotations

from typing import Any

API = "/api/v1"


def links(uid: str) -> dict[str, str]:
    base = f"{API}/instances/{uid}"
    return {"self": base, "file": f"{base}/file", "rendered": f"{base}/rendered", "thumbnail": f"{base}/thumbnail"}


def _date(value: object) -> str | None:
    text = str(value or "")
    return f"{text[0:4]}-{text[4:6]}-{text[6:8]}" if len(text) >= 8 and text[:8].isdigit() else None


def _name(value: object) -> dict[str, str]:
    family, _, rest = str(value or "").partition("^")
    given = rest.split("^")[0] if rest else ""
    return {"family": family, "given": given}


def _display_name(value: object) -> str | None:
    """A person name for display: "Family^Given" -> "Given Family"; "Llŷr Evans^" -> "Llŷr Evans"."""
    parts = [p for p in str(value or "").split("=")[0].split("^") if p]
    if not parts:
        return None
    return " ".join(parts[1:2] + parts[:1]) if len(parts) > 1 else parts[0]


def instance_view(doc: dict[str, Any]) -> dict[str, Any]:
    uid = str(doc["SOPInstanceUID"])
    return {
        "sop_instance_uid": uid,
        "series_instance_uid": doc.get("SeriesInstanceUID"),
        "study_instance_uid": doc.get("StudyInstanceUID"),
        "sop_class_uid": doc.get("SOPClassUID"),
        "modality": doc.get("Modality"),
        "patient": {
            "nhs_number": doc.get("PatientID"),
            "temporary_id": doc.get("_patient_temporary") == "YES",
            "name": _name(doc.get("PatientName")),
            "birth_date": _date(doc.get("PatientBirthDate")),
            "sex": doc.get("PatientSex") or None,
        },
        "trust": doc.get("_trust"),
        "institution_name": doc.get("InstitutionName"),
        "specialty": doc.get("_specialty"),
        "department": doc.get("InstitutionalDepartmentName"),
        "body_site": {"code": doc.get("_body_site_code"), "meaning": doc.get("_body_site_meaning")},
        "laterality": doc.get("Laterality"),
        "consent": doc.get("_consent"),
        "consent_status": doc.get("_consent_status"),
        "description": doc.get("ImageComments"),
        "photographer": _display_name(doc.get("OperatorsName")),
        "capture_date": doc.get("_capture_date") or None,
        "acquisition_datetime": doc.get("AcquisitionDateTime") or None,
        "timezone_offset": doc.get("TimezoneOffsetFromUTC") or None,
        "study_date": _date(doc.get("StudyDate")),
        "study_description": doc.get("StudyDescription"),
        "accession_number": doc.get("AccessionNumber") or None,
        "tracking_id": doc.get("TrackingID") or None,
        "camera": {"manufacturer": doc.get("Manufacturer") or None, "model": doc.get("ManufacturerModelName") or None},
        "rows": doc.get("Rows"),
        "columns": doc.get("Columns"),
        "number_of_frames": doc.get("NumberOfFrames"),
        "transfer_syntax_uid": doc.get("TransferSyntaxUID"),
        "lossy_compression": doc.get("LossyImageCompression") == "01",
        "size": doc.get("_size"),
        "sha256": doc.get("_sha256"),
        "original_sha256": doc.get("_original_sha256"),
        "original_media_type": doc.get("_original_media_type"),
        "links": links(uid),
    }


def group_by_study(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group newest-first instance documents by study, keeping the order of first appearance."""
    studies: dict[str, dict[str, Any]] = {}
    for doc in docs:
        uid = str(doc.get("StudyInstanceUID"))
        study = studies.get(uid)
        if study is None:
            study = studies[uid] = {
                "study_instance_uid": uid,
                "study_date": _date(doc.get("StudyDate")),
                "study_description": doc.get("StudyDescription"),
                "trust": doc.get("_trust"),
                "specialty": doc.get("_specialty"),
                "accession_number": doc.get("AccessionNumber") or None,
                "instances": [],
            }
        study["instances"].append(instance_view(doc))
    return list(studies.values())
