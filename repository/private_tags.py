"""Ologies' private data element block: what the standard has no attribute for, kept inside
each object so that it stays self-describing (DECISIONS.md 1, 10).

Private creator ``OLOGIES 1.0`` in group 0x0011. Documented in the conformance statement.
"""

from __future__ import annotations

from pydicom import Dataset

GROUP = 0x0011
CREATOR = "OLOGIES 1.0"

# element offset -> (keyword used in code and in the index, VR)
ELEMENTS: dict[int, tuple[str, str]] = {
    0x10: ("TrustODSCode", "LO"),
    0x11: ("SpecialtyCode", "LO"),
    0x12: ("ConsentLevel", "CS"),
    0x13: ("ConsentRecordedBy", "LO"),
    0x14: ("ConsentStatus", "CS"),  # ACTIVE or WITHDRAWN
    0x20: ("OriginalSHA256", "LO"),  # SHA-256 of the uploaded bytes (64 hex characters)
    0x21: ("OriginalMediaType", "LO"),
    0x22: ("IngestRoute", "LO"),  # web, api, stowrs, cstore, watch, cli
    0x23: ("TimeFlags", "LO"),  # e.g. DST_GAP_SHIFTED, DST_OVERLAP_EARLIER
    0x24: ("PatientIdIsTemporary", "CS"),  # YES / NO
    # SHA-256 of a received DICOM data set as stored, without this block: the same content
    # arriving by another route (STOW-RS, C-STORE) is recognised as the same (converters/dicom.py)
    0x27: ("ContentSHA256", "LO"),
    0x25: ("VideoRotation", "IS"),  # display matrix rotation kept in an MP4, degrees counter-clockwise
    0x26: ("PreviousPatientID", "LO"),  # the temporary identifier a patient was reconciled from
}
_BY_NAME = {name: (offset, vr) for offset, (name, vr) in ELEMENTS.items()}


def set_private(ds: Dataset, **values: str) -> None:
    """Write the given private values (by keyword) into ``ds``; empty values are skipped."""
    block = ds.private_block(GROUP, CREATOR, create=True)
    for name, value in values.items():
        offset, vr = _BY_NAME[name]
        if value:
            block.add_new(offset, vr, value)


def get_private(ds: Dataset) -> dict[str, str]:
    """Read the private values that are present, by keyword."""
    try:
        block = ds.private_block(GROUP, CREATOR)
    except KeyError:
        return {}
    found: dict[str, str] = {}
    for offset, (name, _vr) in ELEMENTS.items():
        tag = block.get_tag(offset)
        if tag in ds:
            found[name] = str(ds[tag].value)
    return found
