"""``multipart/related`` (RFC 2387), both ways, for DICOMweb.

Receiving (STOW-RS) works like ``web/uploads.py``: parts are hashed on the way in, and the number
of parts, their headers and their sizes are bounded. The first ``MEMORY_BUDGET`` bytes of a
request are kept in memory (a camera photograph is then never written to a spool file and read
back, which is a third of the work of storing it); beyond that, parts stream straight to spool
files on disk, so a request never sits in memory whatever its size. Sending (WADO-RS) streams
parts from the object store in chunks.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from repository.errors import MalformedRequest, PayloadTooLarge

MAX_PART_HEADERS = 16
MEMORY_BUDGET = 32 * 1024 * 1024  # bytes of one request kept in memory; the rest is spooled
MAX_HEADER_BYTES = 8192
MAX_PREAMBLE_BYTES = 64 * 1024  # text before the first boundary, skipped (RFC 2046 5.1.1)
CHUNK = 1024 * 1024


@dataclass
class ReceivedPart:
    """One part, in memory (``data``) or spooled to ``path``: its media type (parameters
    lower-cased), identity, size and SHA-256."""

    number: int
    media_type: str
    parameters: dict[str, str]
    path: Path | None
    sha256: str
    size: int
    content_location: str = ""
    content_id: str = ""
    data: bytes | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()

    def source(self) -> bytes | Path:
        """The bytes when the part was kept in memory, else its spooled file (which
        ``converters.dicom.prepare_dicom`` maps rather than reads)."""
        return self.data if self.data is not None else self.path  # type: ignore[return-value]

    def head(self, size: int) -> bytes:
        """The first ``size`` bytes (for sniffing), without reading a spooled part whole."""
        if self.data is not None:
            return self.data[:size]
        assert self.path is not None
        with self.path.open("rb") as handle:
            return handle.read(size)

    def spooled(self, spool: Path) -> Path:
        """A file holding the part (written now if it was kept in memory)."""
        if self.path is None:
            self.path = spool / f"{self.number:05d}.part"
            self.path.write_bytes(self.data or b"")
        return self.path


@dataclass
class ReceivedRelated:
    """The parsed request: its root ``type`` parameter and its parts, in order."""

    type: str
    parts: list[ReceivedPart] = field(default_factory=list)


def media_type_of(value: str) -> tuple[str, dict[str, str]]:
    """``type/subtype`` lower-cased, and the parameters (names lower-cased, quotes removed)."""
    main, options = parse_options_header(value)
    params = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in options.items()}
    return main.decode("latin-1").strip().lower(), params


async def receive_related(
    request: Request, spool: Path, *, max_part_bytes: int, max_parts: int, accepted_types: Iterable[str]
) -> ReceivedRelated:
    """Spool every part of a ``multipart/related`` request (or of a single-part body whose own
    media type is one of ``accepted_types``).

    Raises ``MalformedRequest`` (400) for a body that cannot be read, ``UnsupportedMediaType``
    (415, raised by the caller from ``type``) and ``PayloadTooLarge`` (413) for too many or too
    large parts.
    """
    content_type, params = media_type_of(request.headers.get("content-type", ""))
    accepted = set(accepted_types)
    if content_type in accepted:
        return ReceivedRelated(content_type, [await _single(request, spool, content_type, params, max_part_bytes)])
    if content_type != "multipart/related":
        return ReceivedRelated(content_type)  # the caller refuses it with 415
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise MalformedRequest("a multipart/related request needs a boundary parameter (at most 200 characters)", field="content-type")
    root_type = params.get("type", "").strip().lower()
    if not root_type:
        raise MalformedRequest('a multipart/related request needs a type parameter, e.g. type="application/dicom"', field="content-type")
    received = ReceivedRelated(root_type)
    state = _State(spool, received, max_part_bytes, max_parts, root_type, MEMORY_BUDGET)
    parser = MultipartParser(
        boundary.encode("latin-1"),
        {
            "on_part_begin": state.part_begin,
            "on_part_data": state.part_data,
            "on_part_end": state.part_end,
            "on_header_field": state.header_field,
            "on_header_value": state.header_value,
            "on_header_end": state.header_end,
            "on_headers_finished": state.headers_finished,
        },
    )
    preamble = _Preamble(boundary.encode("latin-1"))
    try:
        async for chunk in request.stream():
            if chunk := preamble.skip(chunk):
                parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise MalformedRequest(f"the multipart/related body is malformed: {exc}", field="content-type") from exc
    finally:
        state.close()
    if state.open_part:
        raise MalformedRequest("the multipart/related body ends inside a part (no closing boundary)", field="content-type")
    if not received.parts:
        raise MalformedRequest("the multipart/related body has no parts", field="content-type")
    return received


async def _single(request: Request, spool: Path, media_type: str, params: dict[str, str], limit: int) -> ReceivedPart:
    path = spool / "00001.part"
    digest, size = hashlib.sha256(), 0
    chunks: list[bytes] = []
    handle: IO[bytes] | None = None
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the body is larger than the limit of {limit} bytes", field="body")
            digest.update(chunk)
            if handle is None and size <= MEMORY_BUDGET:
                chunks.append(chunk)
                continue
            if handle is None:
                handle = path.open("wb")
                handle.writelines(chunks)
                chunks = []
            handle.write(chunk)
    finally:
        if handle is not None:
            handle.close()
    if size == 0:
        raise MalformedRequest("the request body is empty", field="body")
    if handle is None:
        return ReceivedPart(1, media_type, params, None, digest.hexdigest(), size, data=b"".join(chunks))
    return ReceivedPart(1, media_type, params, path, digest.hexdigest(), size)


class _Preamble:
    """Drops what comes before the first boundary, which RFC 2046 (5.1.1) says to ignore and the
    parser refuses: the first ``--boundary`` at the start of the body or of a line, followed by
    the end of the line, white space or ``--``. At most ``MAX_PREAMBLE_BYTES`` are held."""

    def __init__(self, boundary: bytes) -> None:
        self.delimiter = b"--" + boundary
        self.held = b""
        self.found = False

    def skip(self, chunk: bytes) -> bytes:
        """What of ``chunk`` (and of what was held back) the parser is to see."""
        if self.found:
            return chunk
        self.held += chunk
        for at in self._candidates():
            after = self.held[at + len(self.delimiter) : at + len(self.delimiter) + 1]
            if not after:
                break  # the next chunk tells whether this is the boundary
            if after in b"\r\n \t-":
                self.found = True
                rest, self.held = self.held[at:], b""
                return rest
        if len(self.held) > MAX_PREAMBLE_BYTES:
            raise MalformedRequest(
                f"the multipart/related body has no boundary in its first {MAX_PREAMBLE_BYTES} bytes", field="content-type"
            )
        return b""

    def _candidates(self) -> Iterator[int]:
        if self.held.startswith(self.delimiter):
            yield 0
        at = self.held.find(b"\n" + self.delimiter)
        while at >= 0:
            yield at + 1
            at = self.held.find(b"\n" + self.delimiter, at + 1)


class _State:
    def __init__(self, spool: Path, received: ReceivedRelated, limit: int, max_parts: int, root_type: str, budget: int) -> None:
        self.spool, self.received, self.limit, self.max_parts = spool, received, limit, max_parts
        self.root_type = root_type
        self.budget = budget  # bytes that may still be kept in memory
        self.headers: dict[str, str] = {}
        self.field, self.value = bytearray(), bytearray()
        self.handle: IO[bytes] | None = None
        self.chunks: list[bytes] = []
        self.digest = hashlib.sha256()
        self.size = 0
        self.path: Path | None = None
        self.open_part = False
        self.header_bytes = 0

    def part_begin(self) -> None:
        self.headers, self.size, self.digest, self.header_bytes = {}, 0, hashlib.sha256(), 0
        self.chunks, self.path, self.handle = [], None, None
        self.open_part = True

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.field.extend(data[start:end])
        self._count(end - start)

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self.value.extend(data[start:end])
        self._count(end - start)

    def _count(self, n: int) -> None:
        self.header_bytes += n
        if self.header_bytes > MAX_HEADER_BYTES:
            raise MalformedRequest("a multipart part has headers longer than 8 KiB", field="content-type")

    def header_end(self) -> None:
        if len(self.headers) >= MAX_PART_HEADERS:
            raise MalformedRequest("a multipart part has too many headers", field="content-type")
        self.headers[bytes(self.field).decode("latin-1").strip().lower()] = bytes(self.value).decode("latin-1").strip()
        self.field.clear()
        self.value.clear()

    def headers_finished(self) -> None:
        if len(self.received.parts) + 1 > self.max_parts:
            raise PayloadTooLarge(f"at most {self.max_parts} parts per request", field="body")

    def part_data(self, data: bytes, start: int, end: int) -> None:
        n = end - start
        self.size += n
        if self.size > self.limit:
            raise PayloadTooLarge(f"part {len(self.received.parts) + 1} is larger than the limit of {self.limit} bytes", field="body")
        chunk = data if (start, end) == (0, len(data)) else memoryview(data)[start:end]
        self.digest.update(chunk)
        if self.handle is None and n <= self.budget:
            self.budget -= n
            self.chunks.append(chunk if isinstance(chunk, bytes) else bytes(chunk))
            return
        if self.handle is None:  # over the memory budget: this part goes to disk
            self.path = self.spool / f"{len(self.received.parts) + 1:05d}.part"
            self.handle = self.path.open("wb")
            self.handle.writelines(self.chunks)
            self.budget += sum(len(c) for c in self.chunks)
            self.chunks = []
        self.handle.write(chunk)

    def part_end(self) -> None:
        data = None
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        else:
            data = b"".join(self.chunks)
            self.chunks = []
        media_type, params = media_type_of(self.headers.get("content-type", "") or self.root_type)
        self.received.parts.append(ReceivedPart(
            len(self.received.parts) + 1, media_type, params, self.path, self.digest.hexdigest(), self.size,
            self.headers.get("content-location", ""), self.headers.get("content-id", "").strip("<>"), data,
        ))  # fmt: skip
        self.open_part = False

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


# -- sending -------------------------------------------------------------------------------------
def new_boundary() -> str:
    return "ologies-" + secrets.token_hex(16)


def related_content_type(part_type: str, boundary: str, transfer_syntax: str | None = None) -> str:
    value = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return value + (f"; transfer-syntax={transfer_syntax}" if transfer_syntax else "")


def part_header(boundary: str, content_type: str, *, location: str = "", length: int | None = None) -> bytes:
    lines = [f"--{boundary}", f"Content-Type: {content_type}"]
    if location:
        lines.append(f"Content-Location: {location}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def closing(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode("latin-1")


def stream_parts(boundary: str, parts: Iterable[tuple[str, Iterable[bytes], str, int | None]]) -> Iterator[bytes]:
    """Each part is (content type, chunks, content location, length)."""
    for content_type, chunks, location, length in parts:
        yield part_header(boundary, content_type, location=location, length=length)
        yield from chunks
        yield b"\r\n"
    yield closing(boundary)
