"""An upload must free what it built as soon as it answers. Python frees an object at once
unless it sits in a reference cycle; a DICOM object in a cycle (with its pixel data) waits for a
full garbage collection, which runs rarely, and a busy worker grew by an upload's size for each
one waiting (pydicom's cached PrivateBlock was such a cycle). So: with the collector off, no
pydicom Dataset may be left over from an upload, by the form route or by STOW-RS."""

from __future__ import annotations

import gc

import pytest
from pydicom import Dataset

from repository.private_tags import get_private, set_private
from tests import dicomgen, imagegen
from tests.conftest import patient_fields
from tests.web.test_dicomweb import stow


def datasets_alive() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, Dataset))


@pytest.fixture
def collector_off():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_private_values_leave_no_reference_cycle(collector_off):
    before = datasets_alive()
    ds = Dataset()
    set_private(ds, TrustODSCode="REM", IngestRoute="api")
    assert get_private(ds) == {"TrustODSCode": "REM", "IngestRoute": "api"}
    del ds
    assert datasets_alive() == before


def test_a_form_upload_leaves_no_dataset_for_the_collector(client, collector_off):
    photos = [imagegen._textured_jpeg(640, 480, s, noise=10.0, quality=90) for s in (1, 2)]
    client.post("/api/v1/images", data=patient_fields(), files={"file": ("warm.jpg", photos[0], "image/jpeg")})
    before = datasets_alive()
    response = client.post("/api/v1/images", data=patient_fields(), files={"file": ("p.jpg", photos[1], "image/jpeg")})
    assert response.status_code == 201
    assert datasets_alive() == before


def test_a_stow_leaves_no_dataset_for_the_collector(client, collector_off):
    assert stow(client, [dicomgen.part10(dicomgen.photo_dataset())]).status_code == 200
    before = datasets_alive()
    assert stow(client, [dicomgen.part10(dicomgen.photo_dataset()) for _ in range(2)]).status_code == 200
    assert datasets_alive() == before
