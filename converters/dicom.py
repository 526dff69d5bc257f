"""Incoming DICOM (a Part 10 file, or the bare data set some STOW-RS clients send): check it
safely, apply the privacy rules, record provenance, and spool the object to be stored.

DECISIONS.md 4 and 6: a DICOM input keeps its own UIDs and is stored as received, after
validation and a patient identity check. What "as received" allows us to change, and why:

* **Structure first, pydicom second.** Before pydicom sees a byte, :func:`_Walker` walks every
  element with its length checked against the bytes that remain (a lying length is refused, not
  silently truncated), sequences nested deeper than :attr:`DicomLimits.max_depth` are refused
  (pydicom recurses and fails with ``RecursionError`` at ~200 levels; RELIABILITY.md 2.5), and the
  element count is bounded. Deflated Explicit VR Little Endian is inflated with a byte budget
  (a deflate bomb stops at the budget, it never reaches memory) and stored as Explicit VR Little
  Endian. Implicit VR Little Endian is stored as Explicit VR Little Endian as well (lossless;
  our private block needs explicit VRs to read back). Big Endian (retired) is refused.
* **What is accepted.** The storage SOP classes of :data:`ACCEPTED_SOP_CLASSES` (photographs of
  one kind or another), in the transfer syntaxes of :data:`ACCEPTED_TRANSFER_SYNTAXES`. A
  DICOMDIR and every other SOP class is refused. Video and encapsulated PDF wait for issue 7.
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
:func:`dicom_status_for`.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset
from pydicom.datadict import dictionary_VR
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import dcmwrite, write_dataset
from pydicom.uid import UID

from converters.base import Limits
from converters.iods.base import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from converters.jpeg_markers import parse as parse_jpeg
from converters.sniff import HEAD_SIZE, OCTET_STREAM, sniff
from repository import private_tags
from repository.errors import (
    BackendUnavailable,
    Conflict,
    ConversionFailed,
    Forbidden,
    InvalidInput,
    OlogiesError,
    PayloadTooLarge,
    StorageFull,
    UnsupportedMediaType,
)
from repository.keys import is_valid_uid
from repository.patients import normalise_patient_id
from repository.service import PreparedInstance

# -- status codes (PS3.4 B.2.3 C-STORE; PS3.18 Table I.2-2 STOW-RS FailureReason) --------------
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700  # Refused: out of resources (also: over our size budgets)
DATASET_DOES_NOT_MATCH = 0xA900  # Error: data set does not match SOP class (missing/invalid attrs)
CANNOT_UNDERSTAND = 0xC000  # Error: cannot understand (not DICOM, truncated, lying lengths)
TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122  # STOW: referenced transfer syntax not supported
PROCESSING_FAILURE = 0x0110  # general failure
SOP_CLASS_NOT_SUPPORTED = 0x0122  # referenced SOP class not supported
DUPLICATE_SOP_INSTANCE = 0x0111  # PS3.7 C.4: a different object is stored under this UID
NOT_AUTHORIZED = 0x0124  # PS3.7 C.4: refused, not authorised (a role that may not do this)
COERCED = 0xB000  # Warning: coercion of data elements
ELEMENTS_DISCARDED = 0xB006  # Warning: elements discarded

DICOM_MEDIA_TYPE = "application/dicom"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"

#: storage SOP classes accepted from devices and other archives (all image IODs)
ACCEPTED_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.77.1.4": "VL Photographic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.7": "Dermoscopic Photography Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.1": "VL Endoscopic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.2": "VL Microscopic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.5.1": "Ophthalmic Photography 8 Bit Image Storage",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.4": "Multi-frame True Color Secondary Capture Image Storage",
}
#: refused for now with a reason of their own (issue 7 adds video and PDF with their own rules)
DEFERRED_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.77.1.4.1": "Video Photographic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.1.1": "Video Endoscopic Image Storage",
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF Storage",
}

IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
DEFLATED_EXPLICIT_VR_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BE = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR_LOSSLESS = "1.2.840.10008.1.2.4.81"
JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
JPEG_2000 = "1.2.840.10008.1.2.4.91"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"

#: transfer syntax received -> transfer syntax stored
ACCEPTED_TRANSFER_SYNTAXES: dict[str, str] = {
    IMPLICIT_VR_LE: EXPLICIT_VR_LE,
    EXPLICIT_VR_LE: EXPLICIT_VR_LE,
    DEFLATED_EXPLICIT_VR_LE: EXPLICIT_VR_LE,
    JPEG_BASELINE: JPEG_BASELINE,
    JPEG_EXTENDED: JPEG_EXTENDED,
    JPEG_LS_LOSSLESS: JPEG_LS_LOSSLESS,
    JPEG_LS_NEAR_LOSSLESS: JPEG_LS_NEAR_LOSSLESS,
    JPEG_2000_LOSSLESS: JPEG_2000_LOSSLESS,
    JPEG_2000: JPEG_2000,
    RLE_LOSSLESS: RLE_LOSSLESS,
}
ENCAPSULATED = frozenset(ts for ts in ACCEPTED_TRANSFER_SYNTAXES if ts.startswith("1.2.840.10008.1.2.4") or ts == RLE_LOSSLESS)
_JPEG_SYNTAXES = frozenset({JPEG_BASELINE, JPEG_EXTENDED})
_JPEG_LS_SYNTAXES = frozenset({JPEG_LS_LOSSLESS, JPEG_LS_NEAR_LOSSLESS})
_J2K_SYNTAXES = frozenset({JPEG_2000_LOSSLESS, JPEG_2000})

#: group 0016 elements removed wherever they occur (GPS, owner, maker note: DECISIONS.md 9)
PRIVACY_TAGS: frozenset[int] = frozenset(
    {0x0016002B, 0x0016004D} | {0x00160000 | e for e in range(0x70, 0x8F)}
)

_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_DATA = 0x7FE00010
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_ALL_VRS = _LONG_VRS | frozenset(
    {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
     b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
)  # fmt: skip
_MAX_META_BYTES = 64 * 1024


@dataclass(frozen=True)
class DicomLimits:
    """Bounds checked before pydicom parses anything (RELIABILITY.md 2.5)."""

    #: largest object received (and largest after inflating a deflated one)
    max_bytes: int = 512 * 1024 * 1024
    #: a deflated data set may inflate to this many times its size, or to inflate_floor bytes,
    #: whichever is larger (and never past max_bytes): real data sets compress 2-10 times, a
    #: deflate bomb a thousand times
    max_inflate_ratio: int = 50
    inflate_floor: int = 32 * 1024 * 1024
    #: deepest sequence nesting; photographs need < 5, structured content rarely > 10
    max_depth: int = 16
    #: most data elements, counting those inside sequences
    max_elements: int = 100_000
    #: most fragments of encapsulated pixel data
    max_fragments: int = 100_000
    #: most frames; most pixels per frame
    max_frames: int = 10_000
    max_pixels: int = 150_000_000


@dataclass(frozen=True)
class Coercion:
    """One change made to what was received, for the STOW-RS warning and the logs."""

    keyword: str
    action: str  # "removed" or "modified"
    reason: str


@dataclass(frozen=True)
class PreparedDicom:
    """A checked object spooled to disk (``instance.path``) and what was done to it."""

    instance: PreparedInstance
    sop_class_uid: str
    transfer_syntax_uid: str  # as stored
    received_transfer_syntax_uid: str
    coercions: tuple[Coercion, ...] = ()
    original_sha256: str = ""

    @property
    def warning_status(self) -> int | None:
        """0xB000 when a value was changed, 0xB006 when elements were only removed."""
        if not self.coercions:
            return None
        return COERCED if any(c.action == "modified" for c in self.coercions) else ELEMENTS_DISCARDED


@dataclass(frozen=True)
class Provenance:
    """What the route knows about the object beyond its own content."""

    route: str  # IngestRoute: stowrs, cstore, api, web, cli
    trust: str = ""  # ODS code
    specialty: str = ""
    consent: str = ""  # ConsentLevel defined term, e.g. CLINICAL_CARE
    consent_recorded_by: str = ""
    original_media_type: str = DICOM_MEDIA_TYPE
    source_ae_title: str = ""


# -- errors --------------------------------------------------------------------------------------
def rejected(status: int, message: str, cls: type[OlogiesError] = ConversionFailed, field: str = "file") -> OlogiesError:
    """An error of ``cls`` that also carries the DICOM status to report."""
    exc = cls(message, field=field)
    exc.dicom_status = status  # type: ignore[attr-defined]
    return exc


def dicom_status_for(exc: BaseException) -> int:
    """The STOW-RS FailureReason / C-STORE status for any exception raised while storing."""
    status = getattr(exc, "dicom_status", None)
    if isinstance(status, int):
        return status
    if isinstance(exc, Conflict):
        return DUPLICATE_SOP_INSTANCE
    if isinstance(exc, Forbidden):
        return NOT_AUTHORIZED
    if isinstance(exc, (PayloadTooLarge, StorageFull, BackendUnavailable, MemoryError)):
        return OUT_OF_RESOURCES
    if isinstance(exc, UnsupportedMediaType):
        return SOP_CLASS_NOT_SUPPORTED
    if isinstance(exc, ConversionFailed):
        return CANNOT_UNDERSTAND
    if isinstance(exc, InvalidInput):
        return DATASET_DOES_NOT_MATCH
    return PROCESSING_FAILURE


def _cannot_understand(message: str) -> OlogiesError:
    return rejected(CANNOT_UNDERSTAND, message)


# -- the structural walk -------------------------------------------------------------------------
class _Walker:
    """Walk a little endian data set checking every length; no values are decoded."""

    def __init__(self, data: bytes | memoryview, limits: DicomLimits) -> None:
        self.data = data
        self.limits = limits
        self.elements = 0
        self.fragments = 0
        #: top-level Pixel Data: (element start, value start, value end, VR or None, encapsulated)
        self.pixel_data: tuple[int, int, int, bytes | None, bool] | None = None

    def dataset(self, pos: int, end: int, depth: int, implicit: bool, *, in_item: bool = False) -> int:
        """Walk elements from ``pos``; return the position after the data set (or its item
        delimiter when ``in_item`` and the item has undefined length)."""
        data = self.data
        while pos < end:
            if end - pos < 8:
                raise _cannot_understand(f"DICOM data is truncated at byte {pos}: an element header is cut off")
            group, element = struct.unpack_from("<HH", data, pos)
            tag = (group << 16) | element
            if tag == _ITEM_END:
                if not in_item:
                    raise _cannot_understand(f"DICOM item delimiter out of place at byte {pos}")
                return pos + 8
            if group == 0xFFFE:
                raise _cannot_understand(f"DICOM delimiter (FFFE,{element:04X}) out of place at byte {pos}")
            self.elements += 1
            if self.elements > self.limits.max_elements:
                raise _cannot_understand(f"DICOM data has more than {self.limits.max_elements} elements")
            vr: bytes | None
            if implicit:
                vr = None
                (length,) = struct.unpack_from("<I", data, pos + 4)
                header = 8
            else:
                vr = bytes(data[pos + 4 : pos + 6])
                if vr not in _ALL_VRS:
                    raise _cannot_understand(
                        f"DICOM element ({group:04X},{element:04X}) at byte {pos} has no valid VR"
                    )
                if vr in _LONG_VRS:
                    if end - pos < 12:
                        raise _cannot_understand(f"DICOM data is truncated at byte {pos}")
                    (length,) = struct.unpack_from("<I", data, pos + 8)
                    header = 12
                else:
                    (length,) = struct.unpack_from("<H", data, pos + 6)
                    header = 8
            start = pos + header
            if length == _UNDEFINED:
                if tag == _PIXEL_DATA and vr in (None, b"OB", b"OW"):
                    element_start = pos
                    pos = self.encapsulated(start, end)
                    if depth == 0:
                        self.pixel_data = (element_start, start, pos - 8, vr, True)
                elif vr in (None, b"SQ", b"UN"):
                    # Implicit VR and UN of undefined length hold a sequence (PS3.5 6.2.2);
                    # the items of a UN sequence are encoded Implicit VR Little Endian.
                    pos = self.sequence(start, end, depth + 1, implicit or vr == b"UN", defined_end=None)
                else:
                    raise _cannot_understand(
                        f"DICOM element ({group:04X},{element:04X}) has an undefined length but is not a sequence"
                    )
                continue
            if length > end - start:
                raise _cannot_understand(
                    f"DICOM element ({group:04X},{element:04X}) at byte {pos} declares {length} bytes "
                    f"but only {end - start} remain: the length is wrong or the data is truncated"
                )
            if vr == b"SQ" or (vr in (None, b"UN") and _is_public_sequence(tag)):
                self.sequence(start, end, depth + 1, implicit or vr == b"UN", defined_end=start + length)
            elif tag == _PIXEL_DATA and depth == 0:
                self.pixel_data = (pos, start, start + length, vr, False)
            pos = start + length
        if in_item:
            raise _cannot_understand("DICOM data is truncated: an item of undefined length has no delimiter")
        return pos

    def sequence(self, pos: int, end: int, depth: int, implicit: bool, *, defined_end: int | None) -> int:
        if depth > self.limits.max_depth:
            raise _cannot_understand(f"DICOM sequences are nested deeper than {self.limits.max_depth} levels")
        data = self.data
        stop = end if defined_end is None else defined_end
        while True:
            if defined_end is not None and pos == defined_end:
                return pos
            if stop - pos < 8:
                raise _cannot_understand(f"DICOM sequence is truncated at byte {pos}")
            tag = (struct.unpack_from("<H", data, pos)[0] << 16) | struct.unpack_from("<H", data, pos + 2)[0]
            (length,) = struct.unpack_from("<I", data, pos + 4)
            if tag == _SEQUENCE_END:
                if defined_end is not None:
                    raise _cannot_understand(f"DICOM sequence delimiter in a sequence of defined length at byte {pos}")
                return pos + 8
            if tag != _ITEM:
                raise _cannot_understand(f"DICOM sequence holds something other than an item at byte {pos}")
            self.elements += 1
            if length == _UNDEFINED:
                pos = self.dataset(pos + 8, stop, depth, implicit, in_item=True)
            else:
                if length > stop - pos - 8:
                    raise _cannot_understand(
                        f"DICOM item at byte {pos} declares {length} bytes but only {stop - pos - 8} remain"
                    )
                self.dataset(pos + 8, pos + 8 + length, depth, implicit)
                pos += 8 + length

    def encapsulated(self, pos: int, end: int) -> int:
        data = self.data
        first = True
        while True:
            if end - pos < 8:
                raise _cannot_understand("DICOM encapsulated pixel data is truncated")
            group, element, length = struct.unpack_from("<HHI", data, pos)
            tag = (group << 16) | element
            if tag == _SEQUENCE_END:
                if first:
                    raise _cannot_understand("DICOM encapsulated pixel data has no basic offset table item")
                return pos + 8
            if tag != _ITEM or length == _UNDEFINED:
                raise _cannot_understand(f"DICOM encapsulated pixel data is malformed at byte {pos}")
            if length > end - pos - 8:
                raise _cannot_understand(
                    f"DICOM pixel data fragment at byte {pos} declares {length} bytes but only {end - pos - 8} remain"
                )
            self.fragments += 1
            if self.fragments > self.limits.max_fragments:
                raise _cannot_understand(f"DICOM pixel data has more than {self.limits.max_fragments} fragments")
            first = False
            pos += 8 + length


def _is_public_sequence(tag: int) -> bool:
    if (tag >> 16) & 1:
        return False  # private: pydicom keeps it as bytes and never parses it
    try:
        return dictionary_VR(tag) == "SQ"
    except KeyError:
        return False


# -- reading -------------------------------------------------------------------------------------
@dataclass
class _Received:
    meta: dict[str, str]
    data: bytes  # everything received (or inflated), never copied
    offset: int  # where the data set starts in ``data``
    transfer_syntax: str
    implicit: bool


def _text_value(raw: bytes | memoryview) -> str:
    return bytes(raw).rstrip(b"\x00 ").decode("ascii", "replace").strip()


def _split(data: bytes) -> _Received:
    """Separate file meta information from the data set; learn the transfer syntax."""
    if len(data) >= 132 and data[128:132] == b"DICM":
        return _parse_meta(data, 132)
    if data[:4] == b"DICM":
        return _parse_meta(data, 4)
    if len(data) >= 8 and data[:2] == b"\x02\x00" and data[4:6] in _ALL_VRS:
        return _parse_meta(data, 0)  # file meta without a preamble
    # A bare data set: most STOW-RS parts carry file meta, but some clients send the data set.
    if len(data) < 8 or not 0x0008 <= struct.unpack_from("<H", data, 0)[0] <= 0x0010:
        detected = sniff(bytes(data[:HEAD_SIZE]))
        what = "" if detected == OCTET_STREAM else f" (detected {detected})"
        raise _cannot_understand(f"not a DICOM file{what}: no DICM prefix and no data set")
    explicit = data[4:6] in _ALL_VRS and data[4:6].isupper()
    ts = EXPLICIT_VR_LE if explicit else IMPLICIT_VR_LE
    return _Received({}, data, 0, ts, not explicit)


def _parse_meta(data: bytes, pos: int) -> _Received:
    meta: dict[str, str] = {}
    view = memoryview(data)
    limit = min(len(data), pos + _MAX_META_BYTES)
    while pos + 8 <= len(data) and struct.unpack_from("<H", data, pos)[0] == 0x0002:
        element = struct.unpack_from("<H", data, pos + 2)[0]
        vr = bytes(data[pos + 4 : pos + 6])
        if vr not in _ALL_VRS:
            raise _cannot_understand("DICOM file meta information is malformed (no explicit VR)")
        if vr in _LONG_VRS:
            (length,) = struct.unpack_from("<I", data, pos + 8)
            start = pos + 12
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            start = pos + 8
        if length == _UNDEFINED or start + length > limit:
            raise _cannot_understand("DICOM file meta information is truncated or too large")
        value = view[start : start + length]
        if element == 0x0002:
            meta["MediaStorageSOPClassUID"] = _text_value(value)
        elif element == 0x0003:
            meta["MediaStorageSOPInstanceUID"] = _text_value(value)
        elif element == 0x0010:
            meta["TransferSyntaxUID"] = _text_value(value)
        pos = start + length
    ts = meta.get("TransferSyntaxUID", "")
    if not ts:
        raise _cannot_understand("DICOM file meta information has no Transfer Syntax UID")
    return _Received(meta, data, pos, ts, ts == IMPLICIT_VR_LE)


def _inflate(body: bytes | memoryview, budget: int) -> bytes:
    """Inflate a Deflated Explicit VR Little Endian data set, never past ``budget`` bytes."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = io.BytesIO()
    pending = bytes(body)
    try:
        while pending:
            chunk = inflater.decompress(pending, 1 << 20)
            out.write(chunk)
            if out.tell() > budget:
                raise rejected(
                    OUT_OF_RESOURCES,
                    f"deflated DICOM data set inflates to more than {budget} bytes (a decompression bomb?)",
                    PayloadTooLarge,
                )
            pending = inflater.unconsumed_tail
            if inflater.eof:
                break
        tail = inflater.flush(1 << 20)
        out.write(tail)
        if out.tell() > budget:
            raise rejected(OUT_OF_RESOURCES, f"deflated DICOM data set inflates to more than {budget} bytes", PayloadTooLarge)
    except zlib.error as exc:
        raise _cannot_understand(f"deflated DICOM data set is corrupt: {exc}") from exc
    if not inflater.eof:
        raise _cannot_understand("deflated DICOM data set is truncated")
    return out.getvalue()


