"""JPEG: pixels kept byte for byte, metadata gone, orientation baked in, history truthful."""

from __future__ import annotations

import io
import random
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from converters import jpeg as jpeg_module
from converters.base import CapturedImage, Limits
from converters.registry import convert_image
from repository.errors import ConversionFailed, InvalidInput, OlogiesError, UnsupportedMediaType
from tests import imagegen as g
from tests.imagegen import as_bytes

HAS_JPEGTRAN = shutil.which("jpegtran") is not None
needs_jpegtran = pytest.mark.skipif(
    not HAS_JPEGTRAN, reason="jpegtran (libjpeg-turbo-progs) not installed"
)
UPRIGHT = g.photo(320, 240)  # MCU-aligned for 4:2:0 (16x16) in both directions
UNALIGNED = g.photo(330, 250)
ALLOWED_MARKERS = {0xD8, 0xE0, 0xEE, 0xDB, 0xC4, 0xC0, 0xC1, 0xDD, 0xDA, 0x00, 0xD9}


def convert(tmp_path: Path, data: bytes, **kw: object) -> CapturedImage:
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    captured = convert_image(path, limits=kw.pop("limits", Limits()), **kw)  # type: ignore[arg-type]
    return as_bytes(captured)


@pytest.fixture
def no_jpegtran(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jpeg_module, "_jpegtran_path", lambda: None)


def leaky_jpeg(pixels: np.ndarray = UPRIGHT, **kw: object) -> bytes:
    exif = g.exif_bytes(datetime_original="2026:07:01 10:00:00", **kw)  # type: ignore[arg-type]
    return g.jpeg(
        pixels,
        exif=exif,
        icc=g.srgb_icc(),
        comment=b"photo of the patient's face",
        xmp=True,
        trailer=True,
    )


def test_orientation_1_keeps_every_pixel_byte(tmp_path: Path) -> None:
    original = leaky_jpeg()
    captured = convert(tmp_path, original)
    assert g.entropy_data(captured.jpeg) == g.entropy_data(original)
    kept = [
        body for marker, body in g.jpeg_segments(original) if marker in (0xC0, 0xC4, 0xDB, 0xDA)
    ]
    assert [b for m, b in g.jpeg_segments(captured.jpeg) if m in (0xC0, 0xC4, 0xDB, 0xDA)] == kept
    assert captured.transfer_syntax_uid == "1.2.840.10008.1.2.4.50"
    assert (captured.rows, captured.columns, captured.samples_per_pixel) == (240, 320, 3)
    assert (captured.bits_allocated, captured.bits_stored) == (8, 8)
    assert not captured.derived and captured.derivation_description == ""
    assert len(captured.lossy_history) == 1 and captured.lossy_history[0].method == "ISO_10918_1"
    assert captured.lossy_history[0].ratio == round(320 * 240 * 3 / len(captured.jpeg), 2)


def test_no_metadata_segments_or_gps_left(tmp_path: Path) -> None:
    captured = convert(tmp_path, leaky_jpeg())
    markers = {marker for marker, _ in g.jpeg_segments(captured.jpeg)}
    assert markers <= ALLOWED_MARKERS, (
        f"unexpected markers {sorted(hex(m) for m in markers - ALLOWED_MARKERS)}"
    )
    assert not markers & {0xE1, 0xE2, 0xFE}
    for leak in g.LEAK_MARKERS + (b"Exif\x00\x00", b"ICC_PROFILE", b"Canon", b"EOS R5"):
        assert leak not in captured.jpeg, leak
    assert captured.jpeg.endswith(b"\xff\xd9") and captured.jpeg.count(b"\xff\xd8") == 1
    assert captured.icc_profile == g.srgb_icc()


def test_restart_markers_inside_the_scan_are_kept(tmp_path: Path) -> None:
    out = io.BytesIO()
    Image.fromarray(UPRIGHT).save(out, "JPEG", quality=90, restart_marker_rows=1)
    original = out.getvalue()
    captured = convert(tmp_path, original)
    assert g.entropy_data(captured.jpeg) == g.entropy_data(original)
    assert b"\xff\xd0" in g.entropy_data(captured.jpeg)[0] and 0xDD in {
        m for m, _ in g.jpeg_segments(captured.jpeg)
    }


def test_jfif_thumbnail_is_dropped_but_jfif_kept(tmp_path: Path) -> None:
    data = g.jpeg(UPRIGHT)
    jfif = next(body for marker, body in g.jpeg_segments(data) if marker == 0xE0)
    thumb = jfif[:4] + b"JFIF\x00" + jfif[9:16] + b"\x02\x02" + b"\x7f" * 12
    thumb = thumb[:2] + (len(thumb) - 2).to_bytes(2, "big") + thumb[4:]
    captured = convert(tmp_path, data.replace(jfif, thumb))
    app0 = [body for marker, body in g.jpeg_segments(captured.jpeg) if marker == 0xE0]
    assert len(app0) == 1 and app0[0].endswith(b"\x00\x00") and len(app0[0]) == 18


