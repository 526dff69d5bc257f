"""Lossless raster inputs (PNG, TIFF, BMP, WebP) to native pixels, plus the Pillow safety helpers
shared by every converter.

Output: an upright ``numpy`` array for Explicit VR Little Endian (1.2.840.10008.1.2.1),
Photometric Interpretation RGB or MONOCHROME2, 8-bit samples. Decisions, each recorded in
``derivation_description`` (Image Type DERIVED) and ``flags`` when it changes a pixel value:

* **Alpha**: DICOM has no alpha channel. A fully opaque alpha is dropped (nothing changes).
  Otherwise the image is composited over white, as a viewer shows it. Dropping alpha instead
  would reveal whatever lies under transparent pixels, which may be content someone erased.
* **16-bit samples** are reduced to 8 bits (most significant byte kept; Pillow does the same for
  16-bit RGB). The VL Image module (PS3.3 C.8.12.1) allows only Bits Allocated 8: dciodvfy
  refuses 16 with "Unrecognized enumerated value" for VL Photographic and Dermoscopic images.
* **Palette** images become RGB; 1-bit images become 8-bit MONOCHROME2 (0 and 255).
* **Orientation**: an EXIF Orientation (PNG eXIf, TIFF tag 274, WebP EXIF) is applied to the
  pixels, which is lossless for native pixels.
* **Lossy sources**: lossy WebP (VP8) and JPEG-compressed TIFF are stored as their decoded pixels
  (no second lossy generation) with the lossy step recorded. DICOM has no defined term for VP8
  (PS3.3 C.7.6.1.1.5.1 lists ISO_10918_1 ... ISO_23008_2); Lossy Image Compression Method is CS
  with Defined Terms, so the codec's own name ``VP8`` is recorded, which is accurate and readable.

Pillow is only ever asked to open the one format that sniffing detected (``formats=[...]``), the
size is checked against :class:`Limits` from the header before any pixel is decoded, and every
Pillow exception becomes :class:`ConversionFailed` (:func:`pillow_errors`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from converters.base import CapturedImage, Limits, LossyStep, SourceFile
from converters.exif import read_exif
from repository.errors import ConversionFailed, InvalidInput, OlogiesError, UnsupportedMediaType

MEDIA_TYPES = frozenset({"image/png", "image/tiff", "image/bmp", "image/webp"})
DEPENDENCIES: tuple[str, ...] = ()  # Pillow is a core dependency
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"

_PILLOW_FORMAT = {
    "image/png": "PNG",
    "image/tiff": "TIFF",
    "image/bmp": "BMP",
    "image/webp": "WEBP",
}
_NAME = {"image/png": "PNG", "image/tiff": "TIFF", "image/bmp": "BMP", "image/webp": "WebP"}
# TIFF Compression (259) values that are lossy, and the method recorded for them.
_LOSSY_TIFF = {
    6: "ISO_10918_1",
    7: "ISO_10918_1",
    34892: "ISO_10918_1",
    33003: "ISO_15444_1",
    33005: "ISO_15444_1",
    34712: "ISO_15444_1",
    50001: "VP8",
}
ORIENTATION_TEXT = {
    2: "mirrored left-right",
    3: "rotated 180 degrees",
    4: "mirrored top-bottom",
    5: "transposed (mirrored about the top-left to bottom-right diagonal)",
    6: "rotated 90 degrees clockwise",
    7: "transversed (mirrored about the top-right to bottom-left diagonal)",
    8: "rotated 90 degrees counter-clockwise",
}
ACCEPTED = "JPEG, PNG, TIFF, BMP, WebP, HEIC"
ALPHA_NOTE = "transparent areas composited over white (DICOM has no alpha channel)"
BITS_NOTE = "16-bit samples reduced to 8 bits (the VL Image module allows 8-bit samples only)"


def is_available() -> bool:
    return True


def convert(source: SourceFile, *, limits: Limits, local_tz: str) -> CapturedImage:
    """Decode a PNG, TIFF, BMP or WebP file into upright native pixels."""
    name = _NAME[source.media_type]
    with source.path.open("rb") as handle:
        head = handle.read(64)
    size = _header_dimensions(source.media_type, head)
    if size:
        check_dimensions(*size, limits)
    lossy = _lossy_step_webp(source.path) if source.media_type == "image/webp" else None
    pillow_format = _PILLOW_FORMAT[source.media_type]
    with (
        pillow_errors(f"{name} image", source.path),
        Image.open(source.path, formats=[pillow_format]) as im,
    ):
        check_dimensions(im.width, im.height, limits)
        _refuse_multiple_images(im, name)
        source_bits = _source_bits(im, head, source.media_type)
        tiff_orientation = 1
        if source.media_type == "image/tiff":
            _refuse_camera_raw(im, head)
            lossy = _LOSSY_TIFF.get(int(_tags(im).get(259, 1) or 1))
            tiff_orientation = _tags(im).get(0x0112, 1)
        im.load()
        exif = im.getexif()
        facts = read_exif(exif, local_tz=local_tz)
        # Pillow 13 turns a TIFF upright while loading it and then drops the tag
        turned_by_pillow = tiff_orientation in ORIENTATION_TEXT and 0x0112 not in exif
        if turned_by_pillow:
            facts.orientation = tiff_orientation
        raw_icc = im.info.get("icc_profile")
        converted = ""
        if im.mode == "CMYK":  # through its own profile to sRGB, as the JPEG path does
            from converters.jpeg import cmyk_to_rgb

            im, raw_icc, how = cmyk_to_rgb(im, valid_icc(raw_icc))
            converted = f"converted from CMYK to RGB {how}"
        pixels, notes, flags = to_native(im, source_bits=source_bits, media_type=source.media_type)
        notes += [converted] if converted else []
    icc = valid_icc(raw_icc)
    if raw_icc and icc is None:
        flags.append("ICC_PROFILE_INVALID")
    if icc is not None and icc[16:20] != (b"GRAY" if pixels.ndim == 2 else b"RGB "):
        # A profile must describe the stored pixels (PS3.3 C.11.15.1.1): one of another colour
        # space (a CMYK profile left on converted pixels, say) would mislead every viewer.
        icc = None
        flags.append("ICC_PROFILE_MISMATCH")
    if facts.orientation != 1:
        if not turned_by_pillow:
            pixels = apply_orientation(pixels, facts.orientation)
        turned = ORIENTATION_TEXT[facts.orientation]
        notes.insert(0, f"{turned} (EXIF orientation {facts.orientation})")
    rows, columns = pixels.shape[:2]
    samples = 1 if pixels.ndim == 2 else 3
    history = []
    if lossy:
        history.append(LossyStep(lossy, round(rows * columns * samples / max(source.size, 1), 2)))
    return CapturedImage(
        media_type=source.media_type,
        original_sha256=source.sha256,
        original_size=source.size,
        rows=rows,
        columns=columns,
        samples_per_pixel=samples,
        bits_allocated=8,
        bits_stored=8,
        photometric_interpretation="MONOCHROME2" if samples == 1 else "RGB",
        transfer_syntax_uid=EXPLICIT_VR_LITTLE_ENDIAN,
        pixels=np.ascontiguousarray(pixels),
        lossy_history=history,
        derived=bool(notes),
        derivation_description=_sentence(notes),
        capture=facts.capture,
        icc_profile=icc,
        flags=facts.flags + flags,
    )


# --- shared helpers (also used by converters.jpeg and converters.heic) --------------------------


def check_dimensions(width: int, height: int, limits: Limits) -> None:
    """Refuse an image whose header announces too many pixels, before anything is decoded."""
    if width <= 0 or height <= 0:
        raise ConversionFailed(
            f"the image header gives impossible dimensions {width}x{height}", field="file"
        )
    if width > limits.max_dimension or height > limits.max_dimension:
        raise InvalidInput(
            f"image is {width}x{height}, more than the limit of {limits.max_dimension} pixels per side",
            field="file",
        )
    if width * height > limits.max_pixels:
        raise InvalidInput(
            f"image is {width}x{height} ({width * height} pixels), more than the limit of "
            f"{limits.max_pixels} pixels",
            field="file",
        )


@contextmanager
def pillow_errors(what: str, path: Path | None = None) -> Iterator[None]:
    """Turn anything a decoder raises on bad input into :class:`ConversionFailed`.

    Pillow and its plugins raise OSError, SyntaxError, ValueError, struct.error, EOFError,
    IndexError, DecompressionBombError and more on hostile files; none may escape as a 500.
    Our own errors pass through; the server's temporary path never appears in a message.
    """
    try:
        yield
    except OlogiesError:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidInput(
            f"{what}: too many pixels ({_clean_message(exc, path)})", field="file"
        ) from exc
    except MemoryError as exc:
        raise InvalidInput(
            f"{what} needs more memory to decode than this service allows", field="file"
        ) from exc
    except Exception as exc:
        raise ConversionFailed(
            f"{what} is damaged or cannot be decoded ({_clean_message(exc, path)})", field="file"
        ) from exc


def _clean_message(exc: BaseException, path: Path | None) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if path is not None:
        text = text.replace(str(path), "<file>")
    return text[:200]


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Make pixels stored with EXIF ``orientation`` (1..8) upright; same table as Pillow's
    ``ImageOps.exif_transpose``."""
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1, :]
    if orientation == 5:
        return pixels.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(pixels, k=-1)
    if orientation == 7:
        return np.rot90(pixels, k=2).swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(pixels, k=1)
    return pixels


