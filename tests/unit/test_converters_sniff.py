"""Media types come from magic bytes only (converters.sniff)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from converters.base import Limits
from converters.registry import convert_image
from converters.sniff import HEAD_SIZE, OCTET_STREAM, sniff
from tests import imagegen as g

PIXELS = g.photo(64, 48)


def _pillow(fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(PIXELS).save(out, fmt, **options)
    return out.getvalue()


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("photo.jpg", g.jpeg(PIXELS))
    return out.getvalue()


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00\x00\x00\x08mdat"


KINDS = {
    "image/jpeg": lambda: g.jpeg(PIXELS),
    "image/png": lambda: g.png(PIXELS),
    "image/tiff": lambda: g.tiff(PIXELS),
    "image/bmp": lambda: g.bmp(PIXELS),
    "image/webp": lambda: g.webp(PIXELS, lossless=True),
    "image/gif": lambda: _pillow("GIF"),
    "application/pdf": lambda: b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n",
    "application/zip": _zip,
    "application/dicom": lambda: b"\x00" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00",
    "video/mp4": lambda: _ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"),
    "video/quicktime": lambda: _ftyp(b"qt  ", b"qt  "),
    "image/avif": lambda: _pillow("AVIF"),
    "application/postscript": lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
}


@pytest.mark.parametrize("media_type", sorted(KINDS))
def test_each_kind_is_recognised_from_its_first_bytes(media_type: str) -> None:
    data = KINDS[media_type]()
    assert sniff(data[:HEAD_SIZE]) == media_type


def test_heic_from_pillow_heif_is_recognised() -> None:
    pytest.importorskip("pillow_heif")
    assert sniff(g.heic(PIXELS)[:HEAD_SIZE]) == "image/heic"


@pytest.mark.parametrize(
    "major, compatible, expected",
    [
        (b"heic", (b"mif1", b"heic"), "image/heic"),
        (b"heix", (b"mif1",), "image/heic"),
        (b"mif1", (b"mif1", b"heic", b"miaf"), "image/heic"),
        (b"mif1", (b"mif1", b"avif", b"miaf"), "image/avif"),  # mif1 is not enough to say HEIC
        (b"msf1", (b"msf1", b"hevc"), "image/heic"),
        (b"avif", (b"mif1", b"avif"), "image/avif"),
        (b"mp42", (b"isom", b"mp42"), "video/mp4"),
        (b"M4V ", (b"M4V ", b"M4A "), "video/mp4"),
        (b"qt  ", (), "video/quicktime"),
        (b"zzzz", (b"zzzz",), OCTET_STREAM),
    ],
)
def test_iso_bmff_brands(major: bytes, compatible: tuple[bytes, ...], expected: str) -> None:
    assert sniff(_ftyp(major, *compatible)) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"hello world, this is plain text",
        bytes(range(256)) * 4,
        np.random.default_rng(7).bytes(4096),
        b"BM" + b"\x00" * 40,
        b"RIFF\x00\x00\x00\x00AVI ",
    ],
    ids=["empty", "one-byte", "text", "counting", "random", "bm-without-header", "riff-avi"],
)
def test_unknown_content_is_octet_stream(data: bytes) -> None:
    assert sniff(data) == OCTET_STREAM


def test_pdf_header_may_follow_junk_within_1024_bytes() -> None:
    assert sniff(b"\n" * 100 + b"%PDF-1.4\n") == "application/pdf"


def test_file_name_is_ignored_png_named_jpg(tmp_path) -> None:
    path = tmp_path / "holiday.JPG"
    path.write_bytes(g.png(PIXELS))
    captured = convert_image(path, limits=Limits())
    assert captured.media_type == "image/png"
    assert captured.jpeg is None and np.array_equal(captured.pixels, PIXELS)


def test_jpeg_named_png_is_still_a_jpeg(tmp_path) -> None:
    path = tmp_path / "scan.png"
    path.write_bytes(g.jpeg(PIXELS))
    assert convert_image(path, limits=Limits()).media_type == "image/jpeg"
