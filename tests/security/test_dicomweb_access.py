"""DICOMweb goes through the same policy: QIDO finds only the caller's trust's studies, WADO of
another trust's study, series, instance, metadata, frames or renditions is 404 (RELIABILITY.md I4),
and a device cannot read at all."""

from __future__ import annotations

import pytest

from tests.conftest import NHS_A


def study_of(world, uid: str) -> tuple[str, str]:
    meta = world.client.get(f"/api/v1/instances/{uid}", headers=world.as_("admin")).json()
    return meta["study_instance_uid"], meta["series_instance_uid"]


def test_qido_is_scoped_to_the_callers_trust(world):
    own_study, _ = study_of(world, world.own)
    other_study, _ = study_of(world, world.other)
    for role in ("photographer", "clinician"):
        found = world.client.get("/dicomweb/studies", params={"PatientID": NHS_A}, headers=world.as_(role))
        assert found.status_code == 200, found.text
        studies = {item["0020000D"]["Value"][0] for item in found.json()}
        assert studies == {own_study}, role
    everything = world.client.get("/dicomweb/studies", params={"PatientID": NHS_A}, headers=world.as_("admin")).json()
    assert {item["0020000D"]["Value"][0] for item in everything} == {own_study, other_study}


@pytest.mark.parametrize(
    "suffix",
    ["", "/metadata", "/series/{series}", "/series/{series}/instances/{sop}", "/series/{series}/instances/{sop}/metadata",
     "/series/{series}/instances/{sop}/frames/1", "/series/{series}/instances/{sop}/rendered",
     "/series/{series}/instances/{sop}/thumbnail"],
)  # fmt: skip
def test_wado_of_another_trusts_study_is_404(world, suffix):
    study, series = study_of(world, world.other)
    path = f"/dicomweb/studies/{study}" + suffix.format(series=series, sop=world.other)
    headers = {**world.as_("clinician"), "Accept": "*/*"}
    assert world.client.get(path, headers=headers).status_code == 404
    own_study, own_series = study_of(world, world.own)
    own_path = f"/dicomweb/studies/{own_study}" + suffix.format(series=own_series, sop=world.own)
    assert world.client.get(own_path, headers=headers).status_code in (200, 206), own_path


def test_a_device_may_store_but_not_read(world):
    own_study, _ = study_of(world, world.own)
    assert world.client.get("/dicomweb/studies", headers=world.as_("device")).status_code == 403
    assert world.client.get(f"/dicomweb/studies/{own_study}", headers=world.as_("device")).status_code == 403


def test_a_study_holding_another_trusts_instances_serves_the_callers_own(world):
    from tests import imagegen
    from tests.conftest import patient_fields

    study, series = study_of(world, world.own)
    # A photographer at RBN files a photograph into REM's study (a shared study UID).
    added = world.client.post("/api/v1/images", headers=world.as_("photographer", "RBN"),
                              data=patient_fields(trust="RBN", study_uid=study),
                              files={"file": ("rbn.jpg", imagegen.jpeg(imagegen.photo(64, 48, seed=41)))})  # fmt: skip
    assert added.status_code == 201, added.text
    rbn_uid = added.json()["files"][0]["sop_instance_uid"]
    rem = {**world.as_("clinician"), "Accept": "application/dicom+json"}
    metadata = world.client.get(f"/dicomweb/studies/{study}/metadata", headers=rem)
    assert metadata.status_code == 200, metadata.text
    assert [m["00080018"]["Value"][0] for m in metadata.json()] == [world.own]  # REM's only
    whole = world.client.get(f"/dicomweb/studies/{study}", headers={**world.as_("clinician"), "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    assert whole.status_code == 200 and world.own.encode() in whole.content and rbn_uid.encode() not in whole.content
    rbn = {**world.as_("clinician", "RBN"), "Accept": "application/dicom+json"}
    assert [m["00080018"]["Value"][0] for m in world.client.get(f"/dicomweb/studies/{study}/metadata", headers=rbn).json()] == [rbn_uid]
    in_series = world.client.get(f"/dicomweb/studies/{study}/series/{series}/metadata", headers=rbn).json()
    assert [m["00080018"]["Value"][0] for m in in_series] == [rbn_uid]  # the same series, its own part
