"""Reusable sequence items for the photograph IODs (highdicom's ``content.py`` role).

Each item class is a ``pydicom.Dataset`` whose constructor validates its arguments before
setting any attribute, so an item that exists is a valid item.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from highdicom.sr import CodedConcept
from pydicom import Dataset
from pydicom.sr.coding import Code

from converters.iods.enum import ColorSpaceValues, ImageLateralityValues
from converters.iods.valuerep import check_text, check_uid, enum_value, format_ds

# HL7 UK OID of the NHS number namespace, used as Universal Entity ID of the issuer.
NHS_NUMBER_OID = "2.16.840.1.113883.2.1.4.1"

# SNOMED CT laterality qualifiers for the Anatomic Region Modifier Sequence (CID 244).
LATERALITY_MODIFIERS: dict[ImageLateralityValues, Code] = {
    ImageLateralityValues.L: Code("7771000", "SCT", "Left"),
    ImageLateralityValues.R: Code("24028007", "SCT", "Right"),
    ImageLateralityValues.B: Code("51440002", "SCT", "Right and left"),
}

class IssuerOfPatientIDQualifiers(Dataset):
    """Item of Issuer of Patient ID Qualifiers Sequence (0010,0024): the universal issuer."""

    def __init__(self, universal_entity_id: str, universal_entity_id_type: str = "ISO") -> None:
        """
        Parameters
        ----------
        universal_entity_id: str
            Universal Entity ID (0040,0032), e.g. :data:`NHS_NUMBER_OID`.
        universal_entity_id_type: str, optional
            Universal Entity ID Type (0040,0033); only ``ISO`` (an OID) is supported.
        """
        super().__init__()
        if universal_entity_id_type != "ISO":
            raise ValueError('Argument "universal_entity_id_type" must be "ISO".')
        check_uid(universal_entity_id, "universal_entity_id")
        self.UniversalEntityID = universal_entity_id
        self.UniversalEntityIDType = universal_entity_id_type


class AnatomicRegion(Dataset):
    """Item of Anatomic Region Sequence (0008,2218) with optional laterality modifiers."""

    def __init__(
        self,
        value: str,
        scheme_designator: str,
        meaning: str,
        modifiers: Sequence[Code | CodedConcept] = (),
    ) -> None:
        """
        Parameters
        ----------
        value: str
            Code Value, e.g. a SNOMED CT concept id from CID 4029 or 4031.
        scheme_designator: str
            Coding Scheme Designator, e.g. ``SCT``.
        meaning: str
            Code Meaning (at most 64 characters).
        modifiers: Sequence[pydicom.sr.coding.Code | highdicom.sr.CodedConcept], optional
            Anatomic Region Modifier Sequence (0008,2220) items, e.g. :data:`LATERALITY_MODIFIERS`.
        """
        super().__init__()
        check_text(value, "value", max_len=16)
        check_text(scheme_designator, "scheme_designator", max_len=16)
        check_text(meaning, "meaning", max_len=64)
        if not value or not scheme_designator or not meaning:
            raise ValueError('Arguments "value", "scheme_designator" and "meaning" are required.')
        items = [CodedConcept(m.value, m.scheme_designator, m.meaning) for m in modifiers]
        self.CodeValue = value
        self.CodingSchemeDesignator = scheme_designator
        self.CodeMeaning = meaning
        if items:
            self.AnatomicRegionModifierSequence = items


class VLPhotographicAcquisition(Dataset):
    """Attributes of the VL Photographic Acquisition module (C.8.12.11) taken from EXIF.

    Only the exposure and lens attributes that help judge image quality are kept; GPS, owner
    and maker-note data never reach this class (DECISIONS.md 9).
    """

    def __init__(
        self,
        exposure_time_in_seconds: float | None = None,
        f_number: float | None = None,
        photographic_sensitivity: int | None = None,
        focal_length: float | None = None,
        flash_fired: bool | None = None,
    ) -> None:
        """
        Parameters
        ----------
        exposure_time_in_seconds: float | None, optional
            Exposure Time In Seconds (0016,0004), DS.
        f_number: float | None, optional
            F-Number (0016,0005), DS.
        photographic_sensitivity: int | None, optional
            Photographic Sensitivity (0016,0018), IS (EXIF ISO speed).
        focal_length: float | None, optional
            Focal Length (0016,0029) in mm, DS.
        flash_fired: bool | None, optional
            Flash Firing Status (0016,0011), US: 1 fired, 0 did not fire (EXIF Flash bit 0).
        """
        super().__init__()
        values: dict[str, object] = {}
        for name, keyword, number in (
            ("exposure_time_in_seconds", "ExposureTimeInSeconds", exposure_time_in_seconds),
            ("f_number", "FNumber", f_number),
            ("focal_length", "FocalLength", focal_length),
        ):
            if number is not None:
                values[keyword] = format_ds(number, name)
        if photographic_sensitivity is not None:
            iso = photographic_sensitivity
            if isinstance(iso, bool) or not isinstance(iso, int):
                raise TypeError('Argument "photographic_sensitivity" must be an int.')
            if not 0 < photographic_sensitivity < 2**31:
                raise ValueError('Argument "photographic_sensitivity" must be a positive IS value.')
            values["PhotographicSensitivity"] = photographic_sensitivity
        if flash_fired is not None:
            if not isinstance(flash_fired, bool):
                raise TypeError('Argument "flash_fired" must be a bool.')
            values["FlashFiringStatus"] = int(flash_fired)
        for keyword, value in values.items():
            setattr(self, keyword, value)


def icc_color_space(profile: bytes) -> ColorSpaceValues | None:
    """Validate an ICC profile and return its Color Space (0028,2002) term when recognised.

    Raises ``ValueError`` if ``profile`` is not an ICC profile (no ``acsp`` signature, or a
    declared size larger than the data), because an unusable profile would mislead viewers.
    Trailing padding after the declared size is tolerated, as the converters do.
    """
    if not isinstance(profile, bytes):
        raise TypeError('Argument "icc_profile" must be bytes.')
    if len(profile) < 132 or profile[36:40] != b"acsp":
        raise ValueError('Argument "icc_profile" is not an ICC profile (no "acsp" signature).')
    if not 128 <= int.from_bytes(profile[:4], "big") <= len(profile):
        raise ValueError('Argument "icc_profile" is truncated (its header declares more bytes).')
    try:
        from PIL import ImageCms

        parsed = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        description = parsed.profile.profile_description or ""
    except (ImportError, OSError, ValueError):
        # Without a colour-management engine the profile is still carried, just not named.
        return None
    folded = description.replace(" ", "").casefold()
    if "srgb" in folded:
        return ColorSpaceValues.SRGB
    if "adobergb" in folded:
        return ColorSpaceValues.ADOBERGB
    if "prophoto" in folded or "rommrgb" in folded:
        return ColorSpaceValues.ROMMRGB
    return None


def resolve_laterality(
    image_laterality: str | ImageLateralityValues | None,
    paired: bool,
    region: AnatomicRegion,
) -> ImageLateralityValues | None:
    """Check Image Laterality against the body part and the region's laterality modifier.

    Returns the value to write as Image Laterality (0020,0062), or ``None`` when unknown.
    """
    laterality = None if image_laterality is None else enum_value(
        ImageLateralityValues, image_laterality, "image_laterality"
    )
    if laterality is ImageLateralityValues.U and paired:
        raise ValueError('Argument "image_laterality" U (unpaired) contradicts a paired body part.')
    sides = {(c.value, c.scheme_designator): side for side, c in LATERALITY_MODIFIERS.items()}
    for modifier in region.get("AnatomicRegionModifierSequence", []):
        side = sides.get((modifier.CodeValue, modifier.CodingSchemeDesignator))
        if side is not None and side is not laterality:
            raise ValueError(
                'Argument "anatomic_region" laterality contradicts "image_laterality".'
            )
    return laterality
