"""Single byte ranges (web/ranges.py), and which requests of a playback are audited."""

from __future__ import annotations

import pytest

from web.ranges import RangeNotSatisfiable, byte_range, continues_playback


@pytest.mark.parametrize(
    "header, expected",
    [
        (None, None),
        ("bytes=0-", (0, 499)),
        ("bytes=100-199", (100, 199)),
        ("Bytes = 100-", (100, 499)),
        ("bytes=400-9999", (400, 499)),
        ("bytes=-10", (490, 499)),
        ("bytes=-9999", (0, 499)),
        ("bytes=5-3", None),  # invalid: ignored, the whole body
        ("bytes=0-1,5-9", None),  # several: the whole body, never merged
        ("items=0-1", None),
        ("bytes=-", None),
    ],
)
def test_byte_range(header, expected):
    assert byte_range(header, 500) == expected


@pytest.mark.parametrize("header", ["bytes=500-", "bytes=-0"])
def test_unsatisfiable_ranges(header):
    with pytest.raises(RangeNotSatisfiable):
        byte_range(header, 500)


@pytest.mark.parametrize(
    "header, continues",
    [
        (None, False),
        ("bytes=0-", False),
        ("bytes=1000-", True),
        ("bytes=1000-1999", True),
        # anything that may send the whole value is a new view, audited
        ("bytes=-500", False),
        ("bytes=1-1,2-2", False),
        ("bytes=5-3", False),
        ("bytes=x-", False),
    ],
)
def test_only_a_range_past_the_start_continues_a_playback(header, continues):
    assert continues_playback(header) is continues
