"""Positive patient identification at upload: details that disagree with what the trust holds
for the NHS number are refused (409 identity_mismatch) unless the change is confirmed."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from repository.identity import differences
from repository.model import PatientIdentity, SexValues
from tests import imagegen
from tests.conftest import NHS_A, api_key, patient_fields


def upload(client, seed: int, headers: dict[str, str] | None = None, **fields: str):  # type: ignore[no-untyped-def]
    photo = imagegen.jpeg(imagegen.photo(64, 48, seed=seed))
    return client.post("/api/v1/images", data=patient_fields(**fields), files={"file": (f"p{seed}.jpg", photo)}, headers=headers or {})


def stored_count(services) -> int:  # type: ignore[no-untyped-def]
    return len(list(services.repository.iter_instance_keys()))


def test_the_same_person_written_differently_is_accepted(client):
    assert upload(client, 1).status_code == 201
    again = upload(client, 2, family_name="OBRIEN JONES", given_name="sian")
    assert again.status_code == 201, again.text


@pytest.mark.parametrize(("field", "value", "named"), [
    ("family_name", "Williams", "last name"),
    ("given_name", "Llŷr", "first name"),
    ("birth_date", "1999-09-09", "date of birth"),
    ("sex", "M", "sex"),
])  # fmt: skip
def test_other_details_for_a_known_nhs_number_are_refused_naming_what_differs(client, services, field, value, named):
    assert upload(client, 1).status_code == 201
    refused = upload(client, 2, **{field: value})
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "identity_mismatch" and error["field"] == "nhs_number"
    assert f"different {named}" in error["message"] and "O'BRIEN-JONES, Siân, born 1984-03-02" in error["message"]
    assert stored_count(services) == 1  # nothing filed


def test_a_confirmed_change_of_details_is_filed_under_the_new_ones(client):
    assert upload(client, 1).status_code == 201
    changed = upload(client, 2, family_name="Williams", confirm_identity="true")
    assert changed.status_code == 201
    uid = changed.json()["files"][0]["sop_instance_uid"]
    assert "WILLIAMS" in client.get(f"/api/v1/instances/{uid}").text.upper()
    # later uploads under either the new or the earlier details are the same patient
    assert upload(client, 3, family_name="Williams").status_code == 201
    assert upload(client, 4).status_code == 201
    assert upload(client, 5, family_name="Smith").status_code == 409


def test_another_trusts_record_is_neither_compared_nor_revealed(app, client):
    assert upload(client, 1).status_code == 201  # filed at REM
    with TestClient(app) as rbn:
        rbn.headers["Authorization"] = f"Bearer {api_key(app, 'photographer', 'RBN')}"
        other = upload(rbn, 2, trust="RBN", family_name="Williams", birth_date="1999-09-09")
    assert other.status_code == 201, other.text


def test_differences_ignore_case_accents_and_punctuation_not_dates_or_sex():
    held = {"PatientName": "O'BRIEN-JONES^Siân", "PatientBirthDate": "19840302", "PatientSex": "F"}
    same = PatientIdentity(NHS_A, False, "obrien jones", "SIAN", dt.date(1984, 3, 2), SexValues("F"))
    assert differences(held, same) == []
    unknown = PatientIdentity(NHS_A, False, "O'Brien-Jones", "", None, SexValues("U"))
    assert differences(held, unknown) == []  # nothing given is no difference
    other = PatientIdentity(NHS_A, False, "Jones", "Zoë", dt.date(1984, 3, 3), SexValues("M"))
    assert differences(held, other) == ["last name", "first name", "date of birth", "sex"]


def test_with_the_index_down_the_upload_goes_ahead_and_the_index_is_not_asked_again(client, services, monkeypatch):
    from repository.errors import IndexUnavailable

    assert upload(client, 1).status_code == 201
    services.repository.index_retry_seconds = 60
    calls = {"n": 0}

    def down(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        raise IndexUnavailable("index is down")

    for name in ("search", "upsert", "upsert_many"):
        monkeypatch.setattr(services.repository.index.wrapped, name, down)
    first = upload(client, 2, family_name="Williams")  # nothing to compare with: accepted, pending
    assert first.status_code == 202
    asked = calls["n"]
    assert upload(client, 3).status_code == 202
    assert calls["n"] == asked  # paused: neither the identity check nor the index write asked it
