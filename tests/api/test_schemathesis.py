"""API robustness (RELIABILITY.md H8 and the "API robustness" figure of section 4): schemathesis
generates requests for every operation of the service's own ``/openapi.json`` (valid ones and,
with the negative mode, invalid ones), sent as a clinician of one trust with an API key.

Checks that run on every response, and why only these:

* ``not_a_server_error``: no 5xx (the only one that may appear, 503, needs a backend down,
  which nothing here arranges; so any 5xx is a failure);
* ``response_schema_conformance``: a body that contradicts its documented model;
* ``content_type_conformance``: a media type other than the documented one;
* ``response_headers_conformance``: documented response headers missing.

Not run: ``status_code_conformance`` (the operations document their main statuses, not every
401/403/404/409 the access policy and the error table answer, and listing them all on every
operation adds nothing the access-matrix tests do not check), ``ignored_auth`` (no security
scheme is declared in the document; tests/security/test_access_matrix.py sends every route
without credentials and expects 401) and the stateful link checks (no links are declared).

``OLOGIES_SCHEMATHESIS_EXAMPLES`` sets the examples per operation (default 25 in CI; the
release target is 1,000).
"""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
)

from tests import imagegen  # noqa: E402
from tests.conftest import api_key, patient_fields  # noqa: E402

EXAMPLES = int(os.environ.get("OLOGIES_SCHEMATHESIS_EXAMPLES", "25"))
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance, response_headers_conformance]


def _app():  # type: ignore[no-untyped-def]
    """A fresh app over temporary embedded backends (built at collection: schemathesis needs the
    schema then; its pytest fixture loader does not work with this pytest)."""
    import tempfile
    from pathlib import Path

    from repository.settings import Settings
    from web.app import create_app

    work = Path(tempfile.mkdtemp(prefix="ologies-schemathesis-"))
    settings = Settings(store_url=(work / "store").as_uri(), index_url=f"sqlite:///{work / 'index.sqlite3'}",
                        allow_test_nhs_numbers=True, spool_dir=work, _env_file=None)  # fmt: skip
    return create_app(settings, reconcile=False)


APP = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def clinician_key():
    """One stored photograph (so that some generated requests find something), and the key of a
    clinician of trust REM that every request is sent with."""
    from fastapi.testclient import TestClient

    with TestClient(APP) as client:
        photo = imagegen.jpeg(imagegen.photo(32, 24, seed=77))
        client.post("/api/v1/images", headers={"Authorization": f"Bearer {api_key(APP)}"}, data=patient_fields(),
                    files={"file": ("a.jpg", photo)})  # fmt: skip
    return api_key(APP, role="clinician", trust="REM")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_operation_answers_within_its_contract(case, clinician_key):
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {clinician_key}"}
    response = case.call()
    case.validate_response(response, checks=CHECKS)
