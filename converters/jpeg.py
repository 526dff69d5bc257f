"""Camera JPEG to an encapsulatable bitstream, keeping the camera's pixels where possible.

DECISIONS.md 7. The markers are parsed here, bounds-checked (a lying length or a missing EOI is
:class:`ConversionFailed`), and written back without APP1 (EXIF with GPS, maker notes, IFD1
thumbnail; XMP), APP2 (ICC, first extracted from all its chunks; MPF), APP3-13, APP15, COM and
anything after the first EOI (MPF depth/gain maps). SOF, DHT, DQT, DRI, SOS and the entropy-coded
data stay byte for byte, as do APP14 "Adobe" (its transform flag tells RGB from YCbCr) and APP0
"JFIF" (rewritten without a thumbnail). Transfer syntax .50; .51 for 12-bit or non-baseline tables.

Photometric Interpretation is MONOCHROME2, or YBR_FULL_422 for every YCbCr stream whatever its
chroma subsampling: the VL Image module (PS3.3 C.8.12.1) requires it for lossy JPEG and dciodvfy
refuses YBR_FULL and RGB there (checked); PS3.3 C.7.6.3.1.2 calls the label "inaccurate but
harmless" when the subsampling differs, as decoders read it from the SOF. ``chroma_subsampling``
records what the SOF says.

* EXIF orientation 2-8: ``jpegtran -perfect`` transforms the coefficients losslessly (one lossy
  step; DERIVED). Without jpegtran or when not MCU-aligned: decode, turn upright, re-encode
  (baseline q95 4:2:2) and record two ISO_10918_1 steps.
* Progressive and arithmetic-coded (.55 is retired): jpegtran rewrites the same coefficients as
  baseline Huffman data, which decodes to identical pixels (tested): no new lossy step, flag
  JPEG_TRANSCODED_LOSSLESSLY. Without jpegtran: re-encode as above.
* CMYK/YCCK and RGB-coded (Adobe transform 0): no photometric fits them in VL images; decode
  (CMYK through its ICC profile to sRGB when it has one) and re-encode as above.
* 12-bit: kept as .51 when nothing needs transforming, else refused. Lossless, hierarchical and
  JPEG-LS: :class:`UnsupportedMediaType`.

Validation without a full decode (target ~40 uploads/s of 12 MP JPEGs on 2 cores). A draft (1/8)
decode of a 12 MP, 3.7 MB JPEG costs ~32 ms here and finds nothing the structural checks miss:
Pillow raises on truncation only when the EOI is missing (refused by the parser), and libjpeg only
warns about corrupt entropy data, even in a full decode. So the parser checks SOI, one SOF, tables
defined before use, scan parameters and an EOI after the data, and libjpeg decodes at 1/8 scale
only the headers and the first 64 KiB of the first scan (well under 1 ms).
"""

from __future__ import annotations

import io
import shutil
import subprocess
from functools import lru_cache

from PIL import Image, ImageCms

from converters.base import CapturedImage, CaptureMetadata, Limits, LossyStep, SourceFile
from converters.exif import read_exif
from converters.jpeg_markers import (
    MAX_SCANS,
    SEQUENTIAL_HUFFMAN,
    SOF_NAMES,
    Frame,
    ParsedJpeg,
    chroma_subsampling,
    colour_model,
    parse,
)
from converters.raster import ORIENTATION_TEXT, pillow_errors
from repository.errors import ConversionFailed

MEDIA_TYPES = frozenset({"image/jpeg"})
DEPENDENCIES: tuple[str, ...] = ()  # Pillow is core; the jpegtran binary is optional
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
ISO_10918_1 = "ISO_10918_1"
REENCODE_QUALITY = 95
JPEGTRAN_TIMEOUT_S = 30
PROBE_BYTES = 65536

_JPEGTRAN_ARGS = {
    2: ["-flip", "horizontal"],
    3: ["-rotate", "180"],
    4: ["-flip", "vertical"],
    5: ["-transpose"],
    6: ["-rotate", "90"],
    7: ["-transverse"],
    8: ["-rotate", "270"],
}
_PIL_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def is_available() -> bool:
    return True


