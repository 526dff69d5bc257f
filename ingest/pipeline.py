"""One upload, all or nothing: validate the context, convert and build every file into a spooled
DICOM object on local disk, check none conflicts with what is stored, then store them.

A bad file refuses the whole batch before anything is stored (the error names the file), so a
photographer never has half a batch filed. Storage itself is per instance and idempotent: if the
store fails midway, a retry of the same batch completes it without duplicates.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


from converters.base import Limits
from converters.dicom import write_part10
from converters.iods import build_photograph
from converters.registry import convert_image
from ingest.dicom import dicom_batch, ingest_dicom
from ingest.media import prepare_media
from repository.catalogue import Catalogue
from repository.errors import IndexUnavailable, InvalidInput, PayloadTooLarge
from repository.hashing import sha256_of_stream
from repository.identity import check_identity
from repository.model import IngestContext
from repository.service import PreparedInstance, Repository, StoreOutcome
from repository.settings import Settings
from repository.uids import sop_instance_uid_for_upload, uid_from


@dataclass(frozen=True)
class IncomingFile:
    path: Path
    filename: str  # as the client named it; used in messages only, never to choose a converter
    sha256: str | None = None  # when the receiver hashed the bytes on the way in
    # The service's own spooled copy, which nothing else writes: a DICOM object is then mapped
    # as it is. Anyone else's (a watched folder's) is copied into the spool first: a device could
    # still cut it short, and a mapped file cut short under its reader kills the process (SIGBUS).
    private: bool = True


@dataclass(frozen=True)
class FileResult:
    filename: str
    outcome: StoreOutcome
    media_type: str


@dataclass(frozen=True)
class BatchResult:
    study_instance_uid: str
    files: list[FileResult]
    patient_id: str = ""

    @property
    def all_indexed(self) -> bool:
        return all(f.outcome.indexed for f in self.files)

    @property
    def any_created(self) -> bool:
        return any(f.outcome.status == "created" for f in self.files)


class Ingestor:
    def __init__(self, repository: Repository, *, settings: Settings, catalogue: Catalogue) -> None:
        self.repository = repository
        self.settings = settings
        self.catalogue = catalogue
        self.limits = Limits(max_pixels=settings.max_image_pixels)

    def parse_context(self, fields: Mapping[str, str | None]) -> IngestContext:
        return IngestContext.parse(
            fields, catalogue=self.catalogue, allow_test_numbers=bool(self.settings.allow_test_nhs_numbers)
        )

    def ingest(self, files: Sequence[IncomingFile], fields: Mapping[str, str | None], *, route: str) -> BatchResult:
        if dicom_batch(files):  # DICOM is stored as received, after its own checks (ingest/dicom.py)
            return ingest_dicom(self, files, fields, route=route)
        context = self.parse_context(fields)
        if not files:
            raise InvalidInput("at least one file is required", field="file")
        if not self.repository.index_paused():  # an index just found down is not asked again
            try:
                check_identity(self.repository.index, context.patient, context.trust.ods, fields, trust_name=context.trust.name)
            except IndexUnavailable:
                self.repository.pause_index()  # nothing to compare with: the upload goes ahead
        if len(files) > self.settings.max_files_per_upload:
            raise PayloadTooLarge(f"at most {self.settings.max_files_per_upload} files per upload", field="file")
        digests = [self._digest(f) for f in files]
        study_uid = context.study_uid or uid_from("study", context.patient.patient_id, *sorted(d for d, _ in digests))
        series_uid = uid_from(
            "series", study_uid, context.modality.value, context.body_site.code, context.laterality.value
        )
        spool = Path(tempfile.mkdtemp(prefix="ologies-ingest-", dir=self.settings.spool_dir))
        prepared: list[tuple[IncomingFile, PreparedInstance, str]] = []
        try:
            now = dt.datetime.now(dt.timezone.utc)
            for number, (incoming, (sha, size)) in enumerate(zip(files, digests), start=1):
                media = prepare_media(self, incoming, sha, size, context, study_uid, number, route, now, spool,
                                      batch=list(zip(files, digests)), fields=fields)  # video, PDF (ingest/media.py)
                prepared.append(media or self._prepare(incoming, sha, size, context, study_uid, series_uid, number, route, now, spool))
            found = [self.repository.check_can_store(item) for _, item, _ in prepared]
            outcomes = [known or self.repository.store_instance(item, known_absent=True, defer_index=True)
                        for (_, item, _), known in zip(prepared, found)]  # fmt: skip
            outcomes = self.repository.index_deferred(outcomes)  # the batch in one index write
            results = [FileResult(f.filename, outcome, media) for (f, _, media), outcome in zip(prepared, outcomes)]
        finally:
            for _, item, _ in prepared:
                item.path.unlink(missing_ok=True)
            os.rmdir(spool) if not any(spool.iterdir()) else None
        return BatchResult(study_uid, results, context.patient.patient_id)

    def _digest(self, incoming: IncomingFile) -> tuple[str, int]:
        size = incoming.path.stat().st_size
        largest = max(self.settings.max_file_bytes, self.settings.max_video_bytes)  # by kind: ingest/media.py
        if size > largest:
            raise PayloadTooLarge(
                f"{incoming.filename}: {size} bytes is more than the limit of {largest}",
                field="file",
            )
        if size == 0:
            raise InvalidInput(f"{incoming.filename}: the file is empty", field="file")
        if incoming.sha256:
            return incoming.sha256, size
        with incoming.path.open("rb") as handle:
            return sha256_of_stream(handle)[1], size

    def _prepare(
        self,
        incoming: IncomingFile,
        sha: str,
        size: int,
        context: IngestContext,
        study_uid: str,
        series_uid: str,
        number: int,
        route: str,
        now: dt.datetime,
        spool: Path,
    ) -> tuple[IncomingFile, PreparedInstance, str]:
        try:
            captured = convert_image(
                incoming.path, limits=self.limits, local_tz=self.settings.local_timezone, sha256=sha
            )
            sop_uid = sop_instance_uid_for_upload(captured.original_sha256)
            dataset = build_photograph(
                captured,
                context,
                study_instance_uid=study_uid,
                series_instance_uid=series_uid,
                sop_instance_uid=sop_uid,
                series_number=1,
                instance_number=number,
                ingest_route=route,
                now=now,
                local_tz=self.settings.local_timezone,
            )
        except InvalidInput as exc:
            # Name the file at fault; keep the error's class so the status stays right.
            raise type(exc)(f"{incoming.filename}: {exc.message}", field=exc.field or "file") from exc
        except ValueError as exc:  # a builder's validation
            raise InvalidInput(f"{incoming.filename}: {exc}", field="file") from exc
        out = spool / f"{number:05d}.dcm"
        object_sha = write_part10(out, dataset)  # Pixel Data straight from its value, not copied by pydicom
        item = PreparedInstance(out, sop_uid, study_uid, series_uid, context.patient.patient_id, sha256=object_sha)
        return incoming, item, captured.media_type
