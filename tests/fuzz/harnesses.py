"""One atheris harness per converter and parser that reads untrusted bytes (RELIABILITY.md A18).

Each harness takes the fuzzer's bytes and runs them through one parser the way the service does.
The parser may refuse the input only with the project's own errors (``OlogiesError``: a 4xx
answer, a C-STORE failure status, a watched file moved to failed/); anything else escaping it is
a crash: an unhandled exception that would surface as a 500, a hung request (libFuzzer's
``-timeout``) or a memory blow-up (``-rss_limit_mb``). The person-name validators are builders'
checks and refuse with ``ValueError`` by contract (STYLE.md 3.5), which the pipeline maps to 422;
that harness allows it too.

Run one (``tests/fuzz/run.py`` sets up instrumentation and seeds):

    .venv/bin/python -m tests.fuzz.run jpeg_markers -max_total_time=3600

``tests/fuzz/test_fuzz.py`` runs each for a few seconds in CI.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from repository.errors import OlogiesError

_WORK = Path(tempfile.mkdtemp(prefix="ologies-fuzz-"))
_PIXELS = 20_000_000  # the corpus's pixel limit: bombs refused at the header, decodes stay small


@dataclass(frozen=True)
class Harness:
    name: str
    run: Callable[[bytes], None]
    #: corpus kinds and families whose files seed it (tests/corpus/make.py)
    seed_prefixes: tuple[str, ...]
    #: modules to instrument for coverage, besides the project's own
    instrument: tuple[str, ...] = ()
    allowed: tuple[type[BaseException], ...] = (OlogiesError,)
    max_len: int = 65536


def _file(data: bytes, name: str = "input") -> Path:
    path = _WORK / f"{os.getpid()}-{name}"
    path.write_bytes(data)
    return path


def _source(data: bytes, media_type: str):  # type: ignore[no-untyped-def]
    from converters.base import SourceFile

    return SourceFile(_file(data), media_type, hashlib.sha256(data).hexdigest(), len(data))


def _limits():  # type: ignore[no-untyped-def]
    from converters.base import Limits

    return Limits(max_pixels=_PIXELS)


# -- the harnesses -----------------------------------------------------------------------------
def sniff(data: bytes) -> None:
    from converters.sniff import sniff as detect

    detect(data[:4096])  # must never raise at all


def jpeg_markers(data: bytes) -> None:
    from converters.jpeg_markers import chroma_subsampling, colour_model, parse

    parsed = parse(data, limits=_limits())
    colour_model(parsed)
    if parsed.frame is not None:
        chroma_subsampling(parsed.frame)


def jpeg(data: bytes) -> None:
    from converters import jpeg as converter

    converter.convert(_source(data, "image/jpeg"), limits=_limits(), local_tz="Europe/London")


def _raster(media_type: str) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        from converters import raster

        raster.convert(_source(data, media_type), limits=_limits(), local_tz="Europe/London")

    return run


def heic(data: bytes) -> None:
    from converters import heic as converter

    converter.convert(_source(data, "image/heic"), limits=_limits(), local_tz="Europe/London")


def image(data: bytes) -> None:
    """Whatever the bytes sniff as, through the registry, as an upload is."""
    from converters.registry import convert_image

    convert_image(_file(data), limits=_limits(), local_tz="Europe/London")


def exif(data: bytes) -> None:
    from converters.exif import read_exif

    read_exif(b"Exif\x00\x00" + data if not data.startswith(b"Exif") else data, local_tz="Europe/London")


def mp4_boxes(data: bytes) -> None:
    from converters.mp4boxes import metadata_payloads, walk

    handle = io.BytesIO(data)
    found = walk(handle, len(data))
    metadata_payloads(handle, found)


def video(data: bytes) -> None:
    from converters import video as converter

    work = _WORK / f"{os.getpid()}-video"
    work.mkdir(exist_ok=True)
    converter.convert(_source(data, "video/mp4"), workdir=work)


def pdf(data: bytes) -> None:
    from converters import pdf as converter

    converter.convert(_source(data, "application/pdf"), render_preview=False)


def dicom(data: bytes) -> None:
    from converters.dicom import DicomLimits, Provenance, prepare_dicom

    prepare_dicom(data, _WORK / f"{os.getpid()}-out.dcm", provenance=Provenance("api", trust="REM"),
                  allow_test_numbers=True, limits=DicomLimits(max_bytes=64 << 20, max_pixels=_PIXELS))  # fmt: skip


def _request(body: bytes, content_type: bytes):  # type: ignore[no-untyped-def]
    from starlette.requests import Request

    chunks = [body[i : i + 977] for i in range(0, len(body), 977)] or [b""]

    async def receive() -> dict[str, object]:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-type", content_type)], "query_string": b""}
    return Request(scope, receive)


def _split_header(data: bytes, default: bytes) -> tuple[bytes, bytes]:
    """The first line of the input is the Content-Type when it starts with '!' (so the fuzzer can
    mutate the header too); otherwise the usual header is used."""
    if data.startswith(b"!") and b"\n" in data:
        head, _, body = data[1:].partition(b"\n")
        return head[:512], body
    return default, data


def multipart_form(data: bytes) -> None:
    from web.uploads import receive_form

    content_type, body = _split_header(data, b"multipart/form-data; boundary=XyZ")
    spool = Path(tempfile.mkdtemp(dir=_WORK))
    try:
        asyncio.run(receive_form(_request(body, content_type), spool, max_file_bytes=1 << 20, max_files=20,
                                 max_video_bytes=2 << 20))  # fmt: skip
    finally:
        _clear(spool)


def multipart_related(data: bytes) -> None:
    from web.dicomweb.multipart import receive_related

    content_type, body = _split_header(data, b'multipart/related; type="application/dicom"; boundary=XyZ')
    spool = Path(tempfile.mkdtemp(dir=_WORK))
    try:
        asyncio.run(receive_related(_request(body, content_type), spool, max_part_bytes=1 << 20, max_parts=50,
                                    accepted_types=("application/dicom",)))  # fmt: skip
    finally:
        _clear(spool)


def _clear(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def nhs_number(data: bytes) -> None:
    from repository.patients import normalise_nhs_number, normalise_patient_id

    text = data.decode("utf-8", "replace")
    for allow in (True, False):
        normalise_nhs_number(text, allow_test_numbers=allow)
        normalise_patient_id(text, allow_test_numbers=allow)


def person_name(data: bytes) -> None:
    from converters.iods.valuerep import check_person_name, person_name as make

    text = data.decode("utf-8", "replace")
    family, _, given = text.partition("\x00")
    make(family, given)
    check_person_name(text, "patient_name")


HARNESSES: dict[str, Harness] = {
    h.name: h
    for h in (
        Harness("sniff", sniff, ("",), allowed=()),
        Harness("jpeg_markers", jpeg_markers, ("jpeg", "A3-jpeg", "EXIF", "A13", "A17", "COLOUR-jpeg")),
        Harness("jpeg", jpeg, ("jpeg", "EXIF", "A13", "COLOUR-jpeg"), instrument=("PIL",)),
        Harness("png", _raster("image/png"), ("png", "A5-png", "COLOUR-png"), instrument=("PIL",)),
        Harness("tiff", _raster("image/tiff"), ("tiff", "A5-tiff", "COLOUR-tiff", "A6-tiff"), instrument=("PIL",)),
        Harness("webp", _raster("image/webp"), ("webp", "A5-webp", "COLOUR-webp"), instrument=("PIL",)),
        Harness("bmp", _raster("image/bmp"), ("bmp", "A5-bmp", "COLOUR-bmp"), instrument=("PIL",)),
        Harness("heic", heic, ("heic", "A5-heic", "EXIF-heic")),
        Harness("image", image, ("VALID", "A1", "A3", "A4")),
        Harness("exif", exif, ("EXIF", "A17", "jpeg", "png-exif"), instrument=("PIL",), max_len=70000),
        Harness("mp4_boxes", mp4_boxes, ("mp4", "MP4", "A12")),
        Harness("video", video, ("mp4", "MP4")),
        Harness("pdf", pdf, ("pdf", "PDF", "A3-pdf", "A16-eicar-in-pdf"), instrument=("pypdf",)),
        Harness("dicom", dicom, ("dicom", "DICOM", "A7", "A8", "A9", "A14", "A15", "A3-dicom", "REGRESSION"), instrument=("pydicom",)),
        Harness("multipart_form", multipart_form, ("form",), instrument=("python_multipart",)),
        Harness("multipart_related", multipart_related, ("related",), instrument=("python_multipart",)),
        Harness("nhs_number", nhs_number, ("nhs",), max_len=256),
        Harness("person_name", person_name, ("name",), allowed=(OlogiesError, ValueError), max_len=512),
    )
}