def test_capture_metadata_keeps_camera_but_never_gps_or_owner(tmp_path: Path) -> None:
    capture = convert(tmp_path, leaky_jpeg()).capture
    assert (capture.manufacturer, capture.model, capture.iso, capture.flash_fired) == (
        "Canon",
        "EOS R5",
        400,
        True,
    )
    assert capture.lens_model == "RF 50mm F1.8" and capture.f_number == pytest.approx(2.8)
    assert not any("gps" in name.lower() or "owner" in name.lower() for name in vars(capture))
    assert (
        g.OWNER not in repr(capture)
        and g.SERIAL not in repr(capture)
        and "53" not in repr(capture.software)
    )


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_comes_out_upright(tmp_path: Path, orientation: int) -> None:
    stored = g.stored_for_orientation(UPRIGHT, orientation)
    captured = convert(tmp_path, g.jpeg(stored, exif=g.exif_bytes(orientation=orientation)))
    pixels = g.decode(captured)
    assert pixels.shape == UPRIGHT.shape
    assert g.mean_abs_diff(pixels, UPRIGHT) < 8
    assert (captured.rows, captured.columns) == (240, 320)
    assert captured.derived is (orientation != 1)
    if orientation != 1 and HAS_JPEGTRAN:  # aligned: the lossless path must have been used
        assert len(captured.lossy_history) == 1
        assert "losslessly" in captured.derivation_description
        assert f"EXIF orientation {orientation}" in captured.derivation_description


@needs_jpegtran
@pytest.mark.parametrize("orientation", [3, 6])
def test_lossless_rotation_matches_the_rotated_decode(tmp_path: Path, orientation: int) -> None:
    """jpegtran moves DCT coefficients: decoding the result equals rotating the decoded original
    up to IDCT/upsampling rounding (mean < 0.2), far closer than any re-encode (~0.7-1.3)."""
    from converters.raster import apply_orientation

    original = g.jpeg(UPRIGHT, exif=g.exif_bytes(orientation=orientation))
    expected = apply_orientation(
        np.asarray(Image.open(io.BytesIO(original)).convert("RGB")), orientation
    )
    captured = convert(tmp_path, original)
    assert g.decode(captured).shape == expected.shape
    assert g.mean_abs_diff(g.decode(captured), expected) < 0.2


@pytest.mark.parametrize("orientation", [2, 3, 4, 6, 7, 8])
def test_unaligned_image_falls_back_to_a_recorded_reencode(
    tmp_path: Path, orientation: int
) -> None:
    upright = UNALIGNED
    stored = g.stored_for_orientation(upright, orientation)
    captured = convert(tmp_path, g.jpeg(stored, exif=g.exif_bytes(orientation=orientation)))
    assert g.decode(captured).shape == upright.shape
    assert g.mean_abs_diff(g.decode(captured), upright) < 8
    assert [step.method for step in captured.lossy_history] == ["ISO_10918_1", "ISO_10918_1"]
    assert (
        captured.derived
        and "re-encoded as baseline JPEG (quality 95)" in captured.derivation_description
    )
    assert all(step.ratio > 1 for step in captured.lossy_history)


@pytest.mark.parametrize("orientation", range(2, 9))
def test_without_jpegtran_every_orientation_is_reencoded(
    tmp_path: Path, no_jpegtran: None, orientation: int
) -> None:
    stored = g.stored_for_orientation(UPRIGHT, orientation)
    captured = convert(tmp_path, g.jpeg(stored, exif=g.exif_bytes(orientation=orientation)))
    assert (
        g.mean_abs_diff(g.decode(captured), UPRIGHT) < 8
        and g.decode(captured).shape == UPRIGHT.shape
    )
    assert len(captured.lossy_history) == 2 and captured.derived
    assert g.entropy_data(captured.jpeg)  # a well-formed baseline stream
    assert 0xC0 in {marker for marker, _ in g.jpeg_segments(captured.jpeg)}


@pytest.mark.parametrize("value", [0, 9, 65535, "wrong-type"])
def test_invalid_orientation_is_treated_as_1_and_flagged(tmp_path: Path, value: object) -> None:
    if value == "wrong-type":  # Orientation written as ASCII "six" instead of a SHORT
        exif = g.exif_bytes(orientation=6)
        entry = b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00"
        assert entry in exif
        exif = exif.replace(entry, b"\x01\x12\x00\x02\x00\x00\x00\x04six\x00")
    else:
        exif = g.exif_bytes(extra_ifd0={0x0112: value})
    captured = convert(tmp_path, g.jpeg(UPRIGHT, exif=exif))
    assert not captured.derived and "EXIF_ORIENTATION_INVALID" in captured.flags
    assert g.mean_abs_diff(g.decode(captured), UPRIGHT) < 8


