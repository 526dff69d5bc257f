"""PNG, TIFF, BMP, WebP: native upright pixels, lossless unless the source was lossy."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps, TiffImagePlugin

from converters.base import CapturedImage, Limits
from converters.raster import apply_orientation
from converters.registry import convert_image
from repository.errors import ConversionFailed, InvalidInput, UnsupportedMediaType
from tests import imagegen as g

RGB = g.photo(96, 64, source="chelsea")
GREY = np.asarray(Image.fromarray(RGB).convert("L"))
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def convert(tmp_path: Path, data: bytes, **kw: object) -> CapturedImage:
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    return convert_image(path, limits=kw.pop("limits", Limits()), **kw)  # type: ignore[arg-type]


def assert_native(
    captured: CapturedImage, shape: tuple[int, ...], *, derived: bool = False
) -> None:
    assert captured.jpeg is None and captured.pixels is not None
    assert captured.pixels.dtype == np.uint8 and captured.pixels.shape == shape
    assert captured.pixels.flags["C_CONTIGUOUS"]
    assert (captured.rows, captured.columns) == shape[:2]
    assert captured.samples_per_pixel == (3 if len(shape) == 3 else 1)
    assert captured.photometric_interpretation == ("RGB" if len(shape) == 3 else "MONOCHROME2")
    assert (captured.bits_allocated, captured.bits_stored) == (8, 8)
    assert captured.transfer_syntax_uid == EXPLICIT_LE
    assert captured.derived is derived


def test_png_rgb_is_exact(tmp_path: Path) -> None:
    captured = convert(tmp_path, g.png(RGB, icc=g.srgb_icc()))
    assert_native(captured, RGB.shape)
    assert np.array_equal(captured.pixels, RGB) and captured.lossy_history == []
    assert captured.icc_profile == g.srgb_icc() and captured.media_type == "image/png"


def test_png_grey_is_monochrome2(tmp_path: Path) -> None:
    captured = convert(tmp_path, g.png(GREY))
    assert_native(captured, GREY.shape)
    assert np.array_equal(captured.pixels, GREY)


@pytest.mark.parametrize("source", [GREY, RGB], ids=["grey", "rgb"])
def test_png_16_bit_is_reduced_to_8_bits_and_says_so(tmp_path: Path, source: np.ndarray) -> None:
    captured = convert(tmp_path, g.png(source, bits=16))
    assert_native(captured, source.shape, derived=True)
    assert np.array_equal(captured.pixels, source)  # value * 257 keeps its top byte
    assert "16-bit samples reduced to 8 bits" in captured.derivation_description
    assert "BIT_DEPTH_REDUCED" in captured.flags and captured.lossy_history == []


def test_png_opaque_alpha_is_dropped_without_change(tmp_path: Path) -> None:
    captured = convert(tmp_path, g.png(RGB, alpha=np.full(RGB.shape[:2], 255, np.uint8)))
    assert_native(captured, RGB.shape)
    assert np.array_equal(captured.pixels, RGB)


def test_png_transparency_is_composited_over_white(tmp_path: Path) -> None:
    alpha = np.full(RGB.shape[:2], 255, np.uint8)
    alpha[:, :32] = 0  # fully transparent: hides whatever the RGB values were
    alpha[:, 32:48] = 128
    captured = convert(tmp_path, g.png(RGB, alpha=alpha))
    assert_native(captured, RGB.shape, derived=True)
    assert (captured.pixels[:, :32] == 255).all()
    half = (RGB[:, 32:48].astype(int) * 128 + 255 * 127 + 127) // 255
    assert np.array_equal(captured.pixels[:, 32:48], half)
    assert np.array_equal(captured.pixels[:, 48:], RGB[:, 48:])
    assert "ALPHA_COMPOSITED" in captured.flags and "white" in captured.derivation_description


def test_png_grey_with_alpha(tmp_path: Path) -> None:
    alpha = np.zeros(GREY.shape, np.uint8)
    captured = convert(tmp_path, g.png(GREY, alpha=alpha))
    assert_native(captured, GREY.shape, derived=True)
    assert (captured.pixels == 255).all()


def test_png_palette_becomes_rgb(tmp_path: Path) -> None:
    data = g.png(RGB, palette=True)
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    captured = convert(tmp_path, data)
    assert_native(captured, RGB.shape)
    assert np.array_equal(captured.pixels, expected)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_exif_orientation_gives_exactly_the_upright_pixels(
    tmp_path: Path, orientation: int
) -> None:
    stored = g.stored_for_orientation(RGB, orientation)
    captured = convert(tmp_path, g.png(stored, exif=g.exif_bytes(orientation=orientation)))
    assert np.array_equal(captured.pixels, RGB)
    assert captured.derived is (orientation != 1)
    assert captured.lossy_history == []


@pytest.mark.parametrize("orientation", range(1, 9))
def test_apply_orientation_matches_pillow_exif_transpose(orientation: int) -> None:
    image = Image.fromarray(RGB)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    assert np.array_equal(apply_orientation(RGB, orientation), expected)


def test_png_capture_time_and_camera_from_exif(tmp_path: Path) -> None:
    exif = g.exif_bytes(datetime_original="2026:07:01 10:00:00", offset_original="+01:00")
    capture = convert(tmp_path, g.png(RGB, exif=exif)).capture
    assert capture.acquisition_datetime is not None and capture.acquisition_datetime.hour == 10
    assert capture.manufacturer == "Canon" and g.OWNER not in repr(capture)


@pytest.mark.parametrize("compression", [None, "tiff_lzw", "tiff_adobe_deflate"])
def test_tiff_is_exact(tmp_path: Path, compression: str | None) -> None:
    captured = convert(tmp_path, g.tiff(RGB, compression=compression, orientation=8))
    assert_native(captured, (96, 64, 3), derived=True)
    assert (
        np.array_equal(captured.pixels, apply_orientation(RGB, 8)) and captured.lossy_history == []
    )
    assert captured.capture.model == "EOS R5"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_is_applied_exactly_once(tmp_path: Path, orientation: int) -> None:
    """Pillow 13 turns TIFFs upright itself on load; the converter must not turn them again."""
    captured = convert(
        tmp_path, g.tiff(g.stored_for_orientation(RGB, orientation), orientation=orientation)
    )
    assert np.array_equal(captured.pixels, RGB)
    assert captured.derived is (orientation != 1)
    assert (
        orientation == 1
    ) or f"EXIF orientation {orientation}" in captured.derivation_description


def test_jpeg_compressed_tiff_records_its_lossy_step(tmp_path: Path) -> None:
    captured = convert(tmp_path, g.tiff(RGB, compression="jpeg"))
    assert [step.method for step in captured.lossy_history] == ["ISO_10918_1"]
    assert g.mean_abs_diff(captured.pixels, RGB) < 8


def test_multi_page_tiff_is_refused(tmp_path: Path) -> None:
    out = io.BytesIO()
    Image.fromarray(RGB).save(
        out, "TIFF", save_all=True, append_images=[Image.fromarray(RGB[::-1])]
    )
    with pytest.raises(ConversionFailed, match="2 images"):
        convert(tmp_path, out.getvalue())


@pytest.mark.parametrize(
    "tags", [{50706: b"\x01\x04\x00\x00"}, {254: 1}], ids=["dng", "preview-first"]
)
def test_tiff_based_camera_raw_is_refused_not_thumbnailed(tmp_path: Path, tags: dict) -> None:
    info = TiffImagePlugin.ImageFileDirectory_v2()
    for tag, value in tags.items():
        info[tag] = value
    out = io.BytesIO()
    Image.fromarray(RGB[:12, :16]).save(out, "TIFF", tiffinfo=info)
    with pytest.raises(UnsupportedMediaType, match="camera RAW"):
        convert(tmp_path, out.getvalue())


def test_bmp_is_exact(tmp_path: Path) -> None:
    captured = convert(tmp_path, g.bmp(RGB))
    assert_native(captured, RGB.shape)
    assert np.array_equal(captured.pixels, RGB) and captured.media_type == "image/bmp"


def test_webp_lossless_is_exact(tmp_path: Path) -> None:
    captured = convert(tmp_path, g.webp(RGB, lossless=True))
    assert_native(captured, RGB.shape)
    assert np.array_equal(captured.pixels, RGB) and captured.lossy_history == []


def test_webp_lossy_keeps_decoded_pixels_and_records_vp8(tmp_path: Path) -> None:
    data = g.webp(RGB, lossless=False, alpha=np.full(RGB.shape[:2], 255, np.uint8))
    captured = convert(tmp_path, data)
    assert_native(captured, RGB.shape)
    assert [step.method for step in captured.lossy_history] == ["VP8"]
    assert captured.lossy_history[0].ratio == round(96 * 64 * 3 / len(data), 2)
    assert np.array_equal(captured.pixels, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


def test_webp_orientation_and_exif(tmp_path: Path) -> None:
    stored = g.stored_for_orientation(RGB, 6)
    captured = convert(tmp_path, g.webp(stored, lossless=True, exif=g.exif_bytes(orientation=6)))
    assert np.array_equal(captured.pixels, RGB) and captured.derived
    assert captured.derivation_description == "Rotated 90 degrees clockwise (EXIF orientation 6)"


@pytest.mark.parametrize("fmt", ["WEBP", "PNG"])
def test_animations_are_refused(tmp_path: Path, fmt: str) -> None:
    out = io.BytesIO()
    frames = [Image.fromarray(RGB), Image.fromarray(RGB[::-1].copy())]
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:], lossless=True)
    with pytest.raises(ConversionFailed, match="holds 2 images"):
        convert(tmp_path, out.getvalue())


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated_png_is_refused(tmp_path: Path, fraction: float) -> None:
    data = g.png(g.photo(256, 192))
    with pytest.raises(ConversionFailed, match="PNG image is damaged"):
        convert(tmp_path, data[: int(len(data) * fraction)])


def test_corrupt_png_message_does_not_reveal_server_paths(tmp_path: Path) -> None:
    data = g.png(RGB)
    with pytest.raises(ConversionFailed) as caught:
        convert(tmp_path, data[:40] + b"\x00" * 30 + data[70:])
    assert str(tmp_path) not in caught.value.message


def test_png_bomb_is_refused_from_the_header_without_pillow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("Pillow was asked to open a bomb")

    monkeypatch.setattr(Image, "open", no_decoding)
    started = time.perf_counter()
    with pytest.raises(InvalidInput, match="60000x60000"):
        convert(tmp_path, g.header_only_png(60000, 60000), limits=Limits(max_dimension=100_000))
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "make",
    [
        lambda: g.tiff(RGB),
        lambda: g.bmp(RGB),
        lambda: g.webp(RGB, lossless=True),
        lambda: g.webp(RGB, lossless=False),
    ],
    ids=["tiff", "bmp", "webp-ll", "webp"],
)
def test_pixel_limit_applies_to_every_format(tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput, match="more than the limit of 1000 pixels"):
        convert(tmp_path, make(), limits=Limits(max_pixels=1000))


def test_pillow_own_bomb_error_is_translated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # TIFF sizes are only known to Pillow
    with pytest.raises(InvalidInput, match="too many pixels"):
        convert(tmp_path, g.tiff(RGB))


def _relabelled(profile: bytes, space: bytes) -> bytes:
    return profile[:16] + space + profile[20:]


def test_a_profile_of_another_colour_space_than_the_stored_pixels_is_not_kept(tmp_path):
    rgb = g.photo(48, 32, seed=3)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG", icc_profile=_relabelled(g.display_p3_icc(), b"CMYK"))
    captured = convert(tmp_path, out.getvalue())
    assert captured.icc_profile is None and "ICC_PROFILE_MISMATCH" in captured.flags
    kept = io.BytesIO()
    Image.fromarray(rgb).save(kept, format="PNG", icc_profile=g.display_p3_icc())
    assert convert(tmp_path, kept.getvalue()).icc_profile == g.display_p3_icc()  # an RGB one stays


def test_a_cmyk_tiff_is_converted_and_does_not_keep_its_cmyk_profile(tmp_path):
    cmyk = Image.fromarray(g.photo(48, 32, seed=4)).convert("CMYK")
    out = io.BytesIO()
    cmyk.save(out, format="TIFF", icc_profile=_relabelled(g.display_p3_icc(), b"CMYK"))
    captured = convert(tmp_path, out.getvalue())
    assert captured.samples_per_pixel == 3 and captured.photometric_interpretation == "RGB"
    assert captured.icc_profile is None or captured.icc_profile[16:20] == b"RGB "
    assert "converted from cmyk to rgb" in captured.derivation_description.lower()
