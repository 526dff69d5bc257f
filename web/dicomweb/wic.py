"""IHE Web Image Capture: a DICOM JSON data set plus its bulk data (a photograph, a video or a
PDF), made into one DICOM object that STOW-RS then checks and stores like any other
(``converters.dicom.prepare_dicom``: the same rules whichever way an object arrives).

The bulk data is checked by the converter of what it *is* (sniffed, not what the part says),
and decides every attribute that describes it: Image Pixel for a photograph (made upright,
metadata removed), Cine, Multi-frame and Image Pixel for a video (its MP4 remuxed without
location metadata, as an upload), the document and its MIME type for a PDF (active content
refused). Everything else (patient, study, series, equipment, the SOP class if the client
names one) is the client's metadata. A SOP Instance UID the client leaves out is derived from
the bulk data's digest, so a resent capture is the same instance.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import (
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    VideoPhotographicImageStorage,
)

from converters import dicom as dcm
from converters.base import Limits, SourceFile
from converters.iods.pixels import encapsulate_frame
from converters.sniff import HEAD_SIZE, sniff
from repository.errors import InvalidInput, MalformedRequest, OlogiesError, UnsupportedMediaType
from repository.uids import sop_instance_uid_for_upload
from web.dicomweb.multipart import ReceivedPart

IMAGE_TYPES = {"image/jpeg": "converters.jpeg", "image/png": "converters.raster"}
VIDEO_TYPES = frozenset({"video/mp4", "video/quicktime"})
DOCUMENT_TYPES = frozenset({"application/pdf"})
ACCEPTED_TYPES = ", ".join([*IMAGE_TYPES, *sorted(VIDEO_TYPES), *DOCUMENT_TYPES])


@dataclass(frozen=True)
class Built:
    path: Path  # the Part 10 file, in the request's spool folder
    sha256: str  # of the bulk data received
    media_type: str  # of the bulk data received
    coercions: tuple[dcm.Coercion, ...] = ()


def build(item: dict[str, Any], bulk: dict[str, ReceivedPart], settings: Any, spool: Path) -> Built:
    """The object for one metadata item whose Pixel Data or Encapsulated Document names a part."""
    part, element = _bulk_part(item, bulk)
    detected = sniff(part.head(HEAD_SIZE))
    if detected != part.media_type:
        raise dcm.rejected(dcm.CANNOT_UNDERSTAND, f"the bulk data part says {part.media_type} but holds {detected}", UnsupportedMediaType)
    ds = _dataset(item, exclude=element, bulk=bulk)
    if part.media_type in IMAGE_TYPES:
        syntax, coercions = _photograph(ds, part, settings, spool)
    elif part.media_type in VIDEO_TYPES:
        syntax, coercions = _video(ds, part, settings, spool)
    else:
        syntax, coercions = _document(ds, part, settings, spool)
    if not ds.get("SOPInstanceUID"):
        ds.SOPInstanceUID = sop_instance_uid_for_upload(part.sha256)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = str(ds.get("SOPClassUID", "") or "")
    ds.file_meta.MediaStorageSOPInstanceUID = str(ds.SOPInstanceUID)
    if "SpecificCharacterSet" not in ds:
        ds.SpecificCharacterSet = "ISO_IR 192"  # DICOM JSON is UTF-8
    out = spool / f"wic-{part.number:05d}.dcm"  # on disk, not in memory: a video can be 512 MB
    try:
        dcm.write_part10(out, ds)
    except Exception as exc:  # noqa: BLE001
        out.unlink(missing_ok=True)
        raise dcm.rejected(dcm.DATASET_DOES_NOT_MATCH, f"the metadata cannot be encoded: {exc}", InvalidInput) from exc
    return Built(out, part.sha256, part.media_type, coercions)


def _bulk_part(item: dict[str, Any], bulk: dict[str, ReceivedPart]) -> tuple[ReceivedPart, str]:
    for element in ("7FE00010", "00420011"):  # Pixel Data, Encapsulated Document
        value = item.get(element) or {}
        uri = value.get("BulkDataURI") if isinstance(value, dict) else None
        if uri:
            part = bulk[uri]
            if part.media_type not in IMAGE_TYPES and part.media_type not in VIDEO_TYPES | DOCUMENT_TYPES:
                raise dcm.rejected(
                    dcm.TRANSFER_SYNTAX_NOT_SUPPORTED, f"bulk data of type {part.media_type} is not accepted ({ACCEPTED_TYPES})",
                    UnsupportedMediaType,
                )  # fmt: skip
            if (element == "00420011") != (part.media_type in DOCUMENT_TYPES):
                raise dcm.rejected(
                    dcm.DATASET_DOES_NOT_MATCH,
                    f"{part.media_type} bulk data cannot be the {'Encapsulated Document' if element == '00420011' else 'Pixel Data'}",
                    InvalidInput, element,
                )  # fmt: skip
            return part, element
    raise dcm.rejected(
        dcm.DATASET_DOES_NOT_MATCH, "the metadata names no bulk data: Pixel Data (7FE00010) or Encapsulated Document (00420011) BulkDataURI",
        InvalidInput, "PixelData",
    )  # fmt: skip


def _dataset(item: dict[str, Any], *, exclude: str, bulk: dict[str, ReceivedPart]) -> Dataset:
    metadata = {k: v for k, v in item.items() if k.upper() != exclude}

    def other_bulk(tag: str, vr: str, value: str) -> bytes:
        found = bulk.get(value)
        if found is None:
            raise MalformedRequest(f"BulkDataURI {value[:100]!r} does not name a part of this request", field="BulkDataURI")
        if found.size > 64 * 1024 * 1024:
            raise dcm.rejected(dcm.OUT_OF_RESOURCES, "bulk data larger than 64 MiB", InvalidInput)
        return found.read()

    try:
        return Dataset.from_json(metadata, bulk_data_uri_handler=other_bulk)
    except OlogiesError:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for bad JSON
        raise dcm.rejected(dcm.CANNOT_UNDERSTAND, f"the DICOM JSON metadata cannot be read: {exc}", InvalidInput) from exc


def _unusable(part: ReceivedPart, exc: OlogiesError) -> OlogiesError:
    return dcm.rejected(dcm.CANNOT_UNDERSTAND, f"the {part.media_type} bulk data cannot be used: {exc.message}", type(exc))


# -- photographs -----------------------------------------------------------------------------
Wrapped = tuple[str, tuple[dcm.Coercion, ...]]  # the transfer syntax, and what was changed


def _photograph(ds: Dataset, part: ReceivedPart, settings: Any, spool: Path) -> Wrapped:
    module = importlib.import_module(IMAGE_TYPES[part.media_type])
    source = SourceFile(part.spooled(spool), part.media_type, part.sha256, part.size)
    try:
        captured = module.convert(source, limits=Limits(max_pixels=settings.max_image_pixels), local_tz=settings.local_timezone)
    except OlogiesError as exc:
        raise _unusable(part, exc) from exc
    coercions: tuple[dcm.Coercion, ...] = ()
    if captured.jpeg is not None and captured.jpeg != part.read():
        coercions = (dcm.Coercion("PixelData", "modified", "EXIF, XMP, GPS and comments removed from the JPEG; orientation applied"),)
    ds.Rows, ds.Columns = captured.rows, captured.columns
    ds.SamplesPerPixel = captured.samples_per_pixel
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = captured.bits_allocated, captured.bits_stored, captured.bits_stored - 1
    ds.PixelRepresentation = 0
    photometric = captured.photometric_interpretation
    if captured.jpeg is not None and photometric in ("YBR_FULL", "YBR_FULL_422"):
        photometric = "YBR_FULL_422"  # as the VL IODs name every colour lossy JPEG
    ds.PhotometricInterpretation = photometric
    if captured.samples_per_pixel > 1:
        ds.PlanarConfiguration = 0
    elif "PlanarConfiguration" in ds:
        del ds.PlanarConfiguration
    if captured.jpeg is not None:
        ds.PixelData = encapsulate_frame(captured.jpeg)
    else:
        assert captured.pixels is not None
        ds.PixelData = captured.pixels.tobytes()
    ds["PixelData"].VR = "OB"
    if captured.lossy_history:
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = [s.method for s in captured.lossy_history]
        ds.LossyImageCompressionRatio = [f"{s.ratio:.2f}"[:16] for s in captured.lossy_history]
    return captured.transfer_syntax_uid, coercions


# -- videos ----------------------------------------------------------------------------------
def _video(ds: Dataset, part: ReceivedPart, settings: Any, spool: Path) -> Wrapped:
    from converters import video
    from converters.dicom_media import encapsulated_video_file
    from converters.dicom_read import pixel_data_element
    from converters.iods.media import set_video_attributes
    from converters.iods.valuerep import format_ds

    if part.size > settings.max_file_bytes:
        raise dcm.rejected(dcm.OUT_OF_RESOURCES, f"the video is larger than {settings.max_file_bytes} bytes, the limit for one DICOM object", InvalidInput)
    source = SourceFile(part.spooled(spool), part.media_type, part.sha256, part.size)
    work = spool / f"wic-video-{part.number:05d}"
    work.mkdir(exist_ok=True)
    try:
        captured = video.convert(source, workdir=work)
        # mapped: the name goes with the work folder below, the pages stay until written out
        pixel_data = encapsulated_video_file(captured.mp4_path, work / "encapsulated")
    except OlogiesError as exc:
        raise _unusable(part, exc) from exc
    finally:
        for leftover in work.iterdir():
            leftover.unlink()
        work.rmdir()
    _default(ds, SOPClassUID=VideoPhotographicImageStorage, Modality="XC")
    rate = max(1, round(float(captured.frame_rate)))
    set_video_attributes(ds, captured.rows, captured.columns, captured.number_of_frames,
                         format_ds(captured.frame_time_ms, "frame_time"), rate, format_ds(captured.duration_s, "duration"))  # fmt: skip
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_14496_10" if captured.codec == "h264" else "ISO_23008_2"
    ds[0x7FE00010] = pixel_data_element("OB", pixel_data)
    remuxed = dcm.Coercion("PixelData", "modified", "the video was remuxed into an MP4 without container metadata (location removed); frames unchanged")
    return captured.transfer_syntax_uid, (remuxed,)


# -- documents -------------------------------------------------------------------------------
def _document(ds: Dataset, part: ReceivedPart, settings: Any, spool: Path) -> Wrapped:
    from converters import pdf

    source = SourceFile(part.spooled(spool), part.media_type, part.sha256, part.size)
    try:
        document = pdf.convert(source, limits=pdf.PDFLimits(max_bytes=settings.max_file_bytes), render_preview=False)
    except OlogiesError as exc:
        raise _unusable(part, exc) from exc
    _default(ds, SOPClassUID=EncapsulatedPDFStorage, Modality="DOC",
             # a form sent from a workstation, naming the patient (the safe assumption)
             ConversionType="WSD", BurnedInAnnotation="YES")  # fmt: skip
    for keyword, value in (("DocumentTitle", document.title[:64]), ("AcquisitionDateTime", ""),
                           ("ConceptNameCodeSequence", [])):  # fmt: skip
        if keyword not in ds:  # Type 2: present, empty where nothing is known
            setattr(ds, keyword, value)
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(document.data)
    ds.EncapsulatedDocument = document.data + (b"\0" if len(document.data) % 2 else b"")
    return ExplicitVRLittleEndian, ()


def _default(ds: Dataset, **values: str) -> None:
    """Values the bulk data implies, where the client's metadata gives none."""
    for keyword, value in values.items():
        if not ds.get(keyword):
            setattr(ds, keyword, value)