@pytest.mark.parametrize(
    "subsampling, expected",
    [("4:2:0", "4:2:0"), ("4:2:2", "4:2:2"), ("4:4:4", "4:4:4")],
)
def test_photometric_is_ybr_full_422_and_subsampling_is_reported(
    tmp_path: Path, subsampling: str, expected: str
) -> None:
    """The VL IODs name every YCbCr JPEG YBR_FULL_422 (dciodvfy refuses YBR_FULL), so the
    subsampling actually used is reported separately."""
    captured = convert(tmp_path, g.jpeg(UPRIGHT, subsampling=subsampling))
    assert captured.photometric_interpretation == "YBR_FULL_422"
    assert captured.chroma_subsampling == expected


def test_greyscale_is_monochrome2_and_kept(tmp_path: Path) -> None:
    grey = np.asarray(Image.fromarray(UPRIGHT).convert("L"))
    original = g.jpeg(grey, exif=g.exif_bytes())
    captured = convert(tmp_path, original)
    assert captured.photometric_interpretation == "MONOCHROME2" and captured.samples_per_pixel == 1
    assert (
        g.entropy_data(captured.jpeg) == g.entropy_data(original)
        and captured.chroma_subsampling == ""
    )
    assert captured.lossy_history[0].ratio == round(320 * 240 / len(captured.jpeg), 2)


@needs_jpegtran
def test_progressive_is_transcoded_to_baseline_without_loss(tmp_path: Path) -> None:
    original = g.jpeg(UPRIGHT, progressive=True, exif=g.exif_bytes())
    captured = convert(tmp_path, original)
    markers = {marker for marker, _ in g.jpeg_segments(captured.jpeg)}
    assert 0xC0 in markers and 0xC2 not in markers
    expected = np.asarray(Image.open(io.BytesIO(original)).convert("RGB"))
    assert np.array_equal(g.decode(captured), expected)
    assert len(captured.lossy_history) == 1 and not captured.derived
    assert "JPEG_TRANSCODED_LOSSLESSLY" in captured.flags


def test_progressive_without_jpegtran_is_reencoded(tmp_path: Path, no_jpegtran: None) -> None:
    captured = convert(
        tmp_path, g.jpeg(UPRIGHT, progressive=True, exif=g.exif_bytes(orientation=6))
    )
    assert len(captured.lossy_history) == 2 and captured.derived
    assert "progressive" in captured.derivation_description
    assert g.decode(captured).shape == (320, 240, 3)


def test_cmyk_is_converted_to_ycbcr_and_recorded(tmp_path: Path) -> None:
    captured = convert(tmp_path, g.cmyk_jpeg(UPRIGHT))
    assert captured.photometric_interpretation == "YBR_FULL_422" and captured.samples_per_pixel == 3
    assert [step.method for step in captured.lossy_history] == ["ISO_10918_1", "ISO_10918_1"]
    assert captured.derived and "CMYK" in captured.derivation_description
    assert g.mean_abs_diff(g.decode(captured), UPRIGHT) < 8
    assert 0xEE not in {marker for marker, _ in g.jpeg_segments(captured.jpeg)}  # now plain YCbCr


def test_rgb_coded_jpeg_is_reencoded_as_ycbcr(tmp_path: Path) -> None:
    out = io.BytesIO()
    Image.fromarray(UPRIGHT).save(out, "JPEG", quality=92, keep_rgb=True)
    captured = convert(tmp_path, out.getvalue())
    assert len(captured.lossy_history) == 2 and "RGB-coded" in captured.derivation_description
    assert g.mean_abs_diff(g.decode(captured), UPRIGHT) < 8


def test_extended_sequential_8_bit_is_kept_as_baseline(tmp_path: Path) -> None:
    data = g.jpeg(UPRIGHT)
    sof = data.index(b"\xff\xc0")
    captured = convert(tmp_path, data[:sof] + b"\xff\xc1" + data[sof + 2 :])
    assert captured.transfer_syntax_uid == "1.2.840.10008.1.2.4.50"
    assert g.entropy_data(captured.jpeg) == g.entropy_data(data)


