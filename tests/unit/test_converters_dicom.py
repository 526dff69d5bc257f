"""Incoming DICOM: structure checks before parsing, the patient identity rules, privacy
stripping, provenance, determinism and the statuses reported for each refusal."""

from __future__ import annotations

import hashlib
import resource
import struct

import pytest
from pydicom import dcmread
from pydicom.encaps import generate_frames
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit

from converters import dicom
from converters.dicom import DicomLimits, Provenance, dicom_status_for, prepare_dicom, strip_jpeg_segments
from repository.errors import Conflict, OlogiesError, StoreUnavailable
from repository.private_tags import get_private
from tests import dicomgen
from tests.imagegen import LEAK_MARKERS, jpeg, jpeg_segments, photo


def prepare(data: bytes, tmp_path, name: str = "out.dcm", **kwargs):  # type: ignore[no-untyped-def]
    kwargs.setdefault("provenance", Provenance("stowrs"))
    kwargs.setdefault("allow_test_numbers", True)
    return prepare_dicom(data, tmp_path / name, **kwargs)


def refused(data: bytes, tmp_path, status: int, fragment: str = "", **kwargs) -> OlogiesError:  # type: ignore[no-untyped-def]
    with pytest.raises(OlogiesError) as caught:
        prepare(data, tmp_path, **kwargs)
    assert dicom_status_for(caught.value) == status, caught.value.message
    assert fragment.lower() in caught.value.message.lower()
    assert not (tmp_path / "out.dcm").exists()
    return caught.value


# -- accepted as received ------------------------------------------------------------------------
def test_clean_jpeg_object_is_stored_unchanged_but_for_provenance(tmp_path):
    ds = dicomgen.photo_dataset()
    data = dicomgen.part10(ds)
    prepared = prepare(data, tmp_path)
    assert prepared.coercions == () and prepared.warning_status is None
    stored = dcmread(prepared.instance.path)
    assert stored.SOPInstanceUID == ds.SOPInstanceUID  # DICOM input keeps its UIDs (DECISIONS.md 4)
    assert stored.StudyInstanceUID == ds.StudyInstanceUID
    assert stored.PixelData == ds.PixelData
    assert str(stored.PatientName) == "O'Brien-Jones^Siân"
    assert stored.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    private = get_private(stored)
    assert private["OriginalSHA256"] == hashlib.sha256(data).hexdigest()
    assert private["IngestRoute"] == "stowrs" and private["OriginalMediaType"] == "application/dicom"
    assert private["ContentSHA256"] == prepared.instance.content_sha256
    assert prepared.instance.uid_derived_from_content is False


def test_preamble_is_zeroed_and_file_meta_is_ours(tmp_path):
    data = bytearray(dicomgen.photo_file())
    data[:4] = b"MZ\x90\x00"  # a PE header in the preamble (CVE-2019-11687)
    prepared = prepare(bytes(data), tmp_path)
    stored = prepared.instance.path.read_bytes()
    assert stored[:128] == b"\0" * 128
    assert dcmread(prepared.instance.path).file_meta.ImplementationVersionName == "OLOGIES_0_1"


def test_same_bytes_give_the_same_object(tmp_path):
    data = dicomgen.photo_file(jpeg_bytes=dicomgen.leaky_jpeg(), gps=True)
    first = prepare(data, tmp_path, "a.dcm")
    second = prepare(data, tmp_path, "b.dcm")
    assert first.instance.path.read_bytes() == second.instance.path.read_bytes()


def test_same_content_by_another_route_and_encoding_has_the_same_content_digest(tmp_path):
    ds = dicomgen.photo_dataset(native=True)
    explicit = prepare(dicomgen.part10(ds), tmp_path, "a.dcm")
    implicit = prepare(dicomgen.part10(ds, implicit=True), tmp_path, "b.dcm", provenance=Provenance("cstore", source_ae_title="CAM1"))
    assert explicit.instance.content_sha256 == implicit.instance.content_sha256
    assert explicit.instance.path.read_bytes() != implicit.instance.path.read_bytes()
    # and our own exported object, sent back, is recognised too (its private block is replaced)
    again = prepare(explicit.instance.path.read_bytes(), tmp_path, "c.dcm", provenance=Provenance("cstore"))
    assert again.instance.content_sha256 == explicit.instance.content_sha256
    assert again.coercions == ()


