"""HEIC/HEIF from phones: decode with pillow-heif, re-encode as baseline JPEG, record both steps.

DICOM has no HEVC still-image transfer syntax (DOMAIN.md 2.4), so the primary image is decoded
and re-encoded as baseline JPEG, quality 95, 4:2:2 (YBR_FULL_422). The history says so:
``ISO_23008_2`` (ratio: uncompressed size over the HEIC file's size, an approximation since the
file also holds metadata) then ``ISO_10918_1``; Image Type DERIVED.

Orientation: libheif applies the ``irot``/``imir`` transforms while decoding, and the HEIF
specification makes them, not EXIF Orientation, authoritative; the EXIF tag is therefore ignored
here (applying it too would rotate twice). Tested for all eight orientations.

Safety (RELIABILITY.md 2.4): pillow-heif is used directly (``open_heif``), not registered as a
Pillow opener, so no other ``Image.open`` call gains a HEIF parser. Its options are set before
the first use so thumbnails, depth maps and auxiliary images are never decoded (they can leak a
pre-crop picture or depth). The size is read from the container and checked before decoding.
EXIF comes from ``info["exif"]`` through :mod:`converters.exif`; GPS is never read, and the
re-encoded JPEG carries no metadata at all.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from converters.base import CapturedImage, Limits, LossyStep, SourceFile
from converters.exif import read_exif
from converters.icc import profile_for
from converters.jpeg import ISO_10918_1, JPEG_BASELINE, REENCODE_QUALITY, encode_baseline_jpeg
from converters.jpeg_markers import chroma_subsampling, parse
from converters.raster import (
    check_dimensions,
    pillow_errors,
    to_native,
    valid_icc,
)

MEDIA_TYPES = frozenset({"image/heic"})
DEPENDENCIES = ("pillow-heif",)
ISO_23008_2 = "ISO_23008_2"
_configured = False


def is_available() -> bool:
    try:
        _pillow_heif()
    except ImportError:
        return False
    return True


def _pillow_heif() -> ModuleType:
    """Import pillow-heif and switch off everything but the primary image, once."""
    global _configured
    module = importlib.import_module("pillow_heif")
    if not _configured:
        module.options.THUMBNAILS = False
        module.options.DEPTH_IMAGES = False
        module.options.AUX_IMAGES = False
        module.options.DISABLE_SECURITY_LIMITS = False
        _configured = True
    return module


def convert(source: SourceFile, *, limits: Limits, local_tz: str) -> CapturedImage:
    """Decode the primary image of a HEIC file and re-encode it as baseline JPEG."""
    from PIL import Image

    pillow_heif = _pillow_heif()
    with pillow_errors("HEIC image", source.path):
        heif = pillow_heif.open_heif(source.path, convert_hdr_to_8bit=True)
        width, height = heif.size
        check_dimensions(width, height, limits)
        exif_raw = heif.info.get("exif")
        icc = valid_icc(heif.info.get("icc_profile"))
        nclx = heif.info.get("nclx_profile") or {}
        if icc is None and isinstance(nclx, dict):
            # The colour space as coded values (what libheif and many phones write), not a
            # profile: made into one, so that the object says how its pixels are to be read.
            icc = profile_for(int(nclx.get("color_primaries") or 0), int(nclx.get("transfer_characteristics") or 0))
        im: Image.Image = heif.to_pillow()
        # an HDR (10-bit) HEIC is decoded to 8 bits: said so, as for 16-bit PNG and TIFF
        pixels, notes, flags = to_native(im, source_bits=int(heif.info.get("bit_depth") or 8))
    facts = read_exif(exif_raw if isinstance(exif_raw, bytes) else None, local_tz=local_tz)
    samples = 1 if pixels.ndim == 2 else 3
    with pillow_errors("HEIC image", source.path):
        data = encode_baseline_jpeg(Image.fromarray(pixels), quality=REENCODE_QUALITY)
    out = parse(data, limits=limits)
    uncompressed = out.frame.width * out.frame.height * samples
    notes.append(
        f"decoded from HEIC (HEVC) and re-encoded as baseline JPEG (quality {REENCODE_QUALITY})"
    )
    text = "; ".join(notes)
    return CapturedImage(
        media_type=source.media_type,
        original_sha256=source.sha256,
        original_size=source.size,
        rows=out.frame.height,
        columns=out.frame.width,
        samples_per_pixel=samples,
        bits_allocated=8,
        bits_stored=8,
        photometric_interpretation="MONOCHROME2" if samples == 1 else "YBR_FULL_422",
        transfer_syntax_uid=JPEG_BASELINE,
        jpeg=out.bitstream,
        lossy_history=[
            LossyStep(ISO_23008_2, round(uncompressed / max(source.size, 1), 2)),
            LossyStep(ISO_10918_1, round(uncompressed / max(len(out.bitstream), 1), 2)),
        ],
        derived=True,
        derivation_description=text[:1].upper() + text[1:],
        capture=facts.capture,
        icc_profile=icc,
        chroma_subsampling=chroma_subsampling(out.frame),
        flags=[f for f in facts.flags if f != "EXIF_ORIENTATION_INVALID"] + flags,
    )
