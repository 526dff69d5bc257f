"""Information governance: consent withdrawal, teaching exports of de-identified copies,
retention dates, legal holds and deletion only through an administrator's approval
(DECISIONS.md 20; DOMAIN.md 3.3-3.4).

The stored DICOM object stays the record: a consent change is written into the object itself
(private ConsentStatus) and re-indexed; holds and deletion requests are small JSON objects under
``governance/`` in the same store.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pydicom import Dataset, dcmwrite
from pydicom._uid_dict import UID_dictionary
from pydicom.dataelem import DataElement

from repository import keys
from repository.errors import Conflict, Forbidden, InvalidInput, NotFound
from repository.private_tags import set_private
from repository.rewrite import rewrite_header
from repository.service import Repository
from repository.uids import uid_from

DELETIONS = "governance/deletions/"

ADULT_YEARS = 8
CHILD_UNTIL_BIRTHDAY = 25
MATERNITY_YEARS = 25
MATERNITY_SPECIALTIES = frozenset({"maternity", "obstetrics"})


def retention_until(*, birth_date: dt.date | None, last_entry: dt.date, specialty: str = "") -> dt.date:
    """The earliest date a patient's images may be considered for deletion (Records Management
    Code of Practice 2021): adults 8 years after the last entry; children until their 25th
    birthday (or 8 years, if later); maternity records 25 years."""
    if specialty in MATERNITY_SPECIALTIES:
        return _add_years(last_entry, MATERNITY_YEARS)
    adult = _add_years(last_entry, ADULT_YEARS)
    if birth_date is not None and _add_years(birth_date, 18) > last_entry:
        return max(adult, _add_years(birth_date, CHILD_UNTIL_BIRTHDAY))
    return adult


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _entry_date(doc: dict[str, object]) -> dt.date | None:
    """When an image was added to the record: its index document's storing time (a rebuilt
    index dates its documents from the rebuild, which keeps records longer, never shorter), or,
    lacking that, its capture date."""
    stored = str(doc.get("_stored_at") or "")
    try:
        return dt.date.fromisoformat(stored[:10])
    except ValueError:
        return _parse_da(str(doc.get("_capture_date", "")).replace("-", ""))


def _parse_da(value: object) -> dt.date | None:
    text = str(value or "")
    try:
        return dt.date(int(text[0:4]), int(text[4:6]), int(text[6:8])) if len(text) >= 8 else None
    except ValueError:
        return None


# PS3.15 E.1-1 Basic Application Level Confidentiality Profile, the attributes these objects carry
# (with Retain Device Identity left out: camera make and model are kept, K; serials removed).
_REMOVE = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "IssuerOfPatientID",
    "IssuerOfPatientIDQualifiersSequence", "OtherPatientIDsSequence", "PatientAge", "PatientAddress",
    "AccessionNumber", "StudyID", "ReferringPhysicianName", "OperatorsName", "InstitutionName",
    "InstitutionalDepartmentName", "InstitutionAddress", "ImageComments", "StudyDescription",
    "SeriesDescription", "DeviceSerialNumber", "CameraOwnerName", "LensSerialNumber",
    "TrackingID", "TrackingUID", "AcquisitionDateTime", "ContentDate", "ContentTime",
    "StudyDate", "StudyTime", "InstanceCreationDate", "InstanceCreationTime", "TimezoneOffsetFromUTC",
    "DocumentTitle", "OtherPatientNames", "PatientComments",
)  # fmt: skip
_TYPE2_EMPTY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
                "ReferringPhysicianName", "StudyDate", "StudyTime", "ContentDate", "ContentTime")  # fmt: skip


def deidentify(ds: Dataset, *, salt: str) -> Dataset:
    """A de-identified copy (PS3.15 Basic Profile, image kept): identifying attributes removed or
    emptied, UIDs replaced consistently (hash of the old UID and a per-export salt), private
    elements removed. The pixels are unchanged: a photograph may still show a face or a tattoo,
    which is why only images consented for teaching are ever exported."""
    out = copy.deepcopy(ds)  # Dataset.copy() shares the elements: editing it edited the original
    for keyword in _REMOVE:
        if keyword in out:
            del out[keyword]
    for keyword in _TYPE2_EMPTY:
        setattr(out, keyword, "")
    out.remove_private_tags()
    _replace_uids(out, salt)
    out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = "PS3.15 Basic Profile; Retain Device Identity Option"
    method = Dataset()
    method.CodeValue, method.CodingSchemeDesignator, method.CodeMeaning = "113100", "DCM", "Basic Application Confidentiality Profile"
    out.DeidentificationMethodCodeSequence = [method]
    out.BurnedInAnnotation = out.get("BurnedInAnnotation", "NO") or "NO"
    return out


def _replace_uids(ds: Dataset, salt: str) -> None:
    """Every UID that identifies something (study, series, instance, frame of reference, the
    references to them in sequences) replaced consistently, as the Basic Profile does without
    the Retain UIDs option (PS3.15 E.1-1, "U"); a UID the standard defines (an SOP class, a
    transfer syntax, a coding scheme) names no patient and is kept."""

    def replace(dataset: Dataset, element: DataElement) -> None:
        if element.VR != "UI" or not element.value:
            return
        values = element.value if element.VM > 1 else [element.value]
        new = [v if str(v) in UID_dictionary else uid_from("deid", salt, str(v)) for v in values]
        element.value = new if element.VM > 1 else new[0]

    ds.walk(replace)


@dataclass
class ExportResult:
    archive: bytes
    exported: list[str]
    refused: dict[str, str]
    #: the patients whose images were exported (for the audit record: each patient's "who has
    #: seen my photographs" report lists the export)
    patient_ids: list[str]


@dataclass
class DeletionRequest:
    request_id: str
    patient_id: str
    requested_by: str
    reason: str
    requested_at: str
    approved_by: str = ""
    approved_at: str = ""
    #: the trust whose records are to be deleted (a trust deletes its own records); "" for every
    #: trust, only when an administrator asked
    trust: str = ""

    @property
    def trusts(self) -> tuple[str, ...] | None:
        return (self.trust,) if self.trust else None


class Governance:
    def __init__(self, repository: Repository) -> None:
        self.repository = repository

    # -- consent -----------------------------------------------------------------------------
    def set_consent_status(self, uid: str, status: str) -> dict[str, object]:
        """Record a withdrawal (or reinstatement) of consent in the stored object and re-index it."""
        status = status.upper()
        if status not in {"WITHDRAWN", "ACTIVE"}:
            raise InvalidInput("status must be withdrawn or active", field="status")
        return rewrite_header(self.repository, uid, lambda ds: set_private(ds, ConsentStatus=status))

    # -- teaching export ---------------------------------------------------------------------
    def export(self, uids: Iterable[str], *, allowed: Callable[[str], None], salt: str) -> ExportResult:
        """A ZIP of de-identified copies of the instances ``allowed`` lets through; ``allowed``
        raises for an instance whose consent (or the caller's access) does not allow it."""
        buffer = io.BytesIO()
        exported: list[str] = []
        refused: dict[str, str] = {}
        patients: dict[str, None] = {}
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            for uid in dict.fromkeys(uids):
                try:
                    allowed(uid)
                    ds = self.repository.read_instance(uid)
                except (Forbidden, NotFound) as exc:
                    refused[uid] = exc.message
                    continue
                patients[str(ds.get("PatientID", ""))] = None  # before deidentify: its copy is shallow
                copy = deidentify(ds, salt=salt)
                out = io.BytesIO()
                dcmwrite(out, copy, enforce_file_format=True)
                archive.writestr(f"{copy.SOPInstanceUID}.dcm", out.getvalue())
                exported.append(uid)
        return ExportResult(buffer.getvalue(), exported, refused, [p for p in patients if p])

    # -- retention and legal hold ------------------------------------------------------------
    def retention(self, patient_id: str, *, trusts: tuple[str, ...] | None = None) -> dict[str, object]:
        """The patient's retention date from the images held by ``trusts`` (None: every trust);
        another trust's images are neither counted nor revealed. The last entry is the day the
        newest image was added to the record (stored here), not its capture date, which an
        uploader's camera sets: a photograph taken in 2010 and added today is today's entry."""
        from search.query import InstanceQuery

        last_entry: dt.date | None = None
        birth: dt.date | None = None
        maternity, total, offset = False, 0, 0
        while True:
            query = InstanceQuery(patient_id=patient_id, limit=500, offset=offset, facets=("specialty",) if offset == 0 else (), trusts_visible=trusts)
            page = self.repository.index.search(query)
            if offset == 0:
                if not page.items:
                    raise NotFound("no images for this patient")
                total = page.total
                birth = _parse_da(page.items[0].get("PatientBirthDate"))  # the newest record's
                maternity = any(s in MATERNITY_SPECIALTIES for s in page.facets.get("specialty", {}))
            for doc in page.items:
                entry = _entry_date(doc)
                last_entry = entry if last_entry is None or (entry and entry > last_entry) else last_entry
            offset += len(page.items)
            if not page.items or offset >= page.total:
                break
        last_entry = last_entry or dt.date.today()
        until = retention_until(birth_date=birth, last_entry=last_entry, specialty="maternity" if maternity else "")
        hold = self.hold(patient_id)
        return {"nhs_number": patient_id, "last_entry": last_entry.isoformat(), "retain_until": until.isoformat(),
                "legal_hold": hold, "images": total}  # fmt: skip

    def hold(self, patient_id: str) -> dict[str, str] | None:
        try:
            with self.repository.store.open(keys.hold_key(patient_id)) as handle:
                return json.loads(handle.read())  # type: ignore[no-any-return]
        except NotFound:
            return None

    def set_hold(self, patient_id: str, *, by: str, reason: str) -> dict[str, str]:
        if len(reason.strip()) < 5:
            raise InvalidInput("say why the records are held (a case or inquiry reference)", field="reason")
        hold = {"patient_id": patient_id, "by": by, "reason": reason.strip()[:500],
                "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
        self.repository.store.put(keys.hold_key(patient_id), json.dumps(hold).encode(), media_type="application/json")
        self._lock_objects(patient_id, True)
        return hold

    def release_hold(self, patient_id: str) -> None:
        self._lock_objects(patient_id, False)
        self.repository.store.delete(keys.hold_key(patient_id))

    def _lock_objects(self, patient_id: str, on: bool) -> None:
        """Where the store has S3 Object Lock, a legal hold is also set on every stored object of
        the patient and on the hold record itself: then not even someone with the storage
        credentials can delete or overwrite them (and a rewrite makes a new, unheld version)."""
        store = self.repository.store
        if not store.supports_object_lock:
            return
        from search.query import InstanceQuery

        keys_held = [keys.hold_key(patient_id)]
        offset = 0
        while True:
            page = self.repository.index.search(InstanceQuery(patient_id=patient_id, limit=500, offset=offset, facets=()))
            keys_held += [str(doc["_object_key"]) for doc in page.items]
            offset += len(page.items)
            if not page.items or offset >= page.total:
                break
        for key in keys_held:
            store.set_legal_hold(key, on)

    # -- deletion, only by approval ----------------------------------------------------------
    def request_deletion(self, patient_id: str, *, by: str, reason: str, trust: str = "") -> DeletionRequest:
        """Ask for the patient's records at ``trust`` ("" for every trust) to be deleted."""
        request = DeletionRequest("", patient_id, by, reason, "", trust=trust)
        self._check_deletable(request)
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        request.request_id = hashlib.sha256(f"{patient_id}{trust}{now}{by}".encode()).hexdigest()[:16]
        request.requested_at = now
        self._save(request)
        return request

    def _check_deletable(self, request: DeletionRequest) -> None:
        if self.hold(request.patient_id):
            raise Conflict("these records are under a legal hold and cannot be deleted")
        info = self.retention(request.patient_id, trusts=request.trusts)
        if dt.date.fromisoformat(str(info["retain_until"])) > dt.date.today():
            raise Conflict(f"these records must be kept until {info['retain_until']}")

    def approve_deletion(self, request_id: str, *, by: str) -> list[str]:
        """Delete the patient's instances at the request's trust: only on a request made by
        someone else, once, never under a legal hold, and only if the retention period has still
        passed now (images added since the request restart it). Returns the deleted UIDs."""
        request = self._load(request_id)
        if request.approved_by:
            raise Conflict(f"this deletion request was already approved, on {request.approved_at}; make a new request")
        if request.requested_by == by:
            raise Forbidden("a deletion must be approved by someone other than who requested it")
        self._check_deletable(request)
        # Recorded as approved before anything is deleted, so a request is carried out once: if
        # the deletion fails part-way, a new request (the retention check still passes) ends it.
        request.approved_by = by
        request.approved_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self._save(request)
        from search.query import InstanceQuery

        deleted: list[str] = []
        while True:
            query = InstanceQuery(patient_id=request.patient_id, limit=500, facets=(), trusts_visible=request.trusts)
            page = self.repository.index.search(query)
            if not page.items:
                break
            for doc in page.items:
                uid = str(doc["SOPInstanceUID"])
                self.repository.store.delete(str(doc["_object_key"]))
                self.repository.store.delete(keys.locator_key(uid))
                for derived in list(self.repository.store.iter_keys(keys.derived_key(uid, ""))):
                    self.repository.store.delete(derived)
                self.repository.index.delete(uid)
                deleted.append(uid)
        return deleted

    def _save(self, request: DeletionRequest) -> None:
        self.repository.store.put(f"{DELETIONS}{request.request_id}.json", json.dumps(request.__dict__).encode(), media_type="application/json")

    def _load(self, request_id: str) -> DeletionRequest:
        if not request_id.isalnum():
            raise NotFound("no such deletion request")
        try:
            with self.repository.store.open(f"{DELETIONS}{request_id}.json") as handle:
                return DeletionRequest(**json.loads(handle.read()))
        except NotFound:
            raise NotFound("no such deletion request") from None

