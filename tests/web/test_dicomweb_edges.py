"""DICOMweb at the edges of the standard: frames of an instance that has none, frame numbers and
transfer syntaxes a frame request cannot be answered in, time matching by value, RetrieveURL in
includefield, and a multipart body with a preamble. Each answers as PS3.18 (and RFC 2046) say."""

from __future__ import annotations

import io

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.encaps import encapsulate, generate_frames

from converters import dicom as dcm
from repository import keys
from tests import dicomgen, imagegen, mediagen
from tests.conftest import NHS_B
from tests.web.test_dicomweb import JSON, failures, instance_url, parse_multipart, qido, referenced, related, stow, values


@pytest.fixture
def photo(client):
    """One JPEG photograph of patient B, stored."""
    ds = dicomgen.photo_dataset(patient_id=NHS_B)
    assert stow(client, [dicomgen.part10(ds)]).status_code == 200
    return ds


# -- WADO-RS --------------------------------------------------------------------------------------
def test_frames_of_an_instance_without_pixel_data_are_404(client):
    raw = mediagen.dicom_pdf(mediagen.pdf())
    assert stow(client, [raw]).status_code == 200
    ds = dcmread(io.BytesIO(raw))
    for accept in (None, "application/octet-stream", 'multipart/related; type="application/octet-stream"'):
        response = client.get(instance_url(ds) + "/frames/1", headers={"Accept": accept} if accept else {})
        assert response.status_code == 404, response.text
        assert "no pixel data" in response.json()["error"]["message"]


OCTET = 'multipart/related; type="application/octet-stream"'


@pytest.mark.parametrize("accept", [OCTET, 'multipart/related; type="*/*"', "multipart/related", "multipart/*",
                                    f"{OCTET}; transfer-syntax={dcm.EXPLICIT_VR_LE}", f"{OCTET}; transfer-syntax=*"])  # fmt: skip
def test_native_bulk_data_as_multipart_related(client, accept):
    """PS3.18 8.7.3: multipart/related; type="application/octet-stream" is the bulk data default
    (dicomweb-client sends it, or type="*/*"): one part, for native Pixel Data and for any other
    binary value; a Range is not applied to it (the whole value, 200)."""
    icc = bytes(range(256)) * 8  # over 1 KiB: metadata gives it a BulkDataURI
    ds = dicomgen.photo_dataset(native=True, ICCProfile=icc)
    assert stow(client, [dicomgen.part10(ds)]).status_code == 200
    (meta,) = client.get(instance_url(ds) + "/metadata", headers={"Accept": JSON}).json()
    for tag, value in (("7FE00010", ds.PixelData), ("00282000", icc)):
        url = meta[tag]["BulkDataURI"]
        assert url.endswith(instance_url(ds) + f"/bulkdata/{tag}")
        for headers in ({"Accept": accept}, {"Accept": accept, "Range": "bytes=10-19"}):
            response = client.get(url, headers=headers)
            assert response.status_code == 200, (tag, headers, response.text)
            assert response.headers["content-type"].startswith('multipart/related; type="application/octet-stream"')
            ((part, body),) = parse_multipart(response)
            assert body == value and part["content-type"].startswith("application/octet-stream")
            assert part["content-location"] == url
        # the single-part value, with byte ranges, as before
        single = client.get(url, headers={"Accept": "application/octet-stream", "Range": "bytes=10-19"})
        assert single.status_code == 206 and single.content == value[10:20]


@pytest.mark.parametrize("accept", [f"{OCTET}; transfer-syntax={dcm.JPEG_BASELINE}", 'multipart/related; type="image/jpeg"',
                                    "image/jpeg", "text/plain"])  # fmt: skip
def test_native_bulk_data_in_another_form_is_406(client, accept):
    ds = dicomgen.photo_dataset(native=True)
    assert stow(client, [dicomgen.part10(ds)]).status_code == 200
    response = client.get(instance_url(ds) + "/bulkdata/7FE00010", headers={"Accept": accept})
    assert response.status_code == 406, response.headers
    assert "multipart/related" in response.json()["error"]["message"]