def flatten_alpha(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite ``colour`` (HxW or HxWx3, uint8) over white using ``alpha`` (HxW, uint8)."""
    a = alpha.astype(np.uint16)
    if colour.ndim == 3:
        a = a[..., None]
    out = (colour.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def valid_icc(data: object) -> bytes | None:
    """An ICC profile only if it looks like one (size field and the ``acsp`` signature)."""
    if not isinstance(data, (bytes, bytearray)) or len(data) < 132:
        return None
    if data[36:40] != b"acsp" or int.from_bytes(data[:4], "big") > len(data):
        return None
    return bytes(data)


def to_native(
    im: Image.Image, *, source_bits: int = 8, media_type: str = ""
) -> tuple[np.ndarray, list[str], list[str]]:
    """Pixels of a loaded Pillow image as uint8 grey (HxW) or RGB (HxWx3), with notes and flags."""
    notes: list[str] = []
    flags: list[str] = []
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        wide = np.asarray(im)
        if wide.min(initial=0) < 0 or wide.max(initial=0) > 0xFFFF:
            raise ConversionFailed("32-bit integer samples are not supported", field="file")
        return (wide.astype(np.uint16) >> 8).astype(np.uint8), [BITS_NOTE], ["BIT_DEPTH_REDUCED"]
    if "transparency" in im.info and mode in ("L", "RGB", "P"):
        im = im.convert("LA" if mode == "L" else "RGBA")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("RGBX", "CMYK", "YCbCr"):
        if mode != "RGBX":
            notes.append(f"converted from {mode} to RGB")
        im = im.convert("RGB")
    elif mode in ("La", "RGBa"):  # premultiplied alpha
        im = im.convert(mode.upper())
    if im.mode not in ("L", "LA", "RGB", "RGBA"):
        raise ConversionFailed(f"{im.mode} samples are not supported", field="file")
    arr = np.asarray(im)
    if im.mode in ("LA", "RGBA"):
        colour, alpha = arr[..., :-1], arr[..., -1]
        colour = colour[..., 0] if im.mode == "LA" else colour
        if alpha.min() == 255 or (media_type == "image/bmp" and alpha.max() == 0):
            arr = colour  # opaque, or a BMP's unused fourth byte
        else:
            arr = flatten_alpha(colour, alpha)
            notes.append(ALPHA_NOTE)
            flags.append("ALPHA_COMPOSITED")
    if source_bits > 8:
        notes.append(BITS_NOTE)
        flags.append("BIT_DEPTH_REDUCED")
    return np.ascontiguousarray(arr, dtype=np.uint8), notes, flags


def _sentence(notes: list[str]) -> str:
    text = "; ".join(notes)
    return text[:1].upper() + text[1:] if text else ""


# --- format details ------------------------------------------------------------------------------


def _header_dimensions(media_type: str, head: bytes) -> tuple[int, int] | None:
    """Width and height straight from the header bytes, so a bomb is refused before Pillow runs."""
    try:
        if media_type == "image/png" and head[12:16] == b"IHDR":
            return struct.unpack(">II", head[16:24])
        if media_type == "image/bmp":
            if int.from_bytes(head[14:18], "little") == 12:
                return struct.unpack("<HH", head[18:22])
            width, height = struct.unpack("<ii", head[18:26])
            return width, abs(height)
        if media_type == "image/webp":
            chunk = head[12:16]
            if chunk == b"VP8X":
                return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(
                    head[27:30], "little"
                )
            if chunk == b"VP8L" and head[20] == 0x2F:
                bits = int.from_bytes(head[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
                width, height = struct.unpack("<HH", head[26:30])
                return width & 0x3FFF, height & 0x3FFF
    except (struct.error, IndexError):
        return None
    return None


def _lossy_step_webp(path: Path) -> str | None:
    """``VP8`` if the WebP's image data is lossy (a ``VP8 `` chunk), None if lossless (``VP8L``)."""
    with path.open("rb") as handle:
        handle.seek(12)
        for _ in range(64):  # a still WebP has a handful of chunks
            header = handle.read(8)
            if len(header) < 8:
                return None
            fourcc, length = header[:4], int.from_bytes(header[4:], "little")
            if fourcc == b"VP8 ":
                return "VP8"
            if fourcc == b"VP8L":
                return None
            handle.seek(length + (length & 1), 1)
    return None


def _source_bits(im: Image.Image, head: bytes, media_type: str) -> int:
    """Bits per sample in the file, where Pillow hides it by reducing 16-bit RGB on load."""
    if media_type == "image/png" and head[12:16] == b"IHDR" and len(head) > 24:
        return head[24] if im.mode not in ("P", "1") else 8
    if media_type == "image/tiff":
        bits = _tags(im).get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        return max(int(b) for b in bits) if bits else 8
    return 8


def _tags(im: Image.Image) -> Mapping[int, Any]:
    """A TIFF's IFD0 tags (``tag_v2``); empty for other formats."""
    return getattr(im, "tag_v2", {})


def _refuse_camera_raw(im: Image.Image, head: bytes) -> None:
    """DNG, CR2 and NEF are TIFF underneath, and their first image is often a small preview:
    converting it would silently store a thumbnail in place of the photograph."""
    if 50706 in _tags(im) or head[8:10] == b"CR":  # DNGVersion; Canon CR2 signature
        raise UnsupportedMediaType(
            f"detected a camera RAW file (TIFF-based); expected a photograph ({ACCEPTED})",
            field="file",
        )
    if int(_tags(im).get(254, 0) or 0) & 1:  # NewSubfileType: reduced-resolution image
        raise UnsupportedMediaType(
            "the TIFF's first image is a reduced-resolution preview (a camera RAW file?); "
            f"expected a photograph ({ACCEPTED})",
            field="file",
        )


def _refuse_multiple_images(im: Image.Image, name: str) -> None:
    """Animated PNG/WebP and multi-page TIFF hold more than one picture: refuse, never pick one.

    TIFF pages flagged as reduced-resolution copies (NewSubfileType bit 0) are thumbnails and do
    not count; they are never decoded.
    """
    frames = getattr(im, "n_frames", 1)
    if frames <= 1:
        return
    if name != "TIFF" or frames > 64:
        raise ConversionFailed(
            f"{name} file holds {frames} images; upload one photograph per file", field="file"
        )
    full = 1
    for index in range(1, frames):
        im.seek(index)
        if not int(_tags(im).get(254, 0)) & 1:
            full += 1
    im.seek(0)
    if full > 1:
        raise ConversionFailed(
            f"TIFF file holds {full} images; upload one photograph per file", field="file"
        )
