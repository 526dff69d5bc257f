"""Received DICOM video and documents (Video Photographic or Endoscopic, Encapsulated PDF): the
checks ``converters.dicom`` runs on them where it checks the frames of an image.

They are held to the rules of an upload of the same MP4 or PDF (``converters.video``,
``converters.pdf``): a video must be an MP4 holding H.264 or HEVC that decodes, in the transfer
syntax of its codec, and its container may not keep a location (it is remuxed by stream copy if
it has one: the frames stay the sender's); a PDF must be whole and free of active content
(JavaScript, embedded files, external links), or it is refused with what was found.
"""

from __future__ import annotations

import mmap
import os
import shutil
import struct
import tempfile
from pathlib import Path

from pydicom import Dataset

from converters.dicom_read import pixel_data_element
from converters.dicom_rules import (
    CANNOT_UNDERSTAND,
    DATASET_DOES_NOT_MATCH,
    MPEG4_HP41,
    MPEG4_HP41_BD,
    MPEG4_HP42_2D,
    OUT_OF_RESOURCES,
    TRANSFER_SYNTAX_NOT_SUPPORTED,
    VIDEO_TRANSFER_SYNTAXES,
    Coercion,
    DicomLimits,
    rejected,
)
from repository.errors import InvalidInput, OlogiesError, PayloadTooLarge, UnsupportedMediaType
from repository.media import ends_with_pad

_AVC_SYNTAXES = frozenset({MPEG4_HP41, MPEG4_HP41_BD, MPEG4_HP42_2D})
_ITEM, _SEQUENCE_END = (0xFFFE, 0xE000), (0xFFFE, 0xE0DD)


def check_syntax_for_class(is_video: bool, ts: str, class_name: str) -> None:
    """A video in a video transfer syntax, and nothing else in one."""
    if is_video and ts not in VIDEO_TRANSFER_SYNTAXES:
        raise rejected(
            TRANSFER_SYNTAX_NOT_SUPPORTED,
            f"{class_name} must be in an MPEG-4 AVC or HEVC transfer syntax, not {ts}",
            UnsupportedMediaType,
            "TransferSyntaxUID",
        )
    if not is_video and ts in VIDEO_TRANSFER_SYNTAXES:
        raise rejected(
            TRANSFER_SYNTAX_NOT_SUPPORTED, f"{class_name} cannot be in the video transfer syntax {ts}",
            UnsupportedMediaType, "TransferSyntaxUID",
        )  # fmt: skip


def check_video(ds: Dataset, ts: str, workdir: Path, coercions: list[Coercion]) -> None:
    """Check a received video's Multi-frame essentials and its MP4 (module docstring)."""
    from converters import video

    for keyword in ("Rows", "Columns", "NumberOfFrames"):
        try:
            value = int(ds.get(keyword) or 0)
        except (TypeError, ValueError):
            value = 0
        if value <= 0:
            raise rejected(DATASET_DOES_NOT_MATCH, f"{keyword} is missing or not a positive number", InvalidInput, keyword)
    if "PixelData" not in ds:
        raise rejected(DATASET_DOES_NOT_MATCH, "PixelData is missing", InvalidInput, "PixelData")
    with tempfile.TemporaryDirectory(dir=workdir, prefix="video-") as scratch:
        work = Path(scratch)
        bitstream = work / "received.mp4"
        _write_bitstream(ds.PixelData, bitstream)
        try:
            found = video.check_received(bitstream, workdir=work)
        except OlogiesError as exc:
            status = TRANSFER_SYNTAX_NOT_SUPPORTED if isinstance(exc, UnsupportedMediaType) else CANNOT_UNDERSTAND
            raise rejected(status, exc.message, type(exc), "PixelData") from exc
        if (found.codec == "h264") != (ts in _AVC_SYNTAXES):
            raise rejected(
                DATASET_DOES_NOT_MATCH,
                f"the video is {found.codec.upper()}, but the transfer syntax {ts} is for "
                f"{'MPEG-4 AVC (H.264)' if ts in _AVC_SYNTAXES else 'HEVC (H.265)'}",
                InvalidInput,
                "TransferSyntaxUID",
            )
        if found.cleaned is not None:
            ds[0x7FE00010] = pixel_data_element("OB", encapsulated_video_file(found.cleaned, work / "encapsulated"))
            coercions.append(Coercion(
                "PixelData", "modified",
                "location metadata removed from the MP4 container (stream copy: the frames are unchanged)",
            ))  # fmt: skip


