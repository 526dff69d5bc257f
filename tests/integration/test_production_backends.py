"""The API's behaviour on the production backends: S3 (SeaweedFS and MinIO) plus Elasticsearch.

The same scenarios as tests/web, over ``create_app`` with ``OLOGIES_STORE_URL=s3://...`` and
``OLOGIES_INDEX_URL=http://...``: upload, idempotency, the 409 for another patient, search with
filters, free text, dates, names and facets, patient history, renditions, metadata, readiness,
an index outage (202 / 503 / the reconciler), and the CLI (init, check, reindex, reconcile).
Real servers only (infra/*.sh; see tests/integration/conftest.py for skip-or-fail).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
from elasticsearch import Elasticsearch
from fastapi.testclient import TestClient
from PIL import Image
from pydicom import dcmread

from ingest.cli import main as cli
from repository import keys
from tests import imagegen
from tests.conftest import NHS_A, NHS_B, patient_fields
from tests.integration.conftest import authorised, remove_bucket, s3_client
from tests.integration.proxy import TcpProxy
from web.app import create_app

pytestmark = pytest.mark.integration


def upload(client, seed: int, *, expect=(201,), **overrides: str) -> dict:  # type: ignore[no-untyped-def]
    exif = imagegen.exif_bytes(datetime_original=overrides.pop("when", "2024:03:01 10:00:00"), gps=False)
    data = imagegen.jpeg(imagegen.photo(64, 48, seed=seed), exif=exif)
    response = client.post("/api/v1/images", data=patient_fields(**overrides), files={"file": (f"{seed}.jpg", data)})
    assert response.status_code in expect, response.text
    return response.json()


@pytest.fixture
def settings(backends, tmp_path):  # type: ignore[no-untyped-def]
    assert cli_init(backends, tmp_path) == 0
    return backends.settings(tmp_path)


def cli_init(backends, tmp_path, *extra: str) -> int:  # type: ignore[no-untyped-def]
    import os

    saved = dict(os.environ)
    os.environ.update(backends.environment(OLOGIES_SPOOL_DIR=str(tmp_path)))
    try:
        return cli(["init", *extra])
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def client(settings):  # type: ignore[no-untyped-def]
    with TestClient(create_app(settings, reconcile=False)) as test_client:
        yield authorised(test_client)


def test_init_creates_the_bucket_and_index_once_and_serve_needs_it(backends, tmp_path, capsys, monkeypatch):
    for name, value in backends.environment(OLOGIES_SPOOL_DIR=str(tmp_path)).items():
        monkeypatch.setenv(name, value)
    assert cli(["check"]) == 75  # no bucket yet: a configuration problem, said plainly
    assert f"bucket {backends.bucket} does not exist" in capsys.readouterr().err
    serve = subprocess.run([sys.executable, "-m", "ingest.cli", "serve", "--port", "0"], capture_output=True,
                           text=True, timeout=120, env=backends.environment(OLOGIES_SPOOL_DIR=str(tmp_path)))  # fmt: skip
    assert serve.returncode == 75 and "ologies init" in serve.stderr  # once, not in a crash loop
    assert cli(["init", "--no-create-bucket"]) == 75
    capsys.readouterr()
    assert cli(["init"]) == 0
    out = capsys.readouterr().out
    assert f"bucket {backends.bucket} created" in out and "index: http://" in out
    assert cli(["init"]) == 0 and "already exists" in capsys.readouterr().out
    assert cli(["init", "--no-create-bucket"]) == 0 and "answers" in capsys.readouterr().out
    with Elasticsearch(backends.es_url) as es:
        assert es.indices.exists_alias(name=f"{backends.es_prefix}-instances")
    assert cli(["check"]) == 0
    assert json.loads(capsys.readouterr().out)["consistent"] is True


def test_upload_read_back_idempotency_and_conflict(client, backends):
    photo = imagegen.jpeg(imagegen.photo(320, 240, seed=11))
    response = client.post("/api/v1/images", data=patient_fields(), files={"file": ("a.jpg", photo)})
    assert response.status_code == 201, response.text
    item = response.json()["files"][0]
    assert item["searchable"] is True
    uid = item["sop_instance_uid"]
    # the object is in the bucket, where the key scheme says, with its SHA-256 and SSE
    key = f"ologies/{keys.instance_key(item['study_instance_uid'], item['series_instance_uid'], uid)}"
    head = s3_client(backends.s3_endpoint).head_object(Bucket=backends.bucket, Key=key)
    assert len(head["Metadata"]["sha256"]) == 64
    if backends.s3_name == "minio":  # SeaweedFS does not echo the header on HEAD
        assert head.get("ServerSideEncryption") == "AES256"
    # read back byte for byte and by metadata
    file = client.get(f"/api/v1/instances/{uid}/file")
    assert file.status_code == 200 and dcmread(io.BytesIO(file.content)).PatientName.given_name == "Siân"
    assert client.get(f"/api/v1/instances/{uid}").json()["patient"]["nhs_number"] == NHS_A
    # the same file again: one instance, 200 "existing"
    again = client.post("/api/v1/images", data=patient_fields(), files={"file": ("renamed.jpg", photo)})
    assert again.status_code == 200 and again.json()["files"][0]["status"] == "existing"
    assert again.json()["files"][0]["sop_instance_uid"] == uid
    # the same image for another patient: 409 that does not name the first one
    other = client.post("/api/v1/images", data=patient_fields(NHS_B, family_name="Jones"), files={"file": ("a.jpg", photo)})
    assert other.status_code == 409 and NHS_A not in other.text and "Brien" not in other.text
    assert client.get(f"/api/v1/patients/{NHS_B}/images").json()["total"] == 0
    services = client.app.state.services
    assert len(list(services.repository.iter_instance_keys())) == 1
    assert services.repository.check().consistent


@pytest.fixture
def populated(client):  # type: ignore[no-untyped-def]
    upload(client, 1, when="2023:01:10 09:00:00", description="Burn to the dorsum of the hand",
           specialty="burns-plastics", trust="RBN", body_site="85562004")
    upload(client, 2, when="2024:05:02 11:00:00", description="Pigmented lesion, irregular border")
    upload(client, 3, when="2024:06:20 14:00:00", description="Lesion review, café-au-lait macule")
    upload(client, 4, when="2024:06:21 08:00:00", nhs_number=NHS_B, family_name="Llŷr", given_name="Zoë",
           description="Pressure ulcer", specialty="emergency", body_site="46862004")
    return client  # fmt: skip


def test_search_history_facets_and_renditions(populated):
    def total(**params: str) -> int:
        response = populated.get("/api/v1/search", params=params)
        assert response.status_code == 200, response.text
        return int(response.json()["total"])

    assert total() == 4
    assert total(nhs_number=NHS_A) == 3
    assert total(q="lesion") == 2
    assert total(q="CAFE") == 1
    assert total(q="hand") == 1
    assert total(specialty="burns-plastics") == 1 and total(trust="rbn") == 1
    assert total(body_site="46862004") == 1
    assert total(**{"from": "2024-06-01", "to": "2024-06-30"}) == 2
    assert total(name="zoe") == 1 and total(name="o'brien", birth_date="1984-03-02") == 3
    page = populated.get("/api/v1/search", params={"limit": 2, "offset": 2}).json()
    assert page["total"] == 4 and len(page["items"]) == 2
    assert populated.get("/api/v1/search").json()["facets"]["year"] == {"2024": 3, "2023": 1}
    history = populated.get(f"/api/v1/patients/{NHS_A}/images").json()
    dates = [i["capture_date"] for s in history["studies"] for i in s["instances"]]
    assert dates == ["2024-06-20", "2024-05-02", "2023-01-10"]
    assert history["facets"]["specialty"] == {"dermatology": 2, "burns-plastics": 1}
    uid = populated.get("/api/v1/search").json()["items"][0]["sop_instance_uid"]
    thumb = populated.get(f"/api/v1/instances/{uid}/thumbnail")
    assert thumb.status_code == 200 and max(Image.open(io.BytesIO(thumb.content)).size) <= 256
    assert populated.get(f"/api/v1/instances/{uid}/thumbnail", headers={"If-None-Match": thumb.headers["etag"]}).status_code == 304
    rendered = populated.get(f"/api/v1/instances/{uid}/rendered")
    assert rendered.status_code == 200 and rendered.headers["content-type"] == "image/jpeg"
    store = populated.app.state.services.repository.store
    assert any(k.startswith(f"derived/{uid}/") for k in store.iter_keys("derived/"))
    ready = populated.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"store": "ok", "index": "ok"}


def test_index_outage_is_202_then_503_and_the_reconciler_catches_up(backends, tmp_path):
    """Elasticsearch unreachable for this app only (a proxy in between is cut)."""
    assert cli_init(backends, tmp_path) == 0
    es = urlsplit(backends.es_url)
    proxy = TcpProxy(es.hostname or "127.0.0.1", es.port or 9200)
    settings = backends.settings(tmp_path, index_url=proxy.url, es_timeout=2.0, es_search_timeout=1.0, index_retry_seconds=0)
    try:
        with TestClient(create_app(settings, reconcile=False)) as client:
            authorised(client)
            services = client.app.state.services
            upload(client, 20)
            proxy.set("down")
            body = upload(client, 21, expect=(202,))
            assert body["searchable"] is False and "not yet searchable" in body["message"]
            uid = body["files"][0]["sop_instance_uid"]
            started = time.monotonic()
            search = client.get("/api/v1/search")
            assert search.status_code == 503 and int(search.headers["retry-after"]) > 0
            assert time.monotonic() - started < 5
            assert client.get(f"/api/v1/patients/{NHS_A}/images").status_code == 503
            assert client.get("/readyz").status_code == 503
            assert client.get(f"/api/v1/instances/{uid}").json()["patient"]["nhs_number"] == NHS_A
            assert client.get(f"/api/v1/instances/{uid}/file").status_code == 200
            assert services.reconcile_once() == 0 and services.repository.pending_count() == 1
            proxy.set("hang")  # a cluster that accepts connections and never answers
            started = time.monotonic()
            search = client.get("/api/v1/search")
            assert search.status_code == 503 and time.monotonic() - started < 5  # es_search_timeout, no retry
            started = time.monotonic()
            assert client.get("/readyz").status_code == 503 and time.monotonic() - started < 5
            upload(client, 22, expect=(202,))
            proxy.set("up")
            assert services.reconcile_once() == 2
            assert services.repository.pending_count() == 0
            assert client.get("/api/v1/search").json()["total"] == 3
            assert upload(client, 23)["searchable"] is True
            assert services.repository.check().consistent
    finally:
        proxy.close()


def test_reindex_and_check_from_the_command_line(client, backends, tmp_path, capsys, monkeypatch):
    uids = [upload(client, 40 + n)["files"][0]["sop_instance_uid"] for n in range(5)]
    for name, value in backends.environment(OLOGIES_SPOOL_DIR=str(tmp_path)).items():
        monkeypatch.setenv(name, value)
    # lose the index entirely: search is 503 (never an empty 200), check reports every object
    with Elasticsearch(backends.es_url) as es:
        for index in es.indices.get_alias(name=f"{backends.es_prefix}-instances"):
            es.indices.delete(index=index)
    assert client.get("/api/v1/search").status_code == 503
    assert cli(["reindex", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "(new index): 5 created, 0 skipped" in out and "indexed 5 instances" in out
    assert client.get("/api/v1/search").json()["total"] == 5
    # a lost locator is restored by reindex, and check says so before
    store = client.app.state.services.repository.store
    store.delete(keys.locator_key(uids[0]))
    assert cli(["check"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["objects_without_locator"] == [uids[0]] and report["consistent"] is False
    assert cli(["reindex", "--quiet"]) == 0
    assert "1 locators restored" in capsys.readouterr().out
    assert cli(["check"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["consistent"] and report["objects"] == report["indexed"] == 5
    assert cli(["reconcile"]) == 0 and "0 markers remain" in capsys.readouterr().out


def test_missing_bucket_after_start_is_503_not_500(backends, tmp_path):
    assert cli_init(backends, tmp_path) == 0
    with TestClient(create_app(backends.settings(tmp_path), reconcile=False)) as client:
        authorised(client)
        upload(client, 60)
        remove_bucket(backends.s3_endpoint, backends.bucket)  # someone deleted it
        response = client.post("/api/v1/images", data=patient_fields(), files={"file": ("b.jpg", imagegen.jpeg(imagegen.photo(64, 48, seed=61)))})
        assert response.status_code == 503 and "bucket" in response.json()["error"]["message"]
        if backends.s3_name == "minio":  # SeaweedFS re-creates a bucket on any PutObject by an admin key
            assert client.get("/readyz").status_code == 503
