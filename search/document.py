"""The index document of one stored instance, derived from the DICOM object alone.

Because everything here comes from the object's own header, a listing of the store is enough to
rebuild the index (DECISIONS.md 1). Field names are DICOM keywords; fields the standard has no
keyword for, and internal bookkeeping, start with an underscore.
"""

from __future__ import annotations

import datetime as dt
import unicodedata

from pydicom import Dataset

from repository.private_tags import get_private
from repository.store import StoredObject

TEXT_KEYWORDS = (
    "SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID",
    "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
    "StudyDate", "StudyTime", "StudyDescription", "StudyID", "AccessionNumber",
    "Modality", "SeriesDescription", "BodyPartExamined", "InstitutionName",
    "InstitutionalDepartmentName", "OperatorsName", "ImageComments", "Manufacturer",
    "ManufacturerModelName", "ContentDate", "ContentTime", "AcquisitionDateTime",
    "TimezoneOffsetFromUTC", "TrackingID", "TrackingUID", "LossyImageCompression",
    "DocumentTitle", "MIMETypeOfEncapsulatedDocument", "ReferringPhysicianName",
)  # fmt: skip
INT_KEYWORDS = ("SeriesNumber", "InstanceNumber", "Rows", "Columns", "NumberOfFrames", "BitsAllocated")
INTERNAL_TEXT = (
    "PatientName", "Laterality", "TransferSyntaxUID", "_trust", "_specialty",
    "_body_site_code", "_body_site_meaning", "_consent", "_consent_status",
    "_capture_date", "_object_key", "_sha256", "_original_sha256",
    "_original_media_type", "_patient_temporary", "_patient_name_folded", "_stored_at",
    "_ingest_route",
)  # fmt: skip
INTERNAL_INT = ("_year", "_size")
ALL_FIELDS = TEXT_KEYWORDS + INT_KEYWORDS + INTERNAL_TEXT + INTERNAL_INT

_LATERALITY_MODIFIERS = {"7771000": "L", "24028007": "R", "51440002": "B"}


# Letters that carry no combining accent in Unicode, and typographic punctuation that people
# type plainly: folded the same way as Lucene's asciifolding, so both index backends agree.
_EXTRA_FOLDS = str.maketrans({
    "ø": "o", "Ø": "o", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ł": "l", "Ł": "l",
    "đ": "d", "Đ": "d", "ð": "d", "Ð": "d", "þ": "th", "Þ": "th", "ı": "i",
    "\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u2010": "-", "\u2011": "-", "\u2013": "-", "\u2014": "-",
})  # fmt: skip


def fold(text: str) -> str:
    """Lower-case and strip accents: Siân -> sian, Zoë -> zoe, Ørjan -> orjan, O’Brien -> o'brien."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_EXTRA_FOLDS))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None or value == "":
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def _laterality(ds: Dataset) -> str:
    for keyword in ("ImageLaterality", "Laterality"):
        if ds.get(keyword):
            return str(ds.get(keyword))
    region = ds.get("AnatomicRegionSequence")
    if region:
        for modifier in region[0].get("AnatomicRegionModifierSequence", []):
            found = _LATERALITY_MODIFIERS.get(str(modifier.get("CodeValue", "")))
            if found:
                return found
    return "U"


def _capture_date(ds: Dataset) -> str:
    """The first real calendar date of these, as YYYY-MM-DD (a value such as 20240230 is passed
    over): the string order of what this returns is date order, which lets Elasticsearch sort on
    the date sub-field and still answer as SQLite's string ORDER BY does."""
    for keyword in ("ContentDate", "AcquisitionDateTime", "StudyDate"):
        value = _text(ds, keyword)
        if len(value) >= 8 and value[:8].isdigit():
            try:
                return dt.date(int(value[0:4]), int(value[4:6]), int(value[6:8])).isoformat()
            except ValueError:
                continue
    return ""


def document_from_dataset(ds: Dataset, stored: StoredObject, *, sha256: str | None = None) -> dict[str, object]:
    """Build the flat index document for ``ds`` stored as ``stored``."""
    doc: dict[str, object] = {k: _text(ds, k) for k in TEXT_KEYWORDS}
    for keyword in INT_KEYWORDS:
        value = ds.get(keyword)
        try:
            doc[keyword] = int(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            doc[keyword] = None
    name = ds.get("PatientName")
    doc["PatientName"] = str(name) if name else ""
    doc["_patient_name_folded"] = fold(str(name).replace("^", " ")) if name else ""
    doc["Laterality"] = _laterality(ds)
    meta = getattr(ds, "file_meta", None)  # not dir(ds): that lists every keyword, a millisecond per call
    doc["TransferSyntaxUID"] = str(meta.TransferSyntaxUID) if meta is not None and meta.get("TransferSyntaxUID") else ""
    private = get_private(ds)
    doc["_trust"] = private.get("TrustODSCode", "")
    doc["_specialty"] = private.get("SpecialtyCode", "")
    # Stored as a CS defined term (CLINICAL_CARE); indexed in the API's vocabulary (clinical-care).
    doc["_consent"] = private.get("ConsentLevel", "").lower().replace("_", "-")
    doc["_consent_status"] = private.get("ConsentStatus", "")
    doc["_original_sha256"] = private.get("OriginalSHA256", "")
    doc["_original_media_type"] = private.get("OriginalMediaType", "")
    doc["_ingest_route"] = private.get("IngestRoute", "")
    doc["_patient_temporary"] = private.get("PatientIdIsTemporary", "NO")
    region = ds.get("AnatomicRegionSequence")
    doc["_body_site_code"] = str(region[0].get("CodeValue", "")) if region else ""
    doc["_body_site_meaning"] = str(region[0].get("CodeMeaning", "")) if region else ""
    capture_date = _capture_date(ds)
    doc["_capture_date"] = capture_date
    doc["_year"] = int(capture_date[:4]) if capture_date else None
    doc["_object_key"] = stored.key
    doc["_size"] = stored.size
    doc["_sha256"] = sha256 or stored.sha256 or ""
    doc["_stored_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return doc
