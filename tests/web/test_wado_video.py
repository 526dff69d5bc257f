"""WADO-RS bulk data of a stored video (PS3.18 8.7.3): its Pixel Data is the MP4 itself, as
video/mp4, streamed from the stored fragments with ranges, never the encapsulated value."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests import mediagen
from tests.conftest import api_key, patient_fields
from tests.web.test_dicomweb import parse_multipart

JSON = "application/dicom+json"


def test_video_pixel_data_is_the_mp4_streamed_with_ranges(app, client, services, tmp_path, monkeypatch):
    source = mediagen.video(tmp_path / "v.mp4", frames=60)
    files = [("file", ("v.mp4", source.read_bytes(), "video/mp4"))]
    (item,) = client.post("/api/v1/images", data=patient_fields(), files=files).json()["files"]
    uid = item["sop_instance_uid"]
    url = f"/dicomweb/studies/{item['study_instance_uid']}/series/{item['series_instance_uid']}/instances/{uid}"
    (meta,) = client.get(url + "/metadata", headers={"Accept": JSON}).json()
    assert meta["7FE00010"]["BulkDataURI"] == f"http://testserver{url}/bulkdata/7FE00010"
    mp4 = client.get(f"/api/v1/instances/{uid}/video").content

    def whole_object_read(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the video was loaded whole")

    monkeypatch.setattr(services.repository, "read_instance", whole_object_read)
    bulk = url + "/bulkdata/7FE00010"
    audited = sum(1 for e in services.audit.events() if uid in e.sop_instance_uids)
    whole = client.get(bulk)
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert whole.content == mp4 and whole.content[4:8] == b"ftyp"
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-length"] == str(len(mp4))
    part = client.get(bulk, headers={"Accept": "video/mp4", "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == mp4[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(mp4)}"
    beyond = client.get(bulk, headers={"Range": f"bytes={len(mp4)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(mp4)}"
    # one playback, one audit record: the request from the start, not each later range
    views = [e for e in services.audit.events() if uid in e.sop_instance_uids][audited:]
    assert [e.detail for e in views] == ["DICOMweb bulk data"]
    for accept in ("image/jpeg", "application/octet-stream", "video/mp4; transfer-syntax=1.2.840.10008.1.2.1"):
        refused = client.get(bulk, headers={"Accept": accept})
        assert refused.status_code == 406 and "video/mp4" in refused.json()["error"]["message"]
    assert client.get(bulk, headers={"Accept": "application/octet-stream, video/*;q=0.5"}).content == mp4
    # the one part of multipart/related (dicomweb-client's retrieve_bulkdata), whole whatever the range
    for accept in ('multipart/related; type="video/mp4"', 'multipart/related; type="*/*"'):
        related = client.get(bulk, headers={"Accept": accept, "Range": "bytes=100-199"})
        assert related.status_code == 200, related.text
        assert related.headers["content-type"].startswith('multipart/related; type="video/mp4"')
        ((part, body),) = parse_multipart(related)
        assert body == mp4 and part["content-type"].startswith("video/mp4") and part["content-location"].endswith(bulk)
    for accept in ('multipart/related; type="application/octet-stream"', "multipart/related"):
        assert client.get(bulk, headers={"Accept": accept}).status_code == 406  # the default is no MP4
    # another trust's clinician: not found, whatever the range
    other = TestClient(app, headers={"Authorization": f"Bearer {api_key(app, role='clinician', trust='RBN')}"})
    assert other.get(bulk, headers={"Range": "bytes=100-199"}).status_code == 404


def test_frames_of_a_video_are_its_stream_and_later_frames_are_not_rendered(client, tmp_path):
    source = mediagen.video(tmp_path / "v.mp4", frames=30)
    files = [("file", ("v.mp4", source.read_bytes(), "video/mp4"))]
    (item,) = client.post("/api/v1/images", data=patient_fields(), files=files).json()["files"]
    uid = item["sop_instance_uid"]
    base = f"/dicomweb/studies/{item['study_instance_uid']}/series/{item['series_instance_uid']}/instances/{uid}"
    whole = client.get(f"/api/v1/instances/{uid}/video").content
    frames = client.get(f"{base}/frames/1", headers={"Accept": "video/mp4"})
    assert frames.status_code == 200, frames.text
    assert frames.headers["content-type"].startswith("video/mp4") and frames.content == whole
    related = client.get(f"{base}/frames/1", headers={"Accept": 'multipart/related; type="video/mp4"'})
    ((part, body),) = parse_multipart(related)
    assert body == whole and part["content-location"].endswith(f"{base}/frames/1")
    assert client.get(f"{base}/frames/1", headers={"Accept": "application/octet-stream"}).status_code == 406
    assert client.get(f"{base}/frames/0").status_code == 404  # as for an image: no such frame
    later = client.get(f"{base}/frames/2/rendered", headers={"Accept": "image/jpeg"})
    assert later.status_code == 400 and "first frame" in later.text
    first = client.get(f"{base}/frames/1/rendered", headers={"Accept": "image/jpeg"})
    assert first.status_code == 200 and first.content[:2] == b"\xff\xd8"


def test_a_range_that_does_not_continue_an_audited_playback_is_audited(app, client, services, tmp_path):
    source = mediagen.video(tmp_path / "v.mp4", frames=30)
    files = [("file", ("v.mp4", source.read_bytes(), "video/mp4"))]
    (item,) = client.post("/api/v1/images", data=patient_fields(), files=files).json()["files"]
    uid = item["sop_instance_uid"]
    video = f"/api/v1/instances/{uid}/video"
    bulk = (f"/dicomweb/studies/{item['study_instance_uid']}/series/{item['series_instance_uid']}"
            f"/instances/{uid}/bulkdata/7FE00010")  # fmt: skip

    def views() -> int:
        return sum(1 for e in services.audit.events() if uid in e.sop_instance_uids and e.action == "view")

    def clinician() -> TestClient:
        return TestClient(app, headers={"Authorization": f"Bearer {api_key(app, role='clinician', trust='REM')}"})

    reader, before = clinician(), views()
    # bytes=1- is the whole MP4 but its first byte (always 0): no playback was started, so audited
    skipped_first = reader.get(video, headers={"Range": "bytes=1-"})
    assert skipped_first.status_code == 206 and views() == before + 1
    assert reader.get(video, headers={"Range": "bytes=100-"}).status_code == 206
    assert views() == before + 1  # continues the playback just audited
    assert clinician().get(video, headers={"Range": "bytes=100-"}).status_code == 206
    assert views() == before + 2  # someone else's first request
    assert clinician().get(bulk, headers={"Range": "bytes=1-"}).status_code == 206
    assert views() == before + 3  # and the same through WADO-RS
