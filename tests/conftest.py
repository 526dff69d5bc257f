"""Shared fixtures: settings objects (never environment variables), an app over temporary
embedded backends, and the patient fields of a valid upload."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from repository.settings import Settings
# every log line of the session, for the patient-data scan that runs last (tests/logscan.py)
from tests.logscan import keep_session_logs, pytest_collection_modifyitems, pytest_configure  # noqa: F401

# Valid Modulus 11 numbers from the 999 test range: never a real patient.
NHS_A = "9990000018"
NHS_B = "9990000026"
NHS_C = "9990000034"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        store_url=(tmp_path / "store").as_uri(),
        index_url=f"sqlite:///{tmp_path / 'index.sqlite3'}",
        allow_test_nhs_numbers=True,
        spool_dir=tmp_path,
        _env_file=None,
    )


@pytest.fixture
def app(settings):
    from web.app import create_app

    return create_app(settings, reconcile=False)


def api_key(app, role: str = "admin", trust: str = "REM", **extra: str) -> str:
    """A real API key made through the accounts store, as ``ologies keys create`` makes one."""
    _, secret = app.state.services.accounts.create_key(name=f"test {role} {trust}", role=role, trust=trust, **extra)
    return secret


@pytest.fixture
def client(app):
    """A client signed in as an administrator (sees every trust); the access tests make others."""
    with TestClient(app) as test_client:
        test_client.headers["Authorization"] = f"Bearer {api_key(app)}"
        yield test_client


@pytest.fixture
def services(app):
    return app.state.services


def patient_fields(nhs_number: str = NHS_A, **overrides: str) -> dict[str, str]:
    fields = {
        "nhs_number": nhs_number,
        "family_name": "O'Brien-Jones",
        "given_name": "Siân",
        "birth_date": "1984-03-02",
        "sex": "F",
        "trust": "REM",
        "specialty": "dermatology",
        "body_site": "14975008",
        "laterality": "L",
        "consent": "clinical-care",
        "description": "Pigmented lesion, irregular border",
        "photographer": "Llŷr Evans",
    }
    fields.update(overrides)
    return fields


@pytest.fixture
def fields() -> dict[str, str]:
    return patient_fields()