def test_implicit_vr_is_stored_explicit(tmp_path):
    ds = dicomgen.photo_dataset(native=True)
    prepared = prepare(dicomgen.part10(ds, implicit=True), tmp_path)
    assert prepared.received_transfer_syntax_uid == "1.2.840.10008.1.2"
    stored = dcmread(prepared.instance.path)
    assert stored.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert stored.PixelData == ds.PixelData
    assert get_private(stored)["IngestRoute"] == "stowrs"


def test_bare_dataset_is_accepted(tmp_path):
    ds = dicomgen.photo_dataset(native=True)
    prepared = prepare(dicomgen.bare_dataset(ds), tmp_path)
    assert prepared.instance.sop_instance_uid == ds.SOPInstanceUID
    assert prepared.received_transfer_syntax_uid == ExplicitVRLittleEndian


def test_small_deflated_object_is_inflated(tmp_path):
    ds = dicomgen.photo_dataset(native=True)
    prepared = prepare(dicomgen.deflated(ds), tmp_path)
    stored = dcmread(prepared.instance.path)
    assert stored.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert stored.PixelData == ds.PixelData


# -- privacy -------------------------------------------------------------------------------------
def test_gps_owner_and_maker_note_are_removed_everywhere(tmp_path):
    prepared = prepare(dicomgen.photo_file(gps=True), tmp_path)
    stored = dcmread(prepared.instance.path)
    for keyword in ("GPSLatitude", "GPSLatitudeRef", "CameraOwnerName", "MakerNote"):
        assert keyword not in stored
    assert "GPSLongitude" not in stored.AcquisitionContextSequence[0]
    assert {c.keyword for c in prepared.coercions} >= {"GPSLatitude", "GPSLongitude", "CameraOwnerName", "MakerNote"}
    assert prepared.warning_status == dicom.ELEMENTS_DISCARDED
    raw = prepared.instance.path.read_bytes()
    assert b"Dr Example Owner" not in raw and b"secret" not in raw


def test_jpeg_metadata_segments_are_removed_and_pixels_kept(tmp_path):
    leaky = dicomgen.leaky_jpeg()
    prepared = prepare(dicomgen.photo_file(jpeg_bytes=leaky), tmp_path)
    assert prepared.warning_status == dicom.COERCED
    stored = dcmread(prepared.instance.path)
    frame = next(generate_frames(stored.PixelData, number_of_frames=1))
    markers = [m for m, _ in jpeg_segments(frame)]
    assert 0xE1 not in markers and 0xFE not in markers
    for leak in LEAK_MARKERS:
        assert leak not in prepared.instance.path.read_bytes()
    # the entropy-coded data is byte for byte the camera's
    from tests.imagegen import entropy_data

    assert entropy_data(frame) == entropy_data(leaky)


def test_jpeg_ls_header_segments_are_stripped():
    frame = b"\xff\xd8" + b"\xff\xe1\x00\x08Exif\x00\x00" + b"\xff\xfe\x00\x05abc" + b"\xff\xf7\x00\x0b" + b"\x08" * 9 + b"\xff\xda\x00\x08" + b"\x01" * 6 + b"scan\xff\xd9"
    cleaned = strip_jpeg_segments(frame)
    assert b"Exif" not in cleaned and b"abc" not in cleaned
    assert cleaned.endswith(b"\xff\xda\x00\x08" + b"\x01" * 6 + b"scan\xff\xd9")
    with pytest.raises(OlogiesError):
        strip_jpeg_segments(b"\xff\xd8\xff\xe1\xff\xff")  # a segment longer than the frame


def test_a_received_ologies_block_is_replaced(tmp_path):
    ds = dicomgen.photo_dataset()
    block = ds.private_block(0x0011, "OLOGIES 1.0", create=True)
    block.add_new(0x10, "LO", "RBN")  # a forged trust
    block.add_new(0x22, "LO", "web")
    stored = dcmread(prepare(dicomgen.part10(ds), tmp_path, provenance=Provenance("cstore", trust="REM")).instance.path)
    assert get_private(stored)["TrustODSCode"] == "REM"
    assert get_private(stored)["IngestRoute"] == "cstore"
    assert sum(1 for e in stored if e.tag.group == 0x0011 and e.tag.element < 0x100) == 1


# -- patient identity ----------------------------------------------------------------------------
def test_nhs_number_in_display_form_is_coerced(tmp_path):
    prepared = prepare(dicomgen.photo_file(patient_id="999 000 0018"), tmp_path)
    assert prepared.instance.patient_id == "9990000018"
    assert dcmread(prepared.instance.path).PatientID == "9990000018"
    assert prepared.warning_status == dicom.COERCED


