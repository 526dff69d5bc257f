"""Every kind of object the ingest pipeline writes passes dciodvfy with no errors.

The objects are made through the public upload route, so this covers exactly what is stored.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests import imagegen
from tests.conftest import patient_fields
from tests.dicomvalidate import dciodvfy_errors

PHOTO = imagegen.photo(128, 96, seed=5)
EXIF = imagegen.exif_bytes(orientation=6, datetime_original="2024:10:27 01:30:00")  # autumn overlap

INPUTS = {
    "jpeg-420": lambda: imagegen.jpeg(PHOTO, exif=EXIF, icc=imagegen.srgb_icc()),
    "jpeg-444": lambda: imagegen.jpeg(PHOTO, subsampling="4:4:4"),
    "jpeg-grey": lambda: imagegen.jpeg(PHOTO.mean(axis=2).astype(np.uint8)),
    "jpeg-progressive": lambda: imagegen.jpeg(PHOTO, progressive=True),
    "jpeg-cmyk": lambda: imagegen.cmyk_jpeg(PHOTO),
    "jpeg-rotated-unaligned": lambda: imagegen.jpeg(imagegen.photo(101, 77), exif=imagegen.exif_bytes(orientation=8)),
    "png-rgb": lambda: imagegen.png(PHOTO),
    "png-16bit": lambda: imagegen.png(PHOTO.mean(axis=2).astype(np.uint8), bits=16),
    "png-alpha": lambda: imagegen.png(PHOTO, alpha=np.full(PHOTO.shape[:2], 128, np.uint8)),
    "tiff": lambda: imagegen.tiff(PHOTO),
    "bmp": lambda: imagegen.bmp(PHOTO),
    "webp-lossless": lambda: imagegen.webp(PHOTO, lossless=True),
    "webp-lossy": lambda: imagegen.webp(PHOTO, lossless=False),
    "heic": lambda: imagegen.heic(PHOTO, exif=EXIF),
}


@pytest.mark.parametrize("modality", ["XC", "DMS"])
@pytest.mark.parametrize("kind", sorted(INPUTS))
def test_stored_object_passes_dciodvfy(client, tmp_path, kind, modality):
    data = INPUTS[kind]()
    response = client.post(
        "/api/v1/images",
        data=patient_fields(modality=modality, family_name="Llŷr", given_name="Zoë"),
        files={"file": (f"{kind}.bin", io.BytesIO(data))},
    )
    assert response.status_code == 201, response.text
    uid = response.json()["files"][0]["sop_instance_uid"]
    path = tmp_path / f"{kind}.dcm"
    path.write_bytes(client.get(f"/api/v1/instances/{uid}/file").content)
    assert dciodvfy_errors(path) == []


def test_temporary_patient_object_passes_dciodvfy(client, tmp_path):
    response = client.post(
        "/api/v1/images",
        data=patient_fields(nhs_number="TMP-REM-ED0042", family_name="", given_name="", birth_date="", sex="U"),
        files={"file": ("a.jpg", imagegen.jpeg(PHOTO))},
    )
    assert response.status_code == 201, response.text
    uid = response.json()["files"][0]["sop_instance_uid"]
    path = tmp_path / "tmp.dcm"
    path.write_bytes(client.get(f"/api/v1/instances/{uid}/file").content)
    assert dciodvfy_errors(path) == []
