"""EXIF: capture time with its offset (DST rules), camera facts, never GPS or owner."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from PIL import TiffImagePlugin

from converters.exif import clean_text, parse_exif_datetime, parse_offset, read_exif
from converters.timezones import localize
from repository.errors import ConfigurationError
from tests import imagegen as g

LONDON = "Europe/London"


def capture_time(
    when: str, offset: str | None = None, tz: str = LONDON
) -> tuple[dt.datetime | None, list[str]]:
    facts = read_exif(g.exif_bytes(datetime_original=when, offset_original=offset), local_tz=tz)
    return facts.capture.acquisition_datetime, facts.capture.time_flags


def hours(moment: dt.datetime | None) -> float:
    assert moment is not None and moment.utcoffset() is not None
    return moment.utcoffset().total_seconds() / 3600  # type: ignore[union-attr]


def test_offset_from_exif_is_kept_exactly_and_names_different_instants() -> None:
    bst, flags_bst = capture_time("2026:10:25 01:30:00", "+01:00")
    gmt, flags_gmt = capture_time("2026:10:25 01:30:00", "+00:00")
    assert (hours(bst), hours(gmt)) == (1, 0) and flags_bst == flags_gmt == []
    assert bst is not None and gmt is not None and gmt - bst == dt.timedelta(hours=1)
    far, _ = capture_time("2026:01:02 08:00:00", "-05:30")
    assert hours(far) == -5.5 and far is not None and far.hour == 8


def test_winter_time_without_offset_is_gmt() -> None:
    moment, flags = capture_time("2026:01:15 10:00:00")
    assert moment == dt.datetime(2026, 1, 15, 10, tzinfo=dt.UTC) and hours(moment) == 0
    assert flags == ["OFFSET_INFERRED"]


def test_summer_time_without_offset_is_bst() -> None:
    moment, flags = capture_time("2026:07:01 10:00:00")
    assert hours(moment) == 1 and moment is not None and moment.hour == 10
    assert flags == ["OFFSET_INFERRED"]


def test_time_in_the_spring_gap_is_shifted_forward_and_flagged() -> None:
    moment, flags = capture_time("2026:03:29 01:30:00")  # 01:00-01:59 does not exist in London
    assert moment is not None and (moment.hour, moment.minute, hours(moment)) == (2, 30, 1)
    assert moment == dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)
    assert "DST_GAP_SHIFTED" in flags and "OFFSET_INFERRED" in flags


def test_time_in_the_autumn_overlap_takes_the_earlier_offset_and_is_flagged() -> None:
    moment, flags = capture_time("2026:10:25 01:30:00")  # happens twice; first in BST
    assert moment is not None and (moment.hour, moment.minute, hours(moment)) == (1, 30, 1)
    assert "DST_OVERLAP_EARLIER" in flags


def test_other_zone_and_next_year_transitions() -> None:
    moment, flags = capture_time("2027:03:28 01:15:00")
    assert moment is not None and moment.hour == 2 and "DST_GAP_SHIFTED" in flags
    moment, flags = capture_time("2026:07:01 12:00:00", tz="America/New_York")
    assert hours(moment) == -4 and flags == ["OFFSET_INFERRED"]


def test_unknown_zone_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        localize(dt.datetime(2026, 1, 1), "Mars/Olympus_Mons")


def test_digitized_then_datetime_are_fallbacks_with_their_own_offsets() -> None:
    exif = g.exif_bytes(extra_exif={0x9004: "2026:05:05 09:00:00", 0x9012: "+02:00"})
    facts = read_exif(exif, local_tz=LONDON)
    assert (
        facts.capture.acquisition_datetime is not None
        and hours(facts.capture.acquisition_datetime) == 2
    )
    exif = g.exif_bytes(extra_ifd0={0x0132: "2026:12:24 18:00:00"})
    moment = read_exif(exif, local_tz=LONDON).capture.acquisition_datetime
    assert moment == dt.datetime(2026, 12, 24, 18, tzinfo=dt.UTC)


def test_subsecond_digits_are_kept() -> None:
    exif = g.exif_bytes(datetime_original="2026:07:01 10:00:00", extra_exif={0x9291: "047"})
    moment = read_exif(exif, local_tz=LONDON).capture.acquisition_datetime
    assert moment is not None and moment.microsecond == 47000


def test_camera_facts_are_read() -> None:
    capture = read_exif(g.exif_bytes(), local_tz=LONDON).capture
    assert (capture.manufacturer, capture.model, capture.software) == (
        "Canon",
        "EOS R5",
        "Firmware 1.2",
    )
    assert (capture.lens_make, capture.lens_model) == ("Canon", "RF 50mm F1.8")
    assert capture.exposure_time_s == pytest.approx(1 / 125) and capture.f_number == pytest.approx(
        2.8
    )
    assert (capture.iso, capture.focal_length_mm, capture.flash_fired) == (400, 50.0, True)
    assert capture.acquisition_datetime is None and capture.time_flags == []


def test_gps_and_owner_never_reach_capture_metadata() -> None:
    capture = read_exif(g.exif_bytes(gps=True, owner=True), local_tz=LONDON).capture
    text = repr(capture)
    assert g.OWNER not in text and g.SERIAL not in text and "53.0" not in text and "'N'" not in text
    assert not any(
        "gps" in name.lower() or "owner" in name.lower() or "serial" in name.lower()
        for name in vars(capture)
    )


@pytest.mark.parametrize(
    "tag, value",
    [
        (0x829D, TiffImagePlugin.IFDRational(28, 0)),  # FNumber 28/0
        (0x829A, TiffImagePlugin.IFDRational(-1, 125)),  # negative exposure
        (0x920A, TiffImagePlugin.IFDRational(10**9, 1)),  # absurd focal length
        (0x8827, 0),  # ISO 0
        (0x9003, "0000:00:00 00:00:00"),  # the classic "unset" date
        (0x9003, "2026:13:45 25:61:00"),
        (0x9003, "yesterday"),
        (0x9011, "+99:00"),
    ],
)
def test_garbage_values_are_ignored(tag: int, value: object) -> None:
    facts = read_exif(g.exif_bytes(extra_exif={tag: value}), local_tz=LONDON)
    capture = facts.capture
    field = {
        0x829D: "f_number",
        0x829A: "exposure_time_s",
        0x920A: "focal_length_mm",
        0x8827: "iso",
        0x9003: "acquisition_datetime",
        0x9011: "acquisition_datetime",
    }[tag]
    if tag == 0x9011:  # a bad offset means the time is read as local time instead
        facts = read_exif(
            g.exif_bytes(datetime_original="2026:07:01 10:00:00", extra_exif={tag: value}),
            local_tz=LONDON,
        )
        assert facts.capture.time_flags == ["OFFSET_INFERRED"]
        return
    assert getattr(capture, field) is None


def test_hostile_strings_are_cleaned_and_cut() -> None:
    make = "Evil\x00Corp\x1b[31m\r\nFAKE LOG LINE <script>"
    facts = read_exif(g.exif_bytes(make=make, model="M" * 500), local_tz=LONDON)
    assert facts.capture.manufacturer == "EvilCorp[31m FAKE LOG LINE <script>"  # the UI escapes <>
    assert facts.capture.model == "M" * 64
    assert clean_text("Canon \u202egnp.exe\u200b") == "Canon gnp.exe"  # bidi override, zero width
    assert clean_text(b"Nikon\\Z6\x00\x00") == "Nikon/Z6"
    assert clean_text(("Sony", "extra")) == "Sony" and clean_text(12) == ""


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"Exif\x00\x00",
        b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff",
        b"Exif\x00\x00II*\x00" + np.random.default_rng(3).bytes(400),
        b"not exif at all, just text",
    ],
    ids=["empty", "prefix-only", "huge-entry-count", "random-ifd", "text"],
)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_hostile_exif_never_raises(data: bytes) -> None:
    facts = read_exif(data, local_tz=LONDON)
    assert facts.orientation == 1 and facts.capture.manufacturer == ""


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_truncated_exif_keeps_what_it_can_and_never_raises() -> None:
    raw = g.exif_bytes(datetime_original="2026:07:01 10:00:00")
    for cut in range(8, len(raw), 7):
        read_exif(raw[:cut], local_tz=LONDON)


def test_parsers_directly() -> None:
    assert parse_exif_datetime("2026-07-01T10:00:00") == dt.datetime(2026, 7, 1, 10)
    assert parse_exif_datetime("2026:07:01 10:00:00\x00") == dt.datetime(2026, 7, 1, 10)
    assert parse_exif_datetime(None) is None
    assert parse_offset("-0330") == dt.timezone(-dt.timedelta(hours=3, minutes=30))
    assert parse_offset("   :  ") is None and parse_offset(b"+01:00") == dt.timezone(
        dt.timedelta(hours=1)
    )
