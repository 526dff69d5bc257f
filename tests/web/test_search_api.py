"""Search, patient history, metadata, renditions, health and the index-outage behaviour."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from repository.errors import IndexUnavailable
from repository.settings import Settings
from search.backends.sqlite import SQLiteIndex
from tests import imagegen
from tests.conftest import NHS_A, NHS_B, api_key, patient_fields
from web.app import create_app
from web.services import Services


def upload(client, seed: int, **overrides: str) -> dict:
    exif = imagegen.exif_bytes(datetime_original=overrides.pop("when", "2024:03:01 10:00:00"), gps=False)
    data = imagegen.jpeg(imagegen.photo(64, 48, seed=seed), exif=exif)
    response = client.post("/api/v1/images", data=patient_fields(**overrides), files={"file": (f"{seed}.jpg", data)})
    assert response.status_code in (201, 202), response.text
    return response.json()


@pytest.fixture
def populated(client):
    upload(client, 1, when="2023:01:10 09:00:00", description="Burn to the dorsum of the hand",
           specialty="burns-plastics", trust="RBN", body_site="85562004")
    upload(client, 2, when="2024:05:02 11:00:00", description="Pigmented lesion, irregular border")
    upload(client, 3, when="2024:06:20 14:00:00", description="Lesion review, café-au-lait macule")
    upload(client, 4, when="2024:06:21 08:00:00", nhs_number=NHS_B, family_name="Llŷr", given_name="Zoë",
           description="Pressure ulcer", specialty="emergency", body_site="46862004")
    return client  # fmt: skip


def test_patient_history_is_newest_first_and_grouped_by_study(populated):
    body = populated.get(f"/api/v1/patients/{NHS_A}/images").json()
    assert body["total"] == 3
    dates = [i["capture_date"] for s in body["studies"] for i in s["instances"]]
    assert dates == ["2024-06-20", "2024-05-02", "2023-01-10"]
    assert len(body["studies"]) == 3
    assert body["facets"]["specialty"] == {"dermatology": 2, "burns-plastics": 1}
    assert populated.get("/api/v1/patients/999 000 0018/images").json()["total"] == 3


def test_search_filters_text_dates_and_facets(populated):
    def total(**params) -> int:
        response = populated.get("/api/v1/search", params=params)
        assert response.status_code == 200, response.text
        return response.json()["total"]

    assert total() == 4
    assert total(nhs_number=NHS_A) == 3
    assert total(q="lesion") == 2
    assert total(q="CAFE") == 1
    assert total(q="hand") == 1  # body site meaning is searchable text
    assert total(specialty="burns-plastics") == 1
    assert total(trust="rbn") == 1
    assert total(body_site="46862004") == 1
    assert total(**{"from": "2024-06-01", "to": "2024-06-30"}) == 2
    assert total(name="zoe") == 1
    assert total(name="o'brien", birth_date="1984-03-02") == 3
    page = populated.get("/api/v1/search", params={"limit": 2, "offset": 2}).json()
    assert page["total"] == 4 and len(page["items"]) == 2
    facets = populated.get("/api/v1/search").json()["facets"]
    assert facets["year"] == {"2024": 3, "2023": 1}
    assert set(facets) >= {"specialty", "body_site", "trust", "year"}


@pytest.mark.parametrize(
    "params, field",
    [({"from": "yesterday"}, "from"), ({"from": "2024-02-01", "to": "2024-01-01"}, "from"),
     ({"limit": "0"}, "limit"), ({"nhs_number": "123"}, "nhs_number")],
)  # fmt: skip
def test_bad_search_parameters_are_4xx_naming_them(client, params, field):
    response = client.get("/api/v1/search", params=params)
    assert response.status_code in (400, 422)
    assert response.json()["error"]["field"] == field


def test_thumbnail_is_small_cached_and_revalidates(populated):
    uid = populated.get("/api/v1/search").json()["items"][0]["sop_instance_uid"]
    first = populated.get(f"/api/v1/instances/{uid}/thumbnail")
    assert first.headers["content-type"] == "image/jpeg"
    assert "immutable" in first.headers["cache-control"] and "private" in first.headers["cache-control"]
    assert max(Image.open(io.BytesIO(first.content)).size) <= 256
    again = populated.get(f"/api/v1/instances/{uid}/thumbnail", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    services = populated.app.state.services
    assert any(k.startswith(f"derived/{uid}/") for k in services.repository.store.iter_keys("derived/"))


def test_unknown_instance_is_404(client):
    for suffix in ("", "/file", "/rendered", "/thumbnail"):
        response = client.get(f"/api/v1/instances/2.25.12345{suffix}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/instances/../../etc/passwd").status_code == 404


def test_health_readiness_and_openapi(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"store": "ok", "index": "ok"}
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/images", "/api/v1/search", "/api/v1/patients/{nhs_number}/images",
                 "/api/v1/instances/{uid}", "/api/v1/instances/{uid}/file",
                 "/api/v1/instances/{uid}/rendered", "/api/v1/instances/{uid}/thumbnail"):  # fmt: skip
        assert path in paths


class SwitchableIndex(SQLiteIndex):
    """The real SQLite index with an off switch, standing in for an Elasticsearch outage."""

    down = False

    def _run(self, fn):  # type: ignore[no-untyped-def]
        if self.down:
            raise IndexUnavailable("index is down")
        return super()._run(fn)


def test_index_outage_upload_is_202_search_is_503_and_reconciler_catches_up(tmp_path):
    settings = Settings(store_url=(tmp_path / "s").as_uri(), index_url="sqlite:///unused", _env_file=None)
    index = SwitchableIndex(tmp_path / "index.sqlite3")
    services = Services.build(settings, index=index)
    app = create_app(services=services, reconcile=False)
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {api_key(app)}"
        index.down = True
        body = upload(client, 7)
        assert body["searchable"] is False and "not yet searchable" in body["message"]
        uid = body["files"][0]["sop_instance_uid"]
        search = client.get("/api/v1/search")
        assert search.status_code == 503 and int(search.headers["retry-after"]) > 0
        assert client.get(f"/api/v1/patients/{NHS_A}/images").status_code == 503
        assert client.get("/readyz").status_code == 503
        # the image itself is safe and readable while the index is down
        assert client.get(f"/api/v1/instances/{uid}").json()["patient"]["nhs_number"] == NHS_A
        assert client.get(f"/api/v1/instances/{uid}/file").status_code == 200
        assert services.reconcile_once() == 0
        index.down = False
        assert services.reconcile_once() == 1
        assert client.get("/api/v1/search").json()["total"] == 1
        assert services.repository.check().consistent
