"""``ologies serve --workers 2 --metrics-port``: the separate exporter reports the requests of both
worker processes together (Prometheus multi-process mode), with no sign-in, and no patient data;
the app's own /metrics, asked by an administrator of any worker, reports the same sums."""

from __future__ import annotations

import httpx

from tests.conftest import NHS_A
from tests.serverproc import ServerProcess, free_port
from tests.web.test_observability import metric


def test_metrics_of_all_workers_on_the_exporter_port():
    port = free_port()
    with ServerProcess(workers=2, args=("--metrics-port", str(port))) as server:
        route = "/api/v1/patients/{nhs_number}/images"
        with httpx.Client(base_url=server.url, headers=server.headers(), timeout=30) as http:
            seen = set()
            for _ in range(40):  # new connections, so that both workers take some
                with httpx.Client(base_url=server.url, headers=server.headers(), timeout=30) as one:
                    response = one.get(f"/api/v1/patients/{NHS_A}/images")
                    assert response.status_code == 200
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            assert metric(text, "ologies_http_request_duration_seconds_count", route=route, status="200") == 40
            assert "ologies_index_pending_depth 0.0" in text
            assert NHS_A not in text
            for _ in range(6):  # whichever worker answers, it reports both workers' sums
                app_text = http.get("/metrics").text
                seen.add(metric(app_text, "ologies_http_request_duration_seconds_count", route=route, status="200"))
            assert seen == {40.0}
        workers = {line for line in server.log_tail(200).splitlines() if "Started server process" in line}
        assert len(workers) == 2, server.log_tail()
