"""DICOMweb and the DIMSE listener on the production backends: S3 (SeaweedFS, MinIO) plus
Elasticsearch, as tests/web/test_dicomweb.py and tests/unit/test_dimse_listener.py do on the
embedded ones. Real servers only (infra/*.sh; tests/integration/conftest.py skips or fails)."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from pydicom import Dataset, dcmread
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from ingest.cli import main as cli
from ingest.dimse import DimseListener
from tests import dicomgen
from tests.conftest import NHS_A
from tests.integration.conftest import authorised
from tests.web.test_dicomweb import ANY_SYNTAX, JSON, failures, parse_multipart, referenced, stow, values
from web.app import create_app

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(backends, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    for name, value in backends.environment(OLOGIES_SPOOL_DIR=str(tmp_path)).items():
        monkeypatch.setenv(name, value)
    assert cli(["init"]) == 0
    return backends.settings(tmp_path, dimse_peers={"MODALITY": {"trust": "REM"}, "VIEWER": {"trust": "REM", "role": "clinician"}})


@pytest.fixture
def app(settings):  # type: ignore[no-untyped-def]
    return create_app(settings, reconcile=False)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    with TestClient(app) as test_client:
        yield authorised(test_client)


def test_stow_qido_wado_on_s3_and_elasticsearch(client):
    study = dicomgen.uid()
    datasets = [dicomgen.photo_dataset(study_uid=study, series_uid=f"{study}.1", InstanceNumber=n) for n in (1, 2)]
    datasets.append(dicomgen.photo_dataset(study_uid=study, sop_class=dicomgen.DERMOSCOPIC, gps=True))
    response = stow(client, [dicomgen.part10(d) for d in datasets] + [dicomgen.nested(300)])
    assert response.status_code == 202
    assert sorted(referenced(response)) == sorted(d.SOPInstanceUID for d in datasets)
    again = stow(client, [dicomgen.part10(datasets[0])])
    assert again.status_code == 200
    datasets[1].ImageComments = "changed"
    assert failures(stow(client, [dicomgen.part10(datasets[1])])) == [(datasets[1].SOPInstanceUID, 0x0111)]

    (found,) = client.get(f"/dicomweb/studies?StudyInstanceUID={study}", headers={"Accept": JSON}).json()
    assert values(found, "00201208") == [3] and values(found, "00201206") == [2]
    assert values(found, "00080061") == ["DMS", "XC"]
    by_name = client.get("/dicomweb/studies?PatientName=sian&fuzzymatching=true&limit=100", headers={"Accept": JSON}).json()
    assert study in [values(s, "0020000D")[0] for s in by_name]
    instances = client.get(f"/dicomweb/studies/{study}/series/{study}.1/instances", headers={"Accept": JSON}).json()
    assert [values(i, "00200013")[0] for i in instances] == [1, 2]
    assert client.get("/dicomweb/studies?StudyDate=20241301", headers={"Accept": JSON}).status_code == 400

    parts = parse_multipart(client.get(f"/dicomweb/studies/{study}", headers={"Accept": ANY_SYNTAX}))
    assert sorted(dcmread(io.BytesIO(body)).SOPInstanceUID for _, body in parts) == sorted(d.SOPInstanceUID for d in datasets)
    assert all("GPSLatitude" not in dcmread(io.BytesIO(body)) for _, body in parts)
    ds = datasets[0]
    url = f"/dicomweb/studies/{study}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    (meta,) = client.get(url + "/metadata").json()
    assert values(meta, "00080018") == [ds.SOPInstanceUID]
    assert client.get(url + "/thumbnail").status_code == 200


def test_dimse_store_and_find_on_s3_and_elasticsearch(app):
    services = app.state.services
    listener = DimseListener(services)  # store worker processes open their own S3 and ES clients
    listener.start("127.0.0.1", 0)
    try:
        study = dicomgen.uid()
        datasets = [dicomgen.photo_dataset(study_uid=study) for _ in range(3)]
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(dicomgen.VL_PHOTOGRAPHIC, ["1.2.840.10008.1.2.4.50"])
        assoc = ae.associate("127.0.0.1", listener.port, ae_title="OLOGIES")
        assert assoc.is_established
        assert [int(assoc.send_c_store(d).Status) for d in datasets] == [0, 0, 0]
        assoc.release()
        for ds in datasets:
            assert services.repository.read_instance(ds.SOPInstanceUID).PixelData == ds.PixelData
        viewer = AE(ae_title="VIEWER")
        viewer.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        assoc = viewer.associate("127.0.0.1", listener.port, ae_title="OLOGIES")
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "STUDY"
        identifier.StudyInstanceUID = study
        identifier.PatientID = NHS_A
        identifier.NumberOfStudyRelatedInstances = None
        found = [ident for status, ident in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind) if status and status.Status == 0xFF00]
        assoc.release()
        assert [int(f.NumberOfStudyRelatedInstances) for f in found] == [3]
    finally:
        listener.stop()