def _read(data: bytes, offset: int, end: int, implicit: bool, pixel: tuple[int, int, int, bytes | None, bool] | None) -> Dataset:
    """pydicom reads the data set from ``data`` in place (a BytesIO over bytes shares them);
    the top-level Pixel Data, whose extent the walk already knows, is cut out in one copy
    rather than read by pydicom's delimiter search."""
    fp = io.BytesIO(data)
    fp.seek(offset)
    if pixel is None:
        return read_dataset(fp, implicit, True, bytelength=end - offset)
    element_start, value_start, value_end, vr, encapsulated = pixel
    ds = read_dataset(fp, implicit, True, bytelength=element_start - offset)
    if vr is None:
        vr = b"OB" if encapsulated else b"OW"
    ds.add_new(_PIXEL_DATA, vr.decode(), data[value_start:value_end])
    after = value_end + (8 if encapsulated else 0)
    if after < end:  # elements after Pixel Data (trailing padding, say)
        fp.seek(after)
        ds.update(read_dataset(fp, implicit, True, bytelength=end - after))
    return ds


def read_dicom(data: bytes, *, limits: DicomLimits = DicomLimits()) -> tuple[Dataset, str, str]:
    """Check and parse received bytes.

    Returns
    -------
    tuple
        The data set (without file meta), the transfer syntax received and the transfer syntax
        in which it will be stored.

    Raises
    ------
    OlogiesError
        With ``dicom_status``: not DICOM, truncated, lying lengths, too deep, too large, a
        deflate bomb, a DICOMDIR or an unsupported transfer syntax.
    """
    if len(data) > limits.max_bytes:
        raise rejected(OUT_OF_RESOURCES, f"DICOM object is larger than {limits.max_bytes} bytes", PayloadTooLarge)
    received = _split(data)
    if received.meta.get("MediaStorageSOPClassUID") == DICOMDIR_SOP_CLASS:
        raise rejected(
            SOP_CLASS_NOT_SUPPORTED,
            "a DICOMDIR (Media Storage Directory) is not an image: send the files it lists",
            UnsupportedMediaType,
        )
    ts = received.transfer_syntax
    if ts not in ACCEPTED_TRANSFER_SYNTAXES:
        name = UID(ts).name if UID(ts).is_valid else ts
        raise rejected(
            TRANSFER_SYNTAX_NOT_SUPPORTED,
            f"transfer syntax {name} is not accepted here (see the conformance statement)",
            UnsupportedMediaType,
        )
    data, offset = received.data, received.offset
    if ts == DEFLATED_EXPLICIT_VR_LE:
        compressed = memoryview(data)[offset:]
        budget = min(limits.max_bytes, max(limits.inflate_floor, limits.max_inflate_ratio * len(compressed)))
        data, offset = _inflate(compressed, budget), 0
    view = memoryview(data)
    walker = _Walker(view, limits)
    end = len(data)
    walker.dataset(offset, end, 0, received.implicit)
    if walker.elements == 0:
        raise _cannot_understand("DICOM data set is empty")
    try:
        ds = _read(data, offset, end, received.implicit, walker.pixel_data)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for malformed data
        raise _cannot_understand(f"DICOM data set cannot be parsed: {exc}") from exc
    ds.file_meta = FileMetaDataset()
    for key, value in received.meta.items():
        setattr(ds.file_meta, key, value)
    return ds, ts, ACCEPTED_TRANSFER_SYNTAXES[ts]


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
    elif sop_class in DEFERRED_SOP_CLASSES:
        message = f"{DEFERRED_SOP_CLASSES[sop_class]} is not accepted yet (video and PDF arrive with issue 7)"
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
    return parsed.bitstream


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
    data: bytes,
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
    data : bytes
        A Part 10 file, or a bare data set (Implicit or Explicit VR Little Endian).
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
    coercions: list[Coercion] = [id_coercion] if id_coercion else []
    if id_coercion:
        ds.PatientID = patient_id
    if check is not None:
        check(ds)
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
        write_part10(out, ds)
    except OlogiesError:
        raise
    except Exception as exc:  # noqa: BLE001 - a value pydicom cannot encode
        out.unlink(missing_ok=True)
        raise _cannot_understand(f"DICOM data set cannot be written back: {exc}") from exc
    instance = PreparedInstance(
        out, sop_uid, study_uid, series_uid, patient_id, uid_derived_from_content=False, content_sha256=digest
    )
    return PreparedDicom(instance, sop_class, stored_ts, received_ts, tuple(coercions), original)


