"""Reconciling an unidentified patient (DECISIONS.md 14): every object stored under a
trust-issued temporary identifier (``TMP-<ODS>-<ref>``) is rewritten under the NHS number once it
is known, then re-indexed, and the change is audited by the caller.

Decisions (in the spirit of IHE Patient Information Reconciliation, RAD-12):

* **UIDs are kept.** Study, Series and SOP Instance UIDs identify the acquisition, not the
  patient; links (a consent form's references, key objects, other systems' copies) stay valid.
  Only the Patient module changes: Patient ID, Issuer (``NHS`` with the NHS number OID), name,
  birth date and sex. The temporary identifier is kept in Other Patient IDs Sequence with its
  issuer (the trust), and in the private ``PreviousPatientID``. The Tracking UID of a lesion is
  re-derived from the NHS number, so images taken after reconciliation continue the same track.
* **The stored bytes are replaced atomically** at the same key (the store's ``put`` is all or
  nothing). The pixel data is not touched: the new header is written and the old object's bytes
  from Pixel Data on are streamed after it, so a video of gigabytes is never held in memory.
* **Crash-safe and repeatable**: a pending-index marker is written before each object is
  replaced, so an interrupted run is finished by the reconciler; running the same
  reconciliation again finds the objects already rewritten and only re-indexes them.
* After reconciliation a search by the NHS number finds every image; a search by the temporary
  identifier finds none (the identifier is retired; the link survives in the objects and the
  audit trail).
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence

from repository.errors import Conflict, InvalidInput, NotFound
from repository.patients import is_temporary_id, normalise_nhs_number
from repository.private_tags import get_private, set_private
from repository.rewrite import rewrite_header
from repository.service import Repository
from search.document import document_from_dataset
from search.query import InstanceQuery

log = logging.getLogger(__name__)

NHS_NUMBER_OID = "2.16.840.1.113883.2.1.4.1"
_SEXES = {"M", "F", "O", "U", ""}


@dataclass(frozen=True)
class PatientIdentity:
    """The identity the images are reconciled to (validated by :meth:`parse`)."""

    nhs_number: str
    family_name: str
    given_name: str = ""
    birth_date: dt.date | None = None
    sex: str = ""

    @classmethod
    def parse(cls, *, nhs_number: str, family_name: str, given_name: str = "", birth_date: str = "",
              sex: str = "", allow_test_numbers: bool) -> "PatientIdentity":
        number = normalise_nhs_number(nhs_number, allow_test_numbers=allow_test_numbers)
        for name, value in (("family_name", family_name), ("given_name", given_name)):
            if len(value) > 64 or any(c in value for c in "^=\\") or any(ord(c) < 32 for c in value):
                raise InvalidInput(f"{name} must be at most 64 characters without ^, = or \\", field=name)
        if not family_name.strip():
            raise InvalidInput("family_name is required to reconcile a patient", field="family_name")
        born = None
        if birth_date:
            try:
                born = dt.date.fromisoformat(birth_date)
            except ValueError:
                raise InvalidInput("birth_date must be a real date written YYYY-MM-DD", field="birth_date") from None
            if born > dt.date.today() or born.year < 1880:
                raise InvalidInput("birth_date is out of range", field="birth_date")
        sex = (sex or "").strip().upper()
        if sex not in _SEXES:
            raise InvalidInput("sex must be one of F, M, O, U", field="sex")
        return cls(number, family_name.strip(), given_name.strip(), born, "" if sex == "U" else sex)


@dataclass
class ReconcileResult:
    temporary_id: str
    nhs_number: str
    sop_instance_uids: list[str] = field(default_factory=list)
    study_instance_uids: list[str] = field(default_factory=list)
    already_reconciled: int = 0  # found rewritten by an earlier, interrupted run


def reconcile_patient(
    repository: Repository, temporary_id: str, identity: PatientIdentity, *, spool_dir: Path | None = None
) -> ReconcileResult:
    """Rewrite, re-index and return every instance stored under ``temporary_id``.

    Raises ``InvalidInput`` for an identifier that is not temporary, ``NotFound`` when nothing is
    stored under it, and ``IndexUnavailable`` while the index is down (nothing is changed then).
    """
    temporary_id = (temporary_id or "").strip().upper()
    if not is_temporary_id(temporary_id):
        raise InvalidInput("only a temporary identifier (TMP-<ODS>-<reference>) can be reconciled", field="temporary_id")
    repository.reconcile_pending()  # instances still pending must be found too
    uids = _instances_of(repository, temporary_id)
    result = ReconcileResult(temporary_id, identity.nhs_number)
    if not uids:
        raise NotFound(f"no images are stored under {temporary_id}")
    work = Path(tempfile.mkdtemp(prefix="ologies-reconcile-", dir=spool_dir))
    try:
        for uid in uids:
            study, rewritten = _rewrite(repository, uid, temporary_id, identity, work)
            result.sop_instance_uids.append(uid)
            if study not in result.study_instance_uids:
                result.study_instance_uids.append(study)
            result.already_reconciled += 0 if rewritten else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _instances_of(repository: Repository, patient_id: str) -> list[str]:
    found: list[str] = []
    offset = 0
    while True:
        page = repository.index.search(InstanceQuery(patient_id=patient_id, limit=500, offset=offset, facets=()))
        found += [str(doc["SOPInstanceUID"]) for doc in page.items]
        offset += len(page.items)
        if not page.items or offset >= page.total:
            return list(dict.fromkeys(found))


def _rewrite(repository: Repository, uid: str, temporary_id: str, identity: PatientIdentity, work: Path) -> tuple[str, bool]:
    """Replace one object; return its study UID and whether it needed rewriting."""
    from repository.media import _header_and_pixel_offset

    store = repository.store
    key = repository.locate(uid)
    with store.open(key) as handle:
        header, _ = _header_and_pixel_offset(handle)
    current = str(header.get("PatientID", ""))
    study = str(header.StudyInstanceUID)
    if current == identity.nhs_number and get_private(header).get("PreviousPatientID") == temporary_id:
        repository.index.upsert(document_from_dataset(header, store.head(key)))  # finish a crashed run
        return study, False
    if current != temporary_id:
        raise Conflict(f"instance {uid} is no longer stored under {temporary_id}; nothing was changed for it")
    rewrite_header(repository, uid, lambda ds: _apply_identity(ds, temporary_id, identity), spool_dir=work)
    return study, True


def _apply_identity(ds: Dataset, temporary_id: str, identity: PatientIdentity) -> None:
    from converters.iods.build import _tracking_uid
    from converters.iods.valuerep import person_name

    old_issuer = str(ds.get("IssuerOfPatientID", "") or "")
    ds.PatientID = identity.nhs_number
    ds.IssuerOfPatientID = "NHS"
    qualifier = Dataset()
    qualifier.UniversalEntityID = NHS_NUMBER_OID
    qualifier.UniversalEntityIDType = "ISO"
    ds.IssuerOfPatientIDQualifiersSequence = [qualifier]
    ds.PatientName = person_name(identity.family_name, identity.given_name)
    ds.PatientBirthDate = identity.birth_date.strftime("%Y%m%d") if identity.birth_date else ""
    ds.PatientSex = identity.sex
    other = Dataset()
    other.PatientID = temporary_id
    other.IssuerOfPatientID = old_issuer or temporary_id.split("-")[1]
    other.TypeOfPatientID = "TEXT"
    previous = [item for item in ds.get("OtherPatientIDsSequence", []) if item.get("PatientID") != temporary_id]
    ds.OtherPatientIDsSequence = DicomSequence([*previous, other])
    if ds.get("TrackingID") and ds.get("TrackingUID"):
        ds.TrackingUID = _tracking_uid(identity.nhs_number, str(ds.TrackingID))
    set_private(ds, PatientIdIsTemporary="NO", PreviousPatientID=temporary_id)
