"""A compressed bitstream kept as pieces of the file it came from, joined only when needed.

A camera JPEG is megabytes, nearly all of it entropy-coded data that Ologies keeps byte for
byte. Joining the kept pieces into one bytes object, and then copying that again behind the
item headers of encapsulated Pixel Data, cost more than the rest of a conversion: every fresh
4 MB buffer is a thousand page faults. A :class:`Bitstream` holds views of the source instead,
and makes the encapsulated value in a single copy (:meth:`encapsulated`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

_ITEM = 0xE000FFFE
_ONE_FRAME_OFFSET_TABLE = struct.pack("<III", _ITEM, 4, 0)  # the one frame starts at offset 0
MAX_FRAGMENT = 0xFFFFFFFE  # an Item's length field is 32 bits and 0xFFFFFFFF means undefined


class Bitstream:
    """Immutable bytes made of ``parts`` (bytes or memoryviews, in order)."""

    __slots__ = ("_parts", "size", "_joined")

    def __init__(self, parts: Iterable[bytes | memoryview]) -> None:
        self._parts = [p for p in parts if len(p)]
        self.size = sum(len(p) for p in self._parts)
        self._joined: bytes | None = None

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        """The whole bitstream as one object (a copy, made once and kept)."""
        if self._joined is None:
            self._joined = b"".join(self._parts)
            self._parts = [self._joined]  # release the views of the source
        return self._joined

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Bitstream):
            other = bytes(other)
        return isinstance(other, (bytes, bytearray, memoryview)) and bytes(self) == other

    __hash__ = None  # type: ignore[assignment]  # equal to bytes, but not hashable as they are

    def head(self, n: int) -> bytes:
        """The first ``n`` bytes (fewer if shorter), copying only those."""
        out, left = [], n
        for part in self._parts:
            if left <= 0:
                break
            out.append(part[:left])
            left -= len(out[-1])
        return b"".join(out)

    def tail(self, n: int) -> bytes:
        """The last ``n`` bytes (fewer if shorter), copying only those."""
        out, left = [], n
        for part in reversed(self._parts):
            if left <= 0:
                break
            out.append(part[max(0, len(part) - left) :])
            left -= len(out[-1])
        return b"".join(reversed(out))

    def encapsulated(self) -> bytes:
        """Pixel Data of this one frame as one fragment after its Basic Offset Table (PS3.5
        A.4), in one copy; the same bytes as pydicom's ``encapsulate([bytes(self)])``."""
        if self.size > MAX_FRAGMENT - 1:
            from pydicom.encaps import encapsulate

            return encapsulate([bytes(self)])  # several fragments: pydicom knows how
        pad = b"\x00" * (self.size % 2)
        item = struct.pack("<II", _ITEM, self.size + len(pad))
        return b"".join((_ONE_FRAME_OFFSET_TABLE, item, *self._parts, pad))
