"""Receive a ``multipart/form-data`` upload by streaming each file part straight to a spool file
on disk, hashing it on the way in, so that a request never sits in memory whatever its size
(RELIABILITY.md 2.1: bounded parts, bounded fields, bounded part count).

Text fields are kept in memory up to a small limit; anything else about the request that is
wrong is an ``InvalidInput`` (422) or ``PayloadTooLarge`` (413) naming the problem.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from converters.sniff import HEAD_SIZE, sniff
from ingest.pipeline import IncomingFile
from repository.errors import InvalidInput, PayloadTooLarge

MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 100


MAX_BOUNDARY = 70  # RFC 2046 section 5.1.1


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    value: bytearray = field(default_factory=bytearray)
    handle: IO[bytes] | None = None
    path: Path | None = None
    digest: "hashlib._Hash | None" = None
    size: int = 0
    head: bytes = b""  # first bytes, sniffed to choose the size limit (videos may be larger)
    limit: int | None = None  # chosen once the head is complete, not sniffed again per chunk


@dataclass
class ReceivedForm:
    fields: dict[str, str]
    files: dict[str, list[IncomingFile]]


async def receive_form(
    request: Request, spool: Path, *, max_file_bytes: int, max_files: int, max_video_bytes: int = 0
) -> ReceivedForm:
    """Parse the request body into text fields and spooled files (each with its SHA-256).

    A file part whose first bytes are an MP4 or QuickTime video may grow to ``max_video_bytes``
    instead of ``max_file_bytes``.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidInput("the request must be multipart/form-data with a boundary", field="content-type")
    if len(boundary) > MAX_BOUNDARY:  # python-multipart refuses over 256 with an error of its own (was a 500)
        raise InvalidInput(f"the multipart boundary is longer than {MAX_BOUNDARY} characters (RFC 2046)", field="content-type")
    fields: dict[str, str] = {}
    files: dict[str, list[IncomingFile]] = {}
    current = _Part()
    header_field = bytearray()
    header_value = bytearray()
    headers: dict[bytes, bytes] = {}
    count = {"files": 0, "fields": 0}

    def on_part_begin() -> None:
        nonlocal current
        current = _Part()
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        if len(headers) > 16:
            raise InvalidInput("a multipart part has too many headers", field="content-type")
        headers[bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        current.name = disposition.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in disposition:
            current.filename = disposition[b"filename"].decode("utf-8", "replace")
            count["files"] += 1
            if count["files"] > max_files:
                raise PayloadTooLarge(f"at most {max_files} files per upload", field=current.name or "file")
            current.path = spool / f"{count['files']:05d}"
            current.handle = current.path.open("wb")
            current.digest = hashlib.sha256()
        else:
            count["fields"] += 1
            if count["fields"] > MAX_FIELDS:
                raise InvalidInput(f"more than {MAX_FIELDS} form fields", field=current.name)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        chunk = memoryview(data)[start:end]  # written and hashed in place, not copied first
        if current.handle is not None:
            current.size += len(chunk)
            if current.limit is None or len(current.head) < HEAD_SIZE:
                current.head += chunk[: HEAD_SIZE - len(current.head)]
                video = max_video_bytes and sniff(current.head).startswith("video/")
                current.limit = max(max_video_bytes, max_file_bytes) if video else max_file_bytes
            if current.size > current.limit:
                raise PayloadTooLarge(f"{current.filename}: larger than the limit of {current.limit} bytes", field=current.name)
            current.handle.write(chunk)
            current.digest.update(chunk)  # type: ignore[union-attr]
        else:
            current.value.extend(chunk)
            if len(current.value) > MAX_FIELD_BYTES:
                raise InvalidInput(f"form field {current.name!r} is too long", field=current.name)

    def on_part_end() -> None:
        if current.handle is not None and current.path is not None:
            current.handle.close()
            current.handle = None
            name = current.filename or f"file {count['files']}"
            files.setdefault(current.name, []).append(
                IncomingFile(current.path, name, current.digest.hexdigest() if current.digest else None)
            )
        else:
            try:
                fields[current.name] = current.value.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(f"form field {current.name!r} is not UTF-8 text", field=current.name) from None

    parser = MultipartParser(  # never raises now: the boundary was checked above
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise InvalidInput(f"the multipart body is malformed: {exc}", field="content-type") from exc
    finally:
        if current.handle is not None:
            current.handle.close()
    return ReceivedForm(fields, files)
