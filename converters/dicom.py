"""Incoming DICOM (a Part 10 file, or the bare data set some STOW-RS clients send): check it
safely, apply the privacy rules, record provenance, and spool the object to be stored.

DECISIONS.md 4 and 6: a DICOM input keeps its own UIDs and is stored as received, after
validation and a patient identity check. What "as received" allows us to change, and why:

* **Structure first, pydicom second** (:mod:`converters.dicom_read`). Before pydicom sees a
  byte, a structural walk checks every
  element with its length checked against the bytes that remain (a lying length is refused, not
  silently truncated), sequences nested deeper than :attr:`DicomLimits.max_depth` are refused
  (pydicom recurses and fails with ``RecursionError`` at ~200 levels; RELIABILITY.md 2.5), and the
  element count is bounded. Deflated Explicit VR Little Endian is inflated with a byte budget
  (a deflate bomb stops at the budget, it never reaches memory) and stored as Explicit VR Little
  Endian. Implicit VR Little Endian is stored as Explicit VR Little Endian as well (lossless;
  our private block needs explicit VRs to read back). Big Endian (retired) is refused.
* **What is accepted.** The storage SOP classes of :data:`ACCEPTED_SOP_CLASSES` (photographs of
  one kind or another, video, encapsulated PDF), in the transfer syntaxes of
  :data:`ACCEPTED_TRANSFER_SYNTAXES` (a video in the MPEG-4 AVC or HEVC syntax of its codec and
  nothing else in those). A DICOMDIR and every other SOP class is refused. Videos and PDFs are
  held to the rules of an upload (:mod:`converters.dicom_media`).
* **Patient identity.** Patient ID must be an NHS number that passes Modulus 11 (the 999 test
  range only where the deployment accepts it) or a trust-issued temporary identifier
  ``TMP-<ODS>-<reference>`` (DECISIONS.md 14). A hospital number or anything else is refused
  with the reason: it cannot be matched to the national record, and guessing is a misfiling
  hazard. The 3-3-4 display form ("943 476 5919") is accepted and coerced to 10 digits.
* **Privacy (DECISIONS.md 9).** GPS (0016,0070-008E), Camera Owner Name and Maker Note are
  removed wherever they occur, and APP1-APP15 (EXIF, XMP, maker notes, thumbnails) and COM
  segments are removed from every encapsulated JPEG and JPEG-LS frame. The entropy-coded data
  is not touched, so the pixels are exactly the sender's. Any block of our own private creator
  (``OLOGIES 1.0``) that arrives is replaced: provenance, trust and consent are ours to state.
* **Provenance.** OriginalSHA256 (of the bytes received), OriginalMediaType, IngestRoute,
  PatientIdIsTemporary, ContentSHA256 and, where the route knows them, trust, specialty and
  consent, in our private block (repository/private_tags.py). The preamble is zeroed (CVE-2019-
  11687) and the file meta information is ours.
* **Identity of the object.** The SOP Instance UID is kept. Everything above is a deterministic
  function of the input, so re-sending identical bytes produces identical bytes (a no-op), and
  ContentSHA256 (the digest of the data set as stored minus our private block) lets the
  repository recognise the same instance arriving by another route or in another transfer
  syntax as the same content. Different content under a stored SOP Instance UID is a conflict.

Every refusal is an :class:`~repository.errors.OlogiesError` carrying ``dicom_status``, the
status STOW-RS (PS3.18 Table I.2-2) and C-STORE (PS3.4 B.2.3) report for it: see
:func:`dicom_status_for`. The rules, limits and codes are in :mod:`converters.dicom_rules`
(re-exported here), the safe reading in :mod:`converters.dicom_read`; this module checks,
cleans and writes.
"""

from __future__ import annotations

import hashlib
import mmap
import re
import struct
from collections.abc import Callable, Iterable
from pathlib import Path

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite, write_dataset
from pydicom.uid import UID

