"""The counted fault loop (tests/integration/fault_loop.py) against private MinIO (or SeaweedFS)
and Elasticsearch servers: hangs, kills and restarts of the store, the index and the app during
uploads and searches. Nothing acknowledged is lost, nothing is half visible, no search says "no
photographs" while there are some, nothing hangs, and the service recovers by itself.

``OLOGIES_FAULTS`` sets the number of faults (default 40 in CI; ``python -m tests.figures`` runs
1,000).
"""

from __future__ import annotations

import os

import pytest

from tests.integration.conftest import es_url_from_env
from tests.integration.fault_loop import run_fault_loop

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAULTS = int(os.environ.get("OLOGIES_FAULTS", "40"))


def test_counted_faults_lose_nothing_and_the_service_recovers_alone(tmp_path):
    if not es_url_from_env():
        pytest.skip("set OLOGIES_TEST_ES_URL: the fault loop needs Elasticsearch installed by infra/")
    if os.environ.get("OLOGIES_TEST_MINIO_URL"):
        service = "minio"  # restarts in about 3 s; SeaweedFS takes 15
    elif os.environ.get("OLOGIES_TEST_SEAWEEDFS_URL"):
        service = "seaweedfs"
    else:
        pytest.skip("set OLOGIES_TEST_MINIO_URL or OLOGIES_TEST_SEAWEEDFS_URL: the fault loop needs an S3 server")
    report = run_fault_loop(FAULTS, work=tmp_path, s3_service=service, log=print)
    summary = report.summary()
    print(summary)
    assert report.injected == FAULTS
    assert report.acknowledged >= 10, summary  # the loop did upload through the faults
    assert report.lost == [], report.lost[:20]
    assert report.half_visible == [], report.half_visible[:20]
    assert report.dishonest_searches == 0, summary
    assert report.slowest_answer_s < 30, summary  # 503 in seconds, never a request held for minutes
    assert set(summary["uploads"]) <= {"200", "201", "202", "503", "connection lost"}, summary
    assert set(summary["searches"]) <= {"200", "503", "connection lost"}, summary