def write_part10(out: Path, ds: Dataset) -> None:
    """Write ``ds`` (with its file meta) as a Part 10 file in an explicit VR little endian
    transfer syntax. pydicom encodes everything but Pixel Data, which is written straight from
    its value: pydicom would first copy it into a buffer of its own."""
    if "PixelData" not in ds or ds.file_meta.TransferSyntaxUID == IMPLICIT_VR_LE:
        dcmwrite(out, ds, enforce_file_format=True)
        return
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
    with out.open("wb") as fp:
        dcmwrite(fp, before, enforce_file_format=True)
        length = _UNDEFINED if encapsulated else len(value) + (len(value) & 1)
        fp.write(struct.pack("<HH", 0x7FE0, 0x0010) + str(pixel.VR).encode() + b"\0\0" + struct.pack("<I", length))
        fp.write(value)
        if encapsulated:
            fp.write(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
        elif len(value) & 1:
            fp.write(b"\0")
        if len(after):
            buffer = DicomBytesIO()
            buffer.is_little_endian, buffer.is_implicit_VR = True, False
            write_dataset(buffer, after)
            fp.write(buffer.getvalue())


def describe(coercions: Iterable[Coercion]) -> str:
    """One line for a Warning header or a log: what was changed and why."""
    return "; ".join(f"{c.keyword} {c.action}: {c.reason}" for c in coercions)


__all__ = [
    "ACCEPTED_SOP_CLASSES",
    "ACCEPTED_TRANSFER_SYNTAXES",
    "Coercion",
    "DicomLimits",
    "PreparedDicom",
    "Provenance",
    "check_sop_class",
    "content_sha256",
    "dicom_status_for",
    "prepare_dicom",
    "read_dicom",
    "rejected",
    "strip_jpeg_segments",
]
