"""Videos and PDFs through ``POST /api/v1/images``: stored as Video Photographic Image and
Encapsulated PDF, valid by dciodvfy, no location left, refusals that store nothing."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.encaps import generate_fragments

from tests import imagegen, mediagen
from tests.conftest import patient_fields
from tests.dicomvalidate import dciodvfy_errors


def upload(client, *files, **fields):
    return client.post("/api/v1/images", data=patient_fields(**fields), files=[("file", f) for f in files])


def stored(client, tmp_path, uid):
    path = tmp_path / f"{uid}.dcm"
    path.write_bytes(client.get(f"/api/v1/instances/{uid}/file").content)
    return path


def video_errors(path):
    """dciodvfy errors; this dicom3tools build does not know the HEVC transfer syntaxes (it reads
    their encapsulated Pixel Data as native and stops), so an HEVC object is checked as a copy
    labelled H.264: the same encapsulation, and every other attribute unchanged."""
    ds = pydicom.dcmread(path)
    if ds.file_meta.TransferSyntaxUID in ("1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.108"):
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.102"
        path = path.with_suffix(".as-avc.dcm")
        ds.save_as(path, enforce_file_format=True)
    return dciodvfy_errors(path)


def store_count(services):
    return sum(1 for _ in services.repository.iter_instance_keys())


@pytest.mark.parametrize(
    "kind, options, syntax",
    [
        ("phone.mov", {"container": "mov", "rotation": 90, "location": True, "audio": True, "make": "Apple"}, "1.2.840.10008.1.2.4.102"),
        ("camera.mp4", {"location": True}, "1.2.840.10008.1.2.4.102"),
        ("main.mp4", {"profile": "main"}, "1.2.840.10008.1.2.4.102"),
        ("level42.mp4", {"level": "4.2"}, "1.2.840.10008.1.2.4.104"),
        ("hevc.mp4", {"codec": "libx265", "profile": None}, "1.2.840.10008.1.2.4.107"),
    ],
)
def test_video_is_stored_as_video_photographic_image(client, services, tmp_path, kind, options, syntax):
    source = mediagen.video(tmp_path / kind, **options)
    response = upload(client, (kind, source.read_bytes()), tracking_id="burn-left-arm")
    assert response.status_code == 201, response.text
    item = response.json()["files"][0]
    assert item["media_type"] in ("video/mp4", "video/quicktime")
    path = stored(client, tmp_path, item["sop_instance_uid"])
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.77.1.4.1"
    assert ds.file_meta.TransferSyntaxUID == syntax
    assert (ds.NumberOfFrames, ds.Rows, ds.Columns) == (30, 240, 320)
    assert float(ds.FrameTime) == pytest.approx(1000 / 30, rel=1e-3)
    assert ds.FrameIncrementPointer == 0x00181063
    assert ds.CineRate == 30 and float(ds.EffectiveDuration) == pytest.approx(1.0, abs=0.05)
    assert ds.PhotometricInterpretation == "YBR_PARTIAL_420"
    assert ds.TrackingID == "burn-left-arm"
    fragments = list(generate_fragments(ds.PixelData))[1:]  # after the empty Basic Offset Table
    assert len(fragments) == 1 and fragments[0][4:8] == b"ftyp"
    # No location anywhere in the stored object, whatever the phone wrote into the container.
    assert mediagen.LOCATION_MARKER not in path.read_bytes()
    assert b"ISO6709" not in path.read_bytes() and b"\xa9xyz" not in path.read_bytes()
    assert video_errors(path) == []


def test_rotation_is_kept_in_the_mp4_and_recorded(client, tmp_path):
    source = mediagen.video(tmp_path / "phone.mov", container="mov", rotation=90)
    uid = upload(client, ("phone.mov", source.read_bytes())).json()["files"][0]["sop_instance_uid"]
    ds = pydicom.dcmread(stored(client, tmp_path, uid))
    from repository.private_tags import get_private

    assert get_private(ds)["VideoRotation"] == "90"
    # the poster is upright: the 320x240 coded frames are shown turned a quarter, 240 wide
    from PIL import Image

    thumb = Image.open(io.BytesIO(client.get(f"/api/v1/instances/{uid}/rendered").content))
    assert thumb.size == (240, 320)


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.99])
def test_truncated_video_is_refused_and_nothing_stored(client, services, tmp_path, cut):
    data = mediagen.video(tmp_path / "v.mp4", frames=60).read_bytes()
    response = upload(client, ("v.mp4", data[: int(len(data) * cut)]))
    assert response.status_code == 422, response.text
    assert "truncated" in response.json()["error"]["message"]
    assert store_count(services) == 0


def test_corrupt_video_data_is_refused(client, services, tmp_path):
    data = bytearray(mediagen.video(tmp_path / "v.mov", container="mov").read_bytes())
    mdat = data.find(b"mdat")
    data[mdat + 4 : mdat + 2000] = bytes(1996)  # the media itself zeroed: nothing decodes
    response = upload(client, ("v.mov", bytes(data)))
    assert response.status_code == 422, response.text
    assert store_count(services) == 0


def test_playlist_pretending_to_be_video_is_refused(client, services):
    playlist = b"#EXTM3U\n#EXT-X-VERSION:3\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
    response = upload(client, ("clip.mp4", playlist))
    assert response.status_code == 415, response.text
    assert store_count(services) == 0


def test_external_data_reference_is_refused(client, services, tmp_path):
    data = bytearray(mediagen.video(tmp_path / "v.mov", container="mov").read_bytes())
    from converters.mp4boxes import walk

    dref = walk(io.BytesIO(bytes(data)), len(data)).find(b"dref")[0]
    entry = dref.payload_offset + 8  # after version, flags and the entry count
    data[entry + 11] = 0  # clear the entry's "self-contained" flag: the media is "in another file"
    response = upload(client, ("v.mov", bytes(data)))
    assert response.status_code == 422, response.text
    assert "other files" in response.json()["error"]["message"]


def test_video_in_a_batch_with_photographs_and_a_consent_form(client, tmp_path):
    video = mediagen.video(tmp_path / "v.mp4").read_bytes()
    photo = imagegen.jpeg(imagegen.photo(64, 48))
    consent = mediagen.pdf()
    response = upload(client, ("a.jpg", photo), ("v.mp4", video), ("consent.pdf", consent), document_title="Photography consent")
    assert response.status_code == 201, response.text
    files = response.json()["files"]
    assert len({f["study_instance_uid"] for f in files}) == 1
    doc = pydicom.dcmread(stored(client, tmp_path, files[2]["sop_instance_uid"]))
    assert doc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1" and doc.Modality == "DOC"
    assert doc.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert doc.EncapsulatedDocument.rstrip(b"\x00") == consent.rstrip(b"\x00")
    assert doc.DocumentTitle == "Photography consent"
    assert doc.ConceptNameCodeSequence[0].CodeValue == "59284-0"
    assert doc.BurnedInAnnotation == "YES" and doc.ConversionType == "SD"
    covered = {item.ReferencedSOPInstanceUID for item in doc.ReferencedInstanceSequence}
    assert covered == {files[0]["sop_instance_uid"], files[1]["sop_instance_uid"]}
    assert dciodvfy_errors(stored(client, tmp_path, files[2]["sop_instance_uid"])) == []
    preview = client.get(f"/api/v1/instances/{files[2]['sop_instance_uid']}/thumbnail")
    assert preview.status_code == 200 and preview.content[:2] == b"\xff\xd8"


@pytest.mark.parametrize(
    "name, pdf, reason",
    [
        ("js.pdf", mediagen.pdf(b"<< /S /JavaScript /JS (app.alert(1)) >>", catalog_extra=b"/OpenAction 6 0 R "), "JavaScript"),
        ("embedded.pdf", mediagen.pdf(catalog_extra=b"/Names << /EmbeddedFiles << /Names [] >> >> "), "embedded files"),
        ("link.pdf", mediagen.pdf(page_extra=b"/Annots [<< /Type /Annot /Subtype /Link /Rect [0 0 9 9] /A << /S /URI /URI (https://example.org) >> >>] "), "external link"),
        ("launch.pdf", mediagen.pdf(catalog_extra=b"/OpenAction << /S /Launch /F (cmd.exe) >> "), "Launch"),
        ("xfa.pdf", mediagen.pdf(catalog_extra=b"/AcroForm << /XFA 6 0 R >> "), "XFA"),
        ("escaped.pdf", mediagen.pdf(catalog_extra=b"/Names << /J#61vaScript << >> >> "), "JavaScript"),
    ],
)
def test_pdf_with_active_content_is_refused(client, services, name, pdf, reason):
    response = upload(client, (name, pdf), ("a.jpg", imagegen.jpeg(imagegen.photo(64, 48))))
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert name in message and reason in message
    assert store_count(services) == 0  # the whole batch is refused


def test_pdf_bomb_is_refused_quickly(client, services):
    import time
    import zlib

    bomb = zlib.compress(b"0" * (300 * 1024 * 1024), 9)
    objstm = (b"<< /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /Length " + str(len(bomb)).encode()
              + b" >>\nstream\n" + bomb + b"\nendstream")  # fmt: skip
    started = time.monotonic()
    response = upload(client, ("bomb.pdf", mediagen.pdf(objstm)))
    assert response.status_code == 422, response.text
    assert "bomb" in response.json()["error"]["message"]
    assert time.monotonic() - started < 5
    deep = upload(client, ("deep.pdf", mediagen.pdf(b"[" * 20000 + b"]" * 20000)))
    assert deep.status_code == 422 and "nested" in deep.json()["error"]["message"]
    assert store_count(services) == 0
