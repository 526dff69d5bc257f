"""Viewing an instance while the index is down: the object store answers (it holds the truth),
and after one failure the index is left alone for ``index_retry_seconds`` instead of each view
paying for the failure first (under load that doubled the p95 of thumbnails)."""

from __future__ import annotations

from repository.errors import IndexUnavailable
from tests import imagegen
from tests.conftest import patient_fields


def test_views_while_the_index_is_down_ask_it_once_then_read_the_store(client, services, monkeypatch):
    photo = imagegen.jpeg(imagegen.photo(320, 240, seed=5))
    uid = client.post("/api/v1/images", data=patient_fields(), files={"file": ("p.jpg", photo, "image/jpeg")}).json()["files"][0]["sop_instance_uid"]
    repository = services.repository
    repository.index_retry_seconds = 60
    asked = []

    def down(sop_uid):  # type: ignore[no-untyped-def]
        asked.append(sop_uid)
        raise IndexUnavailable("index is down")

    monkeypatch.setattr(repository.index.wrapped, "get", down)
    for _ in range(3):
        assert client.get(f"/api/v1/instances/{uid}/thumbnail").status_code == 200
    metadata = client.get(f"/api/v1/instances/{uid}")
    assert metadata.status_code == 200 and uid in metadata.text
    assert asked == [uid]  # asked once; then the store, for as long as the pause lasts

    repository.index_recovered()  # a reconcile pass found it back
    client.get(f"/api/v1/instances/{uid}/thumbnail")
    assert asked == [uid, uid]