def multi_frame(client, *, native: bool):  # type: ignore[no-untyped-def]
    """A stored three-frame Multi-frame True Color Secondary Capture, and its frames' bytes."""
    pixels = [imagegen.photo(64, 48), imagegen.photo(64, 48)[::-1].copy(), imagegen.photo(64, 48)[:, ::-1].copy()]
    ds = dicomgen.photo_dataset(pixels=pixels[0], native=native, sop_class="1.2.840.10008.5.1.4.1.1.7.4", Modality="OT")
    ds.NumberOfFrames = 3
    frames = [np.ascontiguousarray(p, dtype=np.uint8).tobytes() for p in pixels] if native else [imagegen.jpeg(p) for p in pixels]
    ds.PixelData = b"".join(frames) if native else encapsulate(frames)
    assert stow(client, [dicomgen.part10(ds)]).status_code == 200
    stored = dcmread(io.BytesIO(client.get(instance_url(ds), headers={"Accept": "application/dicom; transfer-syntax=*"}).content))
    return ds, frames if native else list(generate_frames(stored.PixelData, number_of_frames=3))


def test_single_part_dicom_for_several_instances_is_406(client):
    """RFC 9110 12.5.1: application/dicom holds one instance, so a study or series of several
    asked for only that way has no acceptable answer (it was sent as multipart/related)."""
    study = dicomgen.uid()
    datasets = [dicomgen.photo_dataset(native=True, study_uid=study, series_uid=f"{study}.1") for _ in range(2)]
    assert stow(client, [dicomgen.part10(d) for d in datasets]).status_code == 200
    for url in (f"/dicomweb/studies/{study}", f"/dicomweb/studies/{study}/series/{study}.1"):
        for accept in ("application/dicom", "application/dicom; transfer-syntax=*"):
            response = client.get(url, headers={"Accept": accept})
            assert response.status_code == 406, (url, accept, response.headers)
            assert "2 instances" in response.json()["error"]["message"] and "multipart/related" in response.json()["error"]["message"]
        either = client.get(url, headers={"Accept": 'application/dicom, multipart/related; type="application/dicom"; q=0.5'})
        assert either.status_code == 200 and either.headers["content-type"].startswith("multipart/related")
        assert len(parse_multipart(either)) == 2
    one = client.get(instance_url(datasets[0]), headers={"Accept": "application/dicom"})
    assert one.status_code == 200 and one.headers["content-type"] == "application/dicom"
    assert dcmread(io.BytesIO(one.content)).SOPInstanceUID == datasets[0].SOPInstanceUID


@pytest.mark.parametrize("native", [False, True])
def test_single_part_frames_are_one_frame_only(client, native):
    """A single-part type (image/jpeg, application/octet-stream) is answered with the frame
    alone; several frames asked for only that way are 406, and multipart/related has them."""
    ds, frames = multi_frame(client, native=native)
    single = "application/octet-stream" if native else "image/jpeg"
    url = instance_url(ds) + "/frames/"
    one = client.get(url + "2", headers={"Accept": single})
    assert one.status_code == 200 and one.headers["content-type"].startswith(single) and one.content == frames[1]
    several = client.get(url + "1,3", headers={"Accept": single})
    assert several.status_code == 406, several.headers
    assert "multipart/related" in several.json()["error"]["message"]
    related = client.get(url + "1,3", headers={"Accept": f'{single}, multipart/related; type="{single}"; q=0.5'})
    assert [body for _, body in parse_multipart(related)] == [frames[0], frames[2]]
    if not native:
        # the bulk data of encapsulated Pixel Data, single-part octet-stream: the frames decoded, one after another
        whole = client.get(instance_url(ds) + "/bulkdata/7FE00010", headers={"Accept": "application/octet-stream"})
        assert whole.status_code == 200 and whole.headers["content-type"].startswith("application/octet-stream")
        assert len(whole.content) == 3 * 64 * 48 * 3
        assert client.get(instance_url(ds) + "/bulkdata/7FE00010", headers={"Accept": "image/jpeg"}).status_code == 406


# -- QIDO-RS --------------------------------------------------------------------------------------
@pytest.mark.parametrize("level", ["/studies", "/series", "/instances"])
@pytest.mark.parametrize("name", ["RetrieveURL", "00081190"])
def test_includefield_retrieve_url_is_accepted(client, photo, level, name):
    """RetrieveURL is always returned, so asking for it is no error."""
    results = qido(client, f"{level}?PatientID={NHS_B}&includefield={name}")
    assert results and all(values(r, "00081190") for r in results)
    assert qido(client, f"{level}?PatientID={NHS_B}&{name}=") == results  # an empty value is a return key