def convert(source: SourceFile, *, limits: Limits, local_tz: str) -> CapturedImage:
    """Convert a JPEG file; see the module docstring for what happens to each kind."""
    parsed = parse(source.path.read_bytes(), limits=limits)
    facts = read_exif(parsed.exif, local_tz=local_tz)
    colour, orientation, sof = colour_model(parsed), facts.orientation, parsed.frame.marker
    flags = facts.flags + (["ICC_PROFILE_INVALID"] if parsed.icc_invalid else [])
    history = [LossyStep(ISO_10918_1, _ratio(parsed.frame, len(parsed.bitstream)))]
    icc, notes = parsed.icc_profile, []
    out: ParsedJpeg | None = None
    if parsed.frame.precision == 12:
        if orientation != 1 or sof != 0xC1:
            raise ConversionFailed(
                "a 12-bit JPEG can only be stored as it is (sequential, orientation 1)",
                field="file",
            )
        out = parsed
    elif colour in ("grey", "ycbcr") and sof in SEQUENTIAL_HUFFMAN and orientation == 1:
        probe_decode(parsed)
        out = parsed
    elif colour in ("grey", "ycbcr"):
        out = _jpegtran(parsed, orientation, limits)
        if out is not None and orientation != 1:
            notes.append(
                f"{ORIENTATION_TEXT[orientation]} losslessly (EXIF orientation {orientation})"
            )
        if out is not None and sof not in SEQUENTIAL_HUFFMAN:
            flags.append("JPEG_TRANSCODED_LOSSLESSLY")
    if out is None:
        out, icc, more = _reencode(parsed, colour, orientation, limits)
        notes += more
        history.append(LossyStep(ISO_10918_1, _ratio(out.frame, len(out.bitstream))))
    return _captured(source, out, history, notes, facts.capture, icc, flags)


