"""Operations: request IDs in and out, /metrics (who may read it, what it counts, no patient
data in it), the pending-index gauge, backend error counters and the JSON log format."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from fastapi.testclient import TestClient

from repository.errors import IndexUnavailable
from repository.metrics import PendingDepth
from tests import imagegen
from tests.conftest import NHS_A, api_key, patient_fields
from web.observability import REDACTED, configure_logging, json_formatter, redact_text


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def upload(client: TestClient, seed: int, **fields: str):
    photo = imagegen.jpeg(imagegen.photo(48, 32, seed=seed))
    return client.post("/api/v1/images", data=patient_fields(**fields), files={"file": ("p.jpg", photo, "image/jpeg")})


def test_request_id_is_returned_kept_or_made(client):
    given = client.get("/healthz", headers={"X-Request-ID": "clinic-7f3a.42"})
    assert given.headers["x-request-id"] == "clinic-7f3a.42"
    made = client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    hostile = client.get("/healthz", headers={"X-Request-ID": ("x\u00e9" * 100 + "\"}{").encode("latin-1")})
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["x-request-id"])  # replaced, never echoed
    assert client.get("/nowhere").headers["x-request-id"]  # also on a 404


def test_metrics_need_an_administrator_or_an_allowed_address(app, client):
    client.headers.pop("Authorization")
    assert client.get("/metrics").status_code == 401
    clinician = api_key(app, role="clinician")
    assert client.get("/metrics", headers={"Authorization": f"Bearer {clinician}"}).status_code == 403
    admin = api_key(app, role="admin")
    ok = client.get("/metrics", headers={"Authorization": f"Bearer {admin}"})
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/plain")


def test_metrics_allow_list_admits_the_scraper_without_credentials(tmp_path):
    from repository.settings import Settings
    from web.app import create_app

    settings = Settings(store_url=(tmp_path / "s").as_uri(), index_url=f"sqlite:///{tmp_path / 'i.db'}",
                        metrics_allow="127.0.0.0/8, ::1", _env_file=None)  # fmt: skip
    app = create_app(settings, reconcile=False)
    with TestClient(app, client=("127.0.0.1", 40000)) as local:
        assert local.get("/metrics").status_code == 200
    with TestClient(app, client=("10.1.2.3", 40000)) as remote:
        assert remote.get("/metrics").status_code == 401


def test_metrics_count_requests_by_route_template_and_ingest_by_outcome(client):
    before = client.get("/metrics").text
    assert upload(client, 1).status_code == 201
    refused = client.post("/api/v1/images", data=patient_fields(), files={"file": ("x.jpg", b"GIF89a" + b"\0" * 64)})
    assert refused.status_code == 415
    assert client.get(f"/api/v1/patients/{NHS_A}/images").status_code == 200
    text = client.get("/metrics").text
    route = "/api/v1/patients/{nhs_number}/images"
    assert metric(text, "ologies_http_request_duration_seconds_count", route=route, status="200") == (
        metric(before, "ologies_http_request_duration_seconds_count", route=route, status="200") + 1
    )
    assert metric(text, "ologies_ingest_total", route="api", outcome="stored") >= 1
    assert metric(text, "ologies_ingest_total", route="api", outcome="unsupported_media_type") >= 1
    assert metric(text, "ologies_backend_duration_seconds_count", backend="store", operation="put") >= 1
    # no patient data: no NHS number, no name, no raw path in any label
    for secret in (NHS_A, "O'Brien", "Siân", "Llŷr"):
        assert secret not in text


def test_pending_depth_and_index_errors_while_the_index_is_down(client, services, monkeypatch):
    def down(*args, **kwargs):
        raise IndexUnavailable("index is down")

    monkeypatch.setattr(services.repository.index.wrapped, "upsert", down)
    errors_before = metric(client.get("/metrics").text, "ologies_backend_errors_total", backend="index", operation="upsert")
    response = upload(client, 2)
    assert response.status_code == 202
    from web.observability import pending_depth

    pending_depth(services).ttl = 0  # count now rather than within the cache period
    text = client.get("/metrics").text
    assert metric(text, "ologies_index_pending_depth") == 1
    assert metric(text, "ologies_backend_errors_total", backend="index", operation="upsert") == errors_before + 1


def test_pending_depth_is_cached_between_scrapes():
    calls = []
    now = [100.0]
    gauge = PendingDepth(lambda: calls.append(1) or len(calls), ttl=30, clock=lambda: now[0])
    assert gauge.value() == 1 and gauge.value() == 1
    now[0] += 31
    assert gauge.value() == 2 and len(calls) == 2


@pytest.mark.parametrize("text", ["patient 9990000018 seen", "NHS 999 000 0018.", "nhs=999-000-0018&x"])
def test_nhs_numbers_are_scrubbed_from_log_text(text):
    assert "0018" not in redact_text(text) and REDACTED in redact_text(text)


@pytest.mark.parametrize("text", ["uid 1.2.826.0.1.3680043.8.498.9990000018", "size 1234567890 bytes", "2.25.99900000181234"])
def test_uids_and_other_numbers_are_left_alone(text):
    assert redact_text(text) == text


def test_log_lines_are_json_with_the_request_id_and_no_nhs_number(client):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("ologies.access")
    logger.addHandler(handler)
    logging.getLogger("web.errors").addHandler(handler)
    try:
        client.get(f"/api/v1/patients/{NHS_A}/images?x=1", headers={"X-Request-ID": "trace-1"})
        logging.getLogger("web.errors").error("failed for %s", NHS_A)
    finally:
        logger.removeHandler(handler)
        logging.getLogger("web.errors").removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = next(line for line in lines if line["event"] == "request")
    assert access["request_id"] == "trace-1" and access["route"] == "/api/v1/patients/{nhs_number}/images"
    assert access["status"] == 200 and access["timestamp"].endswith("Z") and access["level"] == "info"
    assert NHS_A not in stream.getvalue() and REDACTED in stream.getvalue()


def test_configure_logging_replaces_basic_handlers():
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        logging.basicConfig(force=True)
        stream = io.StringIO()
        configure_logging(level="INFO", json=True, stream=stream)
        logging.getLogger("anything").warning("hello %s", "world")
        assert json.loads(stream.getvalue().splitlines()[-1])["event"] == "hello world"
        assert sum(1 for h in root.handlers if type(h) is logging.StreamHandler) == 1
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
