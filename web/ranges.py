"""Single byte ranges (RFC 9110 14) over a representation read piece by piece.

Shared by the routes that serve large values straight from the store (a video's MP4, WADO-RS
bulk data), so a client can seek in gigabytes while nothing is held in memory.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
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


class Playbacks:
    """Which video playbacks this process has audited lately, so that a player's many ranges of
    one video make one audit record, not hundreds, and yet no request goes unaudited that does
    not continue an audited one: a lone ``Range: bytes=1-`` (the whole MP4 but its first byte,
    always 0) is audited like any first request.

    Per process: a range that reaches another worker or server than the playback's start is
    audited there once more, which errs on the side of the record."""

    def __init__(self, *, window_s: float = 4 * 3600, capacity: int = 20_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s, self.capacity, self._clock = window_s, capacity, clock
        self._started: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def needs_audit(self, subject: str, uid: str, header: str | None) -> bool:
        """Whether this request is to be audited; notes it as an audited playback if so."""
        key, now = (subject, uid), self._clock()
        with self._lock:
            started = self._started.get(key)
            if continues_playback(header) and started is not None and now - started < self.window_s:
                return False
            self._started[key] = now
            self._started.move_to_end(key)
            while len(self._started) > self.capacity:
                self._started.popitem(last=False)
            return True


#: this process's memory of audited playbacks (the video route and WADO-RS video bulk data)
PLAYBACKS = Playbacks()


def continues_playback(header: str | None) -> bool:
    """Whether a request could only continue one already made: a single range from past byte 0.

    A player (``<video>``, OHIF) asks for one video in many ranges; the request that starts it
    (no range, or from byte 0) is the audited view. Anything that may send the whole value (a
    suffix range, several, an invalid or malformed one) is not a continuation. ``Playbacks``
    decides whether there is a playback to continue.
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
