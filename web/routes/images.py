"""Uploads of photographs (``POST /api/v1/images``) and a patient's image history."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUploadFile

from ingest.pipeline import BatchResult, IncomingFile
from repository.errors import InvalidInput
from repository.patients import normalise_patient_id
from search.query import InstanceQuery
from web.deps import ServicesDep
from web.views import group_by_study, links

router = APIRouter(prefix="/api/v1", tags=["images"])

FORM_FIELDS = (
    "nhs_number", "family_name", "given_name", "birth_date", "sex", "trust", "specialty",
    "body_site", "laterality", "consent", "consent_recorded_by", "description", "photographer",
    "accession_number", "study_uid", "modality", "tracking_id",
)  # fmt: skip
Text = Annotated[str | None, Form()]


def batch_response(batch: BatchResult) -> JSONResponse:
    files: list[dict[str, Any]] = []
    for item in batch.files:
        o = item.outcome
        files.append({
            "filename": item.filename,
            "status": o.status,
            "sop_instance_uid": o.sop_instance_uid,
            "series_instance_uid": o.series_instance_uid,
            "study_instance_uid": o.study_instance_uid,
            "media_type": item.media_type,
            "searchable": o.indexed,
            "links": links(o.sop_instance_uid),
        })  # fmt: skip
    body: dict[str, Any] = {"study_instance_uid": batch.study_instance_uid, "searchable": batch.all_indexed, "files": files}
    if not batch.all_indexed:
        body["message"] = "stored safely; not yet searchable because the search index is unavailable"
        status = 202
    else:
        status = 201 if batch.any_created else 200
    return JSONResponse(body, status_code=status)


@router.post(
    "/images",
    status_code=201,
    responses={
        200: {"description": "every file was already stored"},
        202: {"description": "stored, but not yet searchable (index unavailable)"},
        409: {"description": "an image is already stored for another patient"},
        413: {"description": "upload too large"},
        415: {"description": "a file is not a supported image"},
        422: {"description": "a field or a file is invalid; the body names it"},
        503: {"description": "the object store is unavailable; retry"},
    },
)
async def upload_images(
    request: Request,
    services: ServicesDep,
    file: Annotated[list[UploadFile], Form(description="one or more image files")] = [],  # noqa: B006
    nhs_number: Text = None, family_name: Text = None, given_name: Text = None, birth_date: Text = None,
    sex: Text = None, trust: Text = None, specialty: Text = None, body_site: Text = None,
    laterality: Text = None, consent: Text = None, consent_recorded_by: Text = None,
    description: Text = None, photographer: Text = None, accession_number: Text = None,
    study_uid: Text = None, modality: Text = None, tracking_id: Text = None,
) -> JSONResponse:  # fmt: skip
    """Upload a batch of photographs for one patient; each becomes a DICOM instance.

    All or nothing: if any file or field is invalid, nothing from the batch is stored.
    """
    form = await request.form()
    fields = {name: form.get(name) for name in FORM_FIELDS}
    fields = {k: (v if isinstance(v, str) else None) for k, v in fields.items()}
    uploads = [u for u in form.getlist("file") if isinstance(u, StarletteUploadFile)]
    if not uploads:
        raise InvalidInput("at least one file part named 'file' is required", field="file")
    spool = Path(tempfile.mkdtemp(prefix="ologies-upload-", dir=services.settings.spool_dir))
    try:
        incoming = await run_in_threadpool(_spool_uploads, uploads, spool)
        batch = await run_in_threadpool(services.ingestor.ingest, incoming, fields, route="api")
    finally:
        shutil.rmtree(spool, ignore_errors=True)
        for upload in uploads:
            await upload.close()
    return batch_response(batch)


def _spool_uploads(uploads: list[StarletteUploadFile], spool: Path) -> list[IncomingFile]:
    incoming = []
    for number, upload in enumerate(uploads):
        path = spool / f"{number:05d}"
        upload.file.seek(0)
        with path.open("wb") as out:
            shutil.copyfileobj(upload.file, out, 1024 * 1024)
        incoming.append(IncomingFile(path, upload.filename or f"file {number + 1}"))
    return incoming


@router.get("/patients/{nhs_number}/images")
def patient_images(
    nhs_number: str,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """A patient's image history, newest first, grouped by study."""
    patient_id, _ = normalise_patient_id(nhs_number, allow_test_numbers=True)
    page = services.repository.index.search(InstanceQuery(patient_id=patient_id, limit=limit, offset=offset))
    return {
        "nhs_number": patient_id,
        "total": page.total,
        "limit": limit,
        "offset": offset,
        "facets": page.facets,
        "studies": group_by_study(page.items),
    }
