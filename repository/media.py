"""Reading video and document objects without loading them: where the MPEG-4 bitstream lies
inside a stored Part 10 object, a seekable reader over it, and their poster images.

A stored video is the Part 10 header, then Pixel Data as an encapsulated sequence: an empty
Basic Offset Table and the MP4 as one fragment (several above 4 GB). :func:`bitstream_spans`
finds the fragments from the header alone (plus one 8-byte item header per fragment), so the
browser's range requests are served straight from the stored object, with no copy.
"""

from __future__ import annotations

import io
import struct
import typing
from dataclasses import dataclass

from pydicom import Dataset
from pydicom.uid import EncapsulatedPDFStorage, VideoPhotographicImageStorage

from repository.errors import ConversionFailed, NotFound
from repository.private_tags import get_private
from repository.service import read_header
from repository.store import ObjectStore

VIDEO_CLASSES = frozenset({VideoPhotographicImageStorage, "1.2.840.10008.5.1.4.1.1.77.1.1.1",
                           "1.2.840.10008.5.1.4.1.1.77.1.2.1", "1.2.840.10008.5.1.4.1.1.77.1.5.1.1"})  # fmt: skip
DOCUMENT_CLASSES = frozenset({EncapsulatedPDFStorage})
_ITEM, _DELIMITER = 0xE000FFFE, 0xE0DDFFFE  # (FFFE,E000) and (FFFE,E0DD) as little-endian words
_MAX_FRAGMENTS = 4096


@dataclass(frozen=True)
class Bitstream:
    """The MPEG-4 bitstream of a stored video: ``spans`` are (offset in the object, length)."""

    header: Dataset
    spans: tuple[tuple[int, int], ...]

    @property
    def size(self) -> int:
        return sum(length for _, length in self.spans)


def bitstream_spans(store: ObjectStore, key: str) -> Bitstream:
    """Locate the bitstream of the video stored at ``key`` (``NotFound`` if it is not a video)."""
    with store.open(key) as handle:
        header, start = _header_and_pixel_offset(handle)
    if str(header.get("SOPClassUID", "")) not in VIDEO_CLASSES:
        raise NotFound("this instance is not a video")
    head = store.read_range(key, start, start + 11)
    if len(head) < 12 or head[:4] != b"\xe0\x7f\x10\x00" or struct.unpack("<I", head[8:12])[0] != 0xFFFFFFFF:
        raise ConversionFailed("the stored video has no encapsulated pixel data")
    offset = start + 12
    spans: list[tuple[int, int]] = []
    first = True
    while len(spans) < _MAX_FRAGMENTS:
        item = store.read_range(key, offset, offset + 7)
        if len(item) < 8:
            raise ConversionFailed("the stored video's pixel data is truncated")
        tag, length = struct.unpack("<II", item)
        if tag == _DELIMITER:
            break
        if tag != _ITEM:
            raise ConversionFailed("the stored video's pixel data is malformed")
        if not first and length:
            spans.append((offset + 8, length))
        first = False  # the first item is the Basic Offset Table
        offset += 8 + length
    if not spans:
        raise ConversionFailed("the stored video has no bitstream")
    # The last fragment may carry one pad byte; an MP4 ends with a complete box, so trim it by
    # the box structure rather than guess: a trailing 0x00 outside the last box is the pad.
    last_offset, last_length = spans[-1]
    if last_length % 2 == 0 and _ends_with_pad(store, key, spans):
        spans[-1] = (last_offset, last_length - 1)
    return Bitstream(header, tuple(spans))


def _ends_with_pad(store: ObjectStore, key: str, spans: list[tuple[int, int]]) -> bool:
    return ends_with_pad(SpanReader(store, key, tuple(spans)), sum(length for _, length in spans))