from converters import dicom_media
from converters.base import Limits
from converters.iods.base import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from converters.jpeg_markers import parse as parse_jpeg
from repository import private_tags
from repository.errors import InvalidInput, OlogiesError, PayloadTooLarge, UnsupportedMediaType
from repository.keys import is_valid_uid
from repository.patients import normalise_patient_id
from repository.service import PreparedInstance
from converters.dicom_read import _PIXEL_DATA, _UNDEFINED, mapped, read_dicom
from converters.dicom_rules import (  # the rules, codes and result types, re-exported here
    ACCEPTED_SOP_CLASSES,
    ACCEPTED_TRANSFER_SYNTAXES,
    CANNOT_UNDERSTAND,
    COERCED,
    Coercion,
    DATASET_DOES_NOT_MATCH,
    DEFLATED_EXPLICIT_VR_LE,
    DICOMDIR_SOP_CLASS,
    DICOM_MEDIA_TYPE,
    DOCUMENT_SOP_CLASSES,
    DUPLICATE_SOP_INSTANCE,
    DicomLimits,
    ELEMENTS_DISCARDED,
    ENCAPSULATED,
    EXPLICIT_VR_BE,
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    JPEG_2000,
    JPEG_2000_LOSSLESS,
    JPEG_BASELINE,
    JPEG_EXTENDED,
    JPEG_LS_LOSSLESS,
    JPEG_LS_NEAR_LOSSLESS,
    NOT_AUTHORIZED,
    OUT_OF_RESOURCES,
    PRIVACY_TAGS,
    PROCESSING_FAILURE,
    PreparedDicom,
    Provenance,
    RLE_LOSSLESS,
    SOP_CLASS_NOT_SUPPORTED,
    SUCCESS,
    TRANSFER_SYNTAX_NOT_SUPPORTED,
    VIDEO_SOP_CLASSES,
    VIDEO_TRANSFER_SYNTAXES,
    _J2K_SYNTAXES,
    _JPEG_LS_SYNTAXES,
    _JPEG_SYNTAXES,
    dicom_status_for,
    rejected,
    cannot_understand as _cannot_understand,
)

# -- validation ----------------------------------------------------------------------------------
def _uid(ds: Dataset, keyword: str) -> str:
    try:
        value = str(ds.get(keyword, "") or "").strip()
    except Exception as exc:  # noqa: BLE001
        raise rejected(DATASET_DOES_NOT_MATCH, f"{keyword} cannot be read: {exc}", InvalidInput, keyword) from exc
    if not value:
        raise rejected(DATASET_DOES_NOT_MATCH, f"{keyword} is missing", InvalidInput, keyword)
    if not is_valid_uid(value):
        raise rejected(DATASET_DOES_NOT_MATCH, f"{keyword} {value[:80]!r} is not a valid DICOM UID", InvalidInput, keyword)
    return value


def _int(ds: Dataset, keyword: str, *, required: bool = True, default: int = 0) -> int:
    try:
        value = ds.get(keyword)
        if value in (None, ""):
            if required:
                raise rejected(DATASET_DOES_NOT_MATCH, f"{keyword} is missing", InvalidInput, keyword)
            return default
        return int(value)
    except OlogiesError:
        raise
    except (TypeError, ValueError) as exc:
        raise rejected(DATASET_DOES_NOT_MATCH, f"{keyword} is not a number", InvalidInput, keyword) from exc


def check_sop_class(sop_class: str) -> None:
    """Refuse SOP classes that are not stored here, naming them."""
    if sop_class in ACCEPTED_SOP_CLASSES:
        return
    if sop_class == DICOMDIR_SOP_CLASS:
        message = "a DICOMDIR (Media Storage Directory) is not an image: send the files it lists"
    else:
        name = UID(sop_class).name if UID(sop_class).is_valid else sop_class
        message = f"SOP class {name} is not stored here; accepted: {', '.join(ACCEPTED_SOP_CLASSES.values())}"
    raise rejected(SOP_CLASS_NOT_SUPPORTED, message, UnsupportedMediaType, "SOPClassUID")


