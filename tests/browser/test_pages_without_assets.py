"""The service must not depend on npm: without web/static/vendor the pages still render (with a
warning in the log) and the API answers as ever. No browser needed."""

from __future__ import annotations

import logging

import pytest

from starlette.staticfiles import StaticFiles

from web.pages import assets, context, templating


@pytest.fixture
def no_vendor(monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    static = tmp_path / "static"  # a checkout where build-assets.sh never ran
    monkeypatch.setattr(templating, "VENDOR", static / "vendor" / "nhsuk")
    monkeypatch.setattr(context, "TEMPLATES", templating.build_templates())
    monkeypatch.setattr(assets, "_files", StaticFiles(directory=static, check_dir=False))


def test_pages_render_without_the_design_system_assets(no_vendor, client, caplog):  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.WARNING, logger="web.pages.templating"):
        templating.check_vendor()
    assert "infra/build-assets.sh" in caplog.text
    for url in ("/", "/upload", "/search"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "nhsuk-frontend.min.css" not in response.text  # no links to files that are not there
        assert "/static/ologies.css" in response.text
    assert client.get("/static/vendor/nhsuk/nhsuk-frontend.min.css").status_code == 404
    assert client.get("/api/v1/trusts").status_code == 200


def test_page_errors_are_pages_and_api_errors_stay_json(client):  # type: ignore[no-untyped-def]
    page = client.get("/images/2.25.1")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "Not found" in page.text
    api = client.get("/api/v1/instances/2.25.1")
    assert api.status_code == 404 and api.json()["error"]["code"]
    bad = client.get("/patients/1234567890")
    assert bad.status_code == 422 and "Modulus 11" in bad.text
    assert client.get("/patients/9990000018").headers["cache-control"] == "no-store"
