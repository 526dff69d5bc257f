"""convert_image: dispatch by content, honest refusals, provenance digest, limits first."""

from __future__ import annotations

import hashlib
import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from converters.base import CapturedImage, Limits
from converters.registry import CONVERTERS, convert_image, converter_for, supported_media_types
from repository.errors import ConversionFailed, InvalidInput, UnsupportedMediaType
from tests import imagegen as g

PIXELS = g.photo(64, 48)


def convert(tmp_path: Path, data: bytes, name: str = "upload.jpg", **kw: object) -> CapturedImage:
    path = tmp_path / name
    path.write_bytes(data)
    return convert_image(path, limits=kw.pop("limits", Limits()), **kw)  # type: ignore[arg-type]


def _gif() -> bytes:
    out = io.BytesIO()
    Image.fromarray(PIXELS).save(out, "GIF")
    return out.getvalue()


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("a.jpg", g.jpeg(PIXELS))
    return out.getvalue()


@pytest.mark.parametrize(
    "data, detected",
    [
        (
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n",
            "detected application/pdf (a PDF document)",
        ),
        (_gif(), "detected image/gif (a GIF image)"),
        (_zip(), "detected application/zip (a ZIP archive)"),
        (b"\x00" * 128 + b"DICM" + b"\x00" * 64, "detected application/dicom"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00isommp42", "detected video/mp4"),
        (
            np.random.default_rng(5).bytes(10_000),
            "detected application/octet-stream (unrecognised content)",
        ),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n", "detected application/postscript"),
    ],
    ids=["pdf", "gif", "zip", "dicom", "mp4", "random", "eps"],
)
def test_unsupported_kinds_name_what_was_detected(
    tmp_path: Path, data: bytes, detected: str
) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        convert(tmp_path, data, name="photo.jpg")
    assert detected in caught.value.message
    assert "expected a photograph (JPEG, PNG, TIFF, BMP, WebP, HEIC)" in caught.value.message
    assert caught.value.field == "file"


def test_empty_file_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="empty") as caught:
        convert(tmp_path, b"")
    assert not isinstance(caught.value, UnsupportedMediaType)


def test_original_digest_and_size_are_of_the_uploaded_bytes(tmp_path: Path) -> None:
    data = g.jpeg(PIXELS, exif=g.exif_bytes())
    captured = convert(tmp_path, data)
    assert captured.original_sha256 == hashlib.sha256(data).hexdigest()
    assert captured.original_size == len(data)


def test_large_file_digest_streams_over_many_chunks(tmp_path: Path) -> None:
    data = g.png(g.photo(1200, 900, noise=20))  # > 1 MiB of incompressible PNG
    assert len(data) > 1 << 20
    captured = convert(tmp_path, data, name="big.png")
    assert captured.original_sha256 == hashlib.sha256(
        data
    ).hexdigest() and captured.original_size == len(data)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: g.jpeg(PIXELS), "jpeg"),
        (lambda: g.png(PIXELS), "png"),
        (lambda: g.tiff(PIXELS), "tiff"),
        (lambda: g.bmp(PIXELS), "bmp"),
        (lambda: g.webp(PIXELS, lossless=True), "webp"),
    ],
    ids=["jpeg", "png", "tiff", "bmp", "webp"],
)
def test_every_supported_kind_converts(tmp_path: Path, make, name: str) -> None:  # type: ignore[no-untyped-def]
    captured = convert(tmp_path, make(), name="x.dat")
    assert (captured.rows, captured.columns) == (48, 64)
    assert (captured.jpeg is None) != (captured.pixels is None)


@pytest.mark.parametrize(
    "data",
    [g.header_only_png(60000, 60000), g.header_only_jpeg(60000, 60000)],
    ids=["png", "jpeg"],
)
def test_bombs_are_refused_quickly(tmp_path: Path, data: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidInput, match="60000x60000"):
        convert(tmp_path, data)
    assert time.perf_counter() - started < 1.0


def test_just_over_the_pixel_budget_is_refused(tmp_path: Path) -> None:
    """RELIABILITY A6: under Pillow's own limit but over ours."""
    with pytest.raises(InvalidInput, match="more than the limit of 50000000 pixels"):
        convert(tmp_path, g.header_only_png(8000, 6300), limits=Limits(max_pixels=50_000_000))


@pytest.mark.parametrize(
    "make",
    [lambda: g.jpeg(g.photo(256, 192)), lambda: g.png(g.photo(256, 192))],
    ids=["jpeg", "png"],
)
def test_truncated_files_fail_conversion(tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    data = make()
    with pytest.raises(ConversionFailed):
        convert(tmp_path, data[: len(data) // 2])


def test_registry_knows_every_photo_kind_and_they_are_available() -> None:
    assert set(CONVERTERS) == {
        "image/jpeg",
        "image/png",
        "image/tiff",
        "image/bmp",
        "image/webp",
        "image/heic",
    }
    assert {
        "image/jpeg",
        "image/png",
        "image/tiff",
        "image/bmp",
        "image/webp",
    } <= supported_media_types()
    assert converter_for("image/png").__name__ == "converters.raster"