def test_retrieve_url_cannot_be_matched(client, photo):
    response = client.get("/dicomweb/studies?RetrieveURL=http://x", headers={"Accept": JSON})
    assert response.status_code == 400 and "returned but not matched" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "path, keyword",
    [
        ("/series?includefield=NumberOfStudyRelatedInstances", "NumberOfStudyRelatedInstances"),
        ("/series?includefield=00201206", "NumberOfStudyRelatedSeries"),
        ("/series?includefield=ModalitiesInStudy", "ModalitiesInStudy"),
        ("/instances?includefield=NumberOfStudyRelatedInstances", "NumberOfStudyRelatedInstances"),
        ("/instances?includefield=NumberOfSeriesRelatedInstances", "NumberOfSeriesRelatedInstances"),
        ("/studies/{study}/instances?includefield=NumberOfSeriesRelatedInstances", "NumberOfSeriesRelatedInstances"),
        ("/series?NumberOfStudyRelatedSeries=", "NumberOfStudyRelatedSeries"),  # an empty value asks for it too
        ("/series?ModalitiesInStudy=XC", "ModalitiesInStudy"),
        ("/studies/{study}/series?ModalitiesInStudy=XC", "ModalitiesInStudy"),
        ("/instances?ModalitiesInStudy=XC", "ModalitiesInStudy"),
    ],
)
def test_a_study_or_series_aggregate_below_its_level_is_400(client, photo, path, keyword):
    """Counts and ModalitiesInStudy are computed for a whole study (series) only in a search at
    that level: below it they were dropped silently (or ModalitiesInStudy matched the series'
    own Modality), so asking for them is refused, naming the key and the level."""
    response = client.get("/dicomweb" + path.format(study=photo.StudyInstanceUID), headers={"Accept": JSON})
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    level = {"series": "series", "instances": "instance"}[path.split("?")[0].rsplit("/", 1)[-1]]
    assert message.startswith(f"{keyword} describes a whole") and f"not in a {level}-level" in message, message


def test_aggregates_at_their_own_level_and_includefield_all_below_it(client, photo):
    (study,) = qido(client, f"/studies?PatientID={NHS_B}&includefield=NumberOfStudyRelatedInstances&ModalitiesInStudy=XC")
    assert values(study, "00201208") == [1]
    (series,) = qido(client, f"/series?PatientID={NHS_B}&includefield=NumberOfSeriesRelatedInstances&includefield=all")
    assert values(series, "00201209") == [1] and "00201208" not in series  # all: what the level has


@pytest.mark.parametrize("frame", ["x", "1.5", "1,2", "-"])
def test_a_rendered_frame_that_is_not_one_frame_number_is_400(client, photo, frame):
    """400 as for /frames/x (PS3.18 8.6), not FastAPI's 422."""
    response = client.get(instance_url(photo) + f"/frames/{frame}/rendered")
    assert response.status_code == 400, response.text
    assert "frame" in response.json()["error"]["message"]


def test_native_frames_in_another_transfer_syntax_are_406(client):
    """No transcoding: a native frame asked for only as JPEG Baseline has no acceptable form."""
    ds = dicomgen.photo_dataset(native=True)
    stow(client, [dicomgen.part10(ds)])
    url = instance_url(ds) + "/frames/1"
    octet = 'multipart/related; type="application/octet-stream"'
    jpeg = client.get(url, headers={"Accept": f"{octet}; transfer-syntax={dcm.JPEG_BASELINE}"})
    assert jpeg.status_code == 406, jpeg.headers
    assert "transcode" in jpeg.json()["error"]["message"]
    for accept in (octet, f"{octet}; transfer-syntax=*", f"{octet}; transfer-syntax={dcm.EXPLICIT_VR_LE}", None,
                   f"{octet}; transfer-syntax={dcm.JPEG_BASELINE}, {octet}; q=0.5"):  # fmt: skip
        response = client.get(url, headers={"Accept": accept} if accept else {})
        assert response.status_code == 200, accept
        ((headers, body),) = parse_multipart(response)
        assert body == ds.PixelData and headers["content-type"].startswith("application/octet-stream")