def ends_with_pad(handle: typing.BinaryIO, total: int) -> bool:
    """Walk the top-level boxes of ``total`` bytes: if they end one byte before the data, that
    byte is the pad that makes an encapsulated fragment even (PS3.5 A.4), not part of the MP4."""
    offset = 0
    while offset + 8 <= total:
        handle.seek(offset)
        head = handle.read(16)
        size = struct.unpack(">I", head[:4])[0]
        if size == 1 and len(head) == 16:
            size = struct.unpack(">Q", head[8:16])[0]
        elif size == 0:
            return False
        if size < 8:
            return False
        offset += size
    return offset == total - 1


def _header_and_pixel_offset(handle) -> tuple[Dataset, int]:  # type: ignore[no-untyped-def]
    """The header and the byte offset of the (7FE0,0010) element (pydicom stops right before it)."""
    if handle.seekable():
        header = read_header(handle)
        return header, handle.tell()
    from repository.service import _Rewindable

    rewindable = _Rewindable(handle)
    header = read_header(rewindable)  # type: ignore[arg-type]
    return header, rewindable.tell()


class SpanReader(io.RawIOBase):
    """A seekable, read-only file over some spans of a stored object (for PyAV and Range)."""

    def __init__(self, store: ObjectStore, key: str, spans: tuple[tuple[int, int], ...], *, block: int = 1 << 20) -> None:
        self._store, self._key, self._spans = store, key, spans
        self._size = sum(length for _, length in spans)
        self._pos = 0
        self._block = block
        self._cache: tuple[int, bytes] = (-1, b"")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        data = self.read_at(self._pos, want)
        memoryview(buffer).cast("B")[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def read_at(self, position: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``position`` of the bitstream, crossing fragments."""
        out = bytearray()
        logical = 0
        for offset, span in self._spans:
            if position < logical + span and length > 0:
                start = position - logical
                take = min(span - start, length)
                out += self._range(offset + start, take)
                position += take
                length -= take
            logical += span
        return bytes(out)

    def _range(self, start: int, length: int) -> bytes:
        block_start = start - start % self._block
        if length <= self._block and start + length <= block_start + self._block:
            cached_at, data = self._cache
            if cached_at != block_start:
                data = self._store.read_range(self._key, block_start, block_start + self._block - 1)
                self._cache = (block_start, data)
            return data[start - block_start : start - block_start + length]
        return self._store.read_range(self._key, start, start + length - 1)


def video_poster(store: ObjectStore, key: str) -> bytes:
    """The first frame of a stored video as an upright JPEG (decoded from the stored object)."""
    import av
    from PIL import Image

    from converters.video import decoder_options

    stream = bitstream_spans(store, key)
    rotation = int(get_private(stream.header).get("VideoRotation", "0") or 0)
    reader = io.BufferedReader(SpanReader(store, key, stream.spans), buffer_size=1 << 20)
    try:
        bound = decoder_options()  # as at ingest
        with av.open(reader, format="mp4", options={"protocol_whitelist": "file,pipe", **bound}) as container:
            video = container.streams.video[0]
            video.codec_context.options = bound
            for count, packet in enumerate(container.demux(video)):
                if count > 600:
                    break
                for frame in packet.decode():
                    image: Image.Image = frame.to_image()
                    turn = int(getattr(frame, "rotation", 0) or 0) % 360 or rotation
                    if turn:
                        image = image.rotate(turn, expand=True)
                    out = io.BytesIO()
                    image.save(out, format="JPEG", quality=90)
                    return out.getvalue()
    except (av.FFmpegError, IndexError) as exc:
        raise ConversionFailed(f"the stored video cannot be decoded: {exc}") from exc
    raise ConversionFailed("no frame of the stored video could be decoded")


def document_poster(ds: Dataset) -> bytes:
    """Page 1 of a stored PDF as a JPEG (PDFium in a child process), or a document icon."""
    from converters.pdf import document_icon, preview

    data = bytes(ds.get("EncapsulatedDocument", b"") or b"")
    length = ds.get("EncapsulatedDocumentLength")
    if length:
        data = data[: int(length)]
    if not data.startswith(b"%PDF-"):
        return document_icon()
    return preview(data)[0]
