"""Page sessions (HttpOnly cookie, CSRF, disabled accounts), consent withdrawal enforced on
viewing for teaching and on export, retention, legal hold and deletion by approval only."""

from __future__ import annotations

import io
import zipfile

import pytest
from pydicom import dcmread

from tests import imagegen
from tests.conftest import NHS_A, NHS_B, patient_fields


def sign_in(world, username: str = "zoe.jones", role: str = "clinician") -> str:
    services = world.app.state.services
    if services.accounts.user(username) is None:
        services.accounts.add_user(username, name="Zoë Jones", role=role, trust="REM", password="a long enough password")
    response = world.client.post("/sign-in", data={"username": username, "password": "a long enough password", "next": "/search"},
                                 follow_redirects=False)  # fmt: skip
    assert response.status_code == 303 and response.headers["location"] == "/search"
    cookie = response.cookies["ologies_session"]
    assert "httponly" in response.headers["set-cookie"].lower() and "samesite=strict" in response.headers["set-cookie"].lower()
    return cookie


def test_session_cookie_needs_the_csrf_token_for_changes(world):
    cookie = sign_in(world)
    client = world.client
    client.cookies.set("ologies_session", cookie)
    assert client.get("/api/v1/search").status_code == 200  # reading needs no token
    photo = imagegen.jpeg(imagegen.photo(32, 32, seed=77))
    forged = client.post("/api/v1/images", data=patient_fields(), files={"file": ("a.jpg", photo)})
    assert forged.status_code == 403  # a cross-site form post carries the cookie but not the token
    assert forged.json()["error"]["code"] == "csrf_failed"  # the upload page's script tells it from a refusal
    csrf = world.app.state.services.sessions.read(cookie)["c"]
    ok = client.post("/api/v1/images", data=patient_fields(), files={"file": ("a.jpg", photo)}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201, ok.text
    client.cookies.clear()


def test_a_disabled_account_stops_working_within_the_cache_bound(world):
    cookie = sign_in(world, "sian.llyr")
    services = world.app.state.services
    world.client.cookies.set("ologies_session", cookie)
    assert world.client.get("/api/v1/search").status_code == 200
    services.accounts.set_disabled("sian.llyr", True)
    services.accounts._cache.clear()  # the bound is CACHE_SECONDS; skip the wait
    assert world.client.get("/api/v1/search").status_code == 401
    world.client.cookies.clear()


def test_sign_out_ends_the_session_on_the_server_for_every_worker(world):
    from repository.accounts import Accounts
    from repository.errors import Unauthenticated

    cookie = sign_in(world, "sian.hughes")
    services, client = world.app.state.services, world.client
    session = services.sessions.read(cookie)
    other_worker = Accounts(services.accounts.store)  # another process or server, its own cache
    assert other_worker.active_user("sian.hughes", session["g"]).name == "Zoë Jones"

    client.cookies.set("ologies_session", cookie)
    assert client.post("/sign-out", follow_redirects=False).status_code == 403  # no CSRF token
    assert client.get("/api/v1/search").status_code == 200  # so still signed in
    out = client.post("/sign-out", params={"csrf_token": session["c"]}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/sign-in"
    assert 'ologies_session=""' in out.headers["set-cookie"]

    # The browser's cookie is gone; a copy of it (kept, stolen) no longer works anywhere.
    client.cookies.set("ologies_session", cookie)
    assert client.get("/api/v1/search").status_code == 401
    page = client.get("/patients/9990000018", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/sign-in?next=")
    other_worker._cache.clear()  # the bound is CACHE_SECONDS; skip the wait
    with pytest.raises(Unauthenticated):
        other_worker.active_user("sian.hughes", session["g"])

    # Signing in again gives a session that works, on this worker and the other.
    fresh = sign_in(world, "sian.hughes")
    client.cookies.set("ologies_session", fresh)
    assert client.get("/api/v1/search").status_code == 200
    other_worker._cache.clear()
    assert other_worker.active_user("sian.hughes", services.sessions.read(fresh)["g"])
    client.cookies.clear()


def test_sign_out_without_a_session_only_clears_the_cookie(world):
    out = world.client.post("/sign-out", follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/sign-in"
    # A non-ASCII token is refused as a wrong token, not a 500.
    cookie = sign_in(world, "llyr.evans")
    world.client.cookies.set("ologies_session", cookie)
    assert world.client.post("/sign-out", params={"csrf_token": "é"}, follow_redirects=False).status_code == 403
    assert world.client.get("/api/v1/search").status_code == 200
    world.client.cookies.clear()


def test_wrong_password_is_401_and_audited(world):
    response = world.client.post("/sign-in", data={"username": "nobody", "password": "x" * 20}, follow_redirects=False)
    assert response.status_code == 401
    assert list(world.app.state.services.audit.events())[-1].action == "sign-in"


def test_consent_withdrawal_is_enforced_from_then_on(world):
    clinician, ig = world.as_("clinician"), world.as_("information-governance")
    teaching = {"purpose": "teaching"}
    assert world.client.get(f"/api/v1/instances/{world.own}", params=teaching, headers=clinician).status_code == 200
    thumbnail = f"/api/v1/instances/{world.own}/thumbnail"
    assert world.client.get(thumbnail, params=teaching, headers=clinician).status_code == 200  # now in memory
    export = world.client.post("/api/v1/exports", json={"sop_instance_uids": [world.own]}, headers=clinician)
    assert export.status_code == 200 and export.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(export.content)) as archive:
        [name] = archive.namelist()
        copy = dcmread(io.BytesIO(archive.read(name)))
    assert copy.PatientIdentityRemoved == "YES" and copy.PatientID == "" and copy.PatientName == ""
    assert copy.SOPInstanceUID != world.own and "PixelData" in copy
    assert not any(elem.tag.is_private for elem in copy)

    withdrawn = world.client.post(f"/api/v1/instances/{world.own}/consent", json={"status": "withdrawn", "note": "Patient phoned"}, headers=ig)
    assert withdrawn.status_code == 200 and withdrawn.json()["consent_status"] == "WITHDRAWN"
    assert world.client.get(f"/api/v1/instances/{world.own}", params=teaching, headers=clinician).status_code == 403
    assert world.client.get(thumbnail, params=teaching, headers=clinician).status_code == 403  # not from memory
    assert world.client.get(f"/api/v1/instances/{world.own}", headers=clinician).status_code == 200  # direct care goes on
    refused = world.client.post("/api/v1/exports", json={"sop_instance_uids": [world.own]}, headers=clinician)
    assert refused.status_code == 422 and "withdrawn" in refused.json()["error"]["message"]
    # the stored object itself says so: the index could be rebuilt and still enforce it
    raw = world.client.get(f"/api/v1/instances/{world.own}/file", headers=clinician).content
    assert b"WITHDRAWN" in raw


def test_legal_hold_and_deletion_only_by_a_second_persons_approval(world, monkeypatch):
    from repository import governance

    monkeypatch.setattr(governance, "ADULT_YEARS", -30)  # pretend the retention period is over
    admin, ig = world.as_("admin"), world.as_("information-governance")
    retention = world.client.get(f"/api/v1/patients/{NHS_A}/retention", headers=ig).json()
    assert retention["images"] == 1 and retention["legal_hold"] is None  # REM's own records
    assert world.client.get(f"/api/v1/patients/{NHS_A}/retention", headers=admin).json()["images"] == 2
    assert world.client.put(f"/api/v1/patients/{NHS_A}/legal-hold", json={"reason": "Inquiry 2026/17"}, headers=admin).status_code == 200
    held = world.client.post(f"/api/v1/patients/{NHS_A}/deletion-requests", json={"reason": "Retention period over"}, headers=ig)
    assert held.status_code == 409
    assert world.client.delete(f"/api/v1/patients/{NHS_A}/legal-hold", headers=admin).status_code == 204
    request = world.client.post(f"/api/v1/patients/{NHS_A}/deletion-requests", json={"reason": "Retention period over"}, headers=ig)
    assert request.status_code == 201
    request_id = request.json()["request_id"]
    assert world.client.get("/api/v1/search", headers=admin).json()["total"] == 2  # nothing deleted yet
    approved = world.client.post(f"/api/v1/deletion-requests/{request_id}/approval", headers=admin)
    assert approved.status_code == 200 and approved.json()["deleted"] == 1
    # REM's information governance asked: RBN's record of the same patient is RBN's to keep
    assert [i["sop_instance_uid"] for i in world.client.get("/api/v1/search", headers=admin).json()["items"]] == [world.other]
    assert len(list(world.app.state.services.repository.iter_instance_keys())) == 1
    assert any(e.action == "delete" for e in world.app.state.services.audit.events())


def test_an_approved_deletion_request_cannot_be_approved_again(world, monkeypatch):
    from repository import governance

    monkeypatch.setattr(governance, "ADULT_YEARS", -30)
    admin, other_admin, ig = world.as_("admin"), world.as_("admin", "RBN"), world.as_("information-governance")
    request_id = world.client.post(f"/api/v1/patients/{NHS_A}/deletion-requests", json={"reason": "Retention period over"}, headers=ig).json()["request_id"]
    assert world.client.post(f"/api/v1/deletion-requests/{request_id}/approval", headers=admin).json()["deleted"] == 1
    # A new image of the patient since: replaying the old approval must not delete it.
    added = world.client.post("/api/v1/images", headers=admin, data=patient_fields(trust="REM"),
                              files={"file": ("new.jpg", imagegen.jpeg(imagegen.photo(64, 48, seed=7)))})  # fmt: skip
    assert added.status_code == 201
    again = world.client.post(f"/api/v1/deletion-requests/{request_id}/approval", headers=other_admin)
    assert again.status_code == 409 and "already approved" in again.json()["error"]["message"]
    new_uid = added.json()["files"][0]["sop_instance_uid"]
    assert world.client.get(f"/api/v1/instances/{new_uid}", headers=admin).status_code == 200


def test_approval_checks_the_retention_period_again(world, monkeypatch):
    from repository import governance

    monkeypatch.setattr(governance, "ADULT_YEARS", -30)
    admin, ig = world.as_("admin"), world.as_("information-governance")
    request_id = world.client.post(f"/api/v1/patients/{NHS_A}/deletion-requests", json={"reason": "Retention period over"}, headers=ig).json()["request_id"]
    monkeypatch.setattr(governance, "ADULT_YEARS", 8)  # e.g. an image added since restarted it
    refused = world.client.post(f"/api/v1/deletion-requests/{request_id}/approval", headers=admin)
    assert refused.status_code == 409 and "must be kept until" in refused.json()["error"]["message"]
    assert len(list(world.app.state.services.repository.iter_instance_keys())) == 2


def test_governance_sees_and_deletes_only_its_own_trusts_records(world, monkeypatch):
    from repository import governance

    monkeypatch.setattr(governance, "ADULT_YEARS", -30)
    stored = world.client.post("/api/v1/images", headers=world.as_("admin", "RBN"), data=patient_fields(nhs_number=NHS_B, trust="RBN"),
                               files={"file": ("rbn.jpg", imagegen.jpeg(imagegen.photo(64, 48, seed=9)))})  # fmt: skip
    assert stored.status_code == 201
    ig_rem = world.as_("information-governance")
    # Only RBN holds images of NHS_B: to REM's governance that is "not found", as everywhere.
    assert world.client.get(f"/api/v1/patients/{NHS_B}/retention", headers=ig_rem).status_code == 404
    asked = world.client.post(f"/api/v1/patients/{NHS_B}/deletion-requests", json={"reason": "Retention period over"}, headers=ig_rem)
    assert asked.status_code == 404
    assert world.client.get(f"/api/v1/patients/{NHS_B}/retention", headers=world.as_("information-governance", "RBN")).json()["images"] == 1


def test_reading_retention_is_audited_and_an_export_is_in_the_patients_access_report(world):
    audit = world.app.state.services.audit
    before = len([e for e in audit.events() if e.detail == "retention"])
    world.client.get(f"/api/v1/patients/{NHS_A}/retention", headers=world.as_("information-governance"))
    retention_reads = [e for e in audit.events() if e.detail == "retention"]
    assert len(retention_reads) == before + 1 and retention_reads[-1].patient_ids == [NHS_A]
    export = world.client.post("/api/v1/exports", json={"sop_instance_uids": [world.own]}, headers=world.as_("clinician"))
    assert export.status_code == 200
    report = world.client.get(f"/api/v1/audit/patients/{NHS_A}", headers=world.as_("information-governance")).json()
    assert "export" in {a["action"] for a in report["accesses"]}


def test_retention_rules():
    import datetime as dt

    from repository.governance import retention_until

    assert retention_until(birth_date=dt.date(1980, 5, 1), last_entry=dt.date(2024, 3, 1)) == dt.date(2032, 3, 1)
    assert retention_until(birth_date=dt.date(2015, 5, 1), last_entry=dt.date(2024, 3, 1)) == dt.date(2040, 5, 1)
    assert retention_until(birth_date=dt.date(1990, 1, 1), last_entry=dt.date(2024, 3, 1), specialty="maternity") == dt.date(2049, 3, 1)
    assert retention_until(birth_date=None, last_entry=dt.date(2020, 2, 29), specialty="maternity") == dt.date(2045, 2, 28)



def test_retention_runs_from_when_an_image_was_added_not_from_its_capture_date(world):
    import datetime as dt

    old_photo = imagegen.jpeg(imagegen.photo(64, 48, seed=11), exif=imagegen.exif_bytes(datetime_original="2010:01:01 09:00:00"))
    stored = world.client.post("/api/v1/images", headers=world.as_("admin"), data=patient_fields(nhs_number=NHS_B),
                               files={"file": ("2010.jpg", old_photo)})  # fmt: skip
    assert stored.status_code == 201
    ig = world.as_("information-governance")
    retention = world.client.get(f"/api/v1/patients/{NHS_B}/retention", headers=ig).json()
    assert retention["last_entry"] == dt.date.today().isoformat()
    assert retention["retain_until"] > f"{dt.date.today().year + 7}"
    asked = world.client.post(f"/api/v1/patients/{NHS_B}/deletion-requests", json={"reason": "Retention period over"}, headers=ig)
    assert asked.status_code == 409 and "must be kept until" in asked.json()["error"]["message"]


def test_deidentify_replaces_every_identifying_uid_consistently_and_leaves_the_original_alone():
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset

    from repository.governance import deidentify

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.4"
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = "2.25.11", "2.25.12", "2.25.13"
    ds.FrameOfReferenceUID = "2.25.14"
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.77.1.4", "2.25.99"
    ds.ReferencedImageSequence = [ref]
    ds.PatientID, ds.PatientName = NHS_A, "O'Brien-Jones^Siân"
    first, again = deidentify(ds, salt="s"), deidentify(ds, salt="s")
    assert ds.PatientID == NHS_A and ds.SOPInstanceUID == "2.25.11"  # the original is untouched
    assert first.SOPClassUID == ds.SOPClassUID and first.ReferencedImageSequence[0].ReferencedSOPClassUID == ds.SOPClassUID
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert first[keyword].value != ds[keyword].value and first[keyword].value == again[keyword].value
    assert first.ReferencedImageSequence[0].ReferencedSOPInstanceUID not in ("2.25.99", "")
    assert first.file_meta.MediaStorageSOPInstanceUID == first.SOPInstanceUID
