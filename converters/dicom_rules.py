"""What incoming DICOM may be and what is answered about it: the accepted SOP classes and
transfer syntaxes, the size and structure bounds, and the status codes of STOW-RS (PS3.18
Table I.2-2) and C-STORE (PS3.4 B.2.3). ``converters.dicom`` explains the rules as a whole."""

from __future__ import annotations

from dataclasses import dataclass

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

#: image storage SOP classes accepted from devices and other archives (pixels checked frame by frame)
IMAGE_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.77.1.4": "VL Photographic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.7": "Dermoscopic Photography Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.1": "VL Endoscopic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.2": "VL Microscopic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.5.1": "Ophthalmic Photography 8 Bit Image Storage",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.4": "Multi-frame True Color Secondary Capture Image Storage",
}
#: video storage SOP classes: an MP4 in MPEG-4 AVC or HEVC encapsulated Pixel Data
VIDEO_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.77.1.4.1": "Video Photographic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.1.1": "Video Endoscopic Image Storage",
}
#: document storage SOP classes
DOCUMENT_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF Storage",
}
#: every storage SOP class accepted
ACCEPTED_SOP_CLASSES: dict[str, str] = {**IMAGE_SOP_CLASSES, **VIDEO_SOP_CLASSES, **DOCUMENT_SOP_CLASSES}

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
MPEG4_HP41 = "1.2.840.10008.1.2.4.102"  # MPEG-4 AVC/H.264 High Profile / Level 4.1
MPEG4_HP41_BD = "1.2.840.10008.1.2.4.103"  # ... BD-compatible High Profile / Level 4.1
MPEG4_HP42_2D = "1.2.840.10008.1.2.4.104"  # ... High Profile / Level 4.2 For 2D Video
HEVC_MAIN = "1.2.840.10008.1.2.4.107"  # HEVC/H.265 Main Profile / Level 5.1
HEVC_MAIN10 = "1.2.840.10008.1.2.4.108"  # HEVC/H.265 Main 10 Profile / Level 5.1

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
    MPEG4_HP41: MPEG4_HP41,
    MPEG4_HP41_BD: MPEG4_HP41_BD,
    MPEG4_HP42_2D: MPEG4_HP42_2D,
    HEVC_MAIN: HEVC_MAIN,
    HEVC_MAIN10: HEVC_MAIN10,
}
#: the transfer syntaxes of video objects (PS3.5 8.2.7, 8.2.8, 8.2.12), and only of them
VIDEO_TRANSFER_SYNTAXES = frozenset({MPEG4_HP41, MPEG4_HP41_BD, MPEG4_HP42_2D, HEVC_MAIN, HEVC_MAIN10})
ENCAPSULATED = frozenset(ts for ts in ACCEPTED_TRANSFER_SYNTAXES if ts.startswith("1.2.840.10008.1.2.4") or ts == RLE_LOSSLESS)
_JPEG_SYNTAXES = frozenset({JPEG_BASELINE, JPEG_EXTENDED})
_JPEG_LS_SYNTAXES = frozenset({JPEG_LS_LOSSLESS, JPEG_LS_NEAR_LOSSLESS})
_J2K_SYNTAXES = frozenset({JPEG_2000_LOSSLESS, JPEG_2000})

#: group 0016 elements removed wherever they occur (GPS, owner, maker note: DECISIONS.md 9)
PRIVACY_TAGS: frozenset[int] = frozenset(
    {0x0016002B, 0x0016004D} | {0x00160000 | e for e in range(0x70, 0x8F)}
)

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


def cannot_understand(message: str) -> OlogiesError:
    return rejected(CANNOT_UNDERSTAND, message)


