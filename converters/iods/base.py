"""The private base shared by the photograph SOP classes (see ``photograph.py``).

It fills every module common to VL Photographic Image and Dermoscopic Photography Image and is
parameterised by class attributes (highdicom's legacy style). Every argument is validated before
any attribute is set, so a constructed object is a valid instance of its IOD.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from highdicom.base import SOPClass
from highdicom.enum import PatientSexValues
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID
from pydicom.valuerep import DA, TM, PersonName

from converters.bitstream import Bitstream
from converters.iods.content import (
    AnatomicRegion,
    IssuerOfPatientIDQualifiers,
    VLPhotographicAcquisition,
    icc_color_space,
    resolve_laterality,
)
from converters.iods.enum import (
    ImageLateralityValues,
    LossyImageCompressionMethodValues,
    PhotometricInterpretationValues,
)
from converters.iods.pixels import PixelModule, encapsulate_frame, jpeg_pixel_module, native_pixel_module
from converters.iods.valuerep import (
    check_aware,
    check_code_string,
    check_person_name,
    check_text,
    check_uid,
    dt_text,
    enum_value,
    format_ds,
    offset_text,
)

# Fixed identity of the software that writes our files (PS3.7 D.3.3.2); a UUID-derived UID.
IMPLEMENTATION_CLASS_UID = "2.25.194976986135196800540331072523073992249"
IMPLEMENTATION_VERSION_NAME = "OLOGIES_0_1"

_JPEG = LossyImageCompressionMethodValues.ISO_10918_1.value
LossyStepArgument = tuple[str | LossyImageCompressionMethodValues, float]


class _VLPhotographicBase(SOPClass):
    """Common builder of the single-frame VL photograph IODs (PS3.3 A.32.4, A.32.11)."""

    _SOP_CLASS_UID: ClassVar[str]
    _MODALITY: ClassVar[str]
    # Enhanced General Equipment (DMS) makes manufacturer, model, serial number and software
    # versions Type 1, so empty values are refused.
    _ENHANCED_EQUIPMENT: ClassVar[bool] = False

    def __init__(
        self,
        *,
        pixel_data: bytes | Bitstream | np.ndarray,
        photometric_interpretation: str | PhotometricInterpretationValues,
        transfer_syntax_uid: str,
        study_instance_uid: str,
        series_instance_uid: str,
        series_number: int,
        sop_instance_uid: str,
        instance_number: int,
        study_datetime: dt.datetime,
        content_datetime: dt.datetime,
        instance_creation_datetime: dt.datetime,
        anatomic_region: AnatomicRegion,
        patient_id: str,
        patient_name: str | PersonName = "",
        patient_birth_date: dt.date | None = None,
        patient_sex: str | PatientSexValues | None = None,
        issuer_of_patient_id: str = "",
        issuer_of_patient_id_qualifiers: IssuerOfPatientIDQualifiers | None = None,
        study_id: str = "",
        accession_number: str = "",
        study_description: str = "",
        series_description: str = "",
        body_part_examined: str = "",
        image_laterality: str | ImageLateralityValues | None = None,
        paired_body_part: bool = False,
        operators_name: str | PersonName = "",
        acquisition_datetime: dt.datetime | None = None,
        manufacturer: str = "",
        manufacturer_model_name: str = "",
        software_versions: str = "",
        device_serial_number: str = "",
        institution_name: str = "",
        institutional_department_name: str = "",
        lens_make: str = "",
        lens_model: str = "",
        acquisition: VLPhotographicAcquisition | None = None,
        derived: bool = False,
        derivation_description: str = "",
        lossy_image_compression_history: Sequence[LossyStepArgument] = (),
        burned_in_annotation: bool = False,
        recognizable_visual_features: bool = True,
        image_comments: str = "",
        icc_profile: bytes | None = None,
        tracking_id: str = "",
        tracking_uid: str = "",
    ) -> None:
        """
        Parameters
        ----------
        pixel_data: bytes | converters.bitstream.Bitstream | numpy.ndarray
            One JPEG bitstream (encapsulated unchanged) or a uint8 array (rows, columns[, 3]).
        photometric_interpretation: str | converters.iods.enum.PhotometricInterpretationValues
            MONOCHROME2; RGB (native); YBR_FULL_422 (colour JPEG, whatever its subsampling).
        transfer_syntax_uid: str
            JPEG Baseline or Extended for ``bytes``; Explicit VR Little Endian for arrays.
        study_instance_uid, series_instance_uid, sop_instance_uid: str
            UIDs of the study, series and instance.
        series_number, instance_number: int
            Positive numbers of the series in the study and of the instance in the series.
        study_datetime: datetime.datetime
            Aware start of the study. Its UTC offset is written as Timezone Offset From UTC
            (0008,0201) and every DA/TM value of the instance is written in that offset.
        content_datetime, instance_creation_datetime: datetime.datetime
            Aware times the pixel data (the capture) and this instance were created.
        anatomic_region: converters.iods.content.AnatomicRegion
            Anatomic Region Sequence item: SNOMED CT body site with a laterality modifier.
        patient_id: str
            Patient ID: an NHS number or a trust-issued temporary identifier.
        patient_name: str | pydicom.valuerep.PersonName, optional
            ``Family^Given``; empty when unknown.
        patient_birth_date: datetime.date | None, optional
            Patient's Birth Date; empty when unknown.
        patient_sex: str | highdicom.PatientSexValues | None, optional
            M, F or O; empty when unknown.
        issuer_of_patient_id: str, optional
            Issuer of Patient ID (0010,0021), e.g. ``NHS``.
        issuer_of_patient_id_qualifiers: IssuerOfPatientIDQualifiers | None, optional
            The issuer as a universal entity (the NHS number OID).
        study_id, accession_number: str, optional
            Study ID and Accession Number (SH, Type 2).
        study_description, series_description: str, optional
            Human-readable descriptions (LO).
        body_part_examined: str, optional
            Body Part Examined (0018,0015) defined term (PS3.16 Annex L).
        image_laterality: str | converters.iods.enum.ImageLateralityValues | None, optional
            R, L, B, or U (unpaired); ``None`` when the side is unknown.
        paired_body_part: bool, optional
            Whether Body Part Examined is a paired structure. With no Image Laterality, this
            decides Laterality (0020,0060), Type 2C: present and empty (side unknown) or absent.
        operators_name: str | pydicom.valuerep.PersonName, optional
            The photographer (Operators' Name).
        acquisition_datetime: datetime.datetime | None, optional
            Aware capture time, written as Acquisition DateTime with its own offset.
        manufacturer, manufacturer_model_name: str, optional
            The camera. Type 1 in Dermoscopic Photography (Enhanced General Equipment).
        software_versions, device_serial_number: str, optional
            The camera's firmware and serial number; Type 1 in Dermoscopic Photography.
        institution_name, institutional_department_name: str, optional
            Trust and department.
        lens_make, lens_model: str, optional
            VL Photographic Equipment module.
        acquisition: converters.iods.content.VLPhotographicAcquisition | None, optional
            Exposure attributes taken from EXIF.
        derived: bool, optional
            Image Type DERIVED instead of ORIGINAL; requires ``derivation_description``.
        derivation_description: str, optional
            What was done to the camera's pixels (ST).
        lossy_image_compression_history: Sequence[LossyStepArgument], optional
            Every lossy step in order, as (method, ratio) with a
            :class:`~converters.iods.enum.LossyImageCompressionMethodValues` method. Required for
            JPEG pixel data, whose last step must be ISO_10918_1.
        burned_in_annotation, recognizable_visual_features: bool, optional
            Burned In Annotation (default NO); Recognizable Visual Features (default YES).
        image_comments: str, optional
            Image Comments (LT).
        icc_profile: bytes | None, optional
            ICC Profile (0028,2000); Color Space (0028,2002) is added when recognised.
        tracking_id, tracking_uid: str, optional
            Tracking ID and Tracking UID of a skin lesion: both or neither.
        """
        pi, syntax = photometric_interpretation, transfer_syntax_uid
        if isinstance(pixel_data, Bitstream):
            pixels = jpeg_pixel_module(pixel_data, pi, syntax)
        elif isinstance(pixel_data, (bytes, bytearray)):
            pixels = jpeg_pixel_module(bytes(pixel_data), pi, syntax)
        else:
            pixels = native_pixel_module(pixel_data, pi, syntax)
        for name, uid in (("study_instance_uid", study_instance_uid),
                          ("series_instance_uid", series_instance_uid),
                          ("sop_instance_uid", sop_instance_uid)):
            check_uid(uid, name)
        for name, number in (("series_number", series_number),
                             ("instance_number", instance_number)):
            if isinstance(number, bool) or not isinstance(number, int):
                raise TypeError(f'Argument "{name}" must be an int.')
            if not 0 < number < 2**31:
                raise ValueError(f'Argument "{name}" must be a positive integer.')
        # One offset for every DA/TM value of the instance (SOP Common, C.12.1.1.8).
        study_at = check_aware(study_datetime, "study_datetime")
        zone = dt.timezone(study_at.utcoffset())  # type: ignore[arg-type]
        study_at = study_at.astimezone(zone)
        content_at = check_aware(content_datetime, "content_datetime").astimezone(zone)
        created_at = check_aware(
            instance_creation_datetime, "instance_creation_datetime"
        ).astimezone(zone)
        if acquisition_datetime is not None:
            check_aware(acquisition_datetime, "acquisition_datetime")
        if not isinstance(anatomic_region, AnatomicRegion):
            raise TypeError('Argument "anatomic_region" must be an AnatomicRegion.')
        patient_name = check_person_name(patient_name, "patient_name")
        operators_name = check_person_name(operators_name, "operators_name")
        if patient_birth_date is not None and not isinstance(patient_birth_date, dt.date):
            raise TypeError('Argument "patient_birth_date" must be a datetime.date.')
        sex = enum_value(PatientSexValues, patient_sex, "patient_sex").value if patient_sex else ""
        if issuer_of_patient_id_qualifiers is not None and not isinstance(
            issuer_of_patient_id_qualifiers, IssuerOfPatientIDQualifiers
        ):
            raise TypeError('Argument "issuer_of_patient_id_qualifiers" has the wrong type.')
        equipment = {
            "manufacturer": manufacturer,
            "manufacturer_model_name": manufacturer_model_name,
            "software_versions": software_versions,
            "device_serial_number": device_serial_number,
        }
        for name, text, limit in (
            ("patient_id", patient_id, 64), ("issuer_of_patient_id", issuer_of_patient_id, 64),
            ("study_id", study_id, 16), ("accession_number", accession_number, 16),
            ("body_part_examined", body_part_examined, 16),
            ("study_description", study_description, 64),
            ("series_description", series_description, 64),
            ("institution_name", institution_name, 64),
            ("institutional_department_name", institutional_department_name, 64),
            *((name, text, 64) for name, text in equipment.items()),
        ):
            check_text(text, name, max_len=limit)
        for name, text, limit in (
            ("lens_make", lens_make, 1024), ("lens_model", lens_model, 1024),
            ("image_comments", image_comments, 10240), ("tracking_id", tracking_id, 1024),
            ("derivation_description", derivation_description, 1024),
        ):
            check_text(text, name, max_len=limit, multiline=True)
        if body_part_examined:
            check_code_string(body_part_examined, "body_part_examined")
        for name, text in equipment.items():
            if self._ENHANCED_EQUIPMENT and not text:
                raise ValueError(f'Argument "{name}" is Type 1 in Enhanced General Equipment.')
        laterality = resolve_laterality(image_laterality, paired_body_part, anatomic_region)
        if derived != bool(derivation_description):
            raise ValueError(
                'Argument "derivation_description" is required if, and only if, "derived" is True.'
            )
        steps = "lossy_image_compression_history"
        history = [(check_code_string(method, steps), format_ds(ratio, steps, decimals=2))
                   for method, ratio in lossy_image_compression_history]
        if pixels.encapsulated and (not history or history[-1][0] != _JPEG):
            raise ValueError(
                'Argument "lossy_image_compression_history" must end with ISO_10918_1 for JPEG.'
            )
        color_space = icc_color_space(icc_profile) if icc_profile is not None else None
        if bool(tracking_id) != bool(tracking_uid):
            raise ValueError('Arguments "tracking_id" and "tracking_uid" must be given together.')
        if tracking_uid:
            check_uid(tracking_uid, "tracking_uid")
        if acquisition is not None and not isinstance(acquisition, VLPhotographicAcquisition):
            raise TypeError('Argument "acquisition" must be a VLPhotographicAcquisition.')

        # Everything is valid: from here on attributes are only set.
        super().__init__(
            study_instance_uid=study_instance_uid,
            series_instance_uid=series_instance_uid,
            series_number=series_number,
            sop_instance_uid=sop_instance_uid,
            sop_class_uid=self._SOP_CLASS_UID,
            instance_number=instance_number,
            modality=self._MODALITY,
            manufacturer=manufacturer,
            transfer_syntax_uid=transfer_syntax_uid,
            patient_id=patient_id,
            patient_name=patient_name if str(patient_name) else None,
            patient_birth_date=(
                patient_birth_date.strftime("%Y%m%d") if patient_birth_date else None
            ),
            patient_sex=sex,
            accession_number=accession_number,
            study_id=study_id,
            study_date=study_at.strftime("%Y%m%d"),
            study_time=study_at.strftime("%H%M%S"),
            referring_physician_name="",
            series_description=series_description or None,
            manufacturer_model_name=manufacturer_model_name or None,
            software_versions=software_versions or None,
            device_serial_number=device_serial_number or None,
            institution_name=institution_name or None,
            institutional_department_name=institutional_department_name or None,
            content_date=content_at.strftime("%Y%m%d"),
            content_time=content_at.strftime("%H%M%S"),
            specific_character_set="ISO_IR 192",
        )
        self._name_implementation()
        self.InstanceCreationDate = DA(created_at.strftime("%Y%m%d"))
        self.InstanceCreationTime = TM(created_at.strftime("%H%M%S"))
        self.TimezoneOffsetFromUTC = offset_text(zone.utcoffset(None))
        optional = {
            "IssuerOfPatientID": issuer_of_patient_id,
            "StudyDescription": study_description,
            "BodyPartExamined": body_part_examined,
            "OperatorsName": operators_name if str(operators_name) else "",
            "AcquisitionDateTime": dt_text(acquisition_datetime) if acquisition_datetime else "",
            "DerivationDescription": derivation_description,
            "ImageComments": image_comments,
            "LensMake": lens_make,
            "LensModel": lens_model,
        }
        for keyword, value in optional.items():
            if value:
                setattr(self, keyword, value)
        if issuer_of_patient_id_qualifiers is not None:
            self.IssuerOfPatientIDQualifiersSequence = [issuer_of_patient_id_qualifiers]
        # General Series Laterality (2C) is required only when Image Laterality is absent and
        # may not be sent otherwise (dciodvfy), so the side is written at image level.
        if laterality is not None:
            self.ImageLaterality = laterality.value
        elif paired_body_part:
            self.Laterality = ""  # a paired part whose side is unknown: present, empty
        self.ImageType = ["DERIVED" if derived else "ORIGINAL", "PRIMARY"]
        self.PatientOrientation = ""  # Type 2C: a photograph has no known patient orientation
        self.AnatomicRegionSequence = [anatomic_region]
        self.AcquisitionContextSequence = DicomSequence()  # Type 2: present and empty
        self.BurnedInAnnotation = "YES" if burned_in_annotation else "NO"
        self.RecognizableVisualFeatures = "YES" if recognizable_visual_features else "NO"
        self.LossyImageCompression = "01" if history else "00"
        if history:
            self.LossyImageCompressionRatio = [ratio for _method, ratio in history]
            self.LossyImageCompressionMethod = [method for method, _ratio in history]
        if acquisition is not None:
            self.update(acquisition)
        if tracking_uid:
            self.TrackingID = tracking_id
            self.TrackingUID = tracking_uid
        self._set_pixel_module(pixels)
        if icc_profile is not None:
            self.ICCProfile = icc_profile
            if color_space is not None:
                self.ColorSpace = color_space.value

    def _name_implementation(self) -> None:
        """Name Ologies, not highdicom, as the implementation that wrote the file."""
        self.file_meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
        self.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
        # Writing the meta information also recomputes its group length.
        write_file_meta_info(DicomBytesIO(), self.file_meta, enforce_standard=True)

    def _set_pixel_module(self, pixels: PixelModule) -> None:
        """Image Pixel and VL Image pixel attributes: always 8-bit unsigned (C.8.12.1.1.2-3)."""
        self.SamplesPerPixel = pixels.samples_per_pixel
        self.PhotometricInterpretation = pixels.photometric_interpretation
        if pixels.samples_per_pixel == 3:
            self.PlanarConfiguration = 0
        self.Rows = pixels.rows
        self.Columns = pixels.columns
        self.BitsAllocated = 8
        self.BitsStored = 8
        self.HighBit = 7
        self.PixelRepresentation = 0
        if pixels.encapsulated:
            # One frame, one fragment, after a Basic Offset Table (PS3.5 A.4).
            self.add_new(0x7FE00010, "OB", encapsulate_frame(pixels.pixel_data))
            self["PixelData"].is_undefined_length = True
        else:
            self.add_new(0x7FE00010, "OB", pixels.pixel_data)