def check_patient_id(ds: Dataset, *, allow_test_numbers: bool) -> tuple[str, bool, Coercion | None]:
    """Our rules for Patient ID (module docstring); returns (id, is_temporary, coercion)."""
    try:
        raw = str(ds.get("PatientID", "") or "")
    except Exception as exc:  # noqa: BLE001
        raise rejected(DATASET_DOES_NOT_MATCH, f"PatientID cannot be read: {exc}", InvalidInput, "PatientID") from exc
    value = raw.strip()
    if not value:
        raise rejected(
            DATASET_DOES_NOT_MATCH,
            "PatientID is empty: it must be the patient's NHS number or a trust temporary identifier (TMP-...)",
            InvalidInput,
            "PatientID",
        )
    looks_like_nhs = value.replace(" ", "").replace("-", "").isdigit()
    if not looks_like_nhs and not value.upper().startswith("TMP-"):
        raise rejected(
            DATASET_DOES_NOT_MATCH,
            "PatientID is neither an NHS number nor a trust temporary identifier (TMP-<ODS>-<reference>); "
            "local hospital numbers are not accepted because they cannot be matched to the patient's record",
            InvalidInput,
            "PatientID",
        )
    try:
        patient_id, temporary = normalise_patient_id(value, allow_test_numbers=allow_test_numbers, field="PatientID")
    except InvalidInput as exc:
        raise rejected(DATASET_DOES_NOT_MATCH, f"PatientID: {exc.message}", InvalidInput, "PatientID") from exc
    coercion = None
    if patient_id != raw:
        coercion = Coercion("PatientID", "modified", "NHS number written without spaces or hyphens")
    return patient_id, temporary, coercion


def _check_pixels(ds: Dataset, ts: str, limits: DicomLimits, coercions: list[Coercion]) -> None:
    """Image Pixel module essentials, and metadata stripping of JPEG frames."""
    rows, columns = _int(ds, "Rows"), _int(ds, "Columns")
    samples = _int(ds, "SamplesPerPixel")
    bits = _int(ds, "BitsAllocated")
    frames = _int(ds, "NumberOfFrames", required=False, default=1) or 1
    if not ds.get("PhotometricInterpretation"):
        raise rejected(DATASET_DOES_NOT_MATCH, "PhotometricInterpretation is missing", InvalidInput, "PhotometricInterpretation")
    if rows <= 0 or columns <= 0 or samples not in (1, 3, 4) or bits not in (1, 8, 16, 32):
        raise rejected(DATASET_DOES_NOT_MATCH, "image pixel description is invalid (Rows, Columns, SamplesPerPixel, BitsAllocated)", InvalidInput, "Rows")
    if rows * columns > limits.max_pixels or frames > limits.max_frames:
        raise rejected(OUT_OF_RESOURCES, f"image of {columns}x{rows} pixels x {frames} frames is larger than allowed", PayloadTooLarge, "Rows")
    if "PixelData" not in ds:
        raise rejected(DATASET_DOES_NOT_MATCH, "PixelData is missing", InvalidInput, "PixelData")
    pixel_data = ds.PixelData
    if ts not in ENCAPSULATED:
        expected = (rows * columns * samples * bits + 7) // 8 * frames
        if len(pixel_data) < expected:
            raise rejected(
                DATASET_DOES_NOT_MATCH,
                f"PixelData holds {len(pixel_data)} bytes; Rows, Columns, SamplesPerPixel, BitsAllocated and "
                f"NumberOfFrames need {expected}",
                InvalidInput,
                "PixelData",
            )
        return
    try:
        originals = _frames(pixel_data, frames)
    except Exception as exc:  # noqa: BLE001
        raise _cannot_understand(f"encapsulated pixel data cannot be split into {frames} frames: {exc}") from exc
    if len(originals) != frames:
        raise rejected(DATASET_DOES_NOT_MATCH, f"PixelData holds {len(originals)} frames, NumberOfFrames says {frames}", InvalidInput, "PixelData")
    cleaned: list[bytes] = []
    for number, frame in enumerate(originals, start=1):
        if ts in _JPEG_SYNTAXES:
            clean = _clean_jpeg(frame, number, rows, columns, samples, limits)
            cleaned.append(frame if clean is frame else clean)
        elif ts in _JPEG_LS_SYNTAXES:
            cleaned.append(strip_jpeg_segments(frame, number))
        elif ts in _J2K_SYNTAXES and frame[:4] != b"\xff\x4f\xff\x51":
            raise _cannot_understand(f"frame {number} is not a JPEG 2000 codestream (a JP2 file is not allowed)")
        else:
            cleaned.append(frame)
    if ts in _JPEG_SYNTAXES | _JPEG_LS_SYNTAXES:
        if any(new is not old and new != _unpadded(old) for new, old in zip(cleaned, originals)):
            ds.PixelData = encapsulate([bytes(c) for c in cleaned], has_bot=frames > 1)
            coercions.append(Coercion("PixelData", "modified", "JPEG metadata segments (APPn, COM) removed; pixels unchanged"))


