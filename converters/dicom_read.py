"""Reading received DICOM bytes safely: a structural walk checks every length, the nesting and
the element count before pydicom parses anything (RELIABILITY.md 2.5); deflated data sets are
inflated within a budget; pydicom then reads the header in place and the Pixel Data, whose
extent the walk found, is a view into what was received, not a copy: from a mapped file, a 500 MB
video is never copied onto the heap. See ``converters.dicom``."""

from __future__ import annotations

import io
import mmap
import os
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom import Dataset, config
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import FileMetaDataset
from pydicom.filereader import read_dataset
from pydicom.uid import UID

from converters.dicom_rules import (
    ACCEPTED_TRANSFER_SYNTAXES,
    DEFLATED_EXPLICIT_VR_LE,
    DICOMDIR_SOP_CLASS,
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    OUT_OF_RESOURCES,
    SOP_CLASS_NOT_SUPPORTED,
    TRANSFER_SYNTAX_NOT_SUPPORTED,
    DicomLimits,
    cannot_understand,
    rejected,
)
from converters.sniff import HEAD_SIZE, OCTET_STREAM, sniff
from repository.errors import PayloadTooLarge, UnsupportedMediaType

_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_DATA = 0x7FE00010
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_ALL_VRS = _LONG_VRS | frozenset(
    {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
     b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
)  # fmt: skip
_MAX_META_BYTES = 64 * 1024



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
                raise cannot_understand(f"DICOM data is truncated at byte {pos}: an element header is cut off")
            group, element = struct.unpack_from("<HH", data, pos)
            tag = (group << 16) | element
            if tag == _ITEM_END:
                if not in_item:
                    raise cannot_understand(f"DICOM item delimiter out of place at byte {pos}")
                return pos + 8
            if group == 0xFFFE:
                raise cannot_understand(f"DICOM delimiter (FFFE,{element:04X}) out of place at byte {pos}")
            self.elements += 1
            if self.elements > self.limits.max_elements:
                raise cannot_understand(f"DICOM data has more than {self.limits.max_elements} elements")
            vr: bytes | None
            if implicit:
                vr = None
                (length,) = struct.unpack_from("<I", data, pos + 4)
                header = 8
            else:
                vr = bytes(data[pos + 4 : pos + 6])
                if vr not in _ALL_VRS:
                    raise cannot_understand(
                        f"DICOM element ({group:04X},{element:04X}) at byte {pos} has no valid VR"
                    )
                if vr in _LONG_VRS:
                    if end - pos < 12:
                        raise cannot_understand(f"DICOM data is truncated at byte {pos}")
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
                    raise cannot_understand(
                        f"DICOM element ({group:04X},{element:04X}) has an undefined length but is not a sequence"
                    )
                continue
            if length > end - start:
                raise cannot_understand(
                    f"DICOM element ({group:04X},{element:04X}) at byte {pos} declares {length} bytes "
                    f"but only {end - start} remain: the length is wrong or the data is truncated"
                )
            size = _VALUE_SIZES.get(vr if vr is not None else _public_vr(tag), 0)
            if size and length % size:
                raise cannot_understand(
                    f"DICOM element ({group:04X},{element:04X}) at byte {pos} has {length} bytes, which is "
                    f"not a whole number of {(vr or _public_vr(tag)).decode()} values ({size} bytes each)"
                )
            if vr == b"SQ" or (vr in (None, b"UN") and _is_public_sequence(tag)):
                self.sequence(start, end, depth + 1, implicit or vr == b"UN", defined_end=start + length)
            elif tag == _PIXEL_DATA and depth == 0:
                self.pixel_data = (pos, start, start + length, vr, False)
            pos = start + length
        if in_item:
            raise cannot_understand("DICOM data is truncated: an item of undefined length has no delimiter")
        return pos

    def sequence(self, pos: int, end: int, depth: int, implicit: bool, *, defined_end: int | None) -> int:
        if depth > self.limits.max_depth:
            raise cannot_understand(f"DICOM sequences are nested deeper than {self.limits.max_depth} levels")
        data = self.data
        stop = end if defined_end is None else defined_end
        while True:
            if defined_end is not None and pos == defined_end:
                return pos
            if stop - pos < 8:
                raise cannot_understand(f"DICOM sequence is truncated at byte {pos}")
            tag = (struct.unpack_from("<H", data, pos)[0] << 16) | struct.unpack_from("<H", data, pos + 2)[0]
            (length,) = struct.unpack_from("<I", data, pos + 4)
            if tag == _SEQUENCE_END:
                if defined_end is not None:
                    raise cannot_understand(f"DICOM sequence delimiter in a sequence of defined length at byte {pos}")
                return pos + 8
            if tag != _ITEM:
                raise cannot_understand(f"DICOM sequence holds something other than an item at byte {pos}")
            self.elements += 1
            if length == _UNDEFINED:
                pos = self.dataset(pos + 8, stop, depth, implicit, in_item=True)
            else:
                if length > stop - pos - 8:
                    raise cannot_understand(
                        f"DICOM item at byte {pos} declares {length} bytes but only {stop - pos - 8} remain"
                    )
                self.dataset(pos + 8, pos + 8 + length, depth, implicit)
                pos += 8 + length

    def encapsulated(self, pos: int, end: int) -> int:
        data = self.data
        first = True
        while True:
            if end - pos < 8:
                raise cannot_understand("DICOM encapsulated pixel data is truncated")
            group, element, length = struct.unpack_from("<HHI", data, pos)
            tag = (group << 16) | element
            if tag == _SEQUENCE_END:
                if first:
                    raise cannot_understand("DICOM encapsulated pixel data has no basic offset table item")
                return pos + 8
            if tag != _ITEM or length == _UNDEFINED:
                raise cannot_understand(f"DICOM encapsulated pixel data is malformed at byte {pos}")
            if length > end - pos - 8:
                raise cannot_understand(
                    f"DICOM pixel data fragment at byte {pos} declares {length} bytes but only {end - pos - 8} remain"
                )
            self.fragments += 1
            if self.fragments > self.limits.max_fragments:
                raise cannot_understand(f"DICOM pixel data has more than {self.limits.max_fragments} fragments")
            first = False
            pos += 8 + length


#: the VRs whose values pydicom unpacks as binary numbers, and their size: a length that is not
#: a multiple of it made pydicom raise on first access to the value (found by fuzzing: a 500)
_VALUE_SIZES = {b"AT": 4, b"FL": 4, b"FD": 8, b"SL": 4, b"SS": 2, b"SV": 8, b"UL": 4, b"US": 2, b"UV": 8}


def _public_vr(tag: int) -> bytes:
    """The data dictionary's VR of a public element read Implicit VR (``US or SS`` counts as
    US: both are 2 bytes); empty for private and unknown elements."""
    if (tag >> 16) % 2:
        return b""
    try:
        return dictionary_VR(tag)[:2].encode()
    except KeyError:
        return b""


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
        raise cannot_understand(f"not a DICOM file{what}: no DICM prefix and no data set")
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
            raise cannot_understand("DICOM file meta information is malformed (no explicit VR)")
        if vr in _LONG_VRS:
            if pos + 12 > len(data):  # the 4-byte length of OB, UN, ... is cut off
                raise cannot_understand("DICOM file meta information is truncated or too large")
            (length,) = struct.unpack_from("<I", data, pos + 8)
            start = pos + 12
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            start = pos + 8
        if length == _UNDEFINED or start + length > limit:
            raise cannot_understand("DICOM file meta information is truncated or too large")
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
        raise cannot_understand("DICOM file meta information has no Transfer Syntax UID")
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
        raise cannot_understand(f"deflated DICOM data set is corrupt: {exc}") from exc
    if not inflater.eof:
        raise cannot_understand("deflated DICOM data set is truncated")
    return out.getvalue()


def _read(data: bytes, offset: int, end: int, implicit: bool, pixel: tuple[int, int, int, bytes | None, bool] | None) -> Dataset:
    """pydicom reads the data set from ``data`` in place (a BytesIO over bytes shares them);
    the top-level Pixel Data, whose extent the walk already knows, is taken as a view into
    ``data`` rather than read (and copied) by pydicom's delimiter search."""
    if pixel is None:
        return read_dataset(_region(data, offset, end), implicit, True, bytelength=end - offset)
    element_start, value_start, value_end, vr, encapsulated = pixel
    ds = read_dataset(_region(data, offset, element_start), implicit, True, bytelength=element_start - offset)
    if vr is None:
        vr = b"OB" if encapsulated else b"OW"
    value = memoryview(data)[value_start:value_end]  # a view: the received bytes outlive the data set anyway
    ds[_PIXEL_DATA] = pixel_data_element(vr.decode(), value)
    after = value_end + (8 if encapsulated else 0)
    if after < end:  # elements after Pixel Data (trailing padding, say)
        ds.update(read_dataset(_region(data, after, end), implicit, True, bytelength=end - after))
    return ds


def pixel_data_element(vr: str, value: bytes | memoryview) -> DataElement:
    """Pixel Data holding ``value`` as it is: pydicom's value check would warn of (and, set to
    raise, refuse) a view into a mapped file, which it writes and hashes as it does bytes."""
    return DataElement(_PIXEL_DATA, vr, value, validation_mode=config.IGNORE)


def _region(data: bytes, start: int, end: int) -> io.BytesIO:
    """A file positioned at ``start`` for pydicom: over bytes, sharing them; over a mapping,
    a copy of this region only (BytesIO would copy the whole mapping)."""
    if isinstance(data, bytes):
        fp = io.BytesIO(data)
        fp.seek(start)
        return fp
    return io.BytesIO(data[start:end])


@contextmanager
def mapped(path: Path) -> Iterator[bytes | mmap.mmap]:
    """The file's bytes, mapped read-only rather than read: a large object (a video) is then
    walked, hashed and written out from the page cache, never copied onto the heap. An empty
    file (which cannot be mapped), or one on a filesystem that cannot map files, is read."""
    with path.open("rb") as handle:
        mapping = _map(handle)
        if mapping is None:
            yield handle.read()
            return
    try:
        yield mapping
    finally:
        try:
            mapping.close()
        except BufferError:
            pass  # a view into it outlives the call (in a traceback, say): closed when collected


def _map(handle: BinaryIO) -> mmap.mmap | None:
    if os.fstat(handle.fileno()).st_size == 0:
        return None
    # Populated at once: every page is read anyway (hashed), and one call beats a fault a page.
    flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
    try:
        return mmap.mmap(handle.fileno(), 0, flags=flags, prot=mmap.PROT_READ)
    except OSError:  # ENODEV: this filesystem cannot map files
        return None


def read_dicom(data: bytes | mmap.mmap, *, limits: DicomLimits = DicomLimits()) -> tuple[Dataset, str, str]:
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
        raise cannot_understand("DICOM data set is empty")
    try:
        ds = _read(data, offset, end, received.implicit, walker.pixel_data)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for malformed data
        raise cannot_understand(f"DICOM data set cannot be parsed: {exc}") from exc
    ds.file_meta = FileMetaDataset()
    for key, value in received.meta.items():
        setattr(ds.file_meta, key, value)
    return ds, ts, ACCEPTED_TRANSFER_SYNTAXES[ts]


