"""Uploads of photographs (``POST /api/v1/images``) and a patient's image history."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ingest.pipeline import BatchResult
from repository.errors import InvalidInput
from repository.patients import normalise_patient_id
from search.query import InstanceQuery
from web.auth import CallerDep
from web.deps import ServicesDep
from web.uploads import receive_form
from web.views import group_by_study, links

router = APIRouter(prefix="/api/v1", tags=["images"])


class GrantRequest(BaseModel):
    reason: str = Field(min_length=10, max_length=500, description="why this patient's images are needed for direct care")

FORM_FIELDS = (
    "nhs_number", "family_name", "given_name", "birth_date", "sex", "trust", "specialty",
    "body_site", "laterality", "consent", "consent_recorded_by", "description", "photographer",
    "accession_number", "study_uid", "modality", "tracking_id",
    "document_kind", "document_title", "covers",  # PDFs (ingest/media.py)
    "confirm_identity",  # true: the patient's details have changed (repository/identity.py)
)  # fmt: skip

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


# The request body is documented here rather than declared as Form parameters, because
# FastAPI would then parse (and spool) the whole form before the handler runs.
_UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "nhs_number", "trust", "specialty", "body_site", "consent", "photographer"],
                    "properties": {
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        **{name: {"type": "string"} for name in FORM_FIELDS},
                    },
                }
            }
        },
    }
}


@router.post(
    "/images",
    status_code=201,
    openapi_extra=_UPLOAD_SCHEMA,
    responses={
        200: {"description": "every file was already stored"},
        202: {"description": "stored, but not yet searchable (index unavailable)"},
        409: {"description": "an image is already stored for another patient, or (identity_mismatch) the "
                             "patient details differ from those the trust holds for the NHS number"},
        413: {"description": "upload too large"},
        415: {"description": "a file is not a supported image"},
        422: {"description": "a field or a file is invalid; the body names it"},
        503: {"description": "the object store is unavailable; retry"},
    },
)
async def upload_images(request: Request, services: ServicesDep, caller: CallerDep) -> JSONResponse:
    """Upload a batch of photographs for one patient; each becomes a DICOM instance.

    All or nothing: if any file or field is invalid, nothing from the batch is stored.
    """
    settings = services.settings
    spool = Path(tempfile.mkdtemp(prefix="ologies-upload-", dir=settings.spool_dir))
    try:
        form = await receive_form(
            request, spool, max_file_bytes=settings.max_file_bytes, max_files=settings.max_files_per_upload,
            max_video_bytes=settings.max_video_bytes,
        )
        incoming = form.files.get("file", [])
        if not incoming:
            raise InvalidInput("at least one file part named 'file' is required", field="file")
        fields = {name: form.fields.get(name) for name in FORM_FIELDS}
        batch = await run_in_threadpool(
            services.guard.upload, caller, services.ingestor.ingest, incoming, fields, route="api"
        )
    finally:
        await run_in_threadpool(shutil.rmtree, spool, True)
    return batch_response(batch)


@router.get("/patients/{nhs_number}/images")
def patient_images(
    nhs_number: str,
    services: ServicesDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """A patient's image history, newest first, grouped by study."""
    patient_id, _ = normalise_patient_id(nhs_number, allow_test_numbers=True)
    guard = services.guard
    page = guard.search(caller, InstanceQuery(patient_id=patient_id, limit=limit, offset=offset), detail="patient history")
    return {
        "nhs_number": patient_id,
        "total": page.total,
        # images at trusts the caller cannot see yet: counts only, for a clinician to ask
        "other_trusts": guard.other_trust_counts(caller, patient_id),
        "limit": limit,
        "offset": offset,
        "facets": page.facets,
        "studies": group_by_study(page.items),
    }


@router.post("/patients/{nhs_number}/access-grants", status_code=201)
def grant_access(nhs_number: str, body: GrantRequest, services: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    """State a reason for direct care to see this patient's images at other trusts (time-limited,
    audited as an override, reported to information governance)."""
    patient_id, _ = normalise_patient_id(nhs_number, allow_test_numbers=True)
    grant = services.guard.grant_cross_trust(
        caller, patient_id, body.reason, services.accounts, services.settings.cross_trust_grant_hours
    )
    return {"nhs_number": patient_id, "expires_at": grant.expires_at.isoformat(), "reason": grant.reason}
