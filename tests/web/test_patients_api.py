"""Unidentified patients reconciled to an NHS number, lesion tracking over time, and video
playback with range requests."""

from __future__ import annotations

import pydicom
import pytest

from repository.private_tags import get_private
from tests import imagegen, mediagen
from tests.conftest import NHS_A, patient_fields
from tests.dicomvalidate import dciodvfy_errors

TMP = "TMP-REM-ED0042"
UNKNOWN = {"nhs_number": TMP, "family_name": "", "given_name": "", "birth_date": "", "sex": "U"}
IDENTITY = {"nhs_number": NHS_A, "family_name": "O'Brien-Jones", "given_name": "Siân", "birth_date": "1984-03-02", "sex": "F"}


def upload(client, *files, **fields):
    return client.post("/api/v1/images", data=patient_fields(**fields), files=[("file", f) for f in files])


@pytest.fixture
def emergency(client, tmp_path):
    """An ED attendance of an unidentified patient: two photographs, a video and a consent form."""
    first = upload(client, ("a.jpg", imagegen.jpeg(imagegen.photo(64, 48, seed=1))),
                   ("v.mp4", mediagen.video(tmp_path / "v.mp4").read_bytes()), ("consent.pdf", mediagen.pdf()),
                   **UNKNOWN, tracking_id="wound-1")  # fmt: skip
    second = upload(client, ("b.jpg", imagegen.jpeg(imagegen.photo(64, 48, seed=2))), **UNKNOWN, specialty="burns-plastics")
    assert first.status_code == 201 and second.status_code == 201, (first.text, second.text)
    return [f["sop_instance_uid"] for r in (first, second) for f in r.json()["files"]]


def test_reconcile_then_search_by_nhs_number_finds_everything(client, services, tmp_path, emergency):
    assert client.get("/api/v1/search", params={"nhs_number": TMP}).json()["total"] == 4
    response = client.post(f"/api/v1/patients/{TMP}/reconcile", json=IDENTITY)
    assert response.status_code == 200, response.text
    assert response.json()["instances"] == 4 and len(response.json()["studies"]) == 2
    found = client.get("/api/v1/search", params={"nhs_number": NHS_A}).json()
    assert {item["sop_instance_uid"] for item in found["items"]} == set(emergency)  # UIDs kept
    assert client.get("/api/v1/search", params={"nhs_number": TMP}).json()["total"] == 0
    assert client.get("/api/v1/search", params={"name": "siân"}).json()["total"] == 4
    for uid in emergency:
        path = tmp_path / f"{uid}.dcm"
        path.write_bytes(client.get(f"/api/v1/instances/{uid}/file").content)
        ds = pydicom.dcmread(path)
        assert ds.PatientID == NHS_A and str(ds.PatientName) == "O'Brien-Jones^Siân"
        assert ds.PatientBirthDate == "19840302" and ds.PatientSex == "F" and ds.IssuerOfPatientID == "NHS"
        assert ds.OtherPatientIDsSequence[0].PatientID == TMP
        assert get_private(ds)["PreviousPatientID"] == TMP and get_private(ds)["PatientIdIsTemporary"] == "NO"
        assert dciodvfy_errors(path) == []
    # the pixels are untouched: the video still plays, byte for byte the same bitstream
    video = next(uid for uid in emergency if client.get(f"/api/v1/instances/{uid}").json()["sop_class_uid"].endswith("77.1.4.1"))
    assert client.get(f"/api/v1/instances/{video}/video").content[4:8] == b"ftyp"
    # the change is audited, naming both identifiers
    events = [e for e in services.audit.events() if e.action == "change"]
    assert events and {TMP, NHS_A} <= set(events[-1].patient_ids) and len(events[-1].sop_instance_uids) == 4


def test_reconcile_again_is_a_no_op_and_unknown_ids_are_refused(client, emergency):
    assert client.post(f"/api/v1/patients/{TMP}/reconcile", json=IDENTITY).status_code == 200
    again = client.post(f"/api/v1/patients/{TMP}/reconcile", json=IDENTITY)
    assert again.status_code == 404  # nothing is stored under the temporary identifier any more
    bad = client.post(f"/api/v1/patients/{TMP}/reconcile", json={**IDENTITY, "nhs_number": "9990000019"})
    assert bad.status_code == 422 and "Modulus 11" in bad.text
    real = client.post(f"/api/v1/patients/{NHS_A}/reconcile", json=IDENTITY)
    assert real.status_code == 422 and "temporary identifier" in real.text


def test_a_crashed_reconciliation_is_finished_by_running_it_again(client, services, emergency, monkeypatch):
    import repository.reconcile as reconcile

    real, calls = reconcile._rewrite, {"n": 0}

    def crash_after_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("power cut")
        return real(*args, **kwargs)

    monkeypatch.setattr(reconcile, "_rewrite", crash_after_two)
    with pytest.raises(RuntimeError):
        client.post(f"/api/v1/patients/{TMP}/reconcile", json=IDENTITY)
    monkeypatch.setattr(reconcile, "_rewrite", real)
    done = client.post(f"/api/v1/patients/{TMP}/reconcile", json=IDENTITY)
    assert done.status_code == 200, done.text
    assert client.get("/api/v1/search", params={"nhs_number": NHS_A}).json()["total"] == 4


