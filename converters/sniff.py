"""Media type from magic bytes, never from a file name or a client's Content-Type.

Pillow's ``Image.open`` sniffs too, and would hand a file named ``.png`` to whichever of its
forty parsers claims it (EPS runs Ghostscript; RELIABILITY.md 2.3). So the service decides the
kind itself, from the first :data:`HEAD_SIZE` bytes, and each converter then opens the file with
exactly one Pillow format allowed.

Types outside the photograph allow-list (PDF, GIF, ZIP, video, DICOM, ...) are still named, so
that a refusal can say what was detected rather than "unknown file".
"""

from __future__ import annotations

import re

HEAD_SIZE = 4096
"""Bytes to read for :func:`sniff`. DICOM needs 132, PDF allows its header anywhere in the first
1024, and an ISO-BMFF ``ftyp`` box lists its brands within the first few hundred bytes."""

OCTET_STREAM = "application/octet-stream"

# ISO base media file format (HEIF, AVIF, MP4, QuickTime): brands in the ftyp box.
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_GENERIC_HEIF_BRANDS = frozenset({b"mif1", b"msf1", b"mif2"})
_MP4_BRANDS = frozenset(
    {
        b"isom",
        b"iso2",
        b"iso3",
        b"iso4",
        b"iso5",
        b"iso6",
        b"iso7",
        b"iso8",
        b"iso9",
        b"mp41",
        b"mp42",
        b"mp71",
        b"avc1",
        b"M4V ",
        b"M4VP",
        b"M4A ",
        b"MSNV",
        b"dash",
        b"mmp4",
        b"3gp4",
        b"3gp5",
        b"3gp6",
        b"3g2a",
        b"f4v ",
        b"XAVC",
    }
)
_QUICKTIME_BRANDS = frozenset({b"qt  "})
# QuickTime files written before ftyp existed start directly with one of these atoms.
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"pnot", b"skip", b"free"})

_SVG = re.compile(
    rb"^\s*(<\?xml[^>]{0,200}>\s*)?(<!--.{0,200}?-->\s*)*(<!DOCTYPE svg[^>]{0,500}>\s*)?<svg",
    re.DOTALL | re.IGNORECASE,
)

# (offset, signature, media type); first match wins, so longer and stricter signatures go first.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"II+\x00", "image/tiff"),  # BigTIFF
    (0, b"MM\x00+", "image/tiff"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "image/jp2"),
    (0, b"\xff\x4f\xff\x51", "image/jp2"),  # raw JPEG 2000 codestream
    (0, b"\xff\x0a", "image/jxl"),
    (0, b"\x00\x00\x00\x0cJXL \r\n\x87\n", "image/jxl"),
    (0, b"8BPS", "image/vnd.adobe.photoshop"),
    (0, b"%!PS", "application/postscript"),
    (0, b"\xc5\xd0\xd3\xc6", "application/postscript"),  # DOS EPS binary header
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"PK\x05\x06", "application/zip"),
    (0, b"PK\x07\x08", "application/zip"),
    (0, b"\x1f\x8b", "application/gzip"),
    (0, b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (0, b"Rar!\x1a\x07", "application/vnd.rar"),
    (0, b"SIMPLE  =", "image/fits"),
    (0, b"MZ", "application/vnd.microsoft.portable-executable"),
    (0, b"\x7fELF", "application/x-elf"),
    (128, b"DICM", "application/dicom"),
)


def sniff(head: bytes) -> str:
    """Return the media type the first bytes of a file announce.

    Parameters
    ----------
    head : bytes
        The first :data:`HEAD_SIZE` bytes of the file (fewer if the file is shorter).

    Returns
    -------
    str
        A media type such as ``image/jpeg``, or ``application/octet-stream`` when nothing matches.
    """
    for offset, signature, media_type in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            if media_type == "application/vnd.microsoft.portable-executable" and len(head) < 64:
                continue  # "MZ" alone is too short a signature to trust
            return media_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:2] == b"BM" and _looks_like_bmp(head):
        return "image/bmp"
    iso = _iso_bmff(head)
    if iso:
        return iso
    if b"%PDF-" in head[:1024]:
        return "application/pdf"
    if _SVG.match(head):
        return "image/svg+xml"
    return OCTET_STREAM


def _looks_like_bmp(head: bytes) -> bool:
    """ "BM" is only two bytes; also require a known DIB header size and a sane pixel offset."""
    if len(head) < 26:
        return False
    dib_size = int.from_bytes(head[14:18], "little")
    pixel_offset = int.from_bytes(head[10:14], "little")
    return dib_size in (12, 16, 40, 52, 56, 64, 108, 124) and 14 + dib_size <= pixel_offset


def _iso_bmff(head: bytes) -> str | None:
    """Classify an ISO base media file (``....ftyp``) by its major and compatible brands.

    ``mif1``/``msf1`` only say "some HEIF image"; AVIF files carry them too, so a generic major
    brand is resolved by the compatible brands (``avif`` wins, then any HEVC brand).
    """
    if head[4:8] != b"ftyp":
        if len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS and head[:4] != b"\x00\x00\x00\x00":
            return "video/quicktime"
        return None
    box_size = int.from_bytes(head[:4], "big")
    end = min(max(box_size, 16), len(head))
    major = head[8:12]
    compatible = [head[i : i + 4] for i in range(16, end - 3, 4)]
    if major in _HEIC_BRANDS:
        return "image/heic"
    if major in _AVIF_BRANDS:
        return "image/avif"
    if major in _GENERIC_HEIF_BRANDS:
        if any(b in _AVIF_BRANDS for b in compatible):
            return "image/avif"
        return "image/heic"  # generic HEIF; libheif decides whether it can decode it
    if major in _QUICKTIME_BRANDS:
        return "video/quicktime"
    if major in _MP4_BRANDS or major.startswith(b"3g"):
        return "video/mp4"
    if any(b in _HEIC_BRANDS for b in compatible):
        return "image/heic"
    if any(b in _AVIF_BRANDS for b in compatible):
        return "image/avif"
    if any(b in _QUICKTIME_BRANDS for b in compatible):
        return "video/quicktime"
    if any(b in _MP4_BRANDS for b in compatible):
        return "video/mp4"
    return None
