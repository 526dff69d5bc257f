"""JPEG marker parser: structure checks and metadata removal, with no pixel decoding.

Pure bytes in, :class:`ParsedJpeg` out, so it can be fuzzed on its own (RELIABILITY.md A18).
Every length is checked against the bytes that remain; the entropy-coded data is found with one
C-speed regular expression per scan (stuffed ``FF00`` bytes and RSTn markers are skipped) and is
copied unchanged. Which segments are kept and why is explained in :mod:`converters.jpeg`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from converters.base import Limits
from converters.bitstream import Bitstream
from converters.raster import check_dimensions, valid_icc
from repository.errors import ConversionFailed, UnsupportedMediaType

MAX_SCANS = 256  # a progressive JPEG has ~10; thousands of scans is a known decoder DoS

SOF_NAMES = {
    0xC0: "baseline",
    0xC1: "extended sequential",
    0xC2: "progressive",
    0xC3: "lossless",
    0xC9: "arithmetic-coded",
    0xCA: "arithmetic-coded progressive",
    0xCB: "arithmetic lossless",
    **dict.fromkeys((0xC5, 0xC6, 0xC7, 0xCD, 0xCE, 0xCF), "hierarchical"),
}
SEQUENTIAL_HUFFMAN = (0xC0, 0xC1)
_CONVERTIBLE_SOFS = (0xC0, 0xC1, 0xC2, 0xC9, 0xCA)
_KEPT_MARKERS = (0xC4, 0xDB, 0xDD, 0xCC, 0xDC, 0xDF)  # DHT, DQT, DRI, DAC, DNL, EXP
_SCAN_CHUNK = 1 << 20  # next_marker's step
_SUBSAMPLING = {
    (1, 1): "4:4:4",
    (2, 1): "4:2:2",
    (2, 2): "4:2:0",
    (4, 1): "4:1:1",
    (1, 2): "4:4:0",
    (4, 2): "4:1:0",
}


def next_marker(data: bytes, pos: int) -> int | None:
    """Where the first marker at or after ``pos`` starts (its 0xFF), skipping what may occur
    inside entropy-coded data: stuffed 0xFF00, RSTn and fill bytes. None if there is none.

    Vectorised, a megabyte at a time: a camera JPEG has megabytes of scan data with a 0xFF in
    every few hundred bytes (0.9 ms for 4 MB, against 1.4 ms for a regular expression).
    """
    array = np.frombuffer(data, dtype=np.uint8)
    for begin in range(pos, len(array) - 1, _SCAN_CHUNK):
        chunk = array[begin : begin + _SCAN_CHUNK + 1]  # one byte more: a pair may straddle
        ffs = np.flatnonzero(chunk[:-1] == 0xFF)
        if ffs.size == 0:
            continue
        follower = chunk[ffs + 1]
        marker = (follower != 0x00) & (follower != 0xFF) & ((follower < 0xD0) | (follower > 0xD7))
        hits = np.flatnonzero(marker)
        if hits.size:
            return begin + int(ffs[hits[0]])
    return None


@dataclass
class Frame:
    """The SOF header: process, precision, size, and (id, h, v, quant table) per component."""

    marker: int
    precision: int
    height: int
    width: int
    components: list[tuple[int, int, int, int]]


@dataclass
class ParsedJpeg:
    """A JPEG after :func:`parse`: the cleaned bitstream and what was learnt on the way."""

    bitstream: Bitstream  # views of the parsed file: bytes(...) when it is needed whole
    frame: Frame
    exif: bytes | None = None
    icc_profile: bytes | None = None
    icc_invalid: bool = False
    adobe_transform: int | None = None
    jfif: bool = False
    scans: int = 0
    first_scan: tuple[int, int] = (0, 0)  # entropy-coded bytes of the first scan in bitstream
    extended: bool = False  # features outside Process 1: 12-bit, 16-bit DQT, Huffman ids > 1


def parse(data: bytes, *, limits: Limits) -> ParsedJpeg:
    """Walk the markers, check the structure, return the bitstream without metadata segments.

    Raises :class:`ConversionFailed` for a broken structure, :class:`InvalidInput` for too many
    pixels (checked as soon as the SOF is read, before anything else) and
    :class:`UnsupportedMediaType` for JPEG processes that are not photographs.
    """
    if data[:2] != b"\xff\xd8":
        raise _bad("not a JPEG: the file does not start with an SOI marker")
    # The kept pieces stay views of ``data`` (see converters/bitstream.py): the entropy-coded
    # data of a camera JPEG is megabytes, and each copy of it cost more than the marker walk.
    out, state = _Pieces(b"\xff\xd8"), _State()
    pos, size, view = 2, len(data), memoryview(data)  # slices of the view copy nothing
    while True:
        if pos < size and data[pos] != 0xFF:
            raise _bad(f"JPEG structure is broken at byte {pos}: expected a marker")
        while pos < size and data[pos] == 0xFF:  # fill bytes may precede a marker
            pos += 1
        if pos + 1 > size:
            raise _bad("JPEG is truncated: it ends before the EOI marker")
        code, start, pos = data[pos], pos - 1, pos + 1
        if code == 0xD9:
            out.add(b"\xff\xd9")  # anything after it is dropped
            return state.finish(out.bitstream())
        if 0xD0 <= code <= 0xD7 or code == 0x01:
            continue  # a stray RST/TEM between segments carries nothing
        if code in (0x00, 0xD8, 0xF7) or (0xF0 <= code <= 0xFD and code != 0xF7):
            if code == 0xF7:
                raise UnsupportedMediaType(
                    "detected JPEG-LS (SOF55); expected a photograph "
                    "(baseline, extended or progressive JPEG)",
                    field="file",
                )
            raise _bad(f"JPEG has an unexpected marker 0xFF{code:02X} at byte {start}")
        length = int.from_bytes(data[pos : pos + 2], "big")
        end = pos + length
        if pos + 2 > size or length < 2 or end > size:
            raise _bad(
                f"JPEG segment 0xFF{code:02X} at byte {start} declares {length} bytes but "
                f"only {size - pos} remain in the file"
            )
        payload, segment, pos = data[pos + 2 : end], data[start:end], end
        if 0xE0 <= code <= 0xEF or code == 0xFE:
            out.add(state.application(code, payload))
            continue
        if code in SOF_NAMES:
            state.frame_header(code, payload, limits)
        elif code == 0xC4:
            state.huffman_tables(payload)
        elif code == 0xDB:
            state.quantisation_tables(payload)
        elif code == 0xDA:
            state.scan_header(payload)
        elif code not in _KEPT_MARKERS:
            raise _bad(f"JPEG has an unexpected marker 0xFF{code:02X} at byte {start}")
        out.add(segment)
        if code == 0xDA:
            found = next_marker(data, pos)
            if found is None:
                raise _bad("JPEG is truncated: the compressed data ends without an EOI marker")
            if state.scans == 1:
                state.first_scan = (out.size, out.size + found - pos)
            out.add(view[pos:found])
            pos = found


class _Pieces:
    """The kept pieces, and their total length so far."""

    def __init__(self, first: bytes) -> None:
        self.parts: list[bytes | memoryview] = [first]
        self.size = len(first)

    def add(self, part: bytes | memoryview) -> None:
        self.parts.append(part)
        self.size += len(part)

    def bitstream(self) -> Bitstream:
        return Bitstream(self.parts)


class _State:
    """What :func:`parse` has seen so far; each method validates one kind of segment."""

    def __init__(self) -> None:
        self.frame: Frame | None = None
        self.huffman: set[tuple[int, int]] = set()
        self.quant: set[int] = set()
        self.scans, self.first_scan = 0, (0, 0)
        self.exif: bytes | None = None
        self.icc_chunks: list[tuple[int, int, bytes]] = []
        self.adobe: int | None = None
        self.jfif = self.extended = False

    def application(self, code: int, payload: bytes) -> bytes:
        """Record what matters in APPn/COM; return the bytes to keep (usually none)."""
        if code == 0xE0 and payload[:5] == b"JFIF\x00" and len(payload) >= 12 and not self.jfif:
            self.jfif = True  # version, units and densities; the thumbnail becomes 0x0
            return b"\xff\xe0\x00\x10" + payload[:12] + b"\x00\x00"
        if code == 0xE1 and payload[:6] == b"Exif\x00\x00" and self.exif is None:
            self.exif = payload
        elif code == 0xE2 and payload[:12] == b"ICC_PROFILE\x00" and len(payload) >= 14:
            self.icc_chunks.append((payload[12], payload[13], payload[14:]))
        elif code == 0xEE and payload[:5] == b"Adobe" and len(payload) >= 12 and self.adobe is None:
            self.adobe = payload[11]
            return b"\xff\xee\x00\x0e" + payload[:12]
        return b""

    def frame_header(self, code: int, payload: bytes, limits: Limits) -> None:
        if self.frame is not None:
            raise _bad("JPEG has more than one frame header (SOF)")
        if code not in _CONVERTIBLE_SOFS:
            raise UnsupportedMediaType(
                f"detected a {SOF_NAMES[code]} JPEG (SOF{code - 0xC0}); expected a photograph "
                "(baseline, extended or progressive JPEG)",
                field="file",
            )
        if len(payload) < 6 or len(payload) != 6 + 3 * payload[5]:
            raise _bad("JPEG frame header (SOF) is malformed")
        precision, count = payload[0], payload[5]
        height, width = int.from_bytes(payload[1:3], "big"), int.from_bytes(payload[3:5], "big")
        if height == 0:
            raise _bad("JPEG height given by a DNL marker is not supported")
        check_dimensions(width, height, limits)
        if precision not in (8, 12) or (precision == 12 and code == 0xC0) or not 1 <= count <= 4:
            raise _bad(f"JPEG frame header with {precision}-bit samples and {count} components")
        components = []
        for i in range(count):
            cid, hv, tq = payload[6 + 3 * i : 9 + 3 * i]
            if not (1 <= hv >> 4 <= 4 and 1 <= hv & 15 <= 4 and tq <= 3):
                raise _bad("JPEG frame header has invalid sampling factors or table numbers")
            components.append((cid, hv >> 4, hv & 15, tq))
        if len({c[0] for c in components}) != count:
            raise _bad("JPEG frame header repeats a component id")
        self.frame = Frame(code, precision, height, width, components)
        self.extended |= precision == 12

    def huffman_tables(self, payload: bytes) -> None:
        i = 0
        while i < len(payload):
            kind, ident, counts = payload[i] >> 4, payload[i] & 15, payload[i + 1 : i + 17]
            i += 17 + sum(counts)
            if kind > 1 or ident > 3 or len(counts) < 16 or sum(counts) > 256 or i > len(payload):
                raise _bad("JPEG Huffman table (DHT) is malformed")
            self.huffman.add((kind, ident))
            self.extended |= ident > 1

    def quantisation_tables(self, payload: bytes) -> None:
        i = 0
        while i < len(payload):
            precision, ident = payload[i] >> 4, payload[i] & 15
            i += 1 + 64 * (precision + 1)
            if precision > 1 or ident > 3 or i > len(payload):
                raise _bad("JPEG quantisation table (DQT) is malformed")
            self.quant.add(ident)
            self.extended |= precision == 1

    def scan_header(self, payload: bytes) -> None:
        frame = self.frame
        if frame is None:
            raise _bad("JPEG scan (SOS) comes before the frame header (SOF)")
        self.scans += 1
        count = payload[0] if payload else 0
        if self.scans > MAX_SCANS or not 1 <= count <= 4 or len(payload) != 4 + 2 * count:
            raise _bad("JPEG scan header (SOS) is malformed, or there are too many scans")
        selectors = [(payload[1 + 2 * i], payload[2 + 2 * i]) for i in range(count)]
        if any(cid not in {c[0] for c in frame.components} for cid, _ in selectors):
            raise _bad("JPEG scan refers to a component the frame does not have")
        if frame.marker not in SEQUENTIAL_HUFFMAN:
            return  # progressive/arithmetic scans are checked by jpegtran or the decoder
        if tuple(payload[-3:]) != (0, 63, 0):
            raise _bad("JPEG scan parameters are not valid for a sequential JPEG")
        for _, tables in selectors:
            for kind, ident in ((0, tables >> 4), (1, tables & 15)):
                if (kind, ident) not in self.huffman:
                    raise _bad(f"JPEG scan uses Huffman table {kind}/{ident}, which is not defined")
        if any(c[3] not in self.quant for c in frame.components):
            raise _bad("JPEG frame uses a quantisation table that is not defined")

    def finish(self, bitstream: Bitstream) -> ParsedJpeg:
        if self.frame is None or self.scans == 0 or self.first_scan[1] <= self.first_scan[0]:
            raise _bad("JPEG has no image data (no frame header or no scan)")
        icc, icc_invalid = _assemble_icc(self.icc_chunks)
        return ParsedJpeg(
            bitstream,
            self.frame,
            self.exif,
            icc,
            icc_invalid,
            self.adobe,
            self.jfif,
            self.scans,
            self.first_scan,
            self.extended,
        )


def _bad(message: str) -> ConversionFailed:
    return ConversionFailed(message, field="file")


def _assemble_icc(chunks: list[tuple[int, int, bytes]]) -> tuple[bytes | None, bool]:
    """Join APP2 ICC chunks in sequence order; returns (profile, invalid?)."""
    if not chunks:
        return None, False
    total = chunks[0][1]
    if any(c[1] != total for c in chunks) or sorted(c[0] for c in chunks) != list(
        range(1, total + 1)
    ):
        return None, True
    profile = valid_icc(b"".join(c[2] for c in sorted(chunks)))
    return profile, profile is None


def colour_model(parsed: ParsedJpeg) -> str:
    """``grey``, ``ycbcr``, ``rgb``, ``cmyk`` or ``ycck``, decided as libjpeg decides it."""
    components = parsed.frame.components
    if len(components) == 1:
        return "grey"
    if len(components) == 3:
        if parsed.adobe_transform is not None:
            return "rgb" if parsed.adobe_transform == 0 else "ycbcr"
        rgb_ids = tuple(c[0] for c in components) == (0x52, 0x47, 0x42)  # 'R', 'G', 'B'
        return "rgb" if rgb_ids and not parsed.jfif else "ycbcr"
    if len(components) == 4:
        return "ycck" if parsed.adobe_transform == 2 else "cmyk"
    raise _bad(f"a JPEG with {len(components)} colour components is not supported")


def chroma_subsampling(frame: Frame) -> str:
    """``4:2:0`` etc. from the sampling factors of a three-component frame; ``""`` otherwise."""
    if len(frame.components) != 3:
        return ""
    (_, h0, v0, _), (_, h1, v1, _), (_, h2, v2, _) = frame.components
    if (h1, v1) == (h2, v2) and h0 % h1 == 0 and v0 % v1 == 0:
        known = _SUBSAMPLING.get((h0 // h1, v0 // v1))
        if known:
            return known
    return f"{h0}x{v0},{h1}x{v1},{h2}x{v2}"