def test_temporary_identifier_is_accepted(tmp_path):
    prepared = prepare(dicomgen.photo_file(patient_id="TMP-REM-000123"), tmp_path)
    assert get_private(dcmread(prepared.instance.path))["PatientIdIsTemporary"] == "YES"


def test_another_trusts_temporary_identifier_is_refused(tmp_path):
    own = prepare(dicomgen.photo_file(patient_id="TMP-REM-000123"), tmp_path, "own.dcm", provenance=Provenance("cstore", trust="REM"))
    assert own.instance.patient_id == "TMP-REM-000123"
    error = refused(dicomgen.photo_file(patient_id="TMP-RBN-000123"), tmp_path, dicom.DATASET_DOES_NOT_MATCH,
                    "another trust's temporary identifier", provenance=Provenance("cstore", trust="REM"))  # fmt: skip
    assert error.field == "PatientID"


@pytest.mark.parametrize(
    "patient_id, fragment",
    [
        ("9990000019", "modulus 11"),
        ("", "empty"),
        ("H1234567", "local hospital numbers"),
        ("1111111111", "repeated digit"),
        ("TMP-rubbish", "temporary identifier"),
    ],
)
def test_patient_ids_outside_our_rules_are_refused(tmp_path, patient_id, fragment):
    error = refused(dicomgen.photo_file(patient_id=patient_id), tmp_path, dicom.DATASET_DOES_NOT_MATCH, fragment)
    assert error.field == "PatientID"


def test_test_range_refused_where_not_allowed(tmp_path):
    refused(dicomgen.photo_file(), tmp_path, dicom.DATASET_DOES_NOT_MATCH, "test range", allow_test_numbers=False)


# -- refusals, with the status each one reports ---------------------------------------------------
def test_not_dicom(tmp_path):
    error = refused(jpeg(photo(32, 24)), tmp_path, dicom.CANNOT_UNDERSTAND, "not a DICOM")
    assert "image/jpeg" in error.message
    refused(b"", tmp_path, dicom.CANNOT_UNDERSTAND)


def test_truncated(tmp_path):
    refused(dicomgen.truncated(dicomgen.photo_file()), tmp_path, dicom.CANNOT_UNDERSTAND, "remain")


def test_lying_length_is_refused_not_truncated(tmp_path):
    refused(dicomgen.lying_length(), tmp_path, dicom.CANNOT_UNDERSTAND, "declares 4294967280 bytes")


def _columns_with(data: bytes, old: bytes, new: bytes) -> bytes:
    """``data`` with the Columns element's header (and what follows it) replaced once."""
    at = data.index(old, 132)  # in the data set, after the file meta
    return data[:at] + new + data[at + len(old) :]


def test_a_value_length_that_does_not_fit_its_vr_is_refused(tmp_path):
    # found by fuzzing (harness "dicom", session 7): Columns sent as UL with 2 bytes made pydicom
    # raise when the converter read it, an unhandled exception: a 500 on every DICOM route
    explicit = dicomgen.part10(dicomgen.photo_dataset(native=True))
    bad = _columns_with(explicit, b"\x28\x00\x11\x00US\x02\x00", b"\x28\x00\x11\x00UL\x02\x00")
    refused(bad, tmp_path, dicom.CANNOT_UNDERSTAND, "(0028,0011) at byte")
    # Implicit VR: the dictionary's VR (US) decides; 3 bytes is not a whole number of US values
    implicit = dicomgen.part10(dicomgen.photo_dataset(native=True), implicit=True)
    columns = struct.pack("<HHI", 0x0028, 0x0011, 2)
    at = implicit.index(columns, 132)
    value = implicit[at + 8 : at + 10]
    bad = implicit[:at] + struct.pack("<HHI", 0x0028, 0x0011, 3) + value + b"\x00" + implicit[at + 10 :]
    refused(bad, tmp_path, dicom.CANNOT_UNDERSTAND, "not a whole number of US values")


def test_deep_nesting_is_refused_before_pydicom_recurses(tmp_path):
    refused(dicomgen.nested(300), tmp_path, dicom.CANNOT_UNDERSTAND, "nested deeper than 16")
    refused(dicomgen.nested(17), tmp_path, dicom.CANNOT_UNDERSTAND, "nested deeper")


def test_deflate_bomb_stops_at_the_budget(tmp_path):
    bomb = dicomgen.deflate_bomb(64)
    assert len(bomb) < 200_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    refused(bomb, tmp_path, dicom.OUT_OF_RESOURCES, "inflates to more than", limits=DicomLimits(inflate_floor=8 * 1024 * 1024))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 40


