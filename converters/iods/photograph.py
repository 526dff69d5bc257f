"""SOP classes for photographs: VL Photographic Image (XC) and Dermoscopic Photography Image (DMS).

Thin subclasses of one private base (``base.py``) that differ in class constants, as highdicom's
legacy converters do; the dermoscopic class adds its own module. Checked with dciodvfy in
tests/unit/test_iods.py.
"""

from __future__ import annotations

from typing import Any

from pydicom.uid import DermoscopicPhotographyImageStorage, VLPhotographicImageStorage

from converters.iods.base import _VLPhotographicBase
from converters.iods.enum import (
    ContactMethodValues,
    ImmersionMediaValues,
    LightSourcePolarizationValues,
)
from converters.iods.valuerep import enum_value, format_ds

SOP_CLASS_UIDS: frozenset[str] = frozenset(
    {VLPhotographicImageStorage, DermoscopicPhotographyImageStorage}
)


class VLPhotographicImage(_VLPhotographicBase):
    """VL Photographic Image (PS3.3 A.32.4), modality XC: clinical photographs.

    Tracking ID/UID are not part of this IOD; given, they make the instance a Standard
    Extended SOP Class (PS3.4 B.1.3), which dciodvfy reports as a warning only.
    """

    _SOP_CLASS_UID = VLPhotographicImageStorage
    _MODALITY = "XC"


class DermoscopicPhotographyImage(_VLPhotographicBase):
    """Dermoscopic Photography Image (PS3.3 A.32.11), modality DMS."""

    _SOP_CLASS_UID = DermoscopicPhotographyImageStorage
    _MODALITY = "DMS"
    _ENHANCED_EQUIPMENT = True

    def __init__(
        self,
        *,
        light_source_polarization: str | LightSourcePolarizationValues | None = None,
        emitter_color_temperature: float | None = None,
        contact_method: str | ContactMethodValues | None = None,
        immersion_media: str | ImmersionMediaValues | None = None,
        optical_magnification_factor: float | None = None,
        **kwargs: Any,
    ) -> None:
        """
        Parameters
        ----------
        light_source_polarization: str | LightSourcePolarizationValues | None, optional
            Type 2: empty when unknown.
        emitter_color_temperature: float | None, optional
            Light source colour temperature in kelvin; Type 2.
        contact_method: str | converters.iods.enum.ContactMethodValues | None, optional
            Type 2: empty when unknown.
        immersion_media: str | converters.iods.enum.ImmersionMediaValues | None, optional
            Type 2C: only for CONTACT dermoscopy, where it is present (possibly empty).
        optical_magnification_factor: float | None, optional
            Type 2: empty when unknown.
        **kwargs: Any
            Every argument of :class:`VLPhotographicImage`.
        """
        polarization = enum_value(
            LightSourcePolarizationValues, light_source_polarization, "light_source_polarization"
        ).value if light_source_polarization else ""
        contact = (
            enum_value(ContactMethodValues, contact_method, "contact_method")
            if contact_method else None
        )
        media = (
            enum_value(ImmersionMediaValues, immersion_media, "immersion_media").value
            if immersion_media else ""
        )
        if media and contact is not ContactMethodValues.CONTACT:
            raise ValueError('Argument "immersion_media" needs "contact_method" CONTACT.')
        numbers = {
            "EmitterColorTemperature": ("emitter_color_temperature", emitter_color_temperature),
            "OpticalMagnificationFactor": (
                "optical_magnification_factor", optical_magnification_factor
            ),
        }
        texts = {k: format_ds(v, name) if v is not None else "" for k, (name, v) in numbers.items()}
        super().__init__(**kwargs)
        self.LightSourcePolarization = polarization
        self.ContactMethod = contact.value if contact else ""
        if contact is ContactMethodValues.CONTACT:
            self.ImmersionMedia = media
        for keyword, text in texts.items():
            setattr(self, keyword, text)
