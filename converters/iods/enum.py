"""Enumerated and defined terms used by the photograph IODs (PS3.3), named ``<Attribute>Values``.

Arguments typed ``str | <Attribute>Values`` are normalised by calling the enum, so an invalid
string fails at once with ``ValueError`` (highdicom's convention).
"""

from __future__ import annotations

from enum import Enum


class ImageLateralityValues(str, Enum):
    """Image Laterality (0020,0062), General Image and VL Image modules (enumerated values)."""

    R = "R"
    """Right."""
    L = "L"
    """Left."""
    U = "U"
    """Unpaired: the body part has no side (not "unknown")."""
    B = "B"
    """Both left and right."""


class PhotometricInterpretationValues(str, Enum):
    """Photometric Interpretation (0028,0004) values that the VL Image module allows.

    PS3.3 C.8.12.1.1.1 enumerates MONOCHROME2, RGB, YBR_FULL_422, YBR_PARTIAL_420, YBR_ICT and
    YBR_RCT, and YBR_FULL_422 is the value for lossy JPEG whatever the chroma subsampling;
    YBR_FULL is *not* allowed in these IODs (dciodvfy reports it as an error).
    """

    MONOCHROME2 = "MONOCHROME2"
    """Greyscale, black is the minimum value."""
    RGB = "RGB"
    """Native (uncompressed) or lossless colour without a colour transform."""
    YBR_FULL_422 = "YBR_FULL_422"
    """Lossy JPEG (ISO 10918-1) colour, with or without chroma subsampling in the bitstream."""


# Body Part Examined defined terms (PS3.16 Annex L) of structures without sides: for these the
# General Series Laterality (0020,0060) is not required and must be absent when Image
# Laterality is not sent. The same list dciodvfy uses for its Laterality condition.
UNPAIRED_BODY_PARTS: frozenset[str] = frozenset(
    """ABDOMEN ABDOMENPELVIS AORTA BACK BLADDER BRAIN CEREBELLUM CSPINE CTSPINE CERVIX CHEST
    CHESTABDOMEN CHESTABDPELVIS CIRCLEOFWILLIS COCCYX COLON CORONARYARTERY DUODENUM WHOLEBODY
    ESOPHAGUS FACE GALLBLADDER HEAD HEADNECK HEART ILEUM JAW JEJUNUM LARYNX LIVER LSPINE
    LSSPINE MAXILLA MEDIASTINUM MOUTH NECK NECKCHEST NECKCHESTABDOMEN NECKCHESTABDPELV NOSE
    PANCREAS PELVIS PENIS PHARYNX PROSTATE RECTUM SSPINE SCALP SKULL SPINE SPLEEN STERNUM
    STOMACH TSPINE TLSPINE THYMUS THYROID TONGUE TRACHEA URETER URETHRA UTERUS VAGINA VULVA
    TRUNK PERINEUM""".split()  # noqa: SIM905 - a word list reads better than 63 literals
)


class LossyImageCompressionMethodValues(str, Enum):
    """Lossy Image Compression Method (0028,2114) defined terms (PS3.3 C.7.6.1.1.5.1).

    Defined, not enumerated: other CS values (e.g. ``VP8`` for lossy WebP) are accepted.
    """

    ISO_10918_1 = "ISO_10918_1"
    """JPEG lossy."""
    ISO_14495_1 = "ISO_14495_1"
    """JPEG-LS near-lossless."""
    ISO_15444_1 = "ISO_15444_1"
    """JPEG 2000 irreversible."""
    ISO_15444_15 = "ISO_15444_15"
    """High-Throughput JPEG 2000 irreversible."""
    ISO_18181_1 = "ISO_18181_1"
    """JPEG XL."""
    ISO_13818_2 = "ISO_13818_2"
    """MPEG-2 video."""
    ISO_14496_10 = "ISO_14496_10"
    """MPEG-4 AVC / H.264."""
    ISO_23008_2 = "ISO_23008_2"
    """HEVC / H.265 (also the still images of HEIC files)."""


class LightSourcePolarizationValues(str, Enum):
    """Light Source Polarization (0016,1001), Dermoscopic Image module."""

    POLARIZED = "POLARIZED"
    """Polarised light (deeper structures)."""
    NON_POLARIZED = "NON_POLARIZED"
    """Non-polarised light (surface structures)."""


class ContactMethodValues(str, Enum):
    """Contact Method (0016,1003), Dermoscopic Image module."""

    CONTACT = "CONTACT"
    """The dermoscope touched the skin; Immersion Media (0016,1004) becomes required."""
    NON_CONTACT = "NON_CONTACT"
    """The dermoscope did not touch the skin."""


class ImmersionMediaValues(str, Enum):
    """Immersion Media (0016,1004), Dermoscopic Image module (contact dermoscopy only)."""

    ULTRASOUND_GEL = "ULTRASOUND_GEL"
    """Ultrasound gel."""
    ALCOHOL = "ALCOHOL"
    """Alcohol."""
    WATER = "WATER"
    """Water."""
    MINERAL_OIL = "MINERAL_OIL"
    """Mineral oil."""
    PLASTIC_CAP = "PLASTIC_CAP"
    """A plastic cap."""


class ColorSpaceValues(str, Enum):
    """Color Space (0028,2002) defined terms (PS3.3 C.11.15.1.2), set only when recognised."""

    SRGB = "SRGB"
    """IEC 61966-2.1 sRGB."""
    ADOBERGB = "ADOBERGB"
    """Adobe RGB (1998)."""
    ROMMRGB = "ROMMRGB"
    """ROMM RGB (ProPhoto)."""
