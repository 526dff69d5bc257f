"""Single byte ranges (RFC 9110 14) over a representation read piece by piece.

Shared by the routes that serve large values straight from the store (a video's MP4, WADO-RS
bulk data), so a client can seek in gigabytes while nothing is held in memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from starlette.responses import Response, StreamingResponse

CHUNK = 1024 * 1024
# one range only: several (bytes=0-1,5-9) are answered with the whole body, as RFC 9110 allows,
# rather than merged (a header of a thousand tiny ranges must not cost a thousand reads)
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class RangeNotSatisfiable(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable for {size} bytes")
        self.size = size


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one range asked for as (first, last) inclusive; None to send everything.

    A malformed or multiple range is ignored (the whole body); a range that starts past the
    end, or an empty suffix (``bytes=-0``), raises ``RangeNotSatisfiable``.
    """
    match = _RANGE.match(header or "")
    if not match or match.groups() == ("", ""):
        return None
    first_text, last_text = match.groups()
    if first_text == "":
        length = int(last_text)
        if length == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - length), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size:
        raise RangeNotSatisfiable(size)
    if first > last:
        return None  # invalid (RFC 9110 14.1.1): ignored
    return first, min(last, size - 1)


def continues_playback(header: str | None) -> bool:
    """Whether a request only continues one already made: a single range from past byte 0.

    A player (``<video>``, OHIF) asks for one video in many ranges; the request that starts it
    (no range, or from byte 0) is the audited view and these are not audited again. Anything
    that may send the whole value (a suffix range, several, an invalid or malformed one) is.
    """
    match = _RANGE.match(header or "")
    if not match or not match.group(1):
        return False
    first, last = int(match.group(1)), match.group(2)
    return first > 0 and (last == "" or int(last) >= first)


def ranged_response(
    size: int,
    read_at: Callable[[int, int], bytes],
    range_header: str | None,
    *,
    media_type: str,
    headers: dict[str, str],
) -> Response:
    """200 with the whole value, 206 with the range asked for, or 416; ``read_at(position,
    length)`` gives the bytes, read a chunk at a time as the body is sent."""
    headers = {**headers, "Accept-Ranges": "bytes"}
    try:
        wanted = byte_range(range_header, size)
    except RangeNotSatisfiable:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    first, last = wanted or (0, size - 1)
    headers["Content-Length"] = str(last - first + 1)
    if wanted is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    status = 200 if wanted is None else 206
    return StreamingResponse(_chunks(read_at, first, last), status_code=status, media_type=media_type, headers=headers)


def _chunks(read_at: Callable[[int, int], bytes], first: int, last: int) -> Iterator[bytes]:
    position = first
    while position <= last:
        data = read_at(position, min(CHUNK, last - position + 1))
        if not data:
            return  # the store gave less than it said it held: end rather than spin
        position += len(data)
        yield data