def test_dicomdir_is_refused(tmp_path):
    data = dicomgen.meta(sop_class=dicom.DICOMDIR_SOP_CLASS) + b"\x08\x00\x16\x00UI\x02\x001\x00"
    refused(data, tmp_path, dicom.SOP_CLASS_NOT_SUPPORTED, "DICOMDIR")


def test_other_sop_classes_are_refused(tmp_path):
    refused(dicomgen.photo_file(sop_class=dicomgen.CT_IMAGE), tmp_path, dicom.SOP_CLASS_NOT_SUPPORTED, "not stored here")
    # a photograph labelled Encapsulated PDF is held to the PDF rules (converters.dicom_media)
    refused(dicomgen.photo_file(sop_class="1.2.840.10008.5.1.4.1.1.104.1"), tmp_path, dicom.DATASET_DOES_NOT_MATCH, "MIMETypeOfEncapsulatedDocument")


def test_big_endian_and_unknown_transfer_syntaxes_are_refused(tmp_path):
    data = dicomgen.meta("1.2.840.10008.1.2.2") + b"\x00\x08\x00\x16UI\x00\x021\x00"
    refused(data, tmp_path, dicom.TRANSFER_SYNTAX_NOT_SUPPORTED, "not accepted")


@pytest.mark.parametrize("keyword", ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID"])
def test_missing_uids_are_refused(tmp_path, keyword):
    ds = dicomgen.photo_dataset()
    delattr(ds, keyword)
    if keyword == "SOPClassUID":
        status = dicom.DATASET_DOES_NOT_MATCH
    else:
        status = dicom.DATASET_DOES_NOT_MATCH
    error = refused(dicomgen.part10(ds), tmp_path, status, keyword)
    assert error.field == keyword


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_uid_that_could_escape_a_path_is_refused(tmp_path):
    ds = dicomgen.photo_dataset()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "../../etc/passwd"
    refused(dicomgen.part10(ds), tmp_path, dicom.DATASET_DOES_NOT_MATCH, "not a valid DICOM UID")


def test_study_of_the_request_must_match(tmp_path):
    refused(dicomgen.photo_file(), tmp_path, dicom.DATASET_DOES_NOT_MATCH, "not to the study", expected_study_uid="2.25.1")


def test_pixel_data_must_match_its_description(tmp_path):
    ds = dicomgen.photo_dataset(native=True)
    ds.PixelData = ds.PixelData[:1000]
    refused(dicomgen.part10(ds), tmp_path, dicom.DATASET_DOES_NOT_MATCH, "PixelData holds 1000 bytes")
    ds = dicomgen.photo_dataset(jpeg_bytes=jpeg(photo(64, 48)))  # Rows/Columns say 320x240
    refused(dicomgen.part10(ds), tmp_path, dicom.DATASET_DOES_NOT_MATCH, "64x48 JPEG")
    ds = dicomgen.photo_dataset()
    del ds.PixelData
    refused(dicomgen.part10(ds), tmp_path, dicom.DATASET_DOES_NOT_MATCH, "PixelData is missing")


def test_corrupt_jpeg_frame_is_refused(tmp_path):
    broken = jpeg(photo(320, 240))[:-200]  # no EOI
    refused(dicomgen.photo_file(jpeg_bytes=broken), tmp_path, dicom.CANNOT_UNDERSTAND, "frame 1")


def test_element_count_is_bounded(tmp_path):
    ds = dicomgen.photo_dataset(native=True)
    refused(dicomgen.part10(ds), tmp_path, dicom.CANNOT_UNDERSTAND, "more than 10 elements", limits=DicomLimits(max_elements=10))


def test_size_is_bounded(tmp_path):
    refused(dicomgen.photo_file(), tmp_path, dicom.OUT_OF_RESOURCES, "larger than", limits=DicomLimits(max_bytes=1000))


def test_statuses_of_storage_errors():
    assert dicom_status_for(Conflict("x")) == dicom.DUPLICATE_SOP_INSTANCE
    assert dicom_status_for(StoreUnavailable("x")) == dicom.OUT_OF_RESOURCES
    assert dicom_status_for(RuntimeError("x")) == dicom.PROCESSING_FAILURE


def test_walker_refuses_a_delimiter_out_of_place(tmp_path):
    data = dicomgen.meta() + struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    refused(data, tmp_path, dicom.CANNOT_UNDERSTAND, "out of place")
