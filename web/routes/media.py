"""Playback of stored videos in the browser: ``GET /api/v1/instances/{uid}/video``.

The MP4 is served straight from the stored DICOM object, from the byte offsets of its Pixel
Data fragments (``repository.media.bitstream_spans``), with HTTP range requests (RFC 9110 14),
so a browser can seek in a video of gigabytes and nothing is copied or held in memory.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from repository.access import Action
from repository.media import SpanReader, bitstream_spans
from web.auth import CallerDep
from web.deps import ServicesDep

router = APIRouter(prefix="/api/v1/instances", tags=["instances"])

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 1024 * 1024


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) of a single byte range, ``None`` for the whole; ``ValueError`` if unsatisfiable."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        return None  # multiple or malformed ranges: answer with the whole representation
    first, last = match.groups()
    if first == "":
        length = int(last)
        if length == 0:
            raise ValueError("empty suffix range")
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ValueError("range not satisfiable")
    return start, end


@router.get(
    "/{uid}/video",
    response_class=StreamingResponse,
    responses={200: {"content": {"video/mp4": {}}}, 206: {"description": "partial content"}, 416: {"description": "range not satisfiable"}},
)
async def instance_video(uid: str, request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """The video's MP4 bitstream, for a ``<video>`` element; supports ``Range``."""
    requested = request.headers.get("range")
    # A player asks for many ranges of one video: the first request (whole, or from byte 0) is
    # the audited view; later ranges are still checked but not audited again.
    first_look = not requested or requested.strip().startswith("bytes=0-")
    await run_in_threadpool(services.guard.open_instance, caller, uid, Action.VIEW, audit=first_look, detail="video")
    repository = services.repository
    key = await run_in_threadpool(repository.locate, uid)
    stream = await run_in_threadpool(bitstream_spans, repository.store, key)
    size = stream.size
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=86400", "ETag": f'"{uid}-video"',
               "Content-Disposition": f'inline; filename="{uid}.mp4"', "X-Content-Type-Options": "nosniff"}  # fmt: skip
    try:
        wanted = _range(requested, size)
    except ValueError:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    start, end = wanted or (0, size - 1)
    reader = SpanReader(repository.store, key, stream.spans, block=_CHUNK)

    def chunks():  # type: ignore[no-untyped-def]
        position = start
        while position <= end:
            data = reader.read_at(position, min(_CHUNK, end - position + 1))
            if not data:
                return
            position += len(data)
            yield data

    headers["Content-Length"] = str(end - start + 1)
    if wanted is None:
        return StreamingResponse(chunks(), media_type="video/mp4", headers=headers)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(chunks(), status_code=206, media_type="video/mp4", headers=headers)