@pytest.mark.parametrize(
    "query, expected",
    [
        ("StudyTime=101500", ["2.25.3001"]),
        ("StudyTime=101500.0", ["2.25.3001"]),
        ("StudyTime=101500.000000-101500.000000", ["2.25.3001"]),
        ("StudyTime=1015", ["2.25.3001", "2.25.3002"]),
        ("StudyTime=101500-1015", ["2.25.3001", "2.25.3002"]),
        ("StudyTime=101530.3-", ["2.25.3003"]),
        ("StudyTime=-1015", ["2.25.3001", "2.25.3002"]),
        ("StudyTime=10", ["2.25.3001", "2.25.3002", "2.25.3003"]),
    ],
)
def test_time_matching_is_by_value(client, query, expected):
    """PS3.4 C.2.2.2.5: 101500.0 is 10:15:00, and 1015 (or the high end of a range) is all of
    10:15, whatever the precision of the stored times."""
    stored = {"2.25.3001": "101500", "2.25.3002": "101530.25", "2.25.3003": "1016"}
    datasets = [dicomgen.photo_dataset(study_uid=uid, StudyTime=time) for uid, time in stored.items()]
    assert stow(client, [dicomgen.part10(d) for d in datasets]).status_code == 200
    assert [values(s, "0020000D")[0] for s in qido(client, f"/studies?{query}")] == expected


@pytest.mark.parametrize("query", ["StudyTime=1016-1015", "StudyTime=101500.5-101500.4", "ContentTime=11-10"])
def test_a_time_range_that_ends_before_it_starts_is_400(client, query):
    response = client.get(f"/dicomweb/instances?{query}", headers={"Accept": JSON})
    assert response.status_code == 400 and "ends before it starts" in response.json()["error"]["message"]


# -- STOW-RS --------------------------------------------------------------------------------------
def test_stow_body_with_a_preamble_is_stored(client):
    """RFC 2046 5.1.1: text before the first boundary is a preamble, to be ignored."""
    ds = dicomgen.photo_dataset()
    body, headers = related([dicomgen.part10(ds)])
    preamble = b"This is a preamble. --XyZ- is no boundary, nor is text--XyZ\r\n"
    response = client.post("/dicomweb/studies", content=preamble + body, headers=headers)
    assert response.status_code == 200, response.text
    assert referenced(response) == [ds.SOPInstanceUID]


@pytest.mark.parametrize("implicit", [False, True])
def test_the_same_instance_twice_in_one_request_is_stored_and_answered_once(client, services, implicit):
    """Not 202 with a false 'not yet searchable (the index is unavailable)': the second copy
    found the first's pending marker, whose index write waits for the end of the request. One
    Referenced SOP item per instance (PS3.18 10.5.3); the same content in another encoding
    (implicit VR) is the same instance too."""
    ds, other = dicomgen.photo_dataset(patient_id=NHS_B, native=implicit), dicomgen.photo_dataset(patient_id=NHS_B)
    parts = [dicomgen.part10(ds), dicomgen.part10(other), dicomgen.part10(ds, implicit=implicit)]
    response = stow(client, parts)
    assert response.status_code == 200, (response.headers, response.text)
    assert referenced(response) == [ds.SOPInstanceUID, other.SOPInstanceUID]
    warning = response.headers.get("warning", "")
    assert "not yet searchable" not in warning and "part 3" in warning and "repeats part 1" in warning
    assert [values(i, "00080018")[0] for i in qido(client, f"/studies/{ds.StudyInstanceUID}/instances")] == [ds.SOPInstanceUID]
    assert not list(services.repository.store.iter_keys(keys.PENDING))  # nothing left to reconcile


def test_different_content_under_one_uid_in_one_request_is_refused_once(client):
    ds = dicomgen.photo_dataset(patient_id=NHS_B)
    changed = dicomgen.photo_dataset(patient_id=NHS_B, sop_uid=ds.SOPInstanceUID, study_uid=ds.StudyInstanceUID,
                                     series_uid=ds.SeriesInstanceUID, StudyDescription="Another")  # fmt: skip
    response = stow(client, [dicomgen.part10(ds), dicomgen.part10(changed)])
    assert response.status_code == 202
    assert referenced(response) == [ds.SOPInstanceUID] or referenced(response) == [changed.SOPInstanceUID]
    assert [reason for _, reason in failures(response)] == [dcm.DUPLICATE_SOP_INSTANCE]


def test_stow_body_of_only_a_preamble_is_400(client):
    _, headers = related([])
    response = client.post("/dicomweb/studies", content=b"no boundary here\r\n" * 10, headers=headers)
    assert response.status_code == 400