def _frames(pixel_data: bytes, count: int) -> list[bytes | memoryview]:
    """The frames of encapsulated pixel data, as views into it where no joining is needed:
    one fragment per frame, or one frame of any number of fragments (PS3.5 A.4)."""
    view = memoryview(pixel_data)
    fragments: list[memoryview] = []
    pos, size = 0, len(view)
    while pos + 8 <= size:
        group, element, length = struct.unpack_from("<HHI", view, pos)
        if (group, element) != (0xFFFE, 0xE000) or pos + 8 + length > size:
            raise ValueError(f"malformed item at byte {pos}")
        fragments.append(view[pos + 8 : pos + 8 + length])
        pos += 8 + length
    if not fragments:
        raise ValueError("no basic offset table")
    fragments = fragments[1:]  # the basic offset table
    if count == 1:
        return [fragments[0]] if len(fragments) == 1 else [b"".join(fragments)]
    if len(fragments) == count:
        return list(fragments)
    return list(generate_frames(pixel_data, number_of_frames=count))


def _unpadded(frame: bytes | memoryview) -> bytes:
    frame = bytes(frame)
    end = frame.rfind(b"\xff\xd9")
    return frame[: end + 2] if end >= 0 else frame


def _clean_jpeg(frame: bytes, number: int, rows: int, columns: int, samples: int, limits: DicomLimits) -> bytes:
    """The frame without metadata segments; the frame itself (no copy) when it has none.

    Most device JPEGs are one interleaved sequential scan with nothing but JFIF or Adobe in their
    header: checking that costs a walk of the header and one C-speed search of the scan for a
    marker other than EOI (well under 2 ms for 4 MB), where a full rewrite costs several copies.
    Anything else goes through :func:`converters.jpeg_markers.parse`, which removes what it must.
    """
    header = _jpeg_header(frame, number)
    if header is not None:
        height, width, components = header
        _check_frame_size(number, height, width, components, rows, columns, samples)
        return frame
    try:
        parsed = parse_jpeg(bytes(frame), limits=Limits(max_pixels=limits.max_pixels))
    except OlogiesError as exc:
        raise _cannot_understand(f"frame {number}: {exc.message}") from exc
    f = parsed.frame
    _check_frame_size(number, f.height, f.width, len(f.components), rows, columns, samples)
    return bytes(parsed.bitstream)


def _check_frame_size(number: int, height: int, width: int, components: int, rows: int, columns: int, samples: int) -> None:
    if (height, width, components) != (rows, columns, samples):
        raise rejected(
            DATASET_DOES_NOT_MATCH,
            f"frame {number} is a {width}x{height} JPEG with {components} components, but Rows, "
            f"Columns and SamplesPerPixel say {columns}x{rows} with {samples}",
            InvalidInput,
            "PixelData",
        )