def probe_decode(parsed: ParsedJpeg) -> None:
    """Let libjpeg read the headers and the start of the first scan, at 1/8 scale.

    The frame header of the probe says the image is only as tall as the rows that its bytes
    cover: otherwise libjpeg goes on to decode every missing row of a 12-megapixel frame (as
    grey), which cost more than the rest of the conversion.
    """
    begin, end = parsed.first_scan
    probe = bytearray(parsed.bitstream.head(min(end, begin + PROBE_BYTES)) + b"\xff\xd9")
    frame = parsed.frame
    rows = frame.height
    if end - begin > PROBE_BYTES and frame.height:
        rows = max(8, min(frame.height, frame.height * PROBE_BYTES // (end - begin) + 16))
        _set_frame_height(probe, begin, frame.marker, rows)
    scaled = (max(1, frame.width // 8), max(1, rows // 8))
    with pillow_errors("JPEG image"), Image.open(io.BytesIO(bytes(probe)), formats=["JPEG"]) as im:
        im.draft("L" if len(frame.components) == 1 else "RGB", scaled)
        im.load()


def _set_frame_height(jpeg: bytearray, end: int, sof: int, rows: int) -> None:
    """Rewrite the number of lines in the SOF segment of ``jpeg``'s headers (before ``end``)."""
    pos = 2
    while pos + 4 <= end:
        marker, length = jpeg[pos + 1], int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        if marker == sof:
            jpeg[pos + 5 : pos + 7] = rows.to_bytes(2, "big")
            return
        pos += 2 + length


def encode_baseline_jpeg(im: Image.Image, *, quality: int = 95) -> bytes:
    """Baseline JPEG with 4:2:2 chroma (exactly what YBR_FULL_422 describes), copying no EXIF,
    ICC or comment from the source image (Pillow writes ``info["comment"]`` back as COM)."""
    if im.mode not in ("L", "RGB"):
        im = im.convert("RGB")
    im.info = {}
    buffer = io.BytesIO()
    im.save(
        buffer,
        format="JPEG",
        quality=quality,
        subsampling="4:2:2",
        progressive=False,
        optimize=False,
    )
    return buffer.getvalue()


def cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None, str]:
    """CMYK to RGB through the image's own CMYK profile to sRGB when it has one, naively otherwise.

    Returns the image, the profile that now describes it (sRGB, or None) and how it was done.
    """
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if source.profile.xcolor_space.strip() == "CMYK":
                srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
                rgb = ImageCms.profileToProfile(im, source, srgb, outputMode="RGB")
                if rgb is not None:
                    return rgb, srgb.tobytes(), "through its ICC profile to sRGB"
        except (OSError, ValueError, TypeError, ImageCms.PyCMSError):
            pass
    return im.convert("RGB"), None, "without colour management"


@lru_cache(maxsize=1)
def _jpegtran_path() -> str | None:
    return shutil.which("jpegtran")


def _jpegtran(parsed: ParsedJpeg, orientation: int, limits: Limits) -> ParsedJpeg | None:
    """Lossless transform (and progressive to baseline) with jpegtran; None to fall back."""
    exe = _jpegtran_path()
    if exe is None:
        return None
    args = [exe, "-copy", "none", "-maxscans", str(MAX_SCANS)]
    if orientation != 1:
        args += ["-perfect", *_JPEGTRAN_ARGS[orientation]]
    try:
        proc = subprocess.run(
            args,
            input=bytes(parsed.bitstream),
            capture_output=True,
            timeout=JPEGTRAN_TIMEOUT_S,
            check=False,
        )
        if proc.returncode not in (0, 2) or not proc.stdout:  # 2: finished with warnings
            return None  # including "transformation is not perfect"
        result = parse(proc.stdout, limits=limits)
    except (OSError, subprocess.SubprocessError, ConversionFailed):
        return None
    width, height = parsed.frame.width, parsed.frame.height
    expected = (height, width) if orientation >= 5 else (width, height)
    if result.frame.marker not in SEQUENTIAL_HUFFMAN:
        return None
    return result if (result.frame.width, result.frame.height) == expected else None


def _reencode(
    parsed: ParsedJpeg, colour: str, orientation: int, limits: Limits
) -> tuple[ParsedJpeg, bytes | None, list[str]]:
    """Decode, make upright and RGB or grey, re-encode; returns (result, ICC profile, notes)."""
    notes: list[str] = []
    icc = parsed.icc_profile
    source = io.BytesIO(bytes(parsed.bitstream))
    with pillow_errors("JPEG image"), Image.open(source, formats=["JPEG"]) as opened:
        opened.load()
        im: Image.Image = opened
        if parsed.frame.marker not in SEQUENTIAL_HUFFMAN:
            notes.append(f"decoded from {SOF_NAMES[parsed.frame.marker]} JPEG")
        if colour in ("cmyk", "ycck"):
            im, icc, how = cmyk_to_rgb(opened, icc)
            notes.append(f"converted from CMYK to RGB {how}")
        elif colour == "rgb":
            notes.append("converted from RGB-coded JPEG to YCbCr")
        if orientation != 1:
            im = im.transpose(_PIL_TRANSPOSE[orientation])
            notes.append(f"{ORIENTATION_TEXT[orientation]} (EXIF orientation {orientation})")
        data = encode_baseline_jpeg(im, quality=REENCODE_QUALITY)
    notes.append(f"re-encoded as baseline JPEG (quality {REENCODE_QUALITY})")
    return parse(data, limits=limits), icc, notes


def _ratio(frame: Frame, compressed: int) -> float:
    """Lossy Image Compression Ratio: uncompressed bytes over compressed bytes."""
    uncompressed = (
        frame.width * frame.height * len(frame.components) * (2 if frame.precision > 8 else 1)
    )
    return round(uncompressed / max(compressed, 1), 2)


def _captured(
    source: SourceFile,
    out: ParsedJpeg,
    history: list[LossyStep],
    notes: list[str],
    capture: CaptureMetadata,
    icc: bytes | None,
    flags: list[str],
) -> CapturedImage:
    frame, text = out.frame, "; ".join(notes)
    grey = len(frame.components) == 1
    return CapturedImage(
        media_type=source.media_type,
        original_sha256=source.sha256,
        original_size=source.size,
        rows=frame.height,
        columns=frame.width,
        samples_per_pixel=1 if grey else 3,
        bits_allocated=16 if frame.precision > 8 else 8,
        bits_stored=frame.precision,
        photometric_interpretation="MONOCHROME2" if grey else "YBR_FULL_422",
        transfer_syntax_uid=JPEG_EXTENDED if out.extended else JPEG_BASELINE,
        jpeg=out.bitstream,
        lossy_history=history,
        derived=bool(notes),
        derivation_description=text[:1].upper() + text[1:],
        capture=capture,
        icc_profile=icc,
        chroma_subsampling=chroma_subsampling(frame),
        flags=flags,
    )
