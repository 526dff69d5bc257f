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


def _block_start(ds: Dataset, *, create: bool) -> int | None:
    """The first element number of our block in ``ds`` (reserving it if ``create``), or None.

    Found by hand rather than with ``Dataset.private_block``: pydicom caches the PrivateBlock it
    returns on the dataset, and the block refers back to the dataset. That reference cycle kept
    every object written (its pixel data too) alive until a full garbage collection, so a
    busy worker grew by an upload's size per object still waiting for one.
    """
    taken = set()
    for tag in ds.keys():  # the few elements present, not the 240 places a creator may be
        if tag.group == GROUP and 0x10 <= tag.element <= 0xFF:
            if ds[tag].value == CREATOR:
                return int(tag.element) << 8
            taken.add(tag.element)
    free = next((element for element in range(0x10, 0x100) if element not in taken), None)
    if not create or free is None:
        return None
    ds.add_new((GROUP, free), "LO", CREATOR)
    return free << 8


def set_private(ds: Dataset, **values: str) -> None:
    """Write the given private values (by keyword) into ``ds``; empty values are skipped."""
    present = {name: value for name, value in values.items() if value}
    if not present:
        return
    start = _block_start(ds, create=True)
    if start is None:
        raise ValueError(f"no free private block in group {GROUP:04X}")
    for name, value in present.items():
        offset, vr = _BY_NAME[name]
        ds.add_new((GROUP, start + offset), vr, value)


def get_private(ds: Dataset) -> dict[str, str]:
    """Read the private values that are present, by keyword."""
    start = _block_start(ds, create=False)
    if start is None:
        return {}
    found: dict[str, str] = {}
    for offset, (name, _vr) in ELEMENTS.items():
        element = ds.get((GROUP, start + offset))
        if element is not None:
            found[name] = str(element.value)
    return found
