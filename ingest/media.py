"""The pipeline's branch for videos and documents (``Ingestor._prepare`` hands them here).

Photographs go on through ``converters.registry.convert_image``; this module takes the kinds
that are not photographs and turns each into a spooled Part 10 file:

* MP4 / QuickTime -> :func:`converters.video.convert` -> Video Photographic Image, written by
  streaming the remuxed MP4 into the encapsulated Pixel Data (``write_video_file``): a video of
  a few gigabytes is never held in memory.
* PDF -> :func:`converters.pdf.convert` -> Encapsulated PDF in the same study, referencing the
  images of the same upload (the images the consent form covers) or those named in ``covers``.

Form fields read here besides the upload context: ``document_kind`` (consent, letter,
document), ``document_title``, ``covers`` (SOP Instance UIDs, comma or space separated).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydicom import dcmwrite
from pydicom.uid import (
    DermoscopicPhotographyImageStorage,
    EncapsulatedPDFStorage,
    VideoPhotographicImageStorage,
    VLPhotographicImageStorage,
)

from converters.base import SourceFile
from converters.sniff import HEAD_SIZE, sniff
from repository.errors import ConversionFailed, InvalidInput, PayloadTooLarge
from repository.keys import is_valid_uid
from repository.model import IngestContext, ModalityValues
from repository.service import PreparedInstance
from repository.uids import sop_instance_uid_for_upload, uid_from

if TYPE_CHECKING:
    from ingest.pipeline import IncomingFile, Ingestor

VIDEO_TYPES = frozenset({"video/mp4", "video/quicktime"})
DOCUMENT_TYPES = frozenset({"application/pdf"})
MEDIA_FIELDS = ("document_kind", "document_title", "covers")


def media_type_of(path: Path) -> str:
    with path.open("rb") as handle:
        return sniff(handle.read(HEAD_SIZE))


def size_limit(settings, media_type: str) -> int:  # type: ignore[no-untyped-def]
    """The largest file accepted for this kind: videos have their own, larger limit."""
    return settings.max_video_bytes if media_type in VIDEO_TYPES else settings.max_file_bytes


def prepare_media(
    ingestor: "Ingestor",
    incoming: "IncomingFile",
    sha: str,
    size: int,
    context: IngestContext,
    study_uid: str,
    number: int,
    route: str,
    now: dt.datetime,
    spool: Path,
    *,
    batch: Sequence[tuple["IncomingFile", tuple[str, int]]] = (),
    fields: Mapping[str, str | None] | None = None,
) -> tuple["IncomingFile", PreparedInstance, str] | None:
    """Spool one video or document as DICOM; ``None`` for anything else (photographs, DICOM)."""
    settings = ingestor.settings
    media_type = media_type_of(incoming.path)
    if size > size_limit(settings, media_type):
        raise PayloadTooLarge(
            f"{incoming.filename}: {size} bytes is more than the limit of {size_limit(settings, media_type)}",
            field="file",
        )
    if media_type not in VIDEO_TYPES | DOCUMENT_TYPES:
        return None
    fields = fields or {}
    source = SourceFile(incoming.path, media_type, sha, size)
    sop_uid = sop_instance_uid_for_upload(sha)
    out = spool / f"{number:05d}.dcm"
    work = Path(tempfile.mkdtemp(prefix="media-", dir=spool))
    try:
        if media_type in VIDEO_TYPES:
            _write_video(source, context, study_uid, sop_uid, number, route, now, work, out, settings)
        else:
            _write_document(source, context, study_uid, sop_uid, number, route, now, out, settings,
                            batch=batch, fields=fields, this=incoming)  # fmt: skip
    except InvalidInput as exc:
        out.unlink(missing_ok=True)
        raise type(exc)(f"{incoming.filename}: {exc.message}", field=exc.field or "file") from exc
    except ValueError as exc:  # a builder's validation
        out.unlink(missing_ok=True)
        raise InvalidInput(f"{incoming.filename}: {exc}", field="file") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    item = PreparedInstance(out, sop_uid, study_uid, _series_uid(study_uid, media_type, context), context.patient.patient_id)
    return incoming, item, media_type


def _series_uid(study_uid: str, media_type: str, context: IngestContext) -> str:
    if media_type in DOCUMENT_TYPES:
        return uid_from("series", study_uid, "DOC")
    return uid_from("series", study_uid, "XC-video", context.body_site.code, context.laterality.value)


def _write_video(source, context, study_uid, sop_uid, number, route, now, work, out, settings) -> None:  # type: ignore[no-untyped-def]
    from converters import video
    from converters.iods.build_media import build_video
    from converters.iods.media import write_video_file

    if not video.is_available():
        raise ConversionFailed("this server cannot store video: install av (PyAV)")
    captured = video.convert(source, workdir=work)
    dataset = build_video(
        captured, context,
        study_instance_uid=study_uid,
        series_instance_uid=_series_uid(study_uid, source.media_type, context),
        sop_instance_uid=sop_uid, series_number=2, instance_number=number,
        ingest_route=route, now=now, local_tz=settings.local_timezone,
    )  # fmt: skip
    write_video_file(dataset, out)


def _write_document(source, context, study_uid, sop_uid, number, route, now, out, settings, *,  # type: ignore[no-untyped-def]
                    batch, fields, this) -> None:
    from converters import pdf
    from converters.iods.build_media import DOCUMENT_KINDS, build_document

    kind = (fields.get("document_kind") or "consent").strip().lower()
    if kind not in DOCUMENT_KINDS:
        raise InvalidInput(f"document_kind must be one of {', '.join(sorted(DOCUMENT_KINDS))}", field="document_kind")
    title = (fields.get("document_title") or "").strip()
    if len(title) > 64 or any(ord(c) < 32 for c in title) or "\\" in title:
        raise InvalidInput("document_title must be at most 64 characters of plain text", field="document_title")
    captured = pdf.convert(source, render_preview=False)
    dataset = build_document(
        captured, context,
        study_instance_uid=study_uid, series_instance_uid=_series_uid(study_uid, source.media_type, context),
        sop_instance_uid=sop_uid, series_number=3, instance_number=number,
        ingest_route=route, now=now, document_kind=kind, document_title=title,
        source_instances=_covered(context, batch, fields, this), local_tz=settings.local_timezone,
    )  # fmt: skip
    dcmwrite(out, dataset, enforce_file_format=True)


def _covered(context: IngestContext, batch, fields, this) -> tuple[tuple[str, str], ...]:  # type: ignore[no-untyped-def]
    """The images a document covers: those named in ``covers``, else the other files of the upload."""
    named = (fields.get("covers") or "").replace(",", " ").split()
    if named:
        bad = [uid for uid in named if not is_valid_uid(uid)]
        if bad:
            raise InvalidInput(f"covers: {bad[0]!r} is not a SOP Instance UID", field="covers")
        # The class of a named instance is not known here without reading it; the photograph
        # class of the upload's modality is the common case, and the UID is what links them.
        return tuple((_photo_class(context), uid) for uid in dict.fromkeys(named))
    covered = []
    for incoming, (sha, _size) in batch:
        if incoming is this:
            continue
        kind = media_type_of(incoming.path)
        if kind in DOCUMENT_TYPES or kind == "application/dicom":
            continue
        sop_class = VideoPhotographicImageStorage if kind in VIDEO_TYPES else _photo_class(context)
        covered.append((sop_class, sop_instance_uid_for_upload(sha)))
    return tuple(covered)


def _photo_class(context: IngestContext) -> str:
    return DermoscopicPhotographyImageStorage if context.modality == ModalityValues.DMS else VLPhotographicImageStorage


__all__ = ["DOCUMENT_TYPES", "MEDIA_FIELDS", "VIDEO_TYPES", "EncapsulatedPDFStorage", "prepare_media", "size_limit"]
