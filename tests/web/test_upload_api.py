"""``POST /api/v1/images`` end to end over the app factory: what is stored, how it reads back,
and how every kind of bad input is refused without leaving anything behind."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.encaps import generate_frames

from tests import imagegen
from tests.conftest import NHS_A, NHS_B, api_key, patient_fields

GPS_MARKERS = (b"GPS", imagegen.OWNER.encode() if isinstance(imagegen.OWNER, str) else imagegen.OWNER)


def upload(client, *files: tuple[str, bytes], **overrides: str):
    return client.post(
        "/api/v1/images",
        data=patient_fields(**overrides),
        files=[("file", (name, data, "application/octet-stream")) for name, data in files],
    )


def stored_keys(services) -> list[str]:
    return list(services.repository.iter_instance_keys())


def patient_data_keys(store) -> list[str]:
    """Everything in the store but the audit trail and the accounts: what an upload may leave."""
    return [k for k in store.iter_keys() if not k.startswith(("audit/", "security/"))]


def download(client, uid: str):
    response = client.get(f"/api/v1/instances/{uid}/file")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/dicom"
    return dcmread(io.BytesIO(response.content)), response.content


def test_upload_answers_201_with_uids_and_links(client):
    photo = imagegen.jpeg(imagegen.photo(320, 240))
    response = upload(client, ("lesion.jpg", photo))
    assert response.status_code == 201, response.text
    body = response.json()
    [item] = body["files"]
    assert item["status"] == "created" and item["searchable"] is True
    assert item["study_instance_uid"] == body["study_instance_uid"]
    assert item["media_type"] == "image/jpeg"
    uid = item["sop_instance_uid"]
    assert uid.startswith("2.25.")
    for link in item["links"].values():
        assert client.get(link).status_code == 200


def test_names_round_trip_exactly_through_the_stored_object(client):
    photo = imagegen.jpeg(imagegen.photo(160, 120, seed=3))
    response = upload(client, ("a.jpg", photo), family_name="O'Brien-Jones", given_name="Llŷr Zoë")
    uid = response.json()["files"][0]["sop_instance_uid"]
    ds, _ = download(client, uid)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.PatientName.family_name == "O'Brien-Jones"
    assert ds.PatientName.given_name == "Llŷr Zoë"
    assert ds.PatientID == NHS_A
    meta = client.get(f"/api/v1/instances/{uid}").json()
    assert meta["patient"]["name"] == {"family": "O'Brien-Jones", "given": "Llŷr Zoë"}


def test_jpeg_bitstream_is_unchanged_for_orientation_1(client):
    original = imagegen.jpeg(imagegen.photo(320, 240), exif=imagegen.exif_bytes(orientation=1))
    uid = upload(client, ("a.jpg", original)).json()["files"][0]["sop_instance_uid"]
    ds, _ = download(client, uid)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    assert imagegen.entropy_data(frame) == imagegen.entropy_data(original)
    assert ds.LossyImageCompression == "01"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_rendered_upright(client, orientation):
    upright = imagegen.photo(96, 64, seed=orientation)  # not MCU-aligned in every direction
    stored = imagegen.stored_for_orientation(upright, orientation)
    data = imagegen.jpeg(stored, quality=95, subsampling="4:4:4", exif=imagegen.exif_bytes(orientation=orientation))
    uid = upload(client, ("o.jpg", data)).json()["files"][0]["sop_instance_uid"]
    rendered = np.asarray(Image.open(io.BytesIO(client.get(f"/api/v1/instances/{uid}/rendered").content)).convert("RGB"))
    assert rendered.shape == upright.shape
    assert imagegen.mean_abs_diff(rendered, upright) < 8


@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_renditions_of_a_display_p3_photograph_are_converted_to_srgb(client, kind):
    from PIL import ImageCms

    source = imagegen.photo(96, 64, seed=5)
    p3 = imagegen.display_p3_icc()
    data = imagegen.jpeg(source, quality=95, subsampling="4:4:4", icc=p3) if kind == "jpeg" else imagegen.png(source, icc=p3)
    uid = upload(client, (f"p3.{kind}", data)).json()["files"][0]["sop_instance_uid"]
    managed = ImageCms.profileToProfile(
        Image.fromarray(source), ImageCms.ImageCmsProfile(io.BytesIO(p3)), ImageCms.createProfile("sRGB"),
        renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode="RGB",
    )  # what a colour-managed viewer shows for the source  # fmt: skip

    def colours(image: Image.Image) -> np.ndarray:  # 8x8 block means: the colour, not JPEG's noise
        return np.asarray(image.convert("RGB").resize((12, 8), Image.Resampling.BOX), dtype=np.int16)

    expected, unmanaged = colours(managed), colours(Image.fromarray(source))
    assert imagegen.mean_abs_diff(expected, unmanaged) > 4  # P3 and sRGB really differ here
    rendered = colours(Image.open(io.BytesIO(client.get(f"/api/v1/instances/{uid}/rendered").content)))
    assert imagegen.mean_abs_diff(rendered, expected) < 1.5
    thumb = colours(Image.open(io.BytesIO(client.get(f"/api/v1/instances/{uid}/thumbnail").content)))
    assert imagegen.mean_abs_diff(thumb, expected) < 1.5


def test_gps_and_owner_never_reach_storage_or_renditions(client, services):
    exif = imagegen.exif_bytes(orientation=6, datetime_original="2024:07:01 09:30:00")
    files = [
        ("a.jpg", imagegen.jpeg(imagegen.photo(320, 240), exif=exif, xmp=True)),
        ("b.jpg", imagegen.jpeg(imagegen.photo(320, 240, seed=1), exif=imagegen.exif_bytes())),
        ("c.heic", imagegen.heic(imagegen.photo(320, 240, seed=2), exif=exif)),
        ("d.png", imagegen.png(imagegen.photo(64, 48))),
    ]
    response = upload(client, *files)
    assert response.status_code == 201, response.text
    for item in response.json()["files"]:
        uid = item["sop_instance_uid"]
        ds, raw = download(client, uid)
        for marker in GPS_MARKERS:
            assert marker not in raw
        assert not any(0x00160070 <= int(elem.tag) <= 0x0016008E for elem in ds)
        assert "CameraOwnerName" not in ds
        for kind in ("rendered", "thumbnail"):
            data = client.get(f"/api/v1/instances/{uid}/{kind}").content
            assert Image.open(io.BytesIO(data)).getexif() == {}
            for marker in GPS_MARKERS:
                assert marker not in data
    for key in services.repository.store.iter_keys():
        with services.repository.store.open(key) as handle:
            content = handle.read()
        assert b"GPS" not in content, key


def test_capture_time_keeps_its_offset_and_camera(client):
    exif = imagegen.exif_bytes(datetime_original="2024:07:01 09:30:00", make="Nikon", model="D850")
    uid = upload(client, ("a.jpg", imagegen.jpeg(imagegen.photo(64, 48), exif=exif))).json()["files"][0]["sop_instance_uid"]
    meta = client.get(f"/api/v1/instances/{uid}").json()
    assert meta["acquisition_datetime"] == "20240701093000+0100"  # BST in Europe/London
    assert meta["timezone_offset"] == "+0100"
    assert meta["camera"] == {"manufacturer": "Nikon", "model": "D850"}
    assert meta["capture_date"] == "2024-07-01"


def test_same_file_twice_is_one_instance(client, services):
    photo = imagegen.jpeg(imagegen.photo(64, 48, seed=9))
    first = upload(client, ("a.jpg", photo)).json()["files"][0]
    again = upload(client, ("renamed.jpg", photo), body_site="85562004")
    assert again.status_code == 200
    item = again.json()["files"][0]
    assert item["status"] == "existing"
    assert item["sop_instance_uid"] == first["sop_instance_uid"]
    assert item["study_instance_uid"] == first["study_instance_uid"]
    assert len(stored_keys(services)) == 1


def test_same_image_for_another_patient_is_409_without_their_identity(client, services):
    photo = imagegen.jpeg(imagegen.photo(64, 48, seed=10))
    upload(client, ("a.jpg", photo))
    response = upload(client, ("a.jpg", photo), nhs_number=NHS_B, family_name="Jones", given_name="Zoë")
    assert response.status_code == 409
    text = response.text
    assert NHS_A not in text and "Brien" not in text and "Si" not in response.json()["error"]["message"]
    assert len(stored_keys(services)) == 1
    assert client.get(f"/api/v1/patients/{NHS_B}/images").json()["total"] == 0


@pytest.mark.parametrize(
    "field, value",
    [("nhs_number", "9990000019"), ("birth_date", "2024-02-30"), ("birth_date", "2099-01-01"),
     ("specialty", "astrology"), ("body_site", "999999"), ("trust", "XYZ"), ("consent", ""),
     ("laterality", "Q"), ("family_name", "")],
)  # fmt: skip
def test_invalid_field_is_422_naming_the_field_and_stores_nothing(client, services, field, value):
    response = upload(client, ("a.jpg", imagegen.jpeg(imagegen.photo(32, 32))), **{field: value})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field
    assert stored_keys(services) == []
    assert patient_data_keys(services.repository.store) == []


def test_missing_file_part_is_422(client):
    response = client.post("/api/v1/images", data=patient_fields(), files={"note": (None, "no file here")})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "file"


def test_body_that_is_not_multipart_is_422(client):
    response = client.post("/api/v1/images", data=patient_fields())  # url-encoded
    assert response.status_code == 422
    assert "multipart/form-data" in response.json()["error"]["message"]


def test_malformed_multipart_is_422_and_leaves_no_spool_files(client, settings):
    body = b"--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n\xff\xd8trunc"
    response = client.post(
        "/api/v1/images", content=body, headers={"content-type": "multipart/form-data; boundary=XYZ"}
    )
    assert response.status_code == 422
    assert not list(settings.spool_dir.glob("ologies-upload-*"))


def test_too_many_files_is_413(client, services):
    services.settings.max_files_per_upload = 2
    photo = imagegen.jpeg(imagegen.photo(32, 32))
    response = upload(client, ("a.jpg", photo), ("b.jpg", photo), ("c.jpg", photo))
    assert response.status_code == 413
    assert stored_keys(services) == []


@pytest.mark.parametrize(
    "name, data, status",
    [
        ("consent.ps", b"%!PS-Adobe-3.0\n%%EOF\n", 415),  # (PDFs are accepted: tests/web/test_media_api.py)
        ("photo.jpg", b"GIF89a" + b"\x00" * 64, 415),
        ("random.jpg", bytes(range(256)) * 8, 415),
        ("archive.jpg", b"PK\x03\x04" + b"\x00" * 64, 415),
    ],
)
def test_unsupported_files_are_415_naming_what_was_detected(client, services, name, data, status):
    response = upload(client, (name, data))
    assert response.status_code == status
    message = response.json()["error"]["message"]
    assert name in message and "detected" in message
    assert stored_keys(services) == []


def test_truncated_and_corrupt_images_are_422(client, services):
    photo = imagegen.jpeg(imagegen.photo(320, 240))
    for name, data in (("cut.jpg", photo[: len(photo) // 2]), ("cut.png", imagegen.png(imagegen.photo(64, 64))[:200])):
        response = upload(client, (name, data))
        assert response.status_code == 422, (name, response.text)
        assert name in response.json()["error"]["message"]
    assert stored_keys(services) == []


def test_decompression_bomb_is_refused_before_decoding(client, services):
    for name, data in (("bomb.png", imagegen.header_only_png(60000, 60000)), ("bomb.jpg", imagegen.header_only_jpeg(60000, 60000))):
        response = upload(client, (name, data))
        assert response.status_code == 422
        assert "pixels" in response.json()["error"]["message"]
    assert stored_keys(services) == []


def test_batch_with_one_bad_file_stores_nothing(client, services):
    good = [(f"ok{i}.jpg", imagegen.jpeg(imagegen.photo(64, 48, seed=i))) for i in range(3)]
    response = upload(client, *good, ("bad.jpg", b"not an image at all"))
    assert response.status_code == 415
    assert "bad.jpg" in response.json()["error"]["message"]
    assert patient_data_keys(services.repository.store) == []
    assert services.repository.index.count() == 0
    # and the same batch without the bad file goes through whole
    assert upload(client, *good).status_code == 201
    assert len(stored_keys(services)) == 3


def test_oversized_upload_is_413_and_stores_nothing(tmp_path):
    from fastapi.testclient import TestClient

    from repository.settings import Settings
    from web.app import create_app

    settings = Settings(
        store_url=(tmp_path / "s").as_uri(), index_url=f"sqlite:///{tmp_path / 'i.db'}",
        max_upload_bytes=200_000, _env_file=None,
    )  # fmt: skip
    app = create_app(settings, reconcile=False)
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {api_key(app)}"
        big = imagegen.jpeg(np.random.default_rng(1).integers(0, 255, (600, 600, 3), dtype=np.uint8), quality=100)
        assert len(big) > 200_000
        response = upload(client, ("big.jpg", big))
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        assert patient_data_keys(client.app.state.services.repository.store) == []


def test_dermoscopy_upload_is_a_dms_object(client):
    uid = upload(client, ("d.jpg", imagegen.dermatoscope_jpeg(seed=1)), modality="DMS").json()["files"][0]["sop_instance_uid"]
    ds, _ = download(client, uid)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.77.1.7"
    assert ds.Modality == "DMS"


def test_append_to_an_existing_study(client):
    first = upload(client, ("a.jpg", imagegen.jpeg(imagegen.photo(64, 48, seed=20)))).json()
    study = first["study_instance_uid"]
    second = upload(client, ("b.jpg", imagegen.jpeg(imagegen.photo(64, 48, seed=21))), study_uid=study).json()
    assert second["study_instance_uid"] == study
    assert second["files"][0]["study_instance_uid"] == study


def test_a_boundary_longer_than_rfc_2046_allows_is_422(client):
    # found by fuzzing (harness multipart_form): python-multipart raised in its constructor for a
    # boundary over 256 characters, outside the handling of malformed bodies, and the answer was 500
    for boundary in ("b" * 71, "\\\\" * 160):
        response = client.post("/api/v1/images", content=b"--" + boundary.encode() + b"--\r\n",
                               headers={"content-type": f'multipart/form-data; boundary="{boundary}"'})  # fmt: skip
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == "content-type"
