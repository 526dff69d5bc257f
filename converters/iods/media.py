"""SOP classes for video and documents: Video Photographic Image (XC) and Encapsulated PDF (DOC).

Both share a private base that validates and fills the Patient, General Study, General Series,
General Equipment and SOP Common modules exactly as the photograph base does (the same value
checks, UTF-8, one UTC offset for every DA/TM). As everywhere in ``converters.iods``, every
argument is checked before any attribute is set.

The video's MPEG-4 bitstream can be several gigabytes, so :class:`VideoPhotographicImage` never
holds it: the dataset carries everything but Pixel Data, and :func:`write_video_file` streams the
bitstream from disk into the encapsulated Pixel Data while writing the Part 10 file.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from highdicom.base import SOPClass
from highdicom.enum import PatientSexValues
from pydicom import Dataset, dcmwrite
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, EncapsulatedPDFStorage, ExplicitVRLittleEndian, VideoPhotographicImageStorage
from pydicom.valuerep import DA, TM, PersonName

from converters.dicom_rules import VIDEO_TRANSFER_SYNTAXES
from converters.iods.base import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from converters.iods.content import AnatomicRegion, IssuerOfPatientIDQualifiers, resolve_laterality
from converters.iods.enum import ImageLateralityValues
from converters.iods.valuerep import (
    check_aware,
    check_code_string,
    check_person_name,
    check_text,
    check_uid,
    enum_value,
    format_ds,
    offset_text,
)

SOP_CLASS_UIDS: frozenset[str] = frozenset({VideoPhotographicImageStorage, EncapsulatedPDFStorage})

#: the MPEG-4 AVC transfer syntaxes (the others of VIDEO_TRANSFER_SYNTAXES are HEVC)
_AVC = {"1.2.840.10008.1.2.4.102", "1.2.840.10008.1.2.4.103", "1.2.840.10008.1.2.4.104"}
#: largest Item value length: 32-bit, even (PS3.5 7.5). Longer bitstreams take several fragments.
MAX_FRAGMENT = 0xFFFFFFFE
_COPY_CHUNK = 1 << 20


class _ClinicalObjectBase(SOPClass):
    """Patient, study, series, equipment and SOP Common modules of the objects built here."""

    _SOP_CLASS_UID: ClassVar[str]
    _MODALITY: ClassVar[str]

    def __init__(
        self,
        *,
        transfer_syntax_uid: str,
        study_instance_uid: str,
        series_instance_uid: str,
        series_number: int,
        sop_instance_uid: str,
        instance_number: int,
        study_datetime: dt.datetime,
        content_datetime: dt.datetime,
        instance_creation_datetime: dt.datetime,
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
        operators_name: str | PersonName = "",
        manufacturer: str = "",
        manufacturer_model_name: str = "",
        software_versions: str = "",
        institution_name: str = "",
        institutional_department_name: str = "",
        acquisition_datetime: dt.datetime | None = None,
    ) -> None:
        """
        Parameters are those of :class:`converters.iods.VLPhotographicImage` with the same names
        and meanings (patient, study, series, equipment, UIDs and aware times).
        """
        for name, uid in (("study_instance_uid", study_instance_uid),
                          ("series_instance_uid", series_instance_uid),
                          ("sop_instance_uid", sop_instance_uid)):  # fmt: skip
            check_uid(uid, name)
        for name, number in (("series_number", series_number), ("instance_number", instance_number)):
            if isinstance(number, bool) or not isinstance(number, int):
                raise TypeError(f'Argument "{name}" must be an int.')
            if not 0 < number < 2**31:
                raise ValueError(f'Argument "{name}" must be a positive integer.')
        study_at = check_aware(study_datetime, "study_datetime")
        zone = dt.timezone(study_at.utcoffset())  # type: ignore[arg-type]
        study_at = study_at.astimezone(zone)
        content_at = check_aware(content_datetime, "content_datetime").astimezone(zone)
        created_at = check_aware(instance_creation_datetime, "instance_creation_datetime").astimezone(zone)
        if acquisition_datetime is not None:
            check_aware(acquisition_datetime, "acquisition_datetime")
        patient_name = check_person_name(patient_name, "patient_name")
        operators_name = check_person_name(operators_name, "operators_name")
        if patient_birth_date is not None and not isinstance(patient_birth_date, dt.date):
            raise TypeError('Argument "patient_birth_date" must be a datetime.date.')
        sex = enum_value(PatientSexValues, patient_sex, "patient_sex").value if patient_sex else ""
        if issuer_of_patient_id_qualifiers is not None and not isinstance(
            issuer_of_patient_id_qualifiers, IssuerOfPatientIDQualifiers
        ):
            raise TypeError('Argument "issuer_of_patient_id_qualifiers" has the wrong type.')
        for name, text, limit in (
            ("patient_id", patient_id, 64), ("issuer_of_patient_id", issuer_of_patient_id, 64),
            ("study_id", study_id, 16), ("accession_number", accession_number, 16),
            ("study_description", study_description, 64), ("series_description", series_description, 64),
            ("manufacturer", manufacturer, 64), ("manufacturer_model_name", manufacturer_model_name, 64),
            ("software_versions", software_versions, 64), ("institution_name", institution_name, 64),
            ("institutional_department_name", institutional_department_name, 64),
        ):  # fmt: skip
            check_text(text, name, max_len=limit)
        check_uid(transfer_syntax_uid, "transfer_syntax_uid")

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
            patient_birth_date=patient_birth_date.strftime("%Y%m%d") if patient_birth_date else None,
            patient_sex=sex,
            accession_number=accession_number,
            study_id=study_id,
            study_date=study_at.strftime("%Y%m%d"),
            study_time=study_at.strftime("%H%M%S"),
            referring_physician_name="",
            series_description=series_description or None,
            manufacturer_model_name=manufacturer_model_name or None,
            software_versions=software_versions or None,
            institution_name=institution_name or None,
            institutional_department_name=institutional_department_name or None,
            content_date=content_at.strftime("%Y%m%d"),
            content_time=content_at.strftime("%H%M%S"),
            specific_character_set="ISO_IR 192",
        )
        self.file_meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
        self.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
        write_file_meta_info(DicomBytesIO(), self.file_meta, enforce_standard=True)
        self.InstanceCreationDate = DA(created_at.strftime("%Y%m%d"))
        self.InstanceCreationTime = TM(created_at.strftime("%H%M%S"))
        self.TimezoneOffsetFromUTC = offset_text(zone.utcoffset(None))
        for keyword, value in {
            "IssuerOfPatientID": issuer_of_patient_id,
            "StudyDescription": study_description,
            "OperatorsName": operators_name if str(operators_name) else "",
        }.items():
            if value:
                setattr(self, keyword, value)
        if issuer_of_patient_id_qualifiers is not None:
            self.IssuerOfPatientIDQualifiersSequence = [issuer_of_patient_id_qualifiers]
        self._acquisition_datetime = acquisition_datetime


class VideoPhotographicImage(_ClinicalObjectBase):
    """Video Photographic Image (PS3.3 A.32.7), modality XC: an MPEG-4 AVC or HEVC recording.

    The dataset has every attribute except Pixel Data; write it with :func:`write_video_file`,
    which streams the bitstream into the encapsulated Pixel Data.
    """

    _SOP_CLASS_UID = VideoPhotographicImageStorage
    _MODALITY = "XC"

    def __init__(
        self,
        *,
        bitstream: Path,
        rows: int,
        columns: int,
        number_of_frames: int,
        frame_time_ms: float,
        cine_rate: int,
        duration_s: float,
        anatomic_region: AnatomicRegion,
        body_part_examined: str = "",
        image_laterality: str | ImageLateralityValues | None = None,
        paired_body_part: bool = False,
        image_comments: str = "",
        lossy_image_compression_method: str = "ISO_14496_10",
        recognizable_visual_features: bool = True,
        tracking_id: str = "",
        tracking_uid: str = "",
        **kwargs: Any,
    ) -> None:
        """
        Parameters
        ----------
        bitstream: pathlib.Path
            The MP4 file to encapsulate (read only when the file is written).
        rows, columns: int
            Coded frame size of the bitstream (1 to 65535).
        number_of_frames: int
            Frames in the bitstream (Multi-frame module, Type 1).
        frame_time_ms: float
            Nominal time between frames in ms (Cine module Frame Time, pointed to by Frame
            Increment Pointer).
        cine_rate: int
            Frames per second (Cine Rate and Recommended Display Frame Rate).
        duration_s: float
            Effective Duration (0018,0072) in seconds.
        anatomic_region: converters.iods.content.AnatomicRegion
            Body site with its laterality modifier.
        body_part_examined, image_laterality, paired_body_part:
            As for :class:`converters.iods.VLPhotographicImage`.
        image_comments: str, optional
            Image Comments (LT).
        lossy_image_compression_method: str, optional
            ISO_14496_10 (H.264) or ISO_23008_2 (HEVC).
        recognizable_visual_features: bool, optional
            Default YES: a video of a patient shows the patient.
        tracking_id, tracking_uid: str, optional
            Lesion or wound tracking identifiers, both or neither.
        **kwargs: Any
            Patient, study, series, equipment, UIDs and times (see :class:`_ClinicalObjectBase`).
        """
        syntax = str(kwargs.get("transfer_syntax_uid", ""))
        if syntax not in VIDEO_TRANSFER_SYNTAXES:
            raise ValueError(
                f'Argument "transfer_syntax_uid" {syntax} is not an MPEG-4 AVC or HEVC transfer syntax.'
            )
        method = check_code_string(lossy_image_compression_method, "lossy_image_compression_method")
        expected = "ISO_14496_10" if syntax in _AVC else "ISO_23008_2"
        if method != expected:
            raise ValueError(f'Argument "lossy_image_compression_method" must be {expected} for {syntax}.')
        if not isinstance(bitstream, Path):
            raise TypeError('Argument "bitstream" must be a pathlib.Path.')
        if not bitstream.is_file() or bitstream.stat().st_size == 0:
            raise ValueError('Argument "bitstream" must name a non-empty file.')
        for name, number in (("rows", rows), ("columns", columns), ("number_of_frames", number_of_frames),
                             ("cine_rate", cine_rate)):  # fmt: skip
            if isinstance(number, bool) or not isinstance(number, int):
                raise TypeError(f'Argument "{name}" must be an int.')
        if not (0 < rows < 2**16 and 0 < columns < 2**16):
            raise ValueError('Arguments "rows" and "columns" must each be between 1 and 65535.')
        if not 0 < number_of_frames < 2**31 or not 0 < cine_rate < 2**31:
            raise ValueError('Arguments "number_of_frames" and "cine_rate" must be positive.')
        frame_time = format_ds(frame_time_ms, "frame_time_ms")
        duration = format_ds(duration_s, "duration_s")
        if not isinstance(anatomic_region, AnatomicRegion):
            raise TypeError('Argument "anatomic_region" must be an AnatomicRegion.')
        check_text(body_part_examined, "body_part_examined", max_len=16)
        if body_part_examined:
            check_code_string(body_part_examined, "body_part_examined")
        laterality = resolve_laterality(image_laterality, paired_body_part, anatomic_region)
        check_text(image_comments, "image_comments", max_len=10240, multiline=True)
        check_text(tracking_id, "tracking_id", max_len=64)
        if bool(tracking_id) != bool(tracking_uid):
            raise ValueError('Arguments "tracking_id" and "tracking_uid" must be given together.')
        if tracking_uid:
            check_uid(tracking_uid, "tracking_uid")

        super().__init__(**kwargs)
        self._bitstream = bitstream
        if self._acquisition_datetime is not None:
            from converters.iods.valuerep import dt_text

            self.AcquisitionDateTime = dt_text(self._acquisition_datetime)
        if body_part_examined:
            self.BodyPartExamined = body_part_examined
        if laterality is not None:
            self.ImageLaterality = laterality.value
        elif paired_body_part:
            self.Laterality = ""
        # General Image / VL Image
        self.ImageType = ["ORIGINAL", "PRIMARY"]
        self.PatientOrientation = ""
        self.AnatomicRegionSequence = [anatomic_region]
        self.AcquisitionContextSequence = DicomSequence()
        self.BurnedInAnnotation = "NO"
        self.RecognizableVisualFeatures = "YES" if recognizable_visual_features else "NO"
        self.LossyImageCompression = "01"  # camera video is always lossy
        self.LossyImageCompressionMethod = method
        if image_comments:
            self.ImageComments = image_comments
        if tracking_uid:
            self.TrackingID = tracking_id
            self.TrackingUID = tracking_uid
        set_video_attributes(self, rows, columns, number_of_frames, frame_time, cine_rate, duration)

    @property
    def bitstream(self) -> Path:
        return self._bitstream


def set_video_attributes(ds: Dataset, rows: int, columns: int, frames: int, frame_time: str, cine_rate: int, duration: str) -> None:
    """The Cine, Multi-frame and Image Pixel attributes that an MPEG-4 bitstream determines
    (values already checked; ``frame_time`` and ``duration`` formatted as DS)."""
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = 0x00181063  # Frame Time
    ds.FrameTime = frame_time
    ds.CineRate = cine_rate
    ds.RecommendedDisplayFrameRate = cine_rate
    ds.EffectiveDuration = duration
    ds.PreferredPlaybackSequencing = 0  # looping (1,2,...,n,1,2,...)
    ds.StartTrim = 1
    ds.StopTrim = frames
    # Image Pixel: MPEG-4 streams are 8-bit 4:2:0 YCbCr (PS3.5 8.2.7-8.2.8)
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_PARTIAL_420"
    ds.PlanarConfiguration = 0
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0


def write_video_file(ds: VideoPhotographicImage, out: Path, *, max_fragment: int = MAX_FRAGMENT) -> None:
    """Write ``ds`` as a Part 10 file, streaming its bitstream into encapsulated Pixel Data.

    Pixel Data is the last element of the dataset, so the header is written by pydicom and the
    element is appended: (7FE0,0010) OB of undefined length, an empty Basic Offset Table item,
    the bitstream as one fragment (several of ``max_fragment`` bytes when it is longer than an
    Item can be, PS3.5 A.4), padded to even length, and the Sequence Delimitation Item.
    """
    if "PixelData" in ds:
        raise ValueError("the dataset already has Pixel Data")
    if max_fragment % 2 or not 0 < max_fragment <= MAX_FRAGMENT:
        raise ValueError('Argument "max_fragment" must be an even length up to 0xFFFFFFFE.')
    size = ds.bitstream.stat().st_size
    with out.open("wb") as target:
        dcmwrite(target, ds, enforce_file_format=True)
        target.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF))
        target.write(struct.pack("<HHI", 0xFFFE, 0xE000, 0))  # empty Basic Offset Table
        with ds.bitstream.open("rb") as source:
            left = size
            while left > 0:
                length = min(left, max_fragment)
                padded = length + (length % 2)
                target.write(struct.pack("<HHI", 0xFFFE, 0xE000, padded))
                _copy(source, target, length)
                if padded != length:
                    target.write(b"\x00")
                left -= length
        target.write(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))


def _copy(source: BinaryIO, target: BinaryIO, length: int) -> None:
    left = length
    while left > 0:
        chunk = source.read(min(_COPY_CHUNK, left))
        if not chunk:
            raise ValueError("the bitstream file changed while it was being written")
        target.write(chunk)
        left -= len(chunk)


class EncapsulatedPDF(_ClinicalObjectBase):
    """Encapsulated PDF (PS3.3 A.45.1), modality DOC: consent forms, letters, reports."""

    _SOP_CLASS_UID = EncapsulatedPDFStorage
    _MODALITY = "DOC"

    def __init__(
        self,
        *,
        document: bytes,
        document_title: str,
        conversion_type: str = "SD",
        concept_name: Dataset | None = None,
        burned_in_annotation: bool = True,
        source_instances: Sequence[tuple[str, str]] = (),
        image_laterality: str | ImageLateralityValues | None = None,
        **kwargs: Any,
    ) -> None:
        """
        Parameters
        ----------
        document: bytes
            The PDF, unchanged (``%PDF-`` ... ``%%EOF``).
        document_title: str
            Document Title (0042,0010), Type 2.
        conversion_type: str, optional
            SC Equipment Conversion Type (0008,0064): SD (scanned document), WSD (workstation),
            DI (digital interface), ...
        concept_name: pydicom.Dataset | None, optional
            One Concept Name Code Sequence item (CID 7020), e.g. a LOINC document type.
        burned_in_annotation: bool, optional
            Default YES: a consent form names the patient.
        source_instances: Sequence[tuple[str, str]], optional
            (SOP Class UID, SOP Instance UID) of the images the document covers, written as
            Referenced Instance Sequence (0008,114A) with Purpose of Reference "consent".
        image_laterality: str | ImageLateralityValues | None, optional
            Image Laterality (0020,0062), Type 3 here.
        **kwargs: Any
            Patient, study, series, equipment, UIDs and times.
        """
        if not isinstance(document, bytes) or not document.startswith(b"%PDF-"):
            raise ValueError('Argument "document" must be the bytes of a PDF (starting %PDF-).')
        check_text(document_title, "document_title", max_len=64)
        conversion = check_code_string(conversion_type, "conversion_type")
        if concept_name is not None and not isinstance(concept_name, Dataset):
            raise TypeError('Argument "concept_name" must be a Dataset (a code item).')
        references = []
        for class_uid, instance_uid in source_instances:
            check_uid(class_uid, "source_instances")
            check_uid(instance_uid, "source_instances")
            references.append((class_uid, instance_uid))
        laterality = None if image_laterality is None else enum_value(
            ImageLateralityValues, image_laterality, "image_laterality"
        )
        kwargs.setdefault("transfer_syntax_uid", ExplicitVRLittleEndian)
        if kwargs["transfer_syntax_uid"] != ExplicitVRLittleEndian:
            raise ValueError('Argument "transfer_syntax_uid" must be Explicit VR Little Endian.')
        super().__init__(**kwargs)
        self.ConversionType = conversion
        if self._acquisition_datetime is not None:
            from converters.iods.valuerep import dt_text

            self.AcquisitionDateTime = dt_text(self._acquisition_datetime)
        else:
            self.AcquisitionDateTime = ""  # Type 2
        self.BurnedInAnnotation = "YES" if burned_in_annotation else "NO"
        self.DocumentTitle = document_title
        self.ConceptNameCodeSequence = [concept_name] if concept_name is not None else DicomSequence()
        if laterality is not None:
            self.ImageLaterality = laterality.value
        self.MIMETypeOfEncapsulatedDocument = "application/pdf"
        self.EncapsulatedDocumentLength = len(document)
        self.EncapsulatedDocument = document + (b"\x00" if len(document) % 2 else b"")
        if references:
            items = []
            for class_uid, instance_uid in references:
                item = Dataset()
                item.ReferencedSOPClassUID = class_uid
                item.ReferencedSOPInstanceUID = instance_uid
                items.append(item)
            self.ReferencedInstanceSequence = items
