"""Typed, validating builders of the DICOM objects Ologies stores for photographs.

``build_photograph`` is the entry point of the ingest pipeline; the SOP classes can also be
used directly. ``SOP_CLASS_UIDS`` lists the storage SOP classes built here.
"""

from converters.iods.base import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from converters.iods.build import INGEST_ROUTES, UNKNOWN, build_photograph
from converters.iods.content import (
    LATERALITY_MODIFIERS,
    NHS_NUMBER_OID,
    AnatomicRegion,
    IssuerOfPatientIDQualifiers,
    VLPhotographicAcquisition,
)
from converters.iods.enum import (
    UNPAIRED_BODY_PARTS,
    ColorSpaceValues,
    ContactMethodValues,
    ImageLateralityValues,
    ImmersionMediaValues,
    LightSourcePolarizationValues,
    LossyImageCompressionMethodValues,
    PhotometricInterpretationValues,
)
from converters.iods.media import SOP_CLASS_UIDS as _MEDIA_SOP_CLASS_UIDS
from converters.iods.media import EncapsulatedPDF, VideoPhotographicImage, write_video_file
from converters.iods.photograph import (
    SOP_CLASS_UIDS as _PHOTO_SOP_CLASS_UIDS,
    DermoscopicPhotographyImage,
    VLPhotographicImage,
)
from converters.iods.pixels import JPEGFrameInfo, read_jpeg_frame_info
from converters.iods.valuerep import person_name

SOP_CLASS_UIDS: frozenset[str] = _PHOTO_SOP_CLASS_UIDS | _MEDIA_SOP_CLASS_UIDS

__all__ = [
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "INGEST_ROUTES",
    "LATERALITY_MODIFIERS",
    "NHS_NUMBER_OID",
    "SOP_CLASS_UIDS",
    "UNKNOWN",
    "UNPAIRED_BODY_PARTS",
    "AnatomicRegion",
    "ColorSpaceValues",
    "ContactMethodValues",
    "DermoscopicPhotographyImage",
    "ImageLateralityValues",
    "ImmersionMediaValues",
    "IssuerOfPatientIDQualifiers",
    "JPEGFrameInfo",
    "LightSourcePolarizationValues",
    "LossyImageCompressionMethodValues",
    "PhotometricInterpretationValues",
    "VLPhotographicAcquisition",
    "VLPhotographicImage",
    "VideoPhotographicImage",
    "EncapsulatedPDF",
    "write_video_file",
    "build_photograph",
    "person_name",
    "read_jpeg_frame_info",
]