def test_photographer_may_not_reconcile(app, client, emergency):
    from tests.conftest import api_key

    client.headers["Authorization"] = f"Bearer {api_key(app, role='photographer')}"
    assert client.post(f"/api/v1/patients/{TMP}/reconcile", json=IDENTITY).status_code == 403


def test_tracking_lists_one_lesion_oldest_first(client):
    for seed, date in ((1, "2024:01:10 10:00:00"), (2, "2024:03:10 10:00:00"), (3, "2024:06:10 10:00:00")):
        jpeg = imagegen.jpeg(imagegen.photo(64, 48, seed=seed), exif=imagegen.exif_bytes(datetime_original=date))
        assert upload(client, ("l.jpg", jpeg), tracking_id="naevus-left-shoulder").status_code == 201
    assert upload(client, ("o.jpg", imagegen.jpeg(imagegen.photo(64, 48, seed=9))), tracking_id="other").status_code == 201
    response = client.get(f"/api/v1/patients/{NHS_A}/tracking/naevus-left-shoulder")
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 3
    assert [i["capture_date"] for i in body["images"]] == ["2024-01-10", "2024-03-10", "2024-06-10"]
    assert body["first_capture"] == "2024-01-10" and body["last_capture"] == "2024-06-10"
    assert client.get("/api/v1/search", params={"tracking_id": "naevus-left-shoulder"}).json()["total"] == 3


def test_video_range_requests(client, tmp_path):
    source = mediagen.video(tmp_path / "v.mp4", frames=90)
    uid = upload(client, ("v.mp4", source.read_bytes())).json()["files"][0]["sop_instance_uid"]
    whole = client.get(f"/api/v1/instances/{uid}/video")
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    size = len(whole.content)
    assert whole.headers["content-length"] == str(size)
    part = client.get(f"/api/v1/instances/{uid}/video", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == whole.content[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{size}"
    tail = client.get(f"/api/v1/instances/{uid}/video", headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == whole.content[-50:]
    open_ended = client.get(f"/api/v1/instances/{uid}/video", headers={"Range": f"bytes={size - 10}-"})
    assert open_ended.content == whole.content[-10:]
    assert client.get(f"/api/v1/instances/{uid}/video", headers={"Range": f"bytes={size}-"}).status_code == 416
    photo = upload(client, ("a.jpg", imagegen.jpeg(imagegen.photo(64, 48)))).json()["files"][0]["sop_instance_uid"]
    assert client.get(f"/api/v1/instances/{photo}/video").status_code == 404


def test_video_over_4_gb_takes_several_fragments(tmp_path):
    """A bitstream longer than one Item can hold is split into fragments (PS3.5 A.4); the spans
    found from the stored object give back exactly the MP4 (small fragments stand in for 4 GB)."""
    import datetime as dt
    import hashlib

    from converters import video
    from converters.base import SourceFile
    from converters.iods.build_media import build_video
    from converters.iods.media import write_video_file
    from repository.backends.filesystem import FilesystemObjectStore
    from repository.catalogue import Catalogue
    from repository.media import SpanReader, bitstream_spans
    from repository.model import IngestContext

    data = mediagen.video(tmp_path / "v.mp4").read_bytes()
    source = SourceFile(tmp_path / "v.mp4", "video/mp4", hashlib.sha256(data).hexdigest(), len(data))
    captured = video.convert(source, workdir=tmp_path)
    context = IngestContext.parse(patient_fields(), catalogue=Catalogue.load(None), allow_test_numbers=True)
    ds = build_video(captured, context, study_instance_uid="1.2.3", series_instance_uid="1.2.3.4",
                     sop_instance_uid="1.2.3.4.5", series_number=1, instance_number=1, ingest_route="api",
                     now=dt.datetime.now(dt.timezone.utc))  # fmt: skip
    write_video_file(ds, tmp_path / "v.dcm", max_fragment=1000)
    store = FilesystemObjectStore(tmp_path / "store")
    with (tmp_path / "v.dcm").open("rb") as handle:
        store.put("v.dcm", handle)
    stream = bitstream_spans(store, "v.dcm")
    assert len(stream.spans) == -(-captured.mp4_size // 1000)
    reader = SpanReader(store, "v.dcm", stream.spans)
    assert reader.read() == captured.mp4_path.read_bytes()
    assert dciodvfy_errors(tmp_path / "v.dcm") == []


def test_another_trust_may_not_reconcile_a_temporary_identifier(app, client, emergency):
    from tests.conftest import api_key

    for role in ("information-governance", "clinician"):
        client.headers["Authorization"] = f"Bearer {api_key(app, role=role, trust='RBN')}"
        refused = client.post(f"/api/v1/patients/{TMP}/reconcile", json=IDENTITY)
        assert refused.status_code in (403, 404) and NHS_A not in refused.text
    client.headers["Authorization"] = f"Bearer {api_key(app, role='information-governance', trust='REM')}"
    assert client.post(f"/api/v1/patients/{TMP}/reconcile", json=IDENTITY).status_code == 200
