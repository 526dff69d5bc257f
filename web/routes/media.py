"""Playback of stored videos in the browser: ``GET /api/v1/instances/{uid}/video``.

The MP4 is served straight from the stored DICOM object, from the byte offsets of its Pixel
Data fragments (``repository.media.bitstream_spans``), with HTTP range requests (RFC 9110 14),
so a browser can seek in a video of gigabytes and nothing is copied or held in memory.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from repository.access import Action
from repository.media import SpanReader, bitstream_spans
from web.auth import CallerDep
from web.deps import ServicesDep
from web.ranges import CHUNK, PLAYBACKS, ranged_response

router = APIRouter(prefix="/api/v1/instances", tags=["instances"])


@router.get(
    "/{uid}/video",
    response_class=StreamingResponse,
    responses={200: {"content": {"video/mp4": {}}}, 206: {"description": "partial content"}, 416: {"description": "range not satisfiable"}},
)
async def instance_video(uid: str, request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """The video's MP4 bitstream, for a ``<video>`` element; supports ``Range``."""
    requested = request.headers.get("range")
    # A player asks for many ranges of one video: the request that starts it is the audited
    # view; later ranges are still checked but not audited again.
    audit = PLAYBACKS.needs_audit(caller.principal.subject, uid, requested)
    await run_in_threadpool(services.guard.open_instance, caller, uid, Action.VIEW, audit=audit, detail="video")
    repository = services.repository
    key = await run_in_threadpool(repository.locate, uid)
    stream = await run_in_threadpool(bitstream_spans, repository.store, key)
    reader = SpanReader(repository.store, key, stream.spans, block=CHUNK)
    headers = {"Cache-Control": "private, max-age=86400", "ETag": f'"{uid}-video"',
               "Content-Disposition": f'inline; filename="{uid}.mp4"', "X-Content-Type-Options": "nosniff"}  # fmt: skip
    return ranged_response(stream.size, reader.read_at, requested, media_type="video/mp4", headers=headers)
