"""DICOM files through the upload route (``POST /api/v1/images``, the pages, ``ologies ingest``).

A batch whose files are all DICOM (sniffed by magic bytes: ``DICM`` at offset 128) is stored as
received after :func:`converters.dicom.prepare_dicom`'s checks; it keeps its own UIDs. The form
describes nothing the objects do not already say, so only these fields are used:

* ``nhs_number``, if given, must be the objects' Patient ID (else 422 naming ``nhs_number``):
  the photographer's statement of who the patient is is checked, never silently overridden;
* ``trust`` (already the caller's own, by the guard), ``specialty`` and ``consent`` go into our
  private block, as for photographs.

One upload is one patient: objects of two patients in one batch are refused. All or nothing, as
for photographs: one bad file refuses the batch before anything is stored.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from converters.dicom import DicomLimits, PreparedDicom, Provenance, prepare_dicom
from converters.sniff import HEAD_SIZE, sniff
from repository.errors import InvalidInput, OlogiesError, PayloadTooLarge
from repository.model import ConsentValues
from repository.patients import normalise_patient_id

if TYPE_CHECKING:
    from ingest.pipeline import BatchResult, IncomingFile, Ingestor

DICOM = "application/dicom"


def _received(incoming: "IncomingFile", spool: Path, number: int) -> Path:
    """The file to map: the service's own spooled copy as it is; a copy in the spool of anyone
    else's (a watched folder's), made by streaming, since a mapped file that its writer cuts short
    kills the reader (SIGBUS) and reading it whole would hold a video in memory."""
    if incoming.private:
        return incoming.path
    copy = spool / f"{number:05d}.received"
    shutil.copyfile(incoming.path, copy)
    return copy


def is_dicom(incoming: "IncomingFile") -> bool:
    with incoming.path.open("rb") as handle:
        return sniff(handle.read(HEAD_SIZE)) == DICOM


def dicom_batch(files: Sequence["IncomingFile"]) -> bool:
    """True if every file is DICOM; refuses a mix of DICOM files and photographs."""
    kinds = [is_dicom(f) for f in files]
    if any(kinds) and not all(kinds):
        raise InvalidInput("send DICOM files and photographs in separate uploads", field="file")
    return bool(kinds) and all(kinds)


def limits_for(ingestor: "Ingestor") -> DicomLimits:
    settings = ingestor.settings
    return DicomLimits(max_bytes=settings.max_file_bytes, max_pixels=settings.max_image_pixels)


def provenance_from_fields(ingestor: "Ingestor", fields: Mapping[str, str | None], route: str) -> Provenance:
    def text(name: str) -> str:
        return (fields.get(name) or "").strip()

    trust = ingestor.catalogue.trust(text("trust")).ods if text("trust") else ""
    specialty = ingestor.catalogue.specialty(text("specialty")).code if text("specialty") else ""
    consent = ""
    if text("consent"):
        try:
            consent = ConsentValues(text("consent").lower()).value.upper().replace("-", "_")
        except ValueError:
            allowed = ", ".join(c.value for c in ConsentValues)
            raise InvalidInput(f"consent must be one of {allowed}", field="consent") from None
    return Provenance(route, trust=trust, specialty=specialty, consent=consent,
                      consent_recorded_by=text("consent_recorded_by") or text("photographer"))  # fmt: skip


def ingest_dicom(
    ingestor: "Ingestor", files: Sequence["IncomingFile"], fields: Mapping[str, str | None], *, route: str
) -> "BatchResult":
    from ingest.pipeline import BatchResult, FileResult

    settings = ingestor.settings
    if len(files) > settings.max_files_per_upload:
        raise PayloadTooLarge(f"at most {settings.max_files_per_upload} files per upload", field="file")
    provenance = provenance_from_fields(ingestor, fields, route)
    stated = (fields.get("nhs_number") or "").strip()
    stated_id = normalise_patient_id(stated, allow_test_numbers=True)[0] if stated else None
    limits = limits_for(ingestor)
    spool = Path(tempfile.mkdtemp(prefix="ologies-dicom-", dir=settings.spool_dir))
    prepared: list[tuple["IncomingFile", PreparedDicom]] = []
    try:
        for number, incoming in enumerate(files, start=1):
            try:
                item = prepare_dicom(
                    _received(incoming, spool, number), spool / f"{number:05d}.dcm", provenance=provenance,
                    allow_test_numbers=bool(settings.allow_test_nhs_numbers), limits=limits,
                    original_sha256=incoming.sha256,
                )  # fmt: skip
            except OlogiesError as exc:
                raise type(exc)(f"{incoming.filename}: {exc.message}", field=exc.field or "file") from exc
            patient_id = item.instance.patient_id
            if stated_id is not None and patient_id != stated_id:
                raise InvalidInput(
                    f"{incoming.filename}: the DICOM object's Patient ID is not the NHS number given",
                    field="nhs_number",
                )
            if prepared and patient_id != prepared[0][1].instance.patient_id:
                raise InvalidInput(f"{incoming.filename}: one upload is for one patient; this file is for another", field="file")
            prepared.append((incoming, item))
        repository = ingestor.repository
        found = [repository.check_can_store(item.instance) for _, item in prepared]
        outcomes = [known or repository.store_instance(item.instance, known_absent=True, defer_index=True)
                    for (_, item), known in zip(prepared, found)]  # fmt: skip
        outcomes = repository.index_deferred(outcomes)  # the batch in one index write
        results = [FileResult(f.filename, outcome, DICOM) for (f, _), outcome in zip(prepared, outcomes)]
    finally:
        for _, item in prepared:
            item.instance.path.unlink(missing_ok=True)
        for leftover in spool.iterdir():
            leftover.unlink(missing_ok=True)
        os.rmdir(spool)
    first = prepared[0][1].instance
    return BatchResult(first.study_instance_uid, results, first.patient_id)