_CLEAN_APP0 = re.compile(rb"^JFIF\x00.{7}\x00\x00$", re.DOTALL)
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def _jpeg_header(frame: bytes, number: int) -> tuple[int, int, int] | None:
    """(height, width, components) if ``frame`` is already clean: a single interleaved
    sequential scan whose header holds no APPn but JFIF (without thumbnail) or Adobe, no COM,
    and nothing after the scan but EOI. None when it needs :func:`parse_jpeg`."""
    size = len(frame)
    end = size
    while end > 2 and frame[end - 1] == 0:
        end -= 1  # padding to an even length
    if frame[:2] != b"\xff\xd8" or frame[end - 2 : end] != b"\xff\xd9":
        return None
    pos, sof = 2, None
    while pos + 4 <= end:
        if frame[pos] != 0xFF:
            return None
        code = frame[pos + 1]
        length = int.from_bytes(frame[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > end:
            return None
        payload = frame[pos + 4 : pos + 2 + length]
        if code == 0xE0:
            if not _CLEAN_APP0.match(payload):
                return None
        elif code == 0xEE:
            if payload[:5] != b"Adobe":
                return None
        elif 0xE1 <= code <= 0xEF or code == 0xFE:
            return None
        elif code in (0xC0, 0xC1):
            if sof is not None or len(payload) < 6:
                return None
            sof = (int.from_bytes(payload[1:3], "big"), int.from_bytes(payload[3:5], "big"), payload[5])
        elif code == 0xDA:
            if sof is None or not payload or payload[0] != sof[2]:
                return None  # not one scan of every component
            marker = _JPEG_MARKER.search(frame, pos + 2 + length)
            return sof if marker is not None and marker.start() == end - 2 else None
        elif code not in (0xC4, 0xDB, 0xDD):
            return None
        pos += 2 + length
    return None


def strip_jpeg_segments(frame: bytes, number: int = 1) -> bytes:
    """Remove APP1-APP15 and COM segments before the first scan of a JPEG or JPEG-LS stream.

    Lengths are checked; everything from the first SOS on is copied unchanged (for JPEG-LS the
    scan data and its LSE parameters are not touched).
    """
    if frame[:2] != b"\xff\xd8":
        raise _cannot_understand(f"frame {number} does not start with a JPEG SOI marker")
    out = bytearray(b"\xff\xd8")
    pos, size = 2, len(frame)
    while True:
        while pos < size and frame[pos] == 0xFF and pos + 1 < size and frame[pos + 1] == 0xFF:
            pos += 1  # fill bytes
        if pos + 4 > size or frame[pos] != 0xFF:
            raise _cannot_understand(f"frame {number}: JPEG structure is broken at byte {pos}")
        code = frame[pos + 1]
        length = int.from_bytes(frame[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > size:
            raise _cannot_understand(f"frame {number}: JPEG segment at byte {pos} declares {length} bytes, more than remain")
        if code == 0xDA:
            out += frame[pos:]
            return bytes(out)
        if not (0xE1 <= code <= 0xEF or code == 0xFE):
            out += frame[pos : pos + 2 + length]
        pos += 2 + length


def _strip_privacy(ds: Dataset, found: set[str], depth: int = 0) -> None:
    for tag in [t for t in ds.keys() if int(t) in PRIVACY_TAGS]:
        found.add(ds[tag].keyword or str(tag))
        del ds[tag]
    if depth >= 32:
        return
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value or ():
                _strip_privacy(item, found, depth + 1)


def _remove_our_block(ds: Dataset) -> bool:
    """Delete any received ``OLOGIES 1.0`` private block; True if there was one."""
    removed = False
    group = private_tags.GROUP
    for element in range(0x10, 0x100):
        creator_tag = (group << 16) | element
        if creator_tag not in ds:
            continue
        if str(ds[creator_tag].value).strip() != private_tags.CREATOR:
            continue
        base = (group << 16) | (element << 8)
        for tag in [t for t in ds.keys() if base <= int(t) <= base + 0xFF]:
            del ds[tag]
        del ds[creator_tag]
        removed = True
    return removed


def content_sha256(ds: Dataset) -> str:
    """SHA-256 of the data set encoded Explicit VR Little Endian, without our private block.

    The same content received by two routes (a STOW-RS part and a C-STORE, implicit or explicit
    VR) gives the same digest; our provenance (route, received bytes) does not count. Pixel Data
    is hashed where it lies rather than encoded again.
    """
    copy = Dataset()
    copy.update({
        tag: ds[tag] for tag in ds.keys()
        if int(tag) != 0x7FE00010 and ((int(tag) >> 16) != private_tags.GROUP or not _ours(ds, int(tag)))
    })  # fmt: skip
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    try:
        write_dataset(buffer, copy)
    except Exception as exc:  # noqa: BLE001
        raise _cannot_understand(f"DICOM data set cannot be encoded: {exc}") from exc
    digest = hashlib.sha256(buffer.getvalue())
    if "PixelData" in ds:
        element = ds["PixelData"]
        digest.update(b"7FE00010" + str(element.VR).encode())
        digest.update(element.value)
    return digest.hexdigest()


def _ours(ds: Dataset, tag: int) -> bool:
    element = tag & 0xFFFF
    block = element >> 8 if element >= 0x1000 else element
    creator = (private_tags.GROUP << 16) | block
    return creator in ds and str(ds[creator].value).strip() == private_tags.CREATOR


# -- the entry point -----------------------------------------------------------------------------
def prepare_dicom(
    data: bytes | mmap.mmap | Path,
    out: Path,
    *,
    provenance: Provenance,
    allow_test_numbers: bool,
    limits: DicomLimits = DicomLimits(),
    expected_study_uid: str | None = None,
    original_sha256: str | None = None,
    check: Callable[[Dataset], None] | None = None,
) -> PreparedDicom:
    """Validate received DICOM bytes and spool the object to store at ``out``.

    Parameters
    ----------
    data : bytes or pathlib.Path
        A Part 10 file, or a bare data set (Implicit or Explicit VR Little Endian), received in
        memory or spooled to a file. A file is mapped, not read: its Pixel Data is checked,
        hashed and written out without a copy on the heap.
    out : pathlib.Path
        Where to write the object to be stored.
    provenance : Provenance
        The route and what it knows (trust, specialty, consent, calling AE title).
    allow_test_numbers : bool
        Accept NHS numbers in the 999 test range (DECISIONS.md 13).
    limits : DicomLimits
        Size, nesting and element bounds.
    expected_study_uid : str, optional
        STOW-RS ``/studies/{study}``: the instance must belong to this study.
    original_sha256 : str, optional
        Digest of the received bytes when the receiver already computed it.
    check : callable, optional
        A further check of the parsed data set (raise to refuse it).

    Raises
    ------
    OlogiesError
        Carrying ``dicom_status`` (see :func:`dicom_status_for`).
    """
    if isinstance(data, Path):
        with mapped(data) as view:
            return prepare_dicom(
                view, out, provenance=provenance, allow_test_numbers=allow_test_numbers, limits=limits,
                expected_study_uid=expected_study_uid, original_sha256=original_sha256, check=check,
            )  # fmt: skip
    original = original_sha256 or hashlib.sha256(data).hexdigest()
    ds, received_ts, stored_ts = read_dicom(data, limits=limits)
    try:
        return _prepare(ds, received_ts, stored_ts, out, original, provenance=provenance,
                        allow_test_numbers=allow_test_numbers, limits=limits,
                        expected_study_uid=expected_study_uid, check=check)  # fmt: skip
    except OlogiesError as exc:
        # Name the instance in the refusal when it can be named (STOW-RS FailedSOPSequence).
        for attribute, keyword in (("sop_class_uid", "SOPClassUID"), ("sop_instance_uid", "SOPInstanceUID")):
            try:
                value = str(ds.get(keyword, "") or "")
            except Exception:  # noqa: BLE001
                value = ""
            setattr(exc, attribute, value if is_valid_uid(value) else "")
        raise


def _prepare(
    ds: Dataset,
    received_ts: str,
    stored_ts: str,
    out: Path,
    original: str,
    *,
    provenance: Provenance,
    allow_test_numbers: bool,
    limits: DicomLimits,
    expected_study_uid: str | None,
    check: Callable[[Dataset], None] | None,
) -> PreparedDicom:
    sop_class = _uid(ds, "SOPClassUID")
    check_sop_class(sop_class)
    sop_uid = _uid(ds, "SOPInstanceUID")
    study_uid = _uid(ds, "StudyInstanceUID")
    series_uid = _uid(ds, "SeriesInstanceUID")
    meta_uid = ds.file_meta.get("MediaStorageSOPInstanceUID")
    if meta_uid and str(meta_uid) != sop_uid:
        raise rejected(DATASET_DOES_NOT_MATCH, "file meta Media Storage SOP Instance UID differs from SOPInstanceUID", InvalidInput, "SOPInstanceUID")
    meta_class = ds.file_meta.get("MediaStorageSOPClassUID")
    if meta_class and str(meta_class) != sop_class:
        raise rejected(DATASET_DOES_NOT_MATCH, "file meta Media Storage SOP Class UID differs from SOPClassUID", InvalidInput, "SOPClassUID")
    if expected_study_uid and study_uid != expected_study_uid:
        raise rejected(
            DATASET_DOES_NOT_MATCH,
            f"instance belongs to study {study_uid}, not to the study {expected_study_uid} of the request",
            InvalidInput,
            "StudyInstanceUID",
        )
    patient_id, temporary, id_coercion = check_patient_id(ds, allow_test_numbers=allow_test_numbers)
    if temporary and provenance.trust and patient_id.split("-")[1] != provenance.trust:
        # TMP-<ODS>-<reference> is one trust's; filed under another, no one could reconcile it
        raise rejected(
            DATASET_DOES_NOT_MATCH,
            f"PatientID {patient_id} is another trust's temporary identifier: this sender's start TMP-{provenance.trust}-",
            InvalidInput,
            "PatientID",
        )
    coercions: list[Coercion] = [id_coercion] if id_coercion else []
    if id_coercion:
        ds.PatientID = patient_id
    if check is not None:
        check(ds)
    is_video = sop_class in VIDEO_SOP_CLASSES
    dicom_media.check_syntax_for_class(is_video, received_ts, ACCEPTED_SOP_CLASSES[sop_class])
    if is_video:
        dicom_media.check_video(ds, received_ts, out.parent, coercions)
    elif sop_class in DOCUMENT_SOP_CLASSES:
        dicom_media.check_document(ds, limits)
    else:
        _check_pixels(ds, received_ts, limits, coercions)
        if received_ts == IMPLICIT_VR_LE and _int(ds, "BitsAllocated") <= 8:
            ds["PixelData"].VR = "OB"  # implicit VR reads 8-bit pixels as OW; explicit writes OB
    removed: set[str] = set()
    _strip_privacy(ds, removed)
    for keyword in sorted(removed):
        coercions.append(Coercion(keyword, "removed", "location and owner metadata are never stored (DECISIONS.md 9)"))
    # A block of our own that arrives (an object exported from Ologies and sent back, or a forged
    # one) is replaced without a warning: provenance is stated by this server only.
    _remove_our_block(ds)
    digest = content_sha256(ds)
    private_tags.set_private(
        ds,
        TrustODSCode=provenance.trust,
        SpecialtyCode=provenance.specialty,
        ConsentLevel=provenance.consent,
        ConsentRecordedBy=provenance.consent_recorded_by,
        ConsentStatus="ACTIVE" if provenance.consent else "",
        OriginalSHA256=original,
        OriginalMediaType=provenance.original_media_type,
        IngestRoute=provenance.route,
        PatientIdIsTemporary="YES" if temporary else "NO",
        ContentSHA256=digest,
    )
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = stored_ts
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    if provenance.source_ae_title:
        meta.SourceApplicationEntityTitle = provenance.source_ae_title[:16]
    ds.file_meta = meta
    try:
        object_sha = write_part10(out, ds)
    except OlogiesError:
        raise
    except Exception as exc:  # noqa: BLE001 - a value pydicom cannot encode
        out.unlink(missing_ok=True)
        raise _cannot_understand(f"DICOM data set cannot be written back: {exc}") from exc
    instance = PreparedInstance(
        out, sop_uid, study_uid, series_uid, patient_id, sha256=object_sha, uid_derived_from_content=False,
        content_sha256=digest,
    )  # fmt: skip
    return PreparedDicom(instance, sop_class, stored_ts, received_ts, tuple(coercions), original)


def write_part10(out: Path, ds: Dataset) -> str:
    """Write ``ds`` (with its file meta) as a Part 10 file in an explicit VR little endian
    transfer syntax; returns the file's SHA-256. pydicom encodes everything but Pixel Data, which
    is written straight from its value: pydicom would first copy it into a buffer of its own."""
    digest = hashlib.sha256()
    if "PixelData" not in ds or ds.file_meta.TransferSyntaxUID == IMPLICIT_VR_LE:
        dcmwrite(out, ds, enforce_file_format=True)
        with out.open("rb") as written:
            return hashlib.file_digest(written, "sha256").hexdigest()
    pixel = ds["PixelData"]
    before, after = Dataset(), Dataset()
    for tag in ds.keys():
        if int(tag) < _PIXEL_DATA:
            before[tag] = ds[tag]
        elif int(tag) > _PIXEL_DATA:
            after[tag] = ds[tag]
    before.file_meta = ds.file_meta
    encapsulated = str(ds.file_meta.TransferSyntaxUID) in ENCAPSULATED
    value = pixel.value
    header = DicomBytesIO()
    dcmwrite(header, before, enforce_file_format=True)
    length = _UNDEFINED if encapsulated else len(value) + (len(value) & 1)
    parts = [header.getvalue(), struct.pack("<HH", 0x7FE0, 0x0010) + str(pixel.VR).encode() + b"\0\0" + struct.pack("<I", length), value]
    if encapsulated:
        parts.append(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    elif len(value) & 1:
        parts.append(b"\0")
    if len(after):
        buffer = DicomBytesIO()
        buffer.is_little_endian, buffer.is_implicit_VR = True, False
        write_dataset(buffer, after)
        parts.append(buffer.getvalue())
    with out.open("wb") as fp:
        for part in parts:
            digest.update(part)
            fp.write(part)
    return digest.hexdigest()


def describe(coercions: Iterable[Coercion]) -> str:
    """One line for a Warning header or a log: what was changed and why."""
    return "; ".join(f"{c.keyword} {c.action}: {c.reason}" for c in coercions)


__all__ = [
    "ACCEPTED_SOP_CLASSES",
    "ACCEPTED_TRANSFER_SYNTAXES",
    "CANNOT_UNDERSTAND",
    "COERCED",
    "Coercion",
    "DATASET_DOES_NOT_MATCH",
    "DOCUMENT_SOP_CLASSES",
    "DEFLATED_EXPLICIT_VR_LE",
    "DICOMDIR_SOP_CLASS",
    "DICOM_MEDIA_TYPE",
    "DUPLICATE_SOP_INSTANCE",
    "DicomLimits",
    "ELEMENTS_DISCARDED",
    "ENCAPSULATED",
    "EXPLICIT_VR_BE",
    "EXPLICIT_VR_LE",
    "IMPLICIT_VR_LE",
    "JPEG_2000",
    "JPEG_2000_LOSSLESS",
    "JPEG_BASELINE",
    "JPEG_EXTENDED",
    "JPEG_LS_LOSSLESS",
    "JPEG_LS_NEAR_LOSSLESS",
    "NOT_AUTHORIZED",
    "OUT_OF_RESOURCES",
    "PRIVACY_TAGS",
    "PROCESSING_FAILURE",
    "PreparedDicom",
    "Provenance",
    "RLE_LOSSLESS",
    "SOP_CLASS_NOT_SUPPORTED",
    "SUCCESS",
    "TRANSFER_SYNTAX_NOT_SUPPORTED",
    "VIDEO_SOP_CLASSES",
    "VIDEO_TRANSFER_SYNTAXES",
    "check_sop_class",
    "content_sha256",
    "dicom_status_for",
    "prepare_dicom",
    "read_dicom",
    "rejected",
    "strip_jpeg_segments",
]