@pytest.mark.parametrize(
    "sof, name", [(0xC3, "lossless"), (0xC5, "hierarchical"), (0xF7, "JPEG-LS")]
)
def test_non_photographic_jpeg_processes_are_unsupported(
    tmp_path: Path, sof: int, name: str
) -> None:
    data = g.jpeg(UPRIGHT)
    at = data.index(b"\xff\xc0")
    with pytest.raises(UnsupportedMediaType, match=name):
        convert(tmp_path, data[:at] + bytes((0xFF, sof)) + data[at + 2 :])


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5, 0.99])
def test_truncated_jpeg_is_refused(tmp_path: Path, fraction: float) -> None:
    data = g.jpeg(UPRIGHT, exif=g.exif_bytes())
    with pytest.raises(ConversionFailed, match="truncated|declares"):
        convert(tmp_path, data[: int(len(data) * fraction)])


def test_segment_length_that_lies_is_refused(tmp_path: Path) -> None:
    data = bytearray(g.jpeg(UPRIGHT))
    dqt = data.index(b"\xff\xdb")
    data[dqt + 2 : dqt + 4] = (0xFFF0).to_bytes(2, "big")
    with pytest.raises(ConversionFailed, match="declares 65520 bytes"):
        convert(tmp_path, bytes(data))


def test_scan_using_an_undefined_huffman_table_is_refused(tmp_path: Path) -> None:
    data = bytearray(g.jpeg(UPRIGHT))
    sos = data.index(b"\xff\xda")
    data[sos + 6] = 0x33  # component 1 uses DC table 3 / AC table 3, never defined
    with pytest.raises(ConversionFailed, match="Huffman table"):
        convert(tmp_path, bytes(data))


def test_garbage_after_soi_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConversionFailed):
        convert(tmp_path, b"\xff\xd8\xff" + np.random.default_rng(1).bytes(5000))


def test_header_only_bomb_is_refused_before_any_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("a decoder was called for a bomb")

    monkeypatch.setattr(Image, "open", no_decoding)
    started = time.perf_counter()
    with pytest.raises(InvalidInput, match="60000x60000"):
        convert(tmp_path, g.header_only_jpeg(60000, 60000), limits=Limits(max_dimension=65535))
    with pytest.raises(InvalidInput, match="per side"):
        convert(tmp_path, g.header_only_jpeg(60000, 60000))
    assert time.perf_counter() - started < 1.0


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the corrupt EXIF it skips
def test_mutated_headers_never_escape_as_unexpected_errors(tmp_path: Path) -> None:
    """A small mutation fuzz over the marker segments: only our own errors may come out."""
    data = g.jpeg(g.photo(64, 48), exif=g.exif_bytes(orientation=6), icc=g.srgb_icc())
    header_end = data.index(b"\xff\xda") + 20
    rng = random.Random(1234)
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(300):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(2, header_end)] = rng.randrange(256)
        try:
            convert(tmp_path, bytes(mutated))
            outcomes["ok"] += 1
        except OlogiesError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0 and outcomes["ok"] > 0


@pytest.mark.slow
def test_twelve_megapixel_camera_jpeg_is_fast(tmp_path: Path) -> None:
    data = g.camera_jpeg()
    assert 3_000_000 < len(data) < 6_000_000
    convert(tmp_path, data)  # warm up
    started = time.perf_counter()
    captured = convert(tmp_path, data)
    elapsed = time.perf_counter() - started
    assert (captured.rows, captured.columns) == (
        3000,
        4000,
    ) and captured.capture.model == "iPhone 15 Pro"
    assert captured.capture.acquisition_datetime is not None
    assert elapsed < 0.25, f"{elapsed * 1000:.0f} ms for a 12 MP JPEG"


def test_dermatoscope_jpeg_converts(tmp_path: Path) -> None:
    captured = convert(tmp_path, g.dermatoscope_jpeg())
    assert (captured.rows, captured.columns) == (
        1224,
        1632,
    ) and captured.capture.manufacturer == "ExampleDerm"


@pytest.mark.parametrize("chunk", [1, 2, 7, 1 << 20])
def test_next_marker_skips_stuffing_restarts_and_fill_bytes_across_chunks(monkeypatch, chunk):
    """The vectorised marker search answers what the regular expression it replaced answered
    (a 0xFF not followed by 0x00, RSTn or another 0xFF), also when a pair straddles its chunks."""
    import random
    import re

    from converters import jpeg_markers

    monkeypatch.setattr(jpeg_markers, "_SCAN_CHUNK", chunk)
    reference = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
    rng = random.Random(chunk)
    for _ in range(400):
        n = rng.randint(0, 60)
        data = bytes(rng.choice([0xFF, 0x00, 0xD0, 0xD7, 0xD9, 0xC4, 0x12, 0xDA]) for _ in range(n))
        pos = rng.randint(0, n)
        expected = reference.search(data, pos)
        assert jpeg_markers.next_marker(data, pos) == (expected.start() if expected else None), (data, pos)
