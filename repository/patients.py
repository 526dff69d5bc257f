"""Patient identifiers: NHS numbers (Modulus 11) and trust-issued temporary identifiers.

The check itself is the ``nhs-number`` package's; the local rules (DECISIONS.md 13) are here:
numbers of one repeated digit are refused, and the 999 test range only where configured.
"""

from __future__ import annotations

import re

import nhs_number

from repository.errors import InvalidInput

# A trust-issued temporary identifier for an unidentified patient (DECISIONS.md 14):
# "TMP-" + the trust's ODS code + "-" + a local reference. Never a valid NHS number shape.
_TEMPORARY_ID = re.compile(r"^TMP-[A-Z0-9]{3,5}-[A-Z0-9]{1,20}$")
_SEPARATORS = re.compile(r"[\s-]")


def normalise_nhs_number(value: str, *, allow_test_numbers: bool, field: str = "nhs_number") -> str:
    """Return the 10-digit NHS number, or raise ``InvalidInput`` naming ``field``.

    Spaces and hyphens (the 3-3-4 display form) are accepted and removed.
    """
    digits = _SEPARATORS.sub("", value or "")
    if not digits:
        raise InvalidInput("NHS number is required", field=field)
    if not digits.isdigit() or len(digits) != 10:
        raise InvalidInput("NHS number must be 10 digits", field=field)
    if len(set(digits)) == 1:
        raise InvalidInput("NHS number of one repeated digit is not issued", field=field)
    if not nhs_number.is_valid(digits):
        raise InvalidInput("NHS number fails the Modulus 11 check digit", field=field)
    if digits.startswith("999") and not allow_test_numbers:
        raise InvalidInput("NHS number is in the 999 test range, refused here", field=field)
    return digits


def is_temporary_id(value: str) -> bool:
    return bool(_TEMPORARY_ID.match(value or ""))


def normalise_patient_id(
    value: str, *, allow_test_numbers: bool, field: str = "nhs_number"
) -> tuple[str, bool]:
    """Return ``(patient_id, is_temporary)`` for an NHS number or a temporary identifier."""
    candidate = (value or "").strip().upper()
    if candidate.startswith("TMP-"):
        if not is_temporary_id(candidate):
            raise InvalidInput(
                "temporary identifier must look like TMP-<ODS code>-<reference>", field=field
            )
        return candidate, True
    return normalise_nhs_number(value, allow_test_numbers=allow_test_numbers, field=field), False
