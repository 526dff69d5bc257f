"""Video and PDF arriving as DICOM: STOW-RS of Video Photographic Image and Encapsulated PDF
objects, and IHE Web Image Capture (DICOM JSON plus an MP4, a QuickTime or a PDF). They are held
to the rules of an upload: stored as received when clean, location removed from a video's
container, active content refused, nothing half stored."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.encaps import generate_fragments

from converters import dicom as dcm
from converters.dicom_media import encapsulated_video
from tests import dicomgen, mediagen
from tests.dicomvalidate import dciodvfy_errors
from tests.web.test_dicomweb import (
    failures,
    referenced,
    stored_instances,
    stow,
    wic_metadata,
    wic_request,
)
from tests.web.test_media_api import video_errors

VIDEO_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4.1"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"


def stored_dataset(services, uid):  # type: ignore[no-untyped-def]
    raw = services.repository.store.open(services.repository.locate(uid)).read()
    return pydicom.dcmread(io.BytesIO(raw)), raw


def fragments_of(ds) -> bytes:  # type: ignore[no-untyped-def]
    return b"".join(generate_fragments(ds.PixelData))


def test_a_video_object_is_stored_as_received_and_plays(client, services, tmp_path):
    sent = mediagen.dicom_video(tmp_path / "v")
    response = stow(client, [sent])
    assert response.status_code == 200, response.text
    (uid,) = referenced(response)
    ds, raw = stored_dataset(services, uid)
    original = pydicom.dcmread(io.BytesIO(sent))
    assert ds.SOPClassUID == VIDEO_PHOTOGRAPHIC
    assert ds.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert fragments_of(ds) == fragments_of(original)  # the MP4 byte for byte
    played = client.get(f"/api/v1/instances/{uid}/video")
    assert played.status_code == 200 and played.content[4:8] == b"ftyp"
    assert client.get(f"/api/v1/instances/{uid}/thumbnail").headers["content-type"] == "image/jpeg"
    path = tmp_path / "stored.dcm"
    path.write_bytes(raw)
    assert video_errors(path) == []
    assert stow(client, [sent]).status_code == 200  # resending is a no-op
    assert len(stored_instances(services)) == 1


def test_a_video_object_with_location_in_its_container_is_stored_without_it(client, services, tmp_path):
    sent = mediagen.dicom_video(tmp_path / "v", location=True)
    assert mediagen.LOCATION_MARKER in sent
    response = stow(client, [sent])
    assert response.status_code == 202, response.text  # stored, with a coercion warning
    assert "location" in response.headers["warning"]
    (uid,) = referenced(response)
    ds, raw = stored_dataset(services, uid)
    assert mediagen.LOCATION_MARKER not in raw and b"ISO6709" not in raw
    played = client.get(f"/api/v1/instances/{uid}/video").content
    assert played[4:8] == b"ftyp" and mediagen.LOCATION_MARKER not in played
    path = tmp_path / "stored.dcm"
    path.write_bytes(raw)
    assert video_errors(path) == []


@pytest.mark.parametrize(
    "change, reason",
    [
        ("hevc-syntax", dcm.DATASET_DOES_NOT_MATCH),  # an H.264 stream labelled HEVC
        ("jpeg-syntax", dcm.TRANSFER_SYNTAX_NOT_SUPPORTED),  # a video class in a JPEG syntax
        ("not-mp4", dcm.CANNOT_UNDERSTAND),  # Pixel Data that is no MP4
        ("truncated", dcm.CANNOT_UNDERSTAND),  # the MP4 cut short
        ("no-frames", dcm.DATASET_DOES_NOT_MATCH),  # Number of Frames missing
    ],
)
def test_bad_video_objects_are_refused_and_nothing_is_stored(client, services, tmp_path, change, reason):
    ds = pydicom.dcmread(io.BytesIO(mediagen.dicom_video(tmp_path / "v")))
    mp4 = fragments_of(ds)
    if change == "hevc-syntax":
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.107"
    elif change == "jpeg-syntax":
        ds.file_meta.TransferSyntaxUID = dcm.JPEG_BASELINE
    elif change == "not-mp4":
        ds.PixelData = encapsulated_video(dicomgen.leaky_jpeg())
    elif change == "truncated":
        ds.PixelData = encapsulated_video(mp4[: len(mp4) // 2])
    else:
        del ds.NumberOfFrames
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    response = stow(client, [buffer.getvalue()])
    assert response.status_code == 409, response.text
    assert [r for _, r in failures(response)] == [reason]
    assert stored_instances(services) == []


def test_a_photograph_class_in_a_video_syntax_is_refused(client, services):
    ds = dicomgen.photo_dataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.102"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    response = stow(client, [buffer.getvalue()])
    assert [r for _, r in failures(response)] == [dcm.TRANSFER_SYNTAX_NOT_SUPPORTED]
    assert stored_instances(services) == []


def test_a_pdf_object_is_stored_as_received(client, services, tmp_path):
    document = mediagen.pdf(pages=2)
    sent = mediagen.dicom_pdf(document)
    response = stow(client, [sent])
    assert response.status_code == 200, response.text
    (uid,) = referenced(response)
    ds, raw = stored_dataset(services, uid)
    assert ds.SOPClassUID == ENCAPSULATED_PDF
    assert bytes(ds.EncapsulatedDocument)[: int(ds.EncapsulatedDocumentLength)] == document
    assert client.get(f"/api/v1/instances/{uid}/thumbnail").status_code == 200
    path = tmp_path / "stored.dcm"
    path.write_bytes(raw)
    assert dciodvfy_errors(path) == []


@pytest.mark.parametrize(
    "document, words",
    [
        (mediagen.pdf(catalog_extra=b"/OpenAction << /S /JavaScript /JS (app.alert(1)) >> "), "JavaScript"),
        (mediagen.pdf(page_extra=b"/Annots [<< /Type /Annot /Subtype /Link /A << /S /URI /URI (http://example.invalid) >> >>] "), "external link"),
        (mediagen.pdf()[:-200], "truncated"),
    ],
)
def test_pdf_objects_with_active_content_or_cut_short_are_refused(client, services, document, words):
    response = stow(client, [mediagen.dicom_pdf(document)])
    assert response.status_code == 409, response.text
    assert [r for _, r in failures(response)] == [dcm.CANNOT_UNDERSTAND]
    assert words in response.headers["warning"]
    assert stored_instances(services) == []


def test_a_pdf_object_whose_mime_type_lies_is_refused(client, services):
    ds = pydicom.dcmread(io.BytesIO(mediagen.dicom_pdf(mediagen.pdf())))
    ds.MIMETypeOfEncapsulatedDocument = "text/html"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    response = stow(client, [buffer.getvalue()])
    assert [r for _, r in failures(response)] == [dcm.DATASET_DOES_NOT_MATCH]
    assert stored_instances(services) == []


# -- IHE Web Image Capture: DICOM JSON with a video or a PDF ---------------------------------------
def video_metadata(uri: str) -> dict:
    data = wic_metadata(uri)
    data["00080016"] = {"vr": "UI", "Value": [VIDEO_PHOTOGRAPHIC]}
    forearm = {"00080100": {"vr": "SH", "Value": ["14975008"]}, "00080102": {"vr": "SH", "Value": ["SCT"]},
               "00080104": {"vr": "LO", "Value": ["Forearm"]}}  # fmt: skip
    data["00082218"] = {"vr": "SQ", "Value": [forearm]}  # AnatomicRegionSequence: the client's to say
    return data


@pytest.mark.parametrize("container, media_type", [("mp4", "video/mp4"), ("mov", "video/quicktime")])
def test_wic_with_a_video_makes_a_video_photographic_image(client, services, tmp_path, container, media_type):
    source = mediagen.video(tmp_path / f"clip.{container}", container=container, location=True, frames=24, rate=24)
    body, headers = wic_request([video_metadata("v1")], [(media_type, "v1", source.read_bytes())])
    response = client.post("/dicomweb/studies", content=body, headers=headers)
    assert response.status_code == 202, response.text  # stored; the remux is a coercion
    (uid,) = referenced(response)
    ds, raw = stored_dataset(services, uid)
    assert ds.SOPClassUID == VIDEO_PHOTOGRAPHIC
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.102"
    assert (ds.Rows, ds.Columns, int(ds.NumberOfFrames), int(ds.CineRate)) == (240, 320, 24, 24)
    assert mediagen.LOCATION_MARKER not in raw
    assert client.get(f"/api/v1/instances/{uid}/video").content[4:8] == b"ftyp"
    path = tmp_path / "stored.dcm"
    path.write_bytes(raw)
    assert video_errors(path) == []


def test_wic_with_a_pdf_makes_an_encapsulated_pdf(client, services, tmp_path):
    document = mediagen.pdf()
    metadata = wic_metadata("doc1")
    del metadata["7FE00010"]
    metadata["00080016"] = {"vr": "UI", "Value": [ENCAPSULATED_PDF]}
    metadata["00420011"] = {"vr": "OB", "BulkDataURI": "doc1"}
    body, headers = wic_request([metadata], [("application/pdf", "doc1", document)])
    response = client.post("/dicomweb/studies", content=body, headers=headers)
    assert response.status_code == 200, response.text
    (uid,) = referenced(response)
    ds, raw = stored_dataset(services, uid)
    assert ds.SOPClassUID == ENCAPSULATED_PDF and ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert bytes(ds.EncapsulatedDocument)[: int(ds.EncapsulatedDocumentLength)] == document
    assert ds.BurnedInAnnotation == "YES"  # a form names its patient unless the client says otherwise
    path = tmp_path / "stored.dcm"
    path.write_bytes(raw)
    assert dciodvfy_errors(path) == []


def test_wic_with_a_pdf_carrying_javascript_is_refused(client, services):
    document = mediagen.pdf(catalog_extra=b"/OpenAction << /S /JavaScript /JS (app.alert(1)) >> ")
    metadata = wic_metadata("doc1")
    del metadata["7FE00010"]
    metadata["00420011"] = {"vr": "OB", "BulkDataURI": "doc1"}
    body, headers = wic_request([metadata], [("application/pdf", "doc1", document)])
    response = client.post("/dicomweb/studies", content=body, headers=headers)
    assert response.status_code == 409
    assert [r for _, r in failures(response)] == [dcm.CANNOT_UNDERSTAND]
    assert "JavaScript" in response.headers["warning"]
    assert stored_instances(services) == []


def test_wic_with_a_pdf_as_pixel_data_is_refused(client, services):
    body, headers = wic_request([wic_metadata("doc1")], [("application/pdf", "doc1", mediagen.pdf())])
    response = client.post("/dicomweb/studies", content=body, headers=headers)
    assert response.status_code == 409
    assert [r for _, r in failures(response)] == [dcm.DATASET_DOES_NOT_MATCH]
    assert stored_instances(services) == []


# -- the same objects through the upload API and the watched folder ---------------------------------
def test_video_and_pdf_objects_through_the_upload_api(client, services, tmp_path):
    located = mediagen.dicom_video(tmp_path / "v", location=True)
    scripted = mediagen.dicom_pdf(mediagen.pdf(catalog_extra=b"/OpenAction << /S /JavaScript /JS (x) >> "))
    files = [("file", ("clip.dcm", located, "application/octet-stream"))]
    response = client.post("/api/v1/images", data={"nhs_number": "9434765919"}, files=files)
    assert response.status_code == 201, response.text
    (item,) = response.json()["files"]
    _, raw = stored_dataset(services, item["sop_instance_uid"])
    assert mediagen.LOCATION_MARKER not in raw
    refused = client.post("/api/v1/images", data={"nhs_number": "9434765919"},
                          files=[("file", ("consent.dcm", scripted, "application/octet-stream"))])  # fmt: skip
    assert refused.status_code == 422 and "JavaScript" in refused.text
    assert len(stored_instances(services)) == 1
