"""One instance: metadata, the DICOM file, and its JPEG renditions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from repository.access import Action, PurposeValues
from web.auth import CallerDep
from web.deps import ServicesDep
from web.views import instance_view

router = APIRouter(prefix="/api/v1/instances", tags=["instances"])

# Instances never change under a UID, so their renditions can be cached hard (privately:
# these are patient images and must not sit in shared caches).
IMMUTABLE = "private, max-age=86400, immutable"


Purpose = Annotated[PurposeValues, Query(description="what the image is used for; consent limits teaching and publication")]


@router.get("/{uid}")
def instance_metadata(uid: str, services: ServicesDep, caller: CallerDep, purpose: Purpose = PurposeValues.DIRECT_CARE) -> dict[str, Any]:
    """Metadata of one instance (from the index, or from the object itself if not yet indexed)."""
    return instance_view(services.guard.open_instance(caller, uid, Action.VIEW, purpose=purpose, detail="metadata"))


@router.get("/{uid}/file", response_class=StreamingResponse, responses={200: {"content": {"application/dicom": {}}}})
def instance_file(uid: str, services: ServicesDep, caller: CallerDep) -> StreamingResponse:
    """The stored DICOM object, byte for byte (application/dicom)."""
    services.guard.open_instance(caller, uid, Action.DOWNLOAD, detail="DICOM file")
    repository = services.repository
    key = repository.locate(uid)
    size = repository.store.head(key).size
    handle = repository.store.open(key)

    def chunks():  # type: ignore[no-untyped-def]
        with handle:
            while chunk := handle.read(1024 * 1024):
                yield chunk

    return StreamingResponse(
        chunks(),
        media_type="application/dicom",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{uid}.dcm"',
            # Not immutable: a consent change or a patient reconciliation rewrites the object.
            "Cache-Control": "private, no-cache",
        },
    )


def _jpeg(data: bytes, uid: str, name: str, request: Request) -> Response:
    etag = f'"{uid}-{name}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": IMMUTABLE})
    return Response(data, media_type="image/jpeg", headers={"ETag": etag, "Cache-Control": IMMUTABLE})


@router.get("/{uid}/rendered", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
async def instance_rendered(
    uid: str, request: Request, services: ServicesDep, caller: CallerDep, purpose: Purpose = PurposeValues.DIRECT_CARE
) -> Response:
    """An upright JPEG rendering of the image, with no metadata."""
    data = await run_in_threadpool(_checked, services, caller, uid, purpose, "rendered", services.renditions.rendered)
    return _jpeg(data, uid, "rendered", request)


@router.get("/{uid}/thumbnail", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
async def instance_thumbnail(
    uid: str, request: Request, services: ServicesDep, caller: CallerDep, purpose: Purpose = PurposeValues.DIRECT_CARE
) -> Response:
    """A small JPEG thumbnail, with no metadata."""
    data = await run_in_threadpool(_checked, services, caller, uid, purpose, "thumbnail", services.renditions.thumbnail)
    return _jpeg(data, uid, "thumbnail", request)


def _checked(services, caller, uid: str, purpose: PurposeValues, detail: str, rendition) -> bytes:  # type: ignore[no-untyped-def]
    """Authorise (and audit) the view, then the rendition: one trip to the thread pool, not two
    (under load each trip waits its turn for a thread and for the interpreter lock)."""
    services.guard.open_instance(caller, uid, Action.VIEW, purpose=purpose, detail=detail)
    return rendition(uid)  # type: ignore[no-any-return]
