"""Image Pixel checks for the VL photograph IODs: JPEG bitstream headers and native arrays.

VL Image module constraints (PS3.3 C.8.12.1.1.1-5): 8 bits allocated and stored, high bit 7,
unsigned, 1 sample (MONOCHROME2) or 3 (RGB native, YBR_FULL_422 for lossy JPEG), colour by
pixel. Anything else is refused here, before any attribute is set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEGBaseline8Bit, JPEGExtended12Bit

from converters.bitstream import Bitstream
from converters.iods.enum import PhotometricInterpretationValues
from converters.iods.valuerep import enum_value

_PI = PhotometricInterpretationValues
JPEG_TRANSFER_SYNTAXES = (JPEGBaseline8Bit, JPEGExtended12Bit)
NATIVE_TRANSFER_SYNTAXES = (ExplicitVRLittleEndian,)

_HEADERS_READ = 1 << 20  # metadata before the first scan beyond this is refused (a JPEG's are KBs)
_HEADERS_FIRST = 1 << 16
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# Segments that can carry identity or location (EXIF GPS, XMP, IPTC, free comments) must have
# been stripped by the converter (DECISIONS.md 7, 9); finding one here is a bug upstream.
_FORBIDDEN_SEGMENTS = {0xE1: "APP1 (EXIF/XMP)", 0xED: "APP13 (IPTC)", 0xFE: "COM (comment)"}


def encapsulate_frame(frame: bytes | Bitstream) -> bytes:
    """Pixel Data of one frame as one fragment after its Basic Offset Table (PS3.5 A.4), made
    in one copy (pydicom's ``encapsulate([frame])`` makes the same bytes in three)."""
    return (frame if isinstance(frame, Bitstream) else Bitstream([frame])).encapsulated()


@dataclass(frozen=True)
class JPEGFrameInfo:
    """What the frame header (SOFn) of a JPEG bitstream declares."""

    sof_marker: int
    precision: int
    rows: int
    columns: int
    component_ids: tuple[int, ...]
    sampling_factors: tuple[tuple[int, int], ...]
    adobe_transform: int | None

    @property
    def chroma_subsampled(self) -> bool:
        """True when the components do not all share one sampling factor (4:2:2, 4:2:0, ...)."""
        return len(set(self.sampling_factors)) > 1

    @property
    def is_rgb(self) -> bool:
        """True for a 3-component bitstream stored without the YCbCr colour transform."""
        if len(self.component_ids) != 3:
            return False
        return self.adobe_transform == 0 or self.component_ids == (ord("R"), ord("G"), ord("B"))


@dataclass(frozen=True)
class PixelModule:
    """Validated Image Pixel values, ready to be set on a dataset."""

    rows: int
    columns: int
    samples_per_pixel: int
    photometric_interpretation: str
    pixel_data: bytes | Bitstream  # a JPEG bitstream when encapsulated
    encapsulated: bool


def read_jpeg_frame_info(bitstream: bytes | Bitstream) -> JPEGFrameInfo:
    """Parse the marker segments of a JPEG bitstream up to the first scan.

    Raises ``ValueError`` if the data is not a complete JPEG interchange stream (SOI ... EOI),
    has no frame header, or still contains a metadata segment that may identify or locate.
    """
    if isinstance(bitstream, Bitstream):  # the headers and the end are all that is read
        # A camera's headers are KBs: read 64 KB of them first, not a megabyte each time
        ending, data = bitstream.tail(64), bitstream.head(_HEADERS_FIRST)
    else:
        ending, data = bitstream, bitstream
    if data[:2] != b"\xff\xd8":
        raise ValueError('Argument "pixel_data" is not a JPEG bitstream (no SOI marker).')
    if ending.rstrip(b"\x00")[-2:] != b"\xff\xd9":
        raise ValueError('Argument "pixel_data" is a truncated JPEG bitstream (no EOI marker).')
    partial = isinstance(bitstream, Bitstream) and len(data) == _HEADERS_FIRST
    frame, adobe, reached_scan = _walk_headers(data, complete=not partial)
    if partial and not reached_scan and isinstance(bitstream, Bitstream):
        frame, adobe, _ = _walk_headers(bitstream.head(_HEADERS_READ), complete=True)
    if frame is None:
        raise ValueError('Argument "pixel_data" has no JPEG frame header (SOFn).')
    marker, seg = frame
    count = seg[5] if len(seg) >= 6 else 0
    if count == 0 or len(seg) < 6 + 3 * count:
        raise ValueError('Argument "pixel_data" has a malformed JPEG frame header.')
    comps = [seg[6 + 3 * i : 9 + 3 * i] for i in range(count)]
    return JPEGFrameInfo(
        sof_marker=marker,
        precision=seg[0],
        rows=int.from_bytes(seg[1:3], "big"),
        columns=int.from_bytes(seg[3:5], "big"),
        component_ids=tuple(c[0] for c in comps),
        sampling_factors=tuple((c[1] >> 4, c[1] & 0x0F) for c in comps),
        adobe_transform=adobe,
    )


def _walk_headers(data: bytes, *, complete: bool) -> tuple[tuple[int, bytes] | None, int | None, bool]:
    """The frame header, the Adobe transform and whether the first scan was reached, from the
    marker segments of ``data``. ``complete``: ``data`` is all there is to read, so a segment
    running past its end is an error (otherwise: not reached yet)."""
    pos, frame, adobe = 2, None, None
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f'Argument "pixel_data" has a corrupt JPEG marker at byte {pos}.')
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        pos += 2
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # stand-alone markers carry no length
            continue
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2 or pos + length > len(data):
            if not complete and length >= 2:
                return frame, adobe, False
            raise ValueError('Argument "pixel_data" has a JPEG segment running past the end.')
        segment = data[pos + 2 : pos + length]
        if marker in _FORBIDDEN_SEGMENTS:
            raise ValueError(
                f'Argument "pixel_data" still contains a {_FORBIDDEN_SEGMENTS[marker]} segment; '
                "metadata must be stripped before wrapping."
            )
        if marker == 0xEE and segment[:5] == b"Adobe" and len(segment) >= 12:
            adobe = segment[11]
        if marker in _SOF_MARKERS:
            frame = (marker, segment)
        if marker == 0xDA:  # start of scan: the headers that matter are behind us
            return frame, adobe, True
        pos += length
    return frame, adobe, False


