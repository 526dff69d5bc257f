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


@pytest.mark.parametrize("tables_kb", [0, 30, 100, 2000])
def test_frame_info_of_a_bitstream_reads_headers_beyond_its_first_read(tables_kb):
    """The frame header is read from the first 64 KB of a bitstream, and from up to 1 MB when
    the headers are longer (large tables); longer still is refused, as before."""
    from tests import imagegen
    from converters.iods.pixels import read_jpeg_frame_info

    jpeg = imagegen.jpeg(imagegen.photo(64, 48, seed=2))
    tables = b""
    while len(tables) < tables_kb * 1024:  # DHT-marked filler segments before the SOF
        tables += b"\xff\xc4" + (60_002).to_bytes(2, "big") + bytes(60_000)
    data = jpeg[:2] + tables + jpeg[2:]
    split = Bitstream([memoryview(data)[:5000], memoryview(data)[5000:]])
    if tables_kb >= 1024:
        with pytest.raises(ValueError, match="running past the end"):
            read_jpeg_frame_info(split)
        return
    info = read_jpeg_frame_info(split)
    assert info == read_jpeg_frame_info(data)
    assert (info.rows, info.columns) == (48, 64)
