"""HEIC: decoded once (upright via irot/imir), re-encoded as baseline JPEG, history recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters import heic as heic_module
from converters.base import CapturedImage, Limits
from converters.registry import convert_image, supported_media_types
from repository.errors import ConversionFailed, InvalidInput, UnsupportedMediaType
from tests import imagegen as g
from tests.imagegen import as_bytes

pillow_heif = pytest.importorskip("pillow_heif")
UPRIGHT = g.photo(320, 240, source="rocket")


def convert(tmp_path: Path, data: bytes, **kw: object) -> CapturedImage:
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(data)
    captured = convert_image(path, limits=kw.pop("limits", Limits()), **kw)  # type: ignore[arg-type]
    return as_bytes(captured)


def test_heic_is_reencoded_as_baseline_jpeg_with_both_lossy_steps(tmp_path: Path) -> None:
    data = g.heic(
        UPRIGHT,
        exif=g.exif_bytes(
            make="Apple",
            model="iPhone 15",
            datetime_original="2026:07:01 10:00:00",
            offset_original="+01:00",
        ),
    )
    captured = convert(tmp_path, data)
    assert (
        captured.media_type == "image/heic"
        and captured.transfer_syntax_uid == "1.2.840.10008.1.2.4.50"
    )
    assert (
        captured.photometric_interpretation == "YBR_FULL_422"
        and captured.chroma_subsampling == "4:2:2"
    )
    assert (captured.rows, captured.columns, captured.samples_per_pixel) == (240, 320, 3)
    assert [step.method for step in captured.lossy_history] == ["ISO_23008_2", "ISO_10918_1"]
    assert captured.lossy_history[0].ratio == round(240 * 320 * 3 / len(data), 2)
    assert captured.lossy_history[1].ratio == round(240 * 320 * 3 / len(captured.jpeg), 2)
    assert captured.derived
    assert captured.derivation_description.startswith(
        "Decoded from HEIC (HEVC) and re-encoded as baseline JPEG"
    )
    assert g.mean_abs_diff(g.decode(captured), UPRIGHT) < 8
    capture = captured.capture
    assert (capture.manufacturer, capture.model) == ("Apple", "iPhone 15")
    assert (
        capture.acquisition_datetime is not None
        and capture.acquisition_datetime.utcoffset().total_seconds() == 3600
    )


def test_no_metadata_in_the_reencoded_jpeg(tmp_path: Path) -> None:
    captured = convert(tmp_path, g.heic(UPRIGHT, exif=g.exif_bytes(gps=True, owner=True)))
    markers = {marker for marker, _ in g.jpeg_segments(captured.jpeg)}
    assert not markers & {0xE1, 0xE2, 0xFE}
    for leak in g.LEAK_MARKERS + (b"Exif", b"Canon"):
        assert leak not in captured.jpeg
    assert g.OWNER not in repr(captured.capture) and g.SERIAL not in repr(captured.capture)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_irot_imir_are_applied_once(tmp_path: Path, orientation: int) -> None:
    """pillow-heif turns the EXIF orientation into irot/imir when saving, as phones write them;
    libheif applies them on decode and the EXIF tag must then be ignored."""
    stored = g.stored_for_orientation(UPRIGHT, orientation)
    captured = convert(tmp_path, g.heic(stored, exif=g.exif_bytes(orientation=orientation)))
    pixels = g.decode(captured)
    assert pixels.shape == UPRIGHT.shape
    assert g.mean_abs_diff(pixels, UPRIGHT) < 8


def test_greyscale_heic(tmp_path: Path) -> None:
    grey = np.repeat(UPRIGHT.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    captured = convert(tmp_path, g.heic(grey))
    assert g.mean_abs_diff(g.decode(captured), grey) < 8


def test_pixel_limit_is_checked_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[bool] = []
    original_open = pillow_heif.open_heif

    def spying_open(*args: object, **kwargs: object) -> object:
        heif = original_open(*args, **kwargs)
        monkeypatch.setattr(type(heif), "to_pillow", lambda self: decoded.append(True))
        return heif

    monkeypatch.setattr(pillow_heif, "open_heif", spying_open)
    with pytest.raises(InvalidInput, match="320x240"):
        convert(tmp_path, g.heic(UPRIGHT), limits=Limits(max_pixels=10_000))
    assert decoded == []


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.95])
def test_truncated_heic_is_refused(tmp_path: Path, fraction: float) -> None:
    data = g.heic(UPRIGHT)
    with pytest.raises(ConversionFailed, match="HEIC image is damaged"):
        convert(tmp_path, data[: int(len(data) * fraction)])


def test_a_bitstream_declaring_a_huge_picture_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    # The video converter's fault (session 7: the container said 64x64, the SPS 16000x16000 and
    # FFmpeg allocated at the SPS's size) checked here: the converter's size check reads the
    # container's ispe, and a decoder that trusted the SPS would allocate 384 MB a picture.
    # libheif 1.23 refuses first ("Security limit exceeded: Image size 16000x16000 exceeds the
    # maximum image size 65536", 16 times the ispe area), with or without DISABLE_SECURITY_LIMITS.
    from tests import mediagen
    from tests.peakmem import conversion_growth_mb

    path = tmp_path / "IMG_0002.HEIC"
    path.write_bytes(mediagen.huge_frame_heic(16000))
    grown_mb, outcome = conversion_growth_mb(
        path, "image/heic", warm="from converters import heic; heic._pillow_heif()",
        call="heic.convert(source, limits=Limits(), local_tz='Europe/London')",
    )
    assert "HEIC image is damaged or cannot be decoded" in outcome and "16000x16000" in outcome
    assert grown_mb < 100, f"converting grew the process by {grown_mb} MB"


def test_thumbnails_depth_and_aux_images_are_switched_off() -> None:
    heic_module._pillow_heif()
    assert (
        pillow_heif.options.THUMBNAILS,
        pillow_heif.options.DEPTH_IMAGES,
        pillow_heif.options.AUX_IMAGES,
    ) == (False, False, False)


def test_missing_pillow_heif_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(heic_module, "is_available", lambda: False)
    with pytest.raises(UnsupportedMediaType, match="install pillow-heif"):
        convert(tmp_path, g.heic(UPRIGHT))
    assert "image/heic" not in supported_media_types()


def _heic_with(pixels: np.ndarray, *, nclx: dict[str, int] | None = None, ten_bit: bool = False) -> bytes:
    import io

    from PIL import Image

    if ten_bit:
        wide = (pixels.astype(np.uint16) * 257).astype("<u2")
        heif = pillow_heif.from_bytes(mode="RGB;16", size=(pixels.shape[1], pixels.shape[0]), data=wide.tobytes())
    else:
        heif = pillow_heif.from_pillow(Image.fromarray(pixels))
    if nclx:
        heif.info["nclx_profile"] = nclx
    out = io.BytesIO()
    heif.save(out, quality=90, **({"save_to_12bit": False} if ten_bit else {}))
    return out.getvalue()


def test_display_p3_given_as_nclx_values_is_stored_as_a_profile(tmp_path: Path) -> None:
    from converters.icc import profile_for

    p3 = {"color_primaries": 12, "transfer_characteristics": 13, "matrix_coefficients": 6, "full_range_flag": 1}
    captured = convert(tmp_path, _heic_with(UPRIGHT, nclx=p3))
    assert captured.icc_profile == profile_for(12, 13) and captured.icc_profile is not None
    srgb = {**p3, "color_primaries": 1}
    assert convert(tmp_path, _heic_with(UPRIGHT, nclx=srgb)).icc_profile is None  # sRGB: no profile needed


def test_a_ten_bit_heic_says_its_depth_was_reduced(tmp_path: Path) -> None:
    captured = convert(tmp_path, _heic_with(UPRIGHT, ten_bit=True))
    assert "BIT_DEPTH_REDUCED" in captured.flags
    assert "BIT_DEPTH_REDUCED" not in convert(tmp_path, _heic_with(UPRIGHT)).flags
