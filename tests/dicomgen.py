"""DICOM test objects made at test time: valid photographs as devices send them, and hostile
files (RELIABILITY.md Appendix A.2/A.3: deep nesting, lying lengths, a deflate bomb).

Every helper returns bytes of a Part 10 file unless it says otherwise.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    generate_uid,
)

from tests.imagegen import exif_bytes, jpeg, photo

VL_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4"
DERMOSCOPIC = "1.2.840.10008.5.1.4.1.1.77.1.7"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
NHS_NUMBER = "9990000018"
OTHER_NHS_NUMBER = "9990000026"
UID_ROOT = "2.25."


def uid() -> str:
    return generate_uid(prefix=None)


def photo_dataset(
    *,
    pixels: np.ndarray | None = None,
    jpeg_bytes: bytes | None = None,
    native: bool = False,
    patient_id: str = NHS_NUMBER,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    sop_class: str = VL_PHOTOGRAPHIC,
    gps: bool = False,
    name: str = "O'Brien-Jones^Siân",
    **attributes: object,
) -> Dataset:
    """A VL Photographic Image as a camera or an archive would send it (JPEG Baseline unless
    ``native``), with GPS in the header when ``gps`` and whatever ``jpeg_bytes`` carries."""
    pixels = photo(320, 240) if pixels is None else pixels
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if native else JPEGBaseline8Bit
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid or uid()
    ds.StudyInstanceUID = study_uid or uid()
    ds.SeriesInstanceUID = series_uid or uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = patient_id
    ds.PatientName = name
    ds.PatientBirthDate = "19840302"
    ds.PatientSex = "F"
    ds.StudyDate, ds.StudyTime = "20240301", "101500"
    ds.ContentDate, ds.ContentTime = "20240301", "101500"
    ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "ACC1", ""
    ds.StudyDescription = "Dermatology - Forearm"
    ds.Modality = "XC" if sop_class == VL_PHOTOGRAPHIC else "DMS"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.Manufacturer = "ExampleCam"
    ds.Laterality = "L"
    ds.PatientOrientation = ""
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.AcquisitionContextSequence = Sequence([])
    ds.Rows, ds.Columns = pixels.shape[0], pixels.shape[1]
    ds.SamplesPerPixel = 3
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PlanarConfiguration = 0
    if native:
        ds.PhotometricInterpretation = "RGB"
        ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    else:
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.LossyImageCompression = "01"
        ds.PixelData = encapsulate([jpeg_bytes if jpeg_bytes is not None else jpeg(pixels)])
    if gps:
        ds.GPSLatitudeRef, ds.GPSLatitude = "N", [53.0, 24.0, 30.5]
        ds.CameraOwnerName = "Dr Example Owner"
        ds.MakerNote = b"\x01\x02secret"
        item = Dataset()
        item.GPSLongitude = [2.0, 58.0, 12.0]
        ds.AcquisitionContextSequence = Sequence([item])
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def part10(ds: Dataset, *, implicit: bool = False) -> bytes:
    out = io.BytesIO()
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def photo_file(**kwargs: object) -> bytes:
    return part10(photo_dataset(**kwargs))  # type: ignore[arg-type]


def leaky_jpeg() -> bytes:
    """A camera JPEG with EXIF GPS and owner, an XMP packet with GPS and a comment."""
    return jpeg(photo(320, 240), exif=exif_bytes(), xmp=True, comment=b"photo of the patient's face")


def bare_dataset(ds: Dataset) -> bytes:
    """The data set alone, Explicit VR Little Endian, without preamble or file meta."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    write_dataset(out, ds)
    return out.getvalue()


# -- hostile files (RELIABILITY.md Appendix A) ---------------------------------------------------
def _el(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    if vr in (b"OB", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH", group, element) + vr + b"\0\0" + struct.pack("<I", len(value)) + value
    return struct.pack("<HH", group, element) + vr + struct.pack("<H", len(value)) + value


def meta(ts: str = ExplicitVRLittleEndian, sop_class: str = VL_PHOTOGRAPHIC, sop: str = "1.2.3.4") -> bytes:
    def ui(v: str) -> bytes:
        b = v.encode()
        return b + b"\0" if len(b) % 2 else b

    body = (_el(2, 1, b"OB", b"\0\1") + _el(2, 2, b"UI", ui(sop_class)) + _el(2, 3, b"UI", ui(sop))
            + _el(2, 0x10, b"UI", ui(ts)))  # fmt: skip
    return b"\0" * 128 + b"DICM" + _el(2, 0, b"UL", struct.pack("<I", len(body))) + body


def nested(depth: int) -> bytes:
    """Sequences nested ``depth`` deep (undefined lengths): pydicom fails at ~200."""
    out = b""
    for _ in range(depth):
        out += struct.pack("<HH", 0x0040, 0xA730) + b"SQ\0\0" + struct.pack("<I", 0xFFFFFFFF)
        out += struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    for _ in range(depth):
        out += struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return meta() + out


def lying_length() -> bytes:
    """An element that declares 0xFFFFFFF0 bytes and has ten."""
    return meta() + struct.pack("<HH", 0x0010, 0x0010) + b"UN\0\0" + struct.pack("<I", 0xFFFFFFF0) + b"x" * 10


def deflate_bomb(megabytes: int = 64) -> bytes:
    """Deflated Explicit VR LE whose one OB element inflates to ``megabytes`` MiB of zeros."""
    size = megabytes * 1024 * 1024
    header = struct.pack("<HH", 0x0009, 0x1010) + b"OB\0\0" + struct.pack("<I", size)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [deflater.compress(header)]
    zeros = b"\0" * (1 << 20)
    for _ in range(megabytes):
        parts.append(deflater.compress(zeros))
    parts.append(deflater.flush())
    return meta(DeflatedExplicitVRLittleEndian) + b"".join(parts)


def deflated(ds: Dataset) -> bytes:
    """A valid object in Deflated Explicit VR Little Endian."""
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def truncated(data: bytes, keep: float = 0.6) -> bytes:
    return data[: int(len(data) * keep)]
