"""The ``dicomweb-client`` package (ImagingDataCommons) against /dicomweb over real HTTP:
STOW, QIDO and WADO round trips, as a research pipeline or a viewer back end would use it."""

from __future__ import annotations

import io

import pytest
import requests
from PIL import Image
from pydicom.encaps import generate_frames

from tests import dicomgen
from tests.conftest import NHS_A, NHS_B

pytestmark = pytest.mark.integration
dicomweb_client = pytest.importorskip("dicomweb_client")

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"


@pytest.fixture(scope="module")
def client(ologies):
    return dicomweb_client.DICOMwebClient(url=ologies.dicomweb, headers=ologies.headers)


@pytest.fixture(scope="module")
def sent(client):
    study = dicomgen.uid()
    datasets = [
        dicomgen.photo_dataset(study_uid=study, series_uid=f"{study}.1", InstanceNumber=n, AccessionNumber="DWC1")
        for n in (1, 2)
    ] + [dicomgen.photo_dataset(study_uid=study, native=True, AccessionNumber="DWC1", gps=True)]
    response = client.store_instances(datasets)
    refs = response.ReferencedSOPSequence
    assert sorted(r.ReferencedSOPInstanceUID for r in refs) == sorted(d.SOPInstanceUID for d in datasets)
    return datasets


def test_store_twice_is_idempotent(client, sent):
    response = client.store_instances(sent[:1])
    assert response.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == sent[0].SOPInstanceUID


def test_store_failure_is_reported_per_instance(client, ologies):
    bad = dicomgen.photo_dataset(patient_id="H5")
    with pytest.raises(requests.HTTPError) as caught:
        client.store_instances([bad])
    response = caught.value.response
    assert response.status_code == 409
    (failed,) = response.json()["00081198"]["Value"]
    assert failed["00081155"]["Value"] == [bad.SOPInstanceUID] and failed["00081197"]["Value"] == [0xA900]


def test_search(client, sent):
    study = sent[0].StudyInstanceUID
    studies = client.search_for_studies(search_filters={"AccessionNumber": "DWC1"})
    assert [s["0020000D"]["Value"][0] for s in studies] == [study]
    assert studies[0]["00201208"]["Value"] == [3]
    by_patient = client.search_for_studies(search_filters={"PatientID": NHS_A}, fields=["StudyDescription"])
    assert study in [s["0020000D"]["Value"][0] for s in by_patient]
    assert client.search_for_studies(search_filters={"PatientID": NHS_B, "AccessionNumber": "DWC1"}) == []
    series = client.search_for_series(study_instance_uid=study)
    assert len(series) == 2
    instances = client.search_for_instances(study_instance_uid=study, series_instance_uid=f"{study}.1")
    assert sorted(i["00200013"]["Value"][0] for i in instances) == [1, 2]
    fuzzy = client.search_for_studies(search_filters={"PatientName": "sian"}, fuzzymatching=True)
    assert study in [s["0020000D"]["Value"][0] for s in fuzzy]
    limited = client.search_for_studies(limit=1, offset=0)
    assert len(limited) == 1


def test_retrieve_instance_in_its_stored_syntax(client, sent):
    ds = sent[0]
    got = client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
                                   media_types=(("application/dicom", JPEG_BASELINE),))  # fmt: skip
    assert got.SOPInstanceUID == ds.SOPInstanceUID and got.PixelData == ds.PixelData
    native = sent[2]
    got = client.retrieve_instance(native.StudyInstanceUID, native.SeriesInstanceUID, native.SOPInstanceUID)
    assert got.PixelData == native.PixelData and "GPSLatitude" not in got


def test_jpeg_objects_are_served_as_stored_never_transcoded(client, sent):
    ds = sent[0]
    got = client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)  # transfer-syntax=*
    assert got.file_meta.TransferSyntaxUID == JPEG_BASELINE and got.PixelData == ds.PixelData
    with pytest.raises(requests.HTTPError) as caught:
        client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
                                 media_types=(("application/dicom", "1.2.840.10008.1.2.1"),))  # fmt: skip
    assert caught.value.response.status_code == 406


def test_retrieve_series_metadata_frames_and_rendered(client, sent):
    ds = sent[0]
    series = client.retrieve_series(ds.StudyInstanceUID, ds.SeriesInstanceUID, media_types=(("application/dicom", JPEG_BASELINE),))
    assert sorted(d.SOPInstanceUID for d in series) == sorted(d.SOPInstanceUID for d in sent[:2])
    metadata = client.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert metadata["00080018"]["Value"] == [ds.SOPInstanceUID] and "BulkDataURI" in metadata["7FE00010"]
    study_metadata = client.retrieve_study_metadata(ds.StudyInstanceUID)
    assert len(study_metadata) == 3
    (frame,) = client.retrieve_instance_frames(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, [1],
                                                media_types=(("image/jpeg", JPEG_BASELINE),))  # fmt: skip
    assert frame == next(generate_frames(ds.PixelData, number_of_frames=1))
    rendered = client.retrieve_instance_rendered(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
                                                  media_types=("image/jpeg",), params={"viewport": "100,100"})  # fmt: skip
    assert max(Image.open(io.BytesIO(rendered)).size) <= 100
    (bulk,) = client.retrieve_bulkdata(metadata["7FE00010"]["BulkDataURI"], media_types=(("image/jpeg", JPEG_BASELINE),))
    assert bulk == frame


def test_retrieve_bulkdata_of_a_native_instance(client, sent):
    """retrieve_bulkdata asks for multipart/related; type="*/*" by default, or
    type="application/octet-stream" (the standard's default for bulk data)."""
    native = sent[2]
    metadata = client.retrieve_instance_metadata(native.StudyInstanceUID, native.SeriesInstanceUID, native.SOPInstanceUID)
    uri = metadata["7FE00010"]["BulkDataURI"]
    assert client.retrieve_bulkdata(uri) == [native.PixelData]
    assert client.retrieve_bulkdata(uri, media_types=("application/octet-stream",)) == [native.PixelData]
    assert list(client.iter_bulkdata(uri, media_types=(("application/octet-stream", "1.2.840.10008.1.2.1"),))) == [native.PixelData]
