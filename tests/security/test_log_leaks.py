"""RELIABILITY.md J6 (ASVS 16.2.5): after the whole test session, the service's log lines hold
no NHS number, no patient name and no date of birth.

The lines are those the session wrote through every logger, formatted as ``ologies serve``
writes them (tests/logscan.py keeps them). This test runs last (``runs_last``) so it sees all of
them; it also drives a workload of its own that puts patient data in every place a log line
could pick it up (paths, query strings, form fields, refusals, conflicts, an index outage that
logs 5xx errors, DICOMweb queries by name), so that it means something when run alone.

Client-side lines (``httpx``, the test client's own request log) are not the service's logs and
are left out.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from repository.errors import IndexUnavailable
from tests import imagegen, logscan
from tests.conftest import NHS_A, NHS_B, NHS_C, patient_fields

NHS_NUMBERS = [NHS_A, NHS_B, NHS_C, "9434765919", "9990000019"]
NAMES = ["O'Brien-Jones", "O'Brien", "Siân", "Llŷr", "Zoë", "Ní Bhriain", "Baker^Alice", "Hughes"]
BIRTH_DATES = ["1984-03-02", "19840302", "02/03/1984"]
CLIENT_SIDE = ("httpx", "httpcore")


def forms_of(number: str) -> list[str]:
    return [number, f"{number[:3]} {number[3:6]} {number[6:]}", f"{number[:3]}-{number[3:6]}-{number[6:]}"]


def needles() -> list[str]:
    found = [f for n in NHS_NUMBERS for f in forms_of(n)] + BIRTH_DATES
    for name in NAMES:
        found += [name, unicodedata.normalize("NFD", name)]
    return found


def service_text(line: str) -> str | None:
    """The decoded text of a log line, or None for a client-side line."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if str(record.get("logger", "")).startswith(CLIENT_SIDE):
        return None
    return json.dumps(record, ensure_ascii=False)


def workload(client, services, monkeypatch) -> None:
    """Patient data everywhere a log line could pick it up."""
    fields = patient_fields(family_name="O'Brien-Jones", given_name="Siân", photographer="Llŷr Hughes")
    photo = imagegen.jpeg(imagegen.photo(40, 30, seed=901))
    named = "O'Brien-Jones Siân 9990000018.jpg"
    assert client.post("/api/v1/images", data=fields, files={"file": (named, photo)}).status_code == 201
    # the same image for another patient: a conflict, audited, never naming the other patient
    other = patient_fields(NHS_B, family_name="Ní Bhriain", given_name="Zoë")
    assert client.post("/api/v1/images", data=other, files={"file": (named, photo)}).status_code == 409
    # refusals that echo nothing: a bad check digit, a bad name, a file that is not an image
    bad = patient_fields("9434765918", family_name="Baker^Alice")
    assert client.post("/api/v1/images", data=bad, files={"file": ("a.jpg", photo)}).status_code == 422
    assert client.post("/api/v1/images", data=fields, files={"file": (named, "%PDF-1.4 Siân".encode())}).status_code in (415, 422)
    # the web form, with the birth date in parts
    page_fields = {k: v for k, v in fields.items() if k != "birth_date"}
    page_fields.update({"birth_date[day]": "02", "birth_date[month]": "03", "birth_date[year]": "1984"})
    client.post("/upload", data=page_fields, files={"file": (named, imagegen.jpeg(imagegen.photo(40, 30, seed=902)))})
    # reads with the number and the name in paths and query strings
    for path in (f"/api/v1/patients/{NHS_A}/images", f"/api/v1/search?nhs_number={NHS_A}&name=Siân",
                 "/api/v1/search?name=O'Brien-Jones&birth_date=1984-03-02", f"/patients/{NHS_A}",
                 f"/search?nhs_number={NHS_A}&family_name=O'Brien-Jones", f"/api/v1/audit/patients/{NHS_A}",
                 f"/dicomweb/studies?PatientID={NHS_A}&PatientName=O'Brien*", f"/api/v1/patients/{NHS_C}/retention"):
        assert client.get(path).status_code < 500, path
    # an index outage: 503s are logged as errors, with what failed
    def down(*args, **kwargs):
        raise IndexUnavailable(f"index unavailable while serving {NHS_A}")

    monkeypatch.setattr(services.repository.index.wrapped, "search", down)
    assert client.get(f"/api/v1/search?nhs_number={NHS_A}&name=Siân").status_code == 503
    assert client.get(f"/api/v1/patients/{NHS_A}/images").status_code == 503


@pytest.mark.runs_last
def test_no_patient_data_in_the_logs_of_the_whole_session(client, services, monkeypatch):
    workload(client, services, monkeypatch)
    lines = list(logscan.LINES)
    assert len(lines) > 10, "the session log capture saw nothing (tests/logscan.py not loaded?)"
    leaks: list[tuple[str, str]] = []
    search_for = needles()
    for line in lines:
        text = service_text(line)
        if text is None:
            continue
        for needle in search_for:
            if needle in text:
                leaks.append((needle, text[:400]))
    if leaks:
        out = Path("test-artifacts/logs")
        out.mkdir(parents=True, exist_ok=True)
        (out / "session.jsonl").write_text("\n".join(lines), encoding="utf-8")
    shown = "\n".join(f"{needle!r}: {text}" for needle, text in leaks[:20])
    assert not leaks, f"{len(leaks)} log lines hold patient data (all lines: test-artifacts/logs/session.jsonl):\n{shown}"
