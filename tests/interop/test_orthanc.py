"""Orthanc (Debian's 1.10 with its DICOMweb plugin) and Ologies: Orthanc sends studies to Ologies
over DICOMweb (its ``servers`` configuration) and over C-STORE (its ``modalities``), and
retrieves them back over WADO-RS; what arrives is compared with what was sent, and dciodvfy
checks what Ologies serves.

Runs when ``OLOGIES_TEST_ORTHANC_URL`` is set (``bash infra/orthanc.sh start``; infra/test-env.sh
exports it). If it is set and Orthanc does not answer, the tests FAIL: CI must not pass by
skipping. The test registers Ologies' real ports in Orthanc through its REST API, so any free
ports work.
"""

from __future__ import annotations

import io
import os

import pytest
import requests
from pydicom import dcmread

from repository.private_tags import get_private
from tests import dicomgen
from tests.dicomvalidate import dciodvfy_errors, dciodvfy_path
from tests.interop.conftest import AE_TITLE

ORTHANC = os.environ.get("OLOGIES_TEST_ORTHANC_URL", "").rstrip("/")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not ORTHANC, reason="set OLOGIES_TEST_ORTHANC_URL (bash infra/orthanc.sh start; infra/test-env.sh)"),
]
ANY_SYNTAX = 'multipart/related; type="application/dicom"; transfer-syntax=*'


@pytest.fixture(scope="module")
def orthanc(ologies):
    session = requests.Session()
    try:
        session.get(f"{ORTHANC}/system", timeout=10).raise_for_status()
    except requests.RequestException as exc:
        pytest.fail(f"OLOGIES_TEST_ORTHANC_URL={ORTHANC} is set but Orthanc does not answer: {exc!r}", pytrace=False)
    server = {"Url": ologies.dicomweb + "/", "HttpHeaders": ologies.headers}
    session.put(f"{ORTHANC}/dicom-web/servers/ologies", json=server, timeout=10).raise_for_status()
    modality = {"AET": AE_TITLE, "Host": "127.0.0.1", "Port": ologies.dimse_port}
    session.put(f"{ORTHANC}/modalities/ologies", json=modality, timeout=10).raise_for_status()
    yield session
    session.close()


def upload_to_orthanc(orthanc, datasets) -> str:  # type: ignore[no-untyped-def]
    """Store datasets in Orthanc; return the Orthanc ID of their (one) study."""
    studies = set()
    for ds in datasets:
        response = orthanc.post(f"{ORTHANC}/instances", data=dicomgen.part10(ds), timeout=30)
        response.raise_for_status()
        studies.add(response.json()["ParentStudy"])
    (study,) = studies
    return study


def a_study(n: int = 3, **kwargs: object) -> list:
    study, series = dicomgen.uid(), dicomgen.uid()
    return [dicomgen.photo_dataset(study_uid=study, series_uid=series, InstanceNumber=i + 1, **kwargs) for i in range(n)]


def stored(ologies, uid: str):  # type: ignore[no-untyped-def]
    return dcmread(ologies.services.repository.open_instance(uid))


def same_image(sent, received) -> None:  # type: ignore[no-untyped-def]
    assert received.SOPInstanceUID == sent.SOPInstanceUID
    assert received.StudyInstanceUID == sent.StudyInstanceUID
    assert received.SeriesInstanceUID == sent.SeriesInstanceUID
    assert received.PatientID == sent.PatientID
    assert str(received.PatientName) == str(sent.PatientName)
    assert received.PixelData == sent.PixelData


def test_orthanc_sends_a_study_over_dicomweb(ologies, orthanc):
    datasets = a_study(name="Gwenllïan^Dŵr")
    study = upload_to_orthanc(orthanc, datasets)
    response = orthanc.post(f"{ORTHANC}/dicom-web/servers/ologies/stow", json={"Resources": [study]}, timeout=60)
    assert response.status_code == 200, response.text
    for ds in datasets:
        received = stored(ologies, ds.SOPInstanceUID)
        same_image(ds, received)
        assert get_private(received)["IngestRoute"] == "stowrs"
    # sending it again changes nothing
    assert orthanc.post(f"{ORTHANC}/dicom-web/servers/ologies/stow", json={"Resources": [study]}, timeout=60).status_code == 200


