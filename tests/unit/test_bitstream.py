"""converters.bitstream: views of the source joined only when needed, and the encapsulated Pixel
Data made in one copy with exactly pydicom's bytes."""

from __future__ import annotations

import pytest
from pydicom.encaps import encapsulate

from converters.bitstream import Bitstream


@pytest.mark.parametrize("sizes", [(1,), (2, 3), (0, 5, 0, 4_000_001), (7, 7, 7)])
def test_a_bitstream_is_the_concatenation_of_its_parts(sizes):
    source = bytes(range(256)) * (sum(sizes) // 256 + 1)
    view, parts, at = memoryview(source), [], 0
    for size in sizes:
        parts.append(view[at : at + size])
        at += size
    whole = source[:at]
    stream = Bitstream(parts)
    assert len(stream) == len(whole)
    for n in (0, 1, 2, 5, len(whole), len(whole) + 9):
        assert stream.head(n) == whole[:n]
        assert stream.tail(n) == (whole[-n:] if n else b"")
    assert stream.encapsulated() == encapsulate([whole])
    assert stream == whole and bytes(stream) == whole and stream == Bitstream([whole])
    assert bytes(stream) is bytes(stream)  # joined once
    assert stream.encapsulated() == encapsulate([whole])  # still, after the join
