"""DICOMweb under /dicomweb: STOW-RS (DICOM and DICOM JSON + bulk data), QIDO-RS and WADO-RS,
with the shapes clients parse, the standard's status codes, bad input, and access control."""

from __future__ import annotations

import base64
import io
import json
import socket

import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.encaps import generate_frames

from converters import dicom as dcm
from repository.private_tags import get_private
from tests import dicomgen, imagegen
from tests.conftest import NHS_A, NHS_B, api_key, patient_fields
from tests.dicomvalidate import dciodvfy_errors, dciodvfy_path

JSON = "application/dicom+json"
ANY_SYNTAX = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def related(parts: list[bytes], boundary: str = "XyZ", part_type: str = "application/dicom", root: str | None = None) -> tuple[bytes, dict[str, str]]:
    body = b"".join(f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + p + b"\r\n" for p in parts)
    body += f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f'multipart/related; type="{root or part_type}"; boundary={boundary}', "Accept": JSON}


def stow(client, parts: list[bytes], path: str = "/dicomweb/studies"):  # type: ignore[no-untyped-def]
    body, headers = related(parts)
    return client.post(path, content=body, headers=headers)


def values(dataset: dict, tag: str) -> list:
    return (dataset.get(tag) or {}).get("Value", [])


def referenced(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [values(item, "00081155")[0] for item in values(response.json(), "00081199")]


def failures(response) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    return [(values(i, "00081155")[0] if values(i, "00081155") else "", values(i, "00081197")[0]) for i in values(response.json(), "00081198")]


def other_failures(response) -> list[int]:  # type: ignore[no-untyped-def]
    return [values(i, "00081197")[0] for i in values(response.json(), "0008119A")]


def parse_multipart(response) -> list[tuple[dict[str, str], bytes]]:  # type: ignore[no-untyped-def]
    content_type = response.headers["content-type"]
    boundary = content_type.split("boundary=")[1].split(";")[0].strip('"')
    parts = []
    for chunk in response.content.split(b"--" + boundary.encode())[1:-1]:
        head, _, body = chunk[2:].partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parts.append(({k.lower(): v for k, v in headers.items()}, body[:-2]))
    return parts


def stored_instances(services) -> list[str]:  # type: ignore[no-untyped-def]
    return list(services.repository.iter_instance_keys())


# -- STOW-RS --------------------------------------------------------------------------------------
def test_stow_of_good_and_bad_parts_is_202_with_a_line_for_each(client, services):
    good = dicomgen.photo_dataset()
    response = stow(client, [
        dicomgen.part10(good), b"this is not DICOM", dicomgen.truncated(dicomgen.photo_file()),
        dicomgen.deflate_bomb(64), dicomgen.nested(300), dicomgen.lying_length(),
        dicomgen.photo_file(patient_id="H123456"),
    ])  # fmt: skip
    assert response.status_code == 202
    assert response.headers["content-type"].startswith(JSON)
    assert referenced(response) == [good.SOPInstanceUID]
    (ref,) = values(response.json(), "00081199")
    assert values(ref, "00081190")[0].endswith(f"/dicomweb/studies/{good.StudyInstanceUID}/series/{good.SeriesInstanceUID}/instances/{good.SOPInstanceUID}")
    assert "00081196" not in ref  # nothing was coerced
    assert values(response.json(), "00081190") == [f"http://testserver/dicomweb/studies/{good.StudyInstanceUID}"]
    assert [reason for _, reason in failures(response)] == [dcm.DATASET_DOES_NOT_MATCH]  # the hospital number
    assert sorted(other_failures(response)) == sorted([dcm.CANNOT_UNDERSTAND] * 4 + [dcm.OUT_OF_RESOURCES])
    assert len(stored_instances(services)) == 1
    assert client.get("/api/v1/health").status_code in (200, 404)  # the server is still up
    assert "H123456" not in response.headers.get("warning", "")  # what was refused, not the value


def test_ten_instances_three_invalid_seven_stored_and_searchable(client, services):
    """RELIABILITY.md P1: the seven are fully stored and searchable, the three absent."""
    study = dicomgen.uid()
    good = [dicomgen.photo_dataset(study_uid=study) for _ in range(7)]
    bad = [dicomgen.photo_dataset(study_uid=study, patient_id="H1"),
           dicomgen.photo_dataset(study_uid=study, sop_class=dicomgen.CT_IMAGE),
           dicomgen.photo_dataset(study_uid=study, native=True, Rows=4000)]  # fmt: skip
    response = stow(client, [dicomgen.part10(d) for d in good[:4] + bad + good[4:]])
    assert response.status_code == 202
    assert sorted(referenced(response)) == sorted(d.SOPInstanceUID for d in good)
    assert sorted(uid for uid, _ in failures(response)) == sorted(d.SOPInstanceUID for d in bad)
    found = client.get(f"/dicomweb/studies/{study}/instances", headers={"Accept": JSON}).json()
    assert sorted(values(i, "00080018")[0] for i in found) == sorted(d.SOPInstanceUID for d in good)
    assert len(stored_instances(services)) == 7


def test_stow_indexes_its_instances_in_one_write_and_they_are_searchable(client, services, monkeypatch):
    index = services.repository.index.wrapped
    writes: list[int] = []
    real = index.upsert_many

    def counted(docs):  # type: ignore[no-untyped-def]
        docs = list(docs)
        writes.append(len(docs))
        return real(docs)

    monkeypatch.setattr(index, "upsert_many", counted)
    monkeypatch.setattr(index, "upsert", lambda doc: writes.append(1))  # must not be used for a batch
    ds = [dicomgen.photo_dataset(patient_id=NHS_B) for _ in range(4)]
    response = stow(client, [dicomgen.part10(d) for d in ds])
    assert response.status_code == 200
    assert writes == [4]  # one index write (on Elasticsearch, one refresh), not four
    assert not list(services.repository.store.iter_keys("pending-index/"))
    found = client.get("/dicomweb/instances", params={"PatientID": NHS_B}, headers={"Accept": JSON}).json()
    assert sorted(values(i, "00080018")[0] for i in found) == sorted(d.SOPInstanceUID for d in ds)


def test_stow_stores_the_parts_of_a_request_several_at_a_time_and_answers_in_part_order(client, services, monkeypatch):
    import threading
    import time

    repository = services.repository
    real, lock, now, most = repository.store_instance, threading.Lock(), [0], [0]

    def slow_store(item, **kwargs):  # type: ignore[no-untyped-def]
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(0.1)  # an object store's round trip
        try:
            return real(item, **kwargs)
        finally:
            with lock:
                now[0] -= 1

    monkeypatch.setattr(repository, "store_instance", slow_store)
    ds = [dicomgen.photo_dataset(patient_id=NHS_B) for _ in range(8)]
    bad = dicomgen.photo_dataset(patient_id="H99887")  # refused before storing
    response = stow(client, [dicomgen.part10(d) for d in ds[:4]] + [dicomgen.part10(bad)] + [dicomgen.part10(d) for d in ds[4:]])
    assert response.status_code == 202
    assert most[0] > 1  # not one after another
    assert referenced(response) == [d.SOPInstanceUID for d in ds]
    assert [uid for uid, _ in failures(response)] == [bad.SOPInstanceUID]
    assert len(stored_instances(services)) == 8
    assert not list(services.repository.store.iter_keys("pending-index/"))


def test_stow_with_the_index_down_stores_everything_pending_and_answers_202(client, services, monkeypatch):
    from repository.errors import IndexUnavailable

    def down(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise IndexUnavailable("index is down")

    monkeypatch.setattr(services.repository.index.wrapped, "upsert_many", down)
    ds = [dicomgen.photo_dataset() for _ in range(3)]
    response = stow(client, [dicomgen.part10(d) for d in ds])
    assert response.status_code == 202
    assert sorted(referenced(response)) == sorted(d.SOPInstanceUID for d in ds)
    assert len(list(services.repository.store.iter_keys("pending-index/"))) == 3  # the reconciler's


def test_stow_where_nothing_is_stored_is_409(client, services):
    response = stow(client, [b"junk", dicomgen.photo_file(sop_class=dicomgen.CT_IMAGE)])
    assert response.status_code == 409
    assert [reason for _, reason in failures(response)] == [dcm.SOP_CLASS_NOT_SUPPORTED]
    assert other_failures(response) == [dcm.CANNOT_UNDERSTAND]
    assert values(response.json(), "00081199") == []
    assert stored_instances(services) == []


def test_stow_all_stored_is_200(client):
    ds = [dicomgen.photo_dataset() for _ in range(3)]
    response = stow(client, [dicomgen.part10(d) for d in ds])
    assert response.status_code == 200
    assert sorted(referenced(response)) == sorted(d.SOPInstanceUID for d in ds)
    assert "warning" not in response.headers


def test_stow_strips_gps_and_jpeg_metadata_with_a_coercion_warning(client, services):
    ds = dicomgen.photo_dataset(gps=True, jpeg_bytes=dicomgen.leaky_jpeg())
    response = stow(client, [dicomgen.part10(ds)])
    assert response.status_code == 202
    (ref,) = values(response.json(), "00081199")
    assert values(ref, "00081196") == [dcm.COERCED]
    raw = services.repository.store.open(services.repository.locate(ds.SOPInstanceUID)).read()
    for leak in imagegen.LEAK_MARKERS + (b"Dr Example Owner",):
        assert leak not in raw
    stored = dcmread(io.BytesIO(raw))
    assert "GPSLatitude" not in stored
    assert get_private(stored)["IngestRoute"] == "stowrs"
    assert get_private(stored)["TrustODSCode"] == "REM"  # the caller's trust


def test_stow_resend_is_a_no_op_and_different_content_is_a_conflict(client, services):
    ds = dicomgen.photo_dataset()
    data = dicomgen.part10(ds)
    assert stow(client, [data]).status_code == 200
    again = stow(client, [data])
    assert again.status_code == 200 and referenced(again) == [ds.SOPInstanceUID]
    ds.ImageComments = "changed"
    changed = stow(client, [dicomgen.part10(ds)])
    assert changed.status_code == 409
    assert failures(changed) == [(ds.SOPInstanceUID, dcm.DUPLICATE_SOP_INSTANCE)]
    other_patient = dicomgen.photo_dataset(sop_uid=ds.SOPInstanceUID, patient_id=NHS_B)
    refused = stow(client, [dicomgen.part10(other_patient)])
    assert failures(refused) == [(ds.SOPInstanceUID, dcm.DUPLICATE_SOP_INSTANCE)]
    assert NHS_A not in json.dumps(refused.json()) + refused.headers.get("warning", "")
    assert len(stored_instances(services)) == 1


def test_stow_of_one_uid_for_two_patients_in_one_request_stores_one_and_refuses_the_other(client, services):
    # The parts are stored several at a time: the two race for one object key.
    for _ in range(5):
        first = dicomgen.photo_dataset(patient_id=NHS_A)
        uids = dict(sop_uid=first.SOPInstanceUID, study_uid=first.StudyInstanceUID, series_uid=first.SeriesInstanceUID)
        second = dicomgen.photo_dataset(patient_id=NHS_B, **uids)
        response = stow(client, [dicomgen.part10(first), dicomgen.part10(second)])
        assert response.status_code == 202
        assert referenced(response) == [first.SOPInstanceUID]
        assert failures(response) == [(first.SOPInstanceUID, dcm.DUPLICATE_SOP_INSTANCE)]
        indexed = services.repository.index.get(first.SOPInstanceUID)["PatientID"]
        assert str(services.repository.read_instance_header(first.SOPInstanceUID).PatientID) == indexed


def test_stow_into_a_study_refuses_instances_of_another(client):
    ds = dicomgen.photo_dataset()
    response = stow(client, [dicomgen.part10(ds)], path="/dicomweb/studies/2.25.12345")
    assert response.status_code == 409
    assert failures(response) == [(ds.SOPInstanceUID, dcm.DATASET_DOES_NOT_MATCH)]
    inside = stow(client, [dicomgen.part10(ds)], path=f"/dicomweb/studies/{ds.StudyInstanceUID}")
    assert inside.status_code == 200


def test_parts_beyond_the_memory_budget_are_spooled_to_disk(client, services, monkeypatch):
    from web.dicomweb import multipart

    monkeypatch.setattr(multipart, "MEMORY_BUDGET", 50_000)  # the first part fits, the rest do not

    def read_whole(part):  # type: ignore[no-untyped-def]
        raise AssertionError(f"part {part.number} was read into memory: a spooled part is mapped")

    monkeypatch.setattr(multipart.ReceivedPart, "read", read_whole)
    datasets = [dicomgen.photo_dataset(native=True) for _ in range(3)]
    response = stow(client, [dicomgen.part10(d) for d in datasets])
    assert response.status_code == 200
    assert sorted(referenced(response)) == sorted(d.SOPInstanceUID for d in datasets)


def test_stow_of_a_single_application_dicom_body(client):
    ds = dicomgen.photo_dataset()
    response = client.post("/dicomweb/studies", content=dicomgen.part10(ds), headers={"Content-Type": "application/dicom"})
    assert response.status_code == 200 and referenced(response) == [ds.SOPInstanceUID]


@pytest.mark.parametrize(
    "content_type, status",
    [
        ("multipart/related; boundary=XyZ", 400),  # no type parameter
        ('multipart/related; type="application/dicom"', 400),  # no boundary
        ('multipart/related; type="application/dicom+xml"; boundary=XyZ', 415),
        ("application/json", 415),
        ("multipart/form-data; boundary=XyZ", 415),
    ],
)
def test_malformed_stow_requests(client, services, content_type, status):
    body, _ = related([dicomgen.photo_file()])
    response = client.post("/dicomweb/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert stored_instances(services) == []


def test_compressed_stow_bodies_are_refused(client, services):
    import gzip

    body, headers = related([dicomgen.photo_file()])
    response = client.post("/dicomweb/studies", content=gzip.compress(body), headers={**headers, "Content-Encoding": "gzip"})
    assert response.status_code == 415 and "Content-Encoding" in response.json()["error"]["message"]
    assert stored_instances(services) == []


def test_stow_body_without_a_closing_boundary_is_400(client, services):
    body, headers = related([dicomgen.photo_file()])
    response = client.post("/dicomweb/studies", content=body[:-12], headers=headers)
    assert response.status_code == 400
    assert stored_instances(services) == []


def test_stow_asking_for_xml_is_406(client):
    body, headers = related([dicomgen.photo_file()])
    response = client.post("/dicomweb/studies", content=body, headers={**headers, "Accept": "application/dicom+xml"})
    assert response.status_code == 406


# -- STOW-RS: DICOM JSON with bulk data (IHE Web Image Capture) ----------------------------------
def wic_request(metadata: list[dict], bulk: list[tuple[str, str, bytes]]) -> tuple[bytes, dict[str, str]]:
    boundary = "WiC"
    body = f"--{boundary}\r\nContent-Type: application/dicom+json\r\n\r\n".encode() + json.dumps(metadata).encode() + b"\r\n"
    for media_type, location, data in bulk:
        body += f"--{boundary}\r\nContent-Type: {media_type}\r\nContent-Location: {location}\r\n\r\n".encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f'multipart/related; type="application/dicom+json"; boundary={boundary}', "Accept": JSON}


def wic_metadata(uri: str, **extra: object) -> dict:
    ds = dicomgen.photo_dataset(native=True)
    for keyword in ("PixelData", "Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated",
                    "BitsStored", "HighBit", "PixelRepresentation", "PlanarConfiguration"):  # fmt: skip
        delattr(ds, keyword)
    data = ds.to_json_dict()
    data["7FE00010"] = {"vr": "OB", "BulkDataURI": uri}
    data.update(extra)
    return data


def test_stow_json_with_a_jpeg_wraps_it_without_exif(client, services):
    leaky = imagegen.jpeg(imagegen.photo(320, 240), exif=imagegen.exif_bytes(orientation=6))
    metadata = wic_metadata("http://example.invalid/bulk/1")
    body, headers = wic_request([metadata], [("image/jpeg", "http://example.invalid/bulk/1", leaky)])
    response = client.post("/dicomweb/studies", content=body, headers=headers)
    assert response.status_code == 202, response.text  # stored, with the EXIF coerced away
    (uid,) = referenced(response)
    assert uid == metadata["00080018"]["Value"][0]
    raw = services.repository.store.open(services.repository.locate(uid)).read()
    assert b"GPSLatitude" not in raw and imagegen.OWNER.encode() not in raw
    stored = dcmread(io.BytesIO(raw))
    assert (stored.Rows, stored.Columns) == (320, 240)  # turned upright (orientation 6)
    assert stored.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert get_private(stored)["OriginalMediaType"] == "image/jpeg"


def test_stow_json_with_a_png(client, services):
    png = imagegen.png(imagegen.photo(64, 48))
    body, headers = wic_request([wic_metadata("cid:png1")], [])
    body = body.replace(b"--WiC--", b"--WiC\r\nContent-Type: image/png\r\nContent-ID: <png1>\r\n\r\n" + png + b"\r\n--WiC--")
    response = client.post("/dicomweb/studies", content=body, headers=headers)
    assert response.status_code == 200, response.text
    stored = dcmread(io.BytesIO(services.repository.store.open(services.repository.locate(referenced(response)[0])).read()))
    assert stored.PhotometricInterpretation == "RGB" and stored.Rows == 48


def test_stow_json_with_a_video_that_is_not_one_is_a_per_instance_failure(client, services):
    mp4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64
    body, headers = wic_request([wic_metadata("v1")], [("video/mp4", "v1", mp4)])
    response = client.post("/dicomweb/studies", content=body, headers=headers)
    assert response.status_code == 409
    assert [r for _, r in failures(response)] == [dcm.CANNOT_UNDERSTAND]
    assert stored_instances(services) == []


def test_stow_json_bulk_data_uri_outside_the_request_is_400_and_never_fetched(client, services):
    canary = socket.socket()
    canary.bind(("127.0.0.1", 0))
    canary.listen(5)
    canary.settimeout(0.5)
    port = canary.getsockname()[1]
    for uri in (f"http://127.0.0.1:{port}/pixels", "http://169.254.169.254/latest/meta-data", "file:///etc/passwd"):
        body, headers = wic_request([wic_metadata(uri)], [])
        response = client.post("/dicomweb/studies", content=body, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["field"] == "BulkDataURI"
    with pytest.raises(socket.timeout):
        canary.accept()  # no connection was ever made
    canary.close()
    assert stored_instances(services) == []


# -- QIDO-RS --------------------------------------------------------------------------------------
@pytest.fixture
def archive(client):
    """Two patients: A has a study of two series (XC, DMS), B one study."""
    a1 = dicomgen.photo_dataset(study_uid="2.25.1001", series_uid="2.25.10011", StudyDate="20240301",
                                AccessionNumber="ACC1", InstanceNumber=2)  # fmt: skip
    a2 = dicomgen.photo_dataset(study_uid="2.25.1001", series_uid="2.25.10011", StudyDate="20240301", AccessionNumber="ACC1")
    a3 = dicomgen.photo_dataset(study_uid="2.25.1001", series_uid="2.25.10012", sop_class=dicomgen.DERMOSCOPIC,
                                StudyDate="20240301", AccessionNumber="ACC1")  # fmt: skip
    b1 = dicomgen.photo_dataset(study_uid="2.25.2002", series_uid="2.25.20021", patient_id=NHS_B,
                                name="Llŷr^Zoë", StudyDate="20250115", AccessionNumber="ACC2")  # fmt: skip
    assert stow(client, [dicomgen.part10(d) for d in (a1, a2, a3, b1)]).status_code == 200
    return {"a1": a1, "a2": a2, "a3": a3, "b1": b1}


def qido(client, path: str, accept: str = JSON):  # type: ignore[no-untyped-def]
    response = client.get("/dicomweb" + path, headers={"Accept": accept})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(JSON)
    return response.json()


def test_qido_studies_with_counts_and_modalities(client, archive):
    (study,) = qido(client, f"/studies?PatientID={NHS_A}")
    assert values(study, "0020000D") == ["2.25.1001"]
    assert values(study, "00201206") == [2] and values(study, "00201208") == [3]
    assert values(study, "00080061") == ["DMS", "XC"]
    assert values(study, "00100010") == [{"Alphabetic": "O'Brien-Jones^Siân"}]
    assert values(study, "00081190")[0].endswith("/dicomweb/studies/2.25.1001")


@pytest.mark.parametrize(
    "query, expected",
    [
        ("StudyDate=20240101-20241231", ["2.25.1001"]),
        ("StudyDate=20250101-", ["2.25.2002"]),
        ("00080020=-20240301", ["2.25.1001"]),
        ("StudyInstanceUID=2.25.2002,2.25.1001", ["2.25.1001", "2.25.2002"]),
        ("AccessionNumber=ACC?", ["2.25.1001", "2.25.2002"]),
        ("PatientName=llyr*", ["2.25.2002"]),
        ("PatientName=ZOE&fuzzymatching=true", ["2.25.2002"]),
        ("PatientName=ZOE", []),
        ("ModalitiesInStudy=DMS", ["2.25.1001"]),
        ("PatientName=*", ["2.25.1001", "2.25.2002"]),
    ],
)
def test_qido_study_matching(client, archive, query, expected):
    assert [values(s, "0020000D")[0] for s in qido(client, f"/studies?{query}")] == expected


def test_qido_series_and_instances(client, archive):
    series = qido(client, "/studies/2.25.1001/series")
    assert [(values(s, "0020000E")[0], values(s, "00201209")[0], values(s, "00080060")[0]) for s in series] == [
        ("2.25.10011", 2, "XC"), ("2.25.10012", 1, "DMS")]  # fmt: skip
    instances = qido(client, "/studies/2.25.1001/series/2.25.10011/instances")
    assert [values(i, "00200013")[0] for i in instances] == [1, 2]  # by Instance Number
    assert values(instances[0], "00080056") == ["ONLINE"]
    assert values(instances[0], "00083002") == ["1.2.840.10008.1.2.4.50"]
    everything = qido(client, f"/instances?PatientID={NHS_A}&includefield=00081030")
    assert len(everything) == 3 and values(everything[0], "00081030") == ["Dermatology - Forearm"]
    assert "00201208" not in everything[0]  # study counts only on study results
    assert qido(client, "/series?Modality=DMS")[0]["0020000D"]["Value"] == ["2.25.1001"]


def test_qido_limit_offset_and_the_more_results_warning(client, archive):
    response = client.get("/dicomweb/studies?limit=1", headers={"Accept": JSON})
    assert len(response.json()) == 1 and "additional results" in response.headers["warning"]
    last = client.get("/dicomweb/studies?limit=1&offset=1", headers={"Accept": JSON})
    assert len(last.json()) == 1 and "warning" not in last.headers
    assert qido(client, "/studies?offset=5") == []


def test_qido_includefield_all(client, archive):
    (study,) = qido(client, f"/studies?PatientID={NHS_B}&includefield=all")
    assert values(study, "00100020") == [NHS_B] and "00200010" in study


@pytest.mark.parametrize(
    "query, fragment",
    [
        ("Foo=1", "unknown"),
        ("PatientWeight=70", "not indexed"),
        ("StudyDate=2024-01-01", "not a valid date"),
        ("StudyDate=20240230", "not a valid date"),
        ("StudyDate=20241231-20240101", "ends before it starts"),
        ("StudyTime=2500", "not a valid time"),
        ("StudyInstanceUID=2.25.*", "wildcards"),
        ("StudyInstanceUID=1.2.abc", "not a valid UID"),
        ("SOPInstanceUID=2.25.1", "instance-level attribute"),
        ("limit=0", "at least 1"),
        ("limit=ten", "whole number"),
        ("fuzzymatching=maybe", "true or false"),
        ("0040A730.00080100=X", "sequences"),
        ("NumberOfStudyRelatedInstances=3", "returned but not matched"),
        ("PatientID=1&PatientID=2", "more than once"),
        ("offset=60000", "must not exceed"),
    ],
)
def test_bad_qido_parameters_are_400_with_the_reason(client, archive, query, fragment):
    response = client.get(f"/dicomweb/studies?{query}", headers={"Accept": JSON})
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]["message"]


def test_qido_in_xml_is_406(client, archive):
    response = client.get("/dicomweb/studies", headers={"Accept": 'multipart/related; type="application/dicom+xml"'})
    assert response.status_code == 406


# -- WADO-RS --------------------------------------------------------------------------------------
def instance_url(ds) -> str:  # type: ignore[no-untyped-def]
    return f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def test_retrieve_study_as_stored(client, archive):
    response = client.get("/dicomweb/studies/2.25.1001", headers={"Accept": ANY_SYNTAX})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith('multipart/related; type="application/dicom"')
    parts = parse_multipart(response)
    assert len(parts) == 3
    uids = set()
    for headers, body in parts:
        assert headers["content-type"] == "application/dicom; transfer-syntax=1.2.840.10008.1.2.4.50"
        ds = dcmread(io.BytesIO(body))
        uids.add(ds.SOPInstanceUID)
        assert body[:128] == b"\0" * 128
    assert uids == {archive[k].SOPInstanceUID for k in ("a1", "a2", "a3")}
    series = parse_multipart(client.get("/dicomweb/studies/2.25.1001/series/2.25.10012", headers={"Accept": ANY_SYNTAX}))
    assert len(series) == 1


def test_retrieve_without_transfer_syntax_star_is_406_for_jpeg(client, archive):
    url = instance_url(archive["a1"])
    response = client.get(url, headers={"Accept": 'multipart/related; type="application/dicom"'})
    assert response.status_code == 406
    assert "transfer-syntax=*" in response.json()["error"]["message"]
    jpeg = client.get(url, headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'})
    assert jpeg.status_code == 200


def test_retrieve_native_object_by_default(client):
    ds = dicomgen.photo_dataset(native=True)
    stow(client, [dicomgen.part10(ds)])
    response = client.get(instance_url(ds), headers={"Accept": 'multipart/related; type="application/dicom"'})
    assert response.status_code == 200
    ((_, body),) = parse_multipart(response)
    assert dcmread(io.BytesIO(body)).PixelData == ds.PixelData


def test_metadata_with_bulk_data_uris(client, archive):
    (meta,) = qido(client, instance_url(archive["a1"])[len("/dicomweb"):] + "/metadata")
    assert values(meta, "00080018") == [archive["a1"].SOPInstanceUID]
    assert meta["7FE00010"]["BulkDataURI"].endswith(instance_url(archive["a1"]) + "/bulkdata/7FE00010")
    assert "InlineBinary" not in meta["7FE00010"]
    study = qido(client, "/studies/2.25.1001/metadata")
    assert len(study) == 3
    series = qido(client, "/studies/2.25.1001/series/2.25.10011/metadata")
    assert len(series) == 2


def test_frames_as_stored_and_decoded(client, archive):
    ds = archive["a1"]
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    response = client.get(instance_url(ds) + "/frames/1", headers={"Accept": 'multipart/related; type="image/jpeg"'})
    ((headers, body),) = parse_multipart(response)
    assert headers["content-type"].startswith("image/jpeg") and body == frame
    decoded = client.get(instance_url(ds) + "/frames/1", headers={"Accept": 'multipart/related; type="application/octet-stream"'})
    ((headers, body),) = parse_multipart(decoded)
    assert headers["content-type"].startswith("application/octet-stream")
    assert len(body) == ds.Rows * ds.Columns * 3
    assert client.get(instance_url(ds) + "/frames/2").status_code == 404


def test_bulk_data_with_range_requests(client):
    ds = dicomgen.photo_dataset(native=True)
    stow(client, [dicomgen.part10(ds)])
    url = instance_url(ds) + "/bulkdata/7FE00010"
    whole = client.get(url, headers={"Accept": "application/octet-stream"})
    assert whole.status_code == 200 and whole.content == ds.PixelData
    part = client.get(url, headers={"Accept": "application/octet-stream", "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == ds.PixelData[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(ds.PixelData)}"
    tail = client.get(url, headers={"Range": "bytes=-10"})
    assert tail.content == ds.PixelData[-10:]
    beyond = client.get(url, headers={"Range": f"bytes={len(ds.PixelData) + 5}-"})
    assert beyond.status_code == 416
    many = client.get(url, headers={"Range": ",".join(f"bytes={i}-{i + 1}" for i in range(1000))})
    assert many.status_code == 200  # many ranges: the whole value, never a quadratic merge


def test_rendered_and_thumbnail(client, archive):
    url = instance_url(archive["a1"])
    rendered = client.get(url + "/rendered", headers={"Accept": "image/jpeg"})
    assert rendered.status_code == 200 and rendered.headers["content-type"] == "image/jpeg"
    small = client.get(url + "/rendered?viewport=64,64")
    assert max(Image.open(io.BytesIO(small.content)).size) <= 64
    png = client.get(url + "/frames/1/rendered", headers={"Accept": "image/png"})
    assert png.headers["content-type"] == "image/png"
    thumb = client.get(url + "/thumbnail")
    assert thumb.status_code == 200 and max(Image.open(io.BytesIO(thumb.content)).size) <= 256
    assert client.get("/dicomweb/studies/2.25.1001/thumbnail").status_code == 200
    assert client.get(url + "/rendered", headers={"Accept": "image/gif"}).status_code == 406


def test_missing_things_are_404(client, archive):
    assert client.get("/dicomweb/studies/2.25.999", headers={"Accept": ANY_SYNTAX}).status_code == 404
    assert client.get("/dicomweb/studies/2.25.1001/series/2.25.999/metadata").status_code == 404
    a1 = archive["a1"]
    assert client.get(f"/dicomweb/studies/2.25.2002/series/{a1.SeriesInstanceUID}/instances/{a1.SOPInstanceUID}/metadata").status_code == 404
    assert client.get("/dicomweb/studies/..%2F..%2Fetc/metadata").status_code == 404


def test_capabilities(client):
    body = client.get("/dicomweb").json()
    assert "1.2.840.10008.5.1.4.1.1.77.1.4" in body["stow-rs"]["sop-classes"]
    assert "PatientName" in body["qido-rs"]["attributes"]["study"]


# -- access ---------------------------------------------------------------------------------------
def test_other_trusts_see_nothing_and_devices_only_store(app, client, archive):
    from fastapi.testclient import TestClient

    other = TestClient(app, headers={"Authorization": f"Bearer {api_key(app, role='clinician', trust='RBN')}"})
    assert other.get("/dicomweb/studies", headers={"Accept": JSON}).json() == []
    assert other.get(instance_url(archive["a1"]) + "/metadata").status_code == 404
    assert other.get("/dicomweb/studies/2.25.1001", headers={"Accept": ANY_SYNTAX}).status_code == 404
    device = TestClient(app, headers={"Authorization": f"Bearer {api_key(app, role='device', trust='REM', department='dermatology')}"})
    assert device.get("/dicomweb/studies", headers={"Accept": JSON}).status_code == 403
    ds = dicomgen.photo_dataset()
    assert stow(device, [dicomgen.part10(ds)]).status_code == 200
    stored = dcmread(io.BytesIO(app.state.services.repository.open_instance(ds.SOPInstanceUID).read()))
    assert get_private(stored)["SpecialtyCode"] == "dermatology"
    anonymous = TestClient(app)
    assert anonymous.get("/dicomweb/studies").status_code == 401
    assert stow(anonymous, [dicomgen.photo_file()]).status_code == 401


def test_basic_authentication_with_an_api_key(app):
    from fastapi.testclient import TestClient

    key = api_key(app)
    basic = base64.b64encode(f"ignored:{key}".encode()).decode()
    client = TestClient(app, headers={"Authorization": f"Basic {basic}"})
    assert client.get("/dicomweb/studies", headers={"Accept": JSON}).status_code == 200
    wrong = base64.b64encode(b"user:olk_nope_nope").decode()
    assert TestClient(app).get("/dicomweb/studies", headers={"Authorization": f"Basic {wrong}"}).status_code == 401


# -- DICOM through the upload API ------------------------------------------------------------------
def upload(client, files: list[tuple[str, bytes]], fields: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/images", data=fields or {}, files=[("file", (n, d, "application/octet-stream")) for n, d in files])


def test_dicom_upload_is_stored_as_received(client, services):
    ds = dicomgen.photo_dataset(gps=True)
    response = upload(client, [("a.dcm", dicomgen.part10(ds))], {"nhs_number": "999 000 0018"})
    assert response.status_code == 201, response.text
    (item,) = response.json()["files"]
    assert item["sop_instance_uid"] == ds.SOPInstanceUID and item["media_type"] == "application/dicom"
    stored = dcmread(io.BytesIO(services.repository.open_instance(ds.SOPInstanceUID).read()))
    assert "GPSLatitude" not in stored and get_private(stored)["IngestRoute"] == "api"
    assert upload(client, [("a.dcm", dicomgen.part10(ds))]).status_code == 200  # again: existing


def test_dicom_upload_for_another_patient_is_422_naming_nhs_number(client, services):
    response = upload(client, [("a.dcm", dicomgen.photo_file())], {"nhs_number": NHS_B})
    assert response.status_code == 422 and response.json()["error"]["field"] == "nhs_number"
    mixed = upload(client, [("a.dcm", dicomgen.photo_file()), ("b.jpg", imagegen.jpeg(imagegen.photo()))], patient_fields())
    assert mixed.status_code == 422 and "separate uploads" in mixed.json()["error"]["message"]
    bad = upload(client, [("bad.dcm", dicomgen.nested(300))])
    assert bad.status_code == 422 and "bad.dcm" in bad.json()["error"]["message"]
    assert stored_instances(services) == []


# -- dciodvfy on what is served --------------------------------------------------------------------
@pytest.mark.skipif(dciodvfy_path() is None, reason="dciodvfy (dicom3tools) is not installed")
def test_served_objects_pass_dciodvfy(client, tmp_path):
    response = client.post(
        "/api/v1/images", data=patient_fields(),
        files=[("file", ("p.jpg", imagegen.jpeg(imagegen.photo()), "image/jpeg"))],
    )  # fmt: skip
    item = response.json()["files"][0]
    url = f"/dicomweb/studies/{item['study_instance_uid']}/series/{item['series_instance_uid']}/instances/{item['sop_instance_uid']}"
    ((_, body),) = parse_multipart(client.get(url, headers={"Accept": ANY_SYNTAX}))
    path = tmp_path / "served.dcm"
    path.write_bytes(body)
    assert dciodvfy_errors(path) == []
    # and a photograph a device sent by STOW-RS is served as it came (with our provenance)
    sent = dicomgen.photo_dataset()
    stow(client, [dicomgen.part10(sent)])
    ((_, body),) = parse_multipart(client.get(instance_url(sent), headers={"Accept": ANY_SYNTAX}))
    assert dcmread(io.BytesIO(body)).PixelData == sent.PixelData