def jpeg_pixel_module(
    data: bytes | Bitstream, photometric_interpretation: str, transfer_syntax_uid: str
) -> PixelModule:
    """Validate a JPEG bitstream for encapsulation unchanged in a VL image.

    Parameters
    ----------
    data: bytes
        One complete JPEG bitstream (one frame).
    photometric_interpretation: str
        ``MONOCHROME2`` for one component, ``YBR_FULL_422`` for three (see
        :class:`~converters.iods.enum.PhotometricInterpretationValues`).
    transfer_syntax_uid: str
        JPEG Baseline (Process 1) or JPEG Extended (Process 2 & 4).

    Returns
    -------
    PixelModule
        Rows, columns and samples as the bitstream declares them.
    """
    syntax = UID(transfer_syntax_uid)
    if syntax not in JPEG_TRANSFER_SYNTAXES:
        raise ValueError(
            f'Argument "transfer_syntax_uid" {syntax} is not a JPEG lossy transfer syntax '
            f"({', '.join(JPEG_TRANSFER_SYNTAXES)})."
        )
    info = read_jpeg_frame_info(data)
    if info.sof_marker == 0xC2:
        raise ValueError(
            'Argument "pixel_data" is a progressive JPEG, which has only a retired transfer '
            "syntax; transcode it losslessly to baseline (jpegtran) first."
        )
    if info.sof_marker not in (0xC0, 0xC1):
        raise ValueError('Argument "pixel_data" is not a Huffman-coded sequential DCT JPEG.')
    if info.sof_marker == 0xC1 and syntax != JPEGExtended12Bit:
        raise ValueError('An extended sequential (SOF1) JPEG needs JPEG Extended transfer syntax.')
    if info.precision != 8:
        raise ValueError("VL images must have 8-bit samples (PS3.3 C.8.12.1.1.2).")
    if info.rows == 0 or info.columns == 0:
        raise ValueError('Argument "pixel_data" JPEG declares zero rows or columns (DNL).')
    pi = enum_value(_PI, photometric_interpretation, "photometric_interpretation")
    samples = len(info.component_ids)
    if samples == 1 and pi != _PI.MONOCHROME2:
        raise ValueError("A one-component JPEG must be MONOCHROME2.")
    if samples == 3:
        if info.is_rgb:
            raise ValueError(
                "An RGB JPEG (no colour transform) cannot be labelled in a VL image, which "
                "requires YBR_FULL_422 for lossy JPEG (PS3.3 C.8.12.1.1.1); re-encode it."
            )
        if pi != _PI.YBR_FULL_422:
            raise ValueError("A colour JPEG in a VL image must be YBR_FULL_422 (C.8.12.1.1.1).")
    if samples not in (1, 3):
        raise ValueError(f"A JPEG with {samples} components cannot be stored as a VL image.")
    return PixelModule(info.rows, info.columns, samples, pi.value, data, encapsulated=True)


def native_pixel_module(
    array: np.ndarray, photometric_interpretation: str, transfer_syntax_uid: str
) -> PixelModule:
    """Validate a native pixel array (rows, columns[, 3]) of ``uint8`` for a VL image.

    Raises ``TypeError`` for a wrong dtype and ``ValueError`` for a shape or photometric
    interpretation the VL Image module does not allow (16-bit samples included).
    """
    syntax = UID(transfer_syntax_uid)
    if syntax not in NATIVE_TRANSFER_SYNTAXES:
        raise ValueError(
            f'Argument "transfer_syntax_uid" {syntax} is not supported for native pixels '
            f"(use {ExplicitVRLittleEndian})."
        )
    if not isinstance(array, np.ndarray):
        raise TypeError('Argument "pixel_data" must be bytes (JPEG) or a numpy array.')
    if array.dtype == np.uint16:
        raise ValueError(
            "VL images allow only 8-bit samples (PS3.3 C.8.12.1.1.2); a 16-bit image needs "
            "another IOD or a documented conversion to 8 bits."
        )
    if array.dtype != np.uint8:
        raise TypeError(f'Argument "pixel_data" must have dtype uint8, not {array.dtype}.')
    pi = enum_value(_PI, photometric_interpretation, "photometric_interpretation")
    if array.ndim == 2:
        samples, wanted = 1, _PI.MONOCHROME2
    elif array.ndim == 3 and array.shape[2] == 3:
        samples, wanted = 3, _PI.RGB
    else:
        raise ValueError(
            f'Argument "pixel_data" has shape {array.shape}; expected (rows, columns[, 3]).'
        )
    if pi != wanted:
        raise ValueError(
            f"Native pixels with {samples} sample(s) must be {wanted.value}, not {pi.value}."
        )
    rows, columns = int(array.shape[0]), int(array.shape[1])
    if not (0 < rows < 2**16 and 0 < columns < 2**16):
        raise ValueError("Rows and Columns must each be between 1 and 65535.")
    data = np.ascontiguousarray(array).tobytes()
    if len(data) % 2:  # OB values have even length; the pad byte is not a pixel
        data += b"\x00"
    return PixelModule(rows, columns, samples, pi.value, data, encapsulated=False)
