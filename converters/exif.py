"""Read the few EXIF facts worth keeping, defensively, and nothing that locates or names anyone.

What is read (PS3.17 Annex NNNN maps these into group 0016 and General Equipment): capture time
and its offset, Make, Model, Software, LensMake, LensModel, ExposureTime, FNumber, ISO,
FocalLength, Flash fired, and Orientation (used to make the pixels upright, never stored).

What is never read: the GPS IFD (0x8825), CameraOwnerName (0xA430), BodySerialNumber (0xA431),
MakerNote, free-text descriptions. Only whitelisted tags are copied out of Pillow's parsed EXIF,
so nothing else can reach :class:`CaptureMetadata` (DECISIONS.md 9).

EXIF is untrusted input (RELIABILITY.md 2.10): every value is checked for type and range, strings
lose control and formatting characters and are cut to 64 characters (the DICOM LO limit), and any
exception from parsing yields "unknown", never an error: a hostile EXIF must not fail an upload
that is otherwise a good photograph.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from converters.base import CaptureMetadata
from converters.timezones import localize

EXIF_IFD = 0x8769
ORIENTATION = 0x0112
MAX_TEXT = 64
ORIENTATION_INVALID = "EXIF_ORIENTATION_INVALID"

# Tags in IFD0
_MAKE, _MODEL, _SOFTWARE, _DATETIME = 0x010F, 0x0110, 0x0131, 0x0132
# Tags in the Exif IFD
_EXPOSURE_TIME, _F_NUMBER, _ISO = 0x829A, 0x829D, 0x8827
_DATETIME_ORIGINAL, _DATETIME_DIGITIZED = 0x9003, 0x9004
_OFFSET_TIME, _OFFSET_ORIGINAL, _OFFSET_DIGITIZED = 0x9010, 0x9011, 0x9012
_SUBSEC, _SUBSEC_ORIGINAL, _SUBSEC_DIGITIZED = 0x9290, 0x9291, 0x9292
_FLASH, _FOCAL_LENGTH = 0x9209, 0x920A
_LENS_MAKE, _LENS_MODEL = 0xA433, 0xA434

_DATETIME_RE = re.compile(r"^\s*(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET_RE = re.compile(r"^\s*([+-])(\d{2}):?(\d{2})\s*$")


@dataclass
class ExifFacts:
    """What a converter needs from EXIF: capture metadata, orientation and warnings."""

    capture: CaptureMetadata = field(default_factory=CaptureMetadata)
    orientation: int = 1  # 1..8; 1 when absent or invalid
    flags: list[str] = field(default_factory=list)


def read_exif(source: bytes | Image.Exif | None, *, local_tz: str) -> ExifFacts:
    """Parse EXIF into :class:`ExifFacts`; never raises for bad EXIF.

    Parameters
    ----------
    source : bytes or PIL.Image.Exif or None
        Raw EXIF (a JPEG APP1 payload starting ``Exif\\0\\0``, or bare TIFF bytes), or what
        ``Image.getexif()`` returned for a PNG, TIFF or WebP.
    local_tz : str
        Zone used for times without an offset.
    """
    facts = ExifFacts()
    exif = _load(source)
    if exif is None:
        return facts
    ifd0 = _safe_ifd0(exif)
    sub = _safe_sub_ifd(exif)
    facts.orientation, bad = _orientation(ifd0.get(ORIENTATION))
    if bad:
        facts.flags.append(ORIENTATION_INVALID)
    capture = facts.capture
    capture.manufacturer = clean_text(ifd0.get(_MAKE))
    capture.model = clean_text(ifd0.get(_MODEL))
    capture.software = clean_text(ifd0.get(_SOFTWARE))
    capture.lens_make = clean_text(sub.get(_LENS_MAKE))
    capture.lens_model = clean_text(sub.get(_LENS_MODEL))
    capture.exposure_time_s = _positive(sub.get(_EXPOSURE_TIME), upper=1e5)
    capture.f_number = _positive(sub.get(_F_NUMBER), upper=1e3)
    capture.focal_length_mm = _positive(sub.get(_FOCAL_LENGTH), upper=1e5)
    iso = _positive(sub.get(_ISO), upper=1e7)
    capture.iso = int(iso) if iso is not None else None
    flash = _first(sub.get(_FLASH))
    capture.flash_fired = (
        bool(flash & 1) if isinstance(flash, int) and 0 <= flash <= 0xFFFF else None
    )
    _read_capture_time(ifd0, sub, capture, local_tz)
    return facts


def clean_text(value: Any) -> str:
    """A printable single-line string of at most 64 characters, or ``""``.

    Control, format (bidi overrides), private-use and unassigned characters are removed; a
    backslash becomes ``/`` because it is the value delimiter in DICOM strings.
    """
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return ""
    kept = "".join(
        " " if c in "\t\r\n" else c
        for c in value
        if c in "\t\r\n" or unicodedata.category(c)[0] != "C"
    )
    return " ".join(kept.replace("\\", "/").split())[:MAX_TEXT].strip()


def _load(source: bytes | Image.Exif | None) -> Image.Exif | None:
    if source is None:
        return None
    if isinstance(source, Image.Exif):
        return source
    if not isinstance(source, (bytes, bytearray)) or len(source) < 8:
        return None
    try:
        exif = Image.Exif()
        exif.load(bytes(source))
        return exif
    except Exception:  # noqa: BLE001 - hostile EXIF is ignored, never fatal
        return None


def _safe_ifd0(exif: Image.Exif) -> dict[int, Any]:
    return _safe_ifd0_tags(exif, (_MAKE, _MODEL, _SOFTWARE, _DATETIME, ORIENTATION))


def _safe_ifd0_tags(exif: Image.Exif, tags: tuple[int, ...]) -> dict[int, Any]:
    try:
        return {tag: exif[tag] for tag in tags if tag in exif}
    except Exception:  # noqa: BLE001
        return {}


def _safe_sub_ifd(exif: Image.Exif) -> dict[int, Any]:
    wanted = (
        _EXPOSURE_TIME,
        _F_NUMBER,
        _ISO,
        _DATETIME_ORIGINAL,
        _DATETIME_DIGITIZED,
        _OFFSET_TIME,
        _OFFSET_ORIGINAL,
        _OFFSET_DIGITIZED,
        _SUBSEC,
        _SUBSEC_ORIGINAL,
        _SUBSEC_DIGITIZED,
        _FLASH,
        _FOCAL_LENGTH,
        _LENS_MAKE,
        _LENS_MODEL,
    )
    try:
        ifd = exif.get_ifd(EXIF_IFD)
        found = {tag: ifd[tag] for tag in wanted if tag in ifd}
    except Exception:  # noqa: BLE001
        found = {}
    # some writers put the capture time in IFD0; the Exif IFD wins when both have it
    for tag, value in _safe_ifd0_tags(exif, (_DATETIME_ORIGINAL, _OFFSET_ORIGINAL)).items():
        found.setdefault(tag, value)
    return found


def _orientation(value: Any) -> tuple[int, bool]:
    """(orientation, was_invalid): absent means 1; 0, 9, 65535 or a wrong type mean 1, flagged."""
    if value is None:
        return 1, False
    value = _first(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 8:
        return value, False
    return 1, True


def _first(value: Any) -> Any:
    """The first of a multi-valued tag (ISO is often a tuple), or the value itself."""
    if isinstance(value, (tuple, list)):
        return value[0] if value else None
    return value


def _positive(value: Any, *, upper: float) -> float | None:
    """A finite number in (0, upper) from an int, float or Pillow IFDRational; else None."""
    value = _first(value)
    if value is None or isinstance(value, (bytes, str, bool)):
        return None
    try:
        number = float(value)  # IFDRational with a zero denominator gives nan
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return number if math.isfinite(number) and 0 < number < upper else None


def _read_capture_time(
    ifd0: dict[int, Any], sub: dict[int, Any], capture: CaptureMetadata, local_tz: str
) -> None:
    """DateTimeOriginal, else DateTimeDigitized, else DateTime, each with its own offset tag."""
    for time_tag, offset_tag, subsec_tag, where in (
        (_DATETIME_ORIGINAL, _OFFSET_ORIGINAL, _SUBSEC_ORIGINAL, sub),
        (_DATETIME_DIGITIZED, _OFFSET_DIGITIZED, _SUBSEC_DIGITIZED, sub),
        (_DATETIME, _OFFSET_TIME, _SUBSEC, ifd0),
    ):
        naive = parse_exif_datetime(where.get(time_tag), sub.get(subsec_tag))
        if naive is None:
            continue
        offset = parse_offset(sub.get(offset_tag))
        if offset is not None:
            capture.acquisition_datetime = naive.replace(tzinfo=offset)
            capture.time_flags = []
        else:
            capture.acquisition_datetime, capture.time_flags = localize(naive, local_tz)
        return


def parse_exif_datetime(value: Any, subsec: Any = None) -> dt.datetime | None:
    """``YYYY:MM:DD HH:MM:SS`` (also with ``-`` or ``T``), plus SubSecTime digits; else None."""
    text = clean_text(value)
    match = _DATETIME_RE.match(text)
    if not match:
        return None
    try:
        year, month, day, hour, minute, second = (int(g) for g in match.groups())
        moment = dt.datetime(year, month, day, hour, minute, second)
    except ValueError:  # 0000:00:00 00:00:00, month 13, second 60 ...
        return None
    digits = "".join(ch for ch in clean_text(subsec) if ch.isdigit())[:6]
    if digits:
        moment = moment.replace(microsecond=int(digits.ljust(6, "0")))
    return moment


def parse_offset(value: Any) -> dt.timezone | None:
    """``+01:00`` / ``-05:30`` (EXIF 2.31 OffsetTime*) within +-14:00; else None."""
    match = _OFFSET_RE.match(clean_text(value))
    if not match:
        return None
    sign, hours, minutes = match.groups()
    if int(hours) > 14 or int(minutes) > 59:
        return None
    delta = dt.timedelta(hours=int(hours), minutes=int(minutes))
    return dt.timezone(-delta if sign == "-" else delta)
