"""A bounded walk over the boxes (atoms) of an ISO base media / QuickTime file.

Pure Python and read-only, it runs *before* any demuxer sees the file (RELIABILITY.md 2.7): every
box length is checked against what is left of its parent and of the file, the depth and the
number of boxes are capped, and only the ``moov`` tree is descended into (``mdat``, the media
itself, is skipped by seeking). It finds:

* truncation: a box that claims more bytes than the file has (a cut upload);
* external data references: a ``dref`` entry (``url ``/``alis``/``rsrc``) without the
  self-contained flag names *another file* that a demuxer would open (the playlist class of bug);
* the track header display matrices (rotation);
* metadata boxes that can carry a location (``©xyz``, ``loci``, ``meta``/``keys`` with ISO 6709).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from repository.errors import ConversionFailed

#: boxes whose payload is only child boxes
#: (``udta`` and ``meta`` are not descended into: their layout varies by vendor, and they are
#: dropped by the remux anyway; their raw bytes are what :func:`metadata_payloads` returns)
_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"dinf", b"edts", b"mvex"})
_META = b"meta"
_DREF = b"dref"
#: metadata boxes that can hold a location, anywhere in the tree
LOCATION_BOXES = frozenset({b"\xa9xyz", b"loci", b"\xa9loc"})
LOCATION_MARKERS = (b"ISO6709", b"location", b"\xa9xyz", b"loci", b"GPS")


@dataclass(frozen=True)
class Box:
    path: str  # e.g. "moov/trak/tkhd"
    type: bytes
    offset: int  # of the box header
    header: int  # header length (8, or 16 with a 64-bit size)
    size: int  # whole box, header included

    @property
    def payload_offset(self) -> int:
        return self.offset + self.header

    @property
    def payload_size(self) -> int:
        return self.size - self.header


@dataclass
class BoxWalk:
    top_level: list[Box] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)  # every box under moov (and moov itself)
    external_references: list[str] = field(default_factory=list)
    location_boxes: list[str] = field(default_factory=list)
    track_matrices: list[tuple[int, ...]] = field(default_factory=list)

    def find(self, box_type: bytes) -> list[Box]:
        return [b for b in self.boxes if b.type == box_type]


def walk(handle: BinaryIO, size: int, *, max_boxes: int = 200_000, max_depth: int = 12, max_moov: int = 256 << 20) -> BoxWalk:
    """Walk the file's boxes; raise ``ConversionFailed`` with a reason a person can act on."""
    result = BoxWalk()
    count = 0

    def read_header(offset: int, end: int) -> Box | None:
        handle.seek(offset)
        head = handle.read(16)
        if len(head) < 8:
            raise ConversionFailed("the video is truncated (a box header is cut short)")
        length, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if length == 1:
            if len(head) < 16:
                raise ConversionFailed("the video is truncated (a box header is cut short)")
            length = struct.unpack(">Q", head[8:16])[0]
            header = 16
        elif length == 0:
            length = end - offset  # "to the end of the file": only meaningful at the top level
        if length < header:
            raise ConversionFailed(f"the video is corrupt (box {kind!r} at byte {offset} has length {length})")
        if offset + length > end:
            where = "file" if end == size else "its parent box"
            raise ConversionFailed(
                f"the video is truncated or corrupt: box {_name(kind)} at byte {offset} runs past the end of the {where}"
            )
        return Box("", kind, offset, header, length)

    def children(parent_path: str, start: int, end: int, depth: int) -> None:
        nonlocal count
        if depth > max_depth:
            raise ConversionFailed("the video's box structure is nested too deeply")
        offset = start
        while offset + 8 <= end:
            count += 1
            if count > max_boxes:
                raise ConversionFailed("the video has too many boxes to be a camera recording")
            found = read_header(offset, end)
            assert found is not None
            box = Box(f"{parent_path}/{_name(found.type)}", found.type, found.offset, found.header, found.size)
            result.boxes.append(box)
            if box.type in LOCATION_BOXES:
                result.location_boxes.append(box.path)
            if box.type in _CONTAINERS:
                children(box.path, box.payload_offset, box.offset + box.size, depth + 1)
            elif box.type == _DREF:
                _data_references(box)
            elif box.type == b"tkhd":
                _matrix(box)
            offset += box.size
        if offset != end and end - offset >= 8:
            raise ConversionFailed("the video is corrupt (bytes left over inside a box)")

    def _data_references(box: Box) -> None:
        handle.seek(box.payload_offset)
        head = handle.read(8)
        if len(head) < 8:
            raise ConversionFailed("the video is corrupt (a data reference box is cut short)")
        entries = struct.unpack(">I", head[4:8])[0]
        offset = box.payload_offset + 8
        end = box.offset + box.size
        for _ in range(min(entries, 64)):
            entry = read_header(offset, end)
            assert entry is not None
            handle.seek(entry.payload_offset)
            flags = int.from_bytes(handle.read(4)[1:4] or b"\x00\x00\x00", "big")
            if not flags & 1:  # not "media data in this file"
                result.external_references.append(_name(entry.type))
            offset += entry.size
        if entries > 64:
            raise ConversionFailed("the video has too many data references")

    def _matrix(box: Box) -> None:
        handle.seek(box.payload_offset)
        payload = handle.read(min(box.payload_size, 104))
        version = payload[0] if payload else 0
        start = 4 + (32 if version == 1 else 20) + 16  # times, track id, duration; reserved, layer...
        if len(payload) >= start + 36:
            result.track_matrices.append(struct.unpack(">9i", payload[start : start + 36]))

    offset = 0
    while offset < size:
        if size - offset < 8:
            raise ConversionFailed("the video is truncated or has trailing garbage after its last box")
        count += 1
        top = read_header(offset, size)
        assert top is not None
        box = Box(_name(top.type), top.type, top.offset, top.header, top.size)
        result.top_level.append(box)
        if box.type == b"moov":
            if box.size > max_moov:
                raise ConversionFailed("the video's index (moov) is implausibly large")
            result.boxes.append(box)
            children("moov", box.payload_offset, box.offset + box.size, 1)
        elif box.type in (_META, b"udta"):
            result.boxes.append(box)
        offset += box.size
    kinds = [b.type for b in result.top_level]
    if kinds.count(b"moov") != 1:
        raise ConversionFailed(
            "the video has no index (moov box): it is truncated or was not finished by the camera"
            if not kinds.count(b"moov") else "the video has more than one index (moov box)"
        )
    if b"mdat" not in kinds:
        raise ConversionFailed("the video has no media data (mdat box)")
    return result


def metadata_payloads(handle: BinaryIO, result: BoxWalk, *, limit: int = 16 << 20) -> bytes:
    """The bytes of every ``udta``/``meta`` box (bounded): where location metadata would be."""
    chunks: list[bytes] = []
    total = 0
    for box in result.boxes + result.top_level:
        if box.type in (b"udta", _META) or box.type in LOCATION_BOXES:
            take = min(box.size, limit - total)
            if take <= 0:
                break
            handle.seek(box.offset)
            chunks.append(handle.read(take))
            total += take
    return b"".join(chunks)


def _name(kind: bytes) -> str:
    return kind.decode("latin-1")