def check_document(ds: Dataset, limits: DicomLimits) -> None:
    """Check a received Encapsulated PDF: the MIME type, the length, and the PDF itself."""
    from converters.pdf import PDFLimits
    from converters.pdf import check_document as check_pdf

    mime = str(ds.get("MIMETypeOfEncapsulatedDocument", "") or "").strip()
    if mime != "application/pdf":
        raise rejected(
            DATASET_DOES_NOT_MATCH, f"MIMETypeOfEncapsulatedDocument is {mime or 'missing'}, not application/pdf",
            InvalidInput, "MIMETypeOfEncapsulatedDocument",
        )  # fmt: skip
    data = bytes(ds.get("EncapsulatedDocument", b"") or b"")
    if not data:
        raise rejected(DATASET_DOES_NOT_MATCH, "EncapsulatedDocument is missing", InvalidInput, "EncapsulatedDocument")
    declared = ds.get("EncapsulatedDocumentLength")
    if declared not in (None, ""):
        try:
            length = int(declared)
        except (TypeError, ValueError):
            length = -1
        if not 0 < length <= len(data) or len(data) - length > 1:
            raise rejected(
                DATASET_DOES_NOT_MATCH,
                f"EncapsulatedDocumentLength is {declared}, but the document holds {len(data)} bytes",
                InvalidInput,
                "EncapsulatedDocumentLength",
            )
        data = data[:length]
    try:
        check_pdf(data, PDFLimits(max_bytes=limits.max_bytes))
    except PayloadTooLarge as exc:
        raise rejected(OUT_OF_RESOURCES, exc.message, PayloadTooLarge, "EncapsulatedDocument") from exc
    except OlogiesError as exc:
        raise rejected(CANNOT_UNDERSTAND, exc.message, type(exc), "EncapsulatedDocument") from exc


def _write_bitstream(pixel_data: bytes, out: Path) -> None:
    """The fragments of encapsulated Pixel Data (after the offset table) joined into ``out``,
    without the pad byte that made an odd-length MP4 even."""
    view = memoryview(pixel_data)
    pos, size, fragments = 0, len(view), 0
    with out.open("wb") as target:
        while pos + 8 <= size:
            group, element, length = struct.unpack_from("<HHI", view, pos)
            if (group, element) == _SEQUENCE_END:
                break
            if (group, element) != _ITEM or pos + 8 + length > size:
                raise rejected(CANNOT_UNDERSTAND, f"encapsulated Pixel Data is malformed at byte {pos}", InvalidInput, "PixelData")
            if fragments:  # the first item is the Basic Offset Table
                target.write(view[pos + 8 : pos + 8 + length])
            fragments += 1
            pos += 8 + length
    if fragments < 2:
        raise rejected(DATASET_DOES_NOT_MATCH, "the encapsulated Pixel Data holds no video", InvalidInput, "PixelData")
    total = out.stat().st_size
    with out.open("rb") as handle:
        padded = total % 2 == 0 and ends_with_pad(handle, total)
    if padded:
        os.truncate(out, total - 1)


def encapsulated_video_file(bitstream: Path, out: Path) -> memoryview:
    """:func:`encapsulated_video` of the file ``bitstream``, written to ``out`` and mapped: a
    video of hundreds of megabytes is never held on the heap. The mapping outlives the file's
    name and is released with the last view of it."""
    size = bitstream.stat().st_size
    with out.open("wb") as target, bitstream.open("rb") as source:
        target.write(_video_items(size))
        shutil.copyfileobj(source, target, 1 << 20)
        target.write(b"\0" * (size % 2))
    with out.open("rb") as handle:
        return memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))


def encapsulated_video(data: bytes) -> bytes:
    """An MPEG-4 bitstream as encapsulated Pixel Data: an empty Basic Offset Table, as PS3.5
    8.2.7-8.2.8 require for video (frames are not fragments; ``encapsulate_frame`` writes an
    image frame's offset), then the stream as one fragment padded to even length, in one copy."""
    return b"".join((_video_items(len(data)), data, b"\0" * (len(data) % 2)))


def _video_items(size: int) -> bytes:
    """The empty Basic Offset Table item, then the header of the one fragment holding a
    bitstream of ``size`` bytes, padded to even length."""
    return struct.pack("<HHIHHI", 0xFFFE, 0xE000, 0, 0xFFFE, 0xE000, size + size % 2)