def test_orthanc_sends_a_study_over_c_store(ologies, orthanc):
    datasets = a_study(gps=True)
    study = upload_to_orthanc(orthanc, datasets)
    response = orthanc.post(f"{ORTHANC}/modalities/ologies/store", json={"Resources": [study], "Synchronous": True}, timeout=120)
    assert response.status_code == 200, response.text
    for ds in datasets:
        received = stored(ologies, ds.SOPInstanceUID)
        same_image(ds, received)
        assert "GPSLatitude" not in received
        private = get_private(received)
        assert (private["IngestRoute"], received.file_meta.SourceApplicationEntityTitle) == ("cstore", "ORTHANC")


def test_orthanc_echo_and_refused_input(ologies, orthanc):
    assert orthanc.post(f"{ORTHANC}/modalities/ologies/echo", json={}, timeout=30).status_code == 200
    bad = a_study(1, patient_id="H7788")
    study = upload_to_orthanc(orthanc, bad)
    response = orthanc.post(f"{ORTHANC}/dicom-web/servers/ologies/stow", json={"Resources": [study]}, timeout=60)
    assert response.status_code >= 400  # Orthanc reports the FailedSOPSequence as an error
    with pytest.raises(Exception):
        ologies.services.repository.locate(bad[0].SOPInstanceUID)


def test_orthanc_retrieves_back_over_wado_rs_and_qido_rs(ologies, orthanc, tmp_path):
    datasets = a_study(2)
    study_id = upload_to_orthanc(orthanc, datasets)
    assert orthanc.post(f"{ORTHANC}/dicom-web/servers/ologies/stow", json={"Resources": [study_id]}, timeout=60).status_code == 200
    orthanc.delete(f"{ORTHANC}/studies/{study_id}", timeout=30).raise_for_status()
    study_uid = datasets[0].StudyInstanceUID
    found = orthanc.post(
        f"{ORTHANC}/dicom-web/servers/ologies/get",
        json={"Uri": "/studies", "Arguments": {"StudyInstanceUID": study_uid}}, timeout=30,
    )  # fmt: skip
    assert found.status_code == 200, found.text
    assert found.json()[0]["0020000D"]["Value"] == [study_uid]
    response = orthanc.post(
        f"{ORTHANC}/dicom-web/servers/ologies/retrieve",
        json={"Resources": [{"Study": study_uid}], "Synchronous": True}, timeout=120,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    for ds in datasets:
        lookup = orthanc.post(f"{ORTHANC}/tools/lookup", data=ds.SOPInstanceUID, timeout=30).json()
        assert lookup and lookup[0]["Type"] == "Instance"
        back = dcmread(io.BytesIO(orthanc.get(f"{ORTHANC}/instances/{lookup[0]['ID']}/file", timeout=30).content))
        same_image(ds, back)
        assert get_private(back)["ContentSHA256"]  # our provenance went with it


@pytest.mark.skipif(dciodvfy_path() is None, reason="dciodvfy (dicom3tools) is not installed")
def test_what_ologies_serves_passes_dciodvfy(ologies, orthanc, tmp_path):
    datasets = a_study(1)
    study_id = upload_to_orthanc(orthanc, datasets)
    assert orthanc.post(f"{ORTHANC}/modalities/ologies/store", json={"Resources": [study_id], "Synchronous": True}, timeout=60).status_code == 200
    ds = datasets[0]
    url = f"{ologies.dicomweb}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    response = requests.get(url, headers={**ologies.headers, "Accept": ANY_SYNTAX}, timeout=30)
    assert response.status_code == 200
    boundary = response.headers["content-type"].split("boundary=")[1].split(";")[0]
    body = response.content.split(b"--" + boundary.encode())[1].split(b"\r\n\r\n", 1)[1][:-2]
    path = tmp_path / "served.dcm"
    path.write_bytes(body)
    sent = tmp_path / "sent.dcm"
    sent.write_bytes(dicomgen.part10(ds))
    assert dciodvfy_errors(sent) == []  # a valid VL Photographic Image went in...
    assert dciodvfy_errors(path) == []  # ...and what Ologies serves is still valid
