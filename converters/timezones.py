"""Turn a camera's wall-clock time into an unambiguous instant (DECISIONS.md 12).

Most EXIF has no offset. Such a time is read as local time in the configured zone (Europe/London
by default). Twice a year the wall clock does not name exactly one instant:

* **spring-forward gap** (e.g. 2026-03-29 01:30 in London does not exist): PEP 495 reads the time
  with the offset in force *before* the transition, which lands one hour later on the new clock
  (02:30 BST). The time is shifted forward to that and flagged ``DST_GAP_SHIFTED``.
* **autumn overlap** (e.g. 2026-10-25 01:30 happens twice): the earlier occurrence (``fold=0``,
  still BST, +01:00) is taken and flagged ``DST_OVERLAP_EARLIER``.

Every inferred time is flagged ``OFFSET_INFERRED`` (RELIABILITY.md M2) so that a viewer can mark it.
The result always carries a fixed-offset ``datetime.timezone``, which serialises to DICOM DT and
Timezone Offset From UTC without any zone database on the reading side.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from repository.errors import ConfigurationError

OFFSET_INFERRED = "OFFSET_INFERRED"
DST_GAP_SHIFTED = "DST_GAP_SHIFTED"
DST_OVERLAP_EARLIER = "DST_OVERLAP_EARLIER"


@lru_cache(maxsize=16)
def zone(name: str) -> ZoneInfo:
    """The named IANA zone; a wrong name is a deployment error, not the uploader's."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(f"unknown time zone {name!r} (install tzdata?)") from exc


def localize(naive: dt.datetime, tz_name: str) -> tuple[dt.datetime, list[str]]:
    """Attach the offset that ``tz_name`` had at the wall-clock time ``naive``.

    Parameters
    ----------
    naive : datetime.datetime
        A wall-clock time without tzinfo.
    tz_name : str
        IANA zone name, e.g. ``Europe/London``.

    Returns
    -------
    tuple[datetime.datetime, list[str]]
        An aware datetime with a fixed offset, and the flags saying how it was inferred.
    """
    tz = zone(tz_name)
    naive = naive.replace(tzinfo=None)
    earlier = naive.replace(tzinfo=tz, fold=0)
    later = naive.replace(tzinfo=tz, fold=1)
    flags = [OFFSET_INFERRED]
    offset = earlier.utcoffset()
    assert offset is not None
    if offset == later.utcoffset():
        return naive.replace(tzinfo=dt.timezone(offset)), flags
    round_trip = earlier.astimezone(dt.UTC).astimezone(tz)
    if round_trip.replace(tzinfo=None) != naive:  # the wall time does not exist: a gap
        shifted_offset = round_trip.utcoffset()
        assert shifted_offset is not None
        shifted = round_trip.replace(tzinfo=None).replace(tzinfo=dt.timezone(shifted_offset))
        return shifted, flags + [DST_GAP_SHIFTED]
    return naive.replace(tzinfo=dt.timezone(offset)), flags + [DST_OVERLAP_EARLIER]
