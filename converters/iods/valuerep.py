"""Value checks and formatting shared by the photograph IODs (highdicom's ``valuerep`` role).

Every function raises ``TypeError`` or ``ValueError`` naming the argument at fault.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from enum import Enum
from typing import TypeVar

from pydicom.valuerep import PersonName

E = TypeVar("E", bound=Enum)


def enum_value(kind: type[E], value: object, argument: str) -> E:
    """Normalise ``value`` by calling the enum, naming the argument and the allowed values."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(str(member.value) for member in kind)
        message = f'Argument "{argument}" must be one of {allowed}; got {value!r}.'
        raise ValueError(message) from None


_CS = re.compile(r"^[A-Z0-9_ ]{1,16}$")


def check_code_string(value: str | Enum, argument: str) -> str:
    """Return a CS value (an enum member's value, or upper-case letters, digits, ``_``, space).

    For Defined Terms, which the standard lets grow (Lossy Image Compression Method: ``VP8``
    for lossy WebP has no term yet), the syntax is checked rather than membership.
    """
    text = value.value if isinstance(value, Enum) else value
    if not isinstance(text, str) or not _CS.match(text):
        raise ValueError(f'Argument "{argument}" has a value that is not a CS code: {text!r}.')
    return text


_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_uid(value: str, argument: str) -> str:
    """Return ``value`` if it is a syntactically valid UID, else raise ``ValueError``."""
    if not isinstance(value, str):
        raise TypeError(f'Argument "{argument}" must be a str.')
    if len(value) > 64 or not _UID.match(value):
        raise ValueError(f'Argument "{argument}" is not a valid DICOM UID: {value!r}.')
    return value


def check_text(value: str, argument: str, *, max_len: int, multiline: bool = False) -> str:
    """Check a string value: type, length and control characters.

    Single-line values (LO, SH, CS) must not contain a backslash, the DICOM value delimiter;
    ``multiline`` values (ST, LT, UT) may contain it and CR, LF and TAB.
    """
    if not isinstance(value, str):
        raise TypeError(f'Argument "{argument}" must be a str.')
    if len(value) > max_len:
        raise ValueError(f'Argument "{argument}" is longer than {max_len} characters.')
    if not multiline and "\\" in value:
        raise ValueError(f'Argument "{argument}" must not contain a backslash.')
    checked = value.translate({ord(c): None for c in "\r\n\t"}) if multiline else value
    if _CONTROL.search(checked):
        raise ValueError(f'Argument "{argument}" must not contain control characters.')
    return value


def format_ds(value: float, argument: str, *, decimals: int | None = None) -> str:
    """Format a number as a short Decimal String (at most 16 characters).

    Parameters
    ----------
    value: float
        The number; must be finite and not negative.
    argument: str
        Argument name, for error messages.
    decimals: int | None, optional
        Round to this many decimals first (ratios: 2, giving ``'10.52'``); otherwise six
        significant digits, which keeps ``1/60`` s readable as ``'0.0166667'``.

    Returns
    -------
    str
        The DS value.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f'Argument "{argument}" must be a number.')
    if not math.isfinite(value) or value < 0:
        raise ValueError(f'Argument "{argument}" must be a finite, non-negative number.')
    text = f"{round(value, decimals):g}" if decimals is not None else f"{value:.6g}"
    if len(text) > 16:
        raise ValueError(f'Argument "{argument}" cannot be written as a DS value: {value!r}.')
    return text


def check_person_name(value: str | PersonName, argument: str) -> PersonName:
    """Check a PN value of one (alphabetic) component group: ``Family^Given^Middle^Prefix^Suffix``.

    Ideographic and phonetic groups (``=``) are not used by this service, so ``=`` is refused,
    as are the value delimiter ``\\`` and control characters.
    """
    text = str(value)
    if "=" in text or "\\" in text or _CONTROL.search(text):
        raise ValueError(f'Argument "{argument}" must not contain "=", "\\" or control characters.')
    if text.count("^") > 4:
        raise ValueError(f'Argument "{argument}" has more than five name components.')
    if len(text) > 64:
        raise ValueError(f'Argument "{argument}" is longer than 64 characters.')
    return PersonName(text)


def person_name(family: str, given: str, argument: str = "patient_name") -> PersonName:
    """Build ``Family^Given`` from two parts, refusing parts that contain delimiters.

    A caret inside a part would silently shift the name into the wrong component (``O^Brien``
    would become family ``O``, given ``Brien``), so it is an error rather than escaped.
    """
    for part, which in ((family, "family"), (given, "given")):
        if not isinstance(part, str):
            raise TypeError(f'Argument "{argument}" {which} name must be a str.')
        if any(c in part for c in "^=\\"):
            raise ValueError(
                f'Argument "{argument}" {which} name must not contain "^", "=" or "\\".'
            )
    # Always two components (``Jones^``, ``^Siân``), so a one-part name is not ambiguous.
    text = f"{family}^{given}" if family or given else ""
    return check_person_name(text, argument)


def check_aware(value: dt.datetime, argument: str) -> dt.datetime:
    """Return ``value`` if it is a timezone-aware datetime."""
    if not isinstance(value, dt.datetime):
        raise TypeError(f'Argument "{argument}" must be a datetime.datetime.')
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f'Argument "{argument}" must be timezone-aware.')
    return value


def offset_text(offset: dt.timedelta) -> str:
    """Format a UTC offset as ``+hhmm`` (Timezone Offset From UTC and the DT suffix)."""
    minutes, rest = divmod(int(offset.total_seconds()), 60)
    if rest:
        raise ValueError("UTC offsets must be whole minutes.")
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def dt_text(value: dt.datetime) -> str:
    """Format an aware datetime as a DT value with its own offset: ``20240612143015+0100``."""
    fraction = f".{value.microsecond:06d}" if value.microsecond else ""
    offset = value.utcoffset()
    assert offset is not None  # callers pass aware datetimes (check_aware)
    return value.strftime("%Y%m%d%H%M%S") + fraction + offset_text(offset)
