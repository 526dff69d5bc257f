"""Faults against real servers (RELIABILITY.md catalogue E, F and G), in bounded loops on loopback.

(a) Elasticsearch hung (SIGSTOP), then killed (SIGKILL), then restarted on its data, in the middle
    of a stream of uploads: every upload is acknowledged 201 or 202, search answers 503 with
    Retry-After within a few seconds while it is away, and once it is back the background
    reconciler makes every acknowledged upload searchable; ``check`` is consistent.
(b) The S3 server hung, then killed, then restarted: uploads fail with 503 within the S3 timeouts,
    nothing is half visible (no index entry or locator without its object), and the running app
    recovers by itself.
(c) ``ologies serve`` SIGKILLed during a stream of uploads, three times: after a restart the
    reconciler leaves store and index identical (``ologies check``), and every upload that was
    answered 2xx is there and searchable.

These tests stop and kill servers, so they run their own MinIO (or SeaweedFS) and Elasticsearch
from the infra/ scripts on free ports (tests/integration/servers.py), never the shared ones. They
run where the shared servers' variables are set (the machine has the servers installed) and fail
if a private server does not start.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from repository.registry import open_index, open_store
from repository.settings import Settings
from tests import imagegen
from tests.conftest import NHS_A, patient_fields
from tests.integration.conftest import (
    ACCESS_KEY,
    SECRET_KEY,
    Backends,
    authorised,
    es_url_from_env,
    poll,
    remove_bucket,
    remove_indices,
)
from tests.integration.servers import PrivateServer, free_port
from web.app import create_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class Private:
    s3: PrivateServer
    es: PrivateServer

    def backends(self) -> Backends:
        suffix = uuid.uuid4().hex[:10]
        return Backends(self.s3.service, self.s3.url, self.es.url, f"ologies-fault-{suffix}", f"ologies-fault-{suffix}")


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    if not es_url_from_env():
        pytest.skip("set OLOGIES_TEST_ES_URL: fault tests need Elasticsearch installed by infra/")
    if os.environ.get("OLOGIES_TEST_MINIO_URL"):
        s3_service = "minio"
    elif os.environ.get("OLOGIES_TEST_SEAWEEDFS_URL"):
        s3_service = "seaweedfs"
    else:
        pytest.skip("set OLOGIES_TEST_MINIO_URL or OLOGIES_TEST_SEAWEEDFS_URL: fault tests need an S3 server")
    run_dir = tmp_path_factory.mktemp("servers")
    servers = Private(PrivateServer(s3_service, run_dir), PrivateServer("elasticsearch", run_dir))
    started: list[PrivateServer] = []
    try:
        for server in (servers.s3, servers.es):
            try:
                server.start()
            except RuntimeError as exc:
                pytest.fail(f"a private {server.service} for the fault tests did not start: {exc}", pytrace=False)
            started.append(server)
        yield servers
    finally:
        for server in started:
            with contextlib.suppress(Exception):
                server.cont()
            with contextlib.suppress(Exception):
                server.stop()


@pytest.fixture
def backends(private: Private) -> Iterator[Backends]:
    made = private.backends()
    yield made
    with contextlib.suppress(Exception):
        remove_indices(made.es_url, made.es_prefix)
    with contextlib.suppress(Exception):
        remove_bucket(made.s3_endpoint, made.bucket)


def initialise(settings: Settings) -> None:
    store, index = open_store(settings), open_index(settings)
    store.ensure_bucket()
    index.ensure_schema()
    store.close()
    index.close()


class Uploads:
    """Distinct small photographs for one patient, and what became of each."""

    def __init__(self) -> None:
        self.seed = random.randrange(10**6)
        self.acknowledged: dict[str, int] = {}  # SOP Instance UID -> 201 / 202 / 200
        self.statuses: list[int] = []

    def next(self) -> tuple[str, bytes]:
        self.seed += 1
        return f"{self.seed}.jpg", imagegen.jpeg(imagegen.photo(64, 48, seed=self.seed))

    def record(self, response) -> int:  # type: ignore[no-untyped-def]
        self.statuses.append(response.status_code)
        if response.status_code in (200, 201, 202):
            for item in response.json()["files"]:
                self.acknowledged[item["sop_instance_uid"]] = response.status_code
        return int(response.status_code)


def post(client, uploads: Uploads) -> tuple[int, float, object]:  # type: ignore[no-untyped-def]
    name, data = uploads.next()
    started = time.monotonic()
    response = client.post("/api/v1/images", data=patient_fields(), files={"file": (name, data)})
    return uploads.record(response), time.monotonic() - started, response


def searchable(client, uploads: Uploads, *, exact: bool = True) -> bool:  # type: ignore[no-untyped-def]
    """Every acknowledged upload is found; with ``exact``, nothing else is. (An upload refused with
    503 after its object and index entry were written is found too: complete, never half.)"""
    response = client.get("/api/v1/search", params={"nhs_number": NHS_A, "limit": 500})
    if response.status_code != 200:
        return False
    found = {item["sop_instance_uid"] for item in response.json()["items"]}
    extra = found - set(uploads.acknowledged)
    if extra:
        print(f"found {len(extra)} instance(s) of uploads that were answered 503: {sorted(extra)}")
    return set(uploads.acknowledged) <= found and not (exact and extra)


def complete_only(client, uploads: Uploads) -> bool:  # type: ignore[no-untyped-def]
    """A search that answers lists only uploads that were acknowledged (none half stored)."""
    response = client.get("/api/v1/search", params={"nhs_number": NHS_A, "limit": 500})
    if response.status_code == 503:
        return True
    found = {item["sop_instance_uid"] for item in response.json()["items"]}
    return response.status_code == 200 and found <= set(uploads.acknowledged)


def test_a_elasticsearch_hung_then_killed_then_back_loses_nothing(private, backends, tmp_path):
    settings = backends.settings(
        tmp_path, es_timeout=2.0, es_search_timeout=1.5, index_retry_seconds=2.0, reconcile_interval_seconds=1.0,
    )  # fmt: skip
    initialise(settings)
    uploads = Uploads()
    with TestClient(create_app(settings, reconcile=True)) as client:
        authorised(client)
        for _ in range(4):
            assert post(client, uploads)[0] == 201
        assert searchable(client, uploads)

        timings: dict[str, list[float]] = {"upload, hung": [], "search, hung": [], "readyz, hung": [],
                                           "upload, killed": [], "search, killed": []}  # fmt: skip
        private.es.pause()  # hung: connections are accepted, nothing answers
        try:
            for _ in range(4):
                status, seconds, response = post(client, uploads)
                timings["upload, hung"].append(seconds)
                assert status in (201, 202), response.text  # type: ignore[attr-defined]
                assert seconds < 20  # at worst es_timeout x 3 tries, then pending for a while
            started = time.monotonic()
            search = client.get("/api/v1/search")
            timings["search, hung"].append(time.monotonic() - started)
            assert search.status_code == 503 and int(search.headers["retry-after"]) > 0
            assert timings["search, hung"][-1] < 6  # es_search_timeout, never a 200
            started = time.monotonic()
            assert client.get("/readyz").status_code == 503
            timings["readyz, hung"].append(time.monotonic() - started)
            assert timings["readyz, hung"][-1] < 6
        finally:
            private.es.kill()  # and then it crashes (SIGKILL reaches a stopped process too)

        for _ in range(4):
            status, seconds, response = post(client, uploads)
            timings["upload, killed"].append(seconds)
            assert status == 202 and seconds < 10, response.text  # type: ignore[attr-defined]
        started = time.monotonic()
        assert client.get("/api/v1/search").status_code == 503
        timings["search, killed"].append(time.monotonic() - started)
        print("seconds:", {k: [round(v, 2) for v in vs] for k, vs in timings.items()})
        search = client.get(f"/api/v1/patients/{NHS_A}/images")
        assert search.status_code == 503 and "retry-after" in search.headers

        restarting = threading.Thread(target=private.es.resume)  # on its data, as a restart would
        restarting.start()
        while restarting.is_alive():  # keep uploading while it starts and recovers its shards
            status, _, response = post(client, uploads)
            assert status in (201, 202), response.text  # type: ignore[attr-defined]
            time.sleep(0.5)
        restarting.join()
        for _ in range(2):
            assert post(client, uploads)[0] in (201, 202)

        services = client.app.state.services
        poll(lambda: services.repository.pending_count() == 0 and searchable(client, uploads), timeout=120,
             what="the background reconciler to index every acknowledged upload")  # fmt: skip
        for uid in uploads.acknowledged:
            assert client.get(f"/api/v1/instances/{uid}").status_code == 200
        report = services.repository.check()
        assert report.consistent and report.objects == report.indexed == len(uploads.acknowledged)
    assert set(uploads.statuses) <= {201, 202}
    assert 202 in uploads.statuses and 201 in uploads.statuses


def test_b_s3_hung_then_killed_then_back_is_503_and_recovers_alone(private, backends, tmp_path):
    settings = backends.settings(tmp_path, s3_connect_timeout=1.0, s3_read_timeout=2.0, s3_max_attempts=2)
    initialise(settings)
    uploads = Uploads()
    with TestClient(create_app(settings, reconcile=False)) as client:
        authorised(client)
        for _ in range(3):
            assert post(client, uploads)[0] == 201
        first = next(iter(uploads.acknowledged))
        big = imagegen.camera_jpeg(seed=uploads.seed)  # a few MB: the store dies while it is sent

        # hung in the middle of an upload, then for the next ones
        timer = threading.Timer(0.3, private.s3.pause)
        timer.start()
        response = client.post("/api/v1/images", data=patient_fields(), files={"file": ("big.jpg", big)})
        timer.join()
        assert uploads.record(response) in (201, 503), response.text
        try:
            for _ in range(2):
                status, seconds, response = post(client, uploads)
                assert status == 503 and seconds < 20, response.text  # type: ignore[attr-defined]
                assert int(response.headers["retry-after"]) > 0  # type: ignore[attr-defined]
            assert client.get(f"/api/v1/instances/{first}/file").status_code == 503
            assert client.get("/readyz").status_code == 503
            # a search is audited in the store, so it may be refused too; never a wrong answer
            assert client.get("/api/v1/search").status_code in (200, 503)
            assert complete_only(client, uploads)
        finally:
            private.s3.kill()
        for _ in range(2):
            status, seconds, response = post(client, uploads)
            assert status == 503 and seconds < 10, response.text  # type: ignore[attr-defined]
        assert complete_only(client, uploads)

        private.s3.resume()
        poll(lambda: post(client, uploads)[0] == 201, timeout=30, every=1, what="an upload to succeed again")
        for _ in range(2):
            assert post(client, uploads)[0] == 201
        assert client.get(f"/api/v1/instances/{first}/file").status_code == 200
        assert searchable(client, uploads, exact=False)
        repository = client.app.state.services.repository
        report = repository.check()
        assert report.missing_from_store == [] and report.locators_without_object == []
        repository.reconcile_pending(force=True)  # markers of uploads that never wrote their object
        report = repository.check()
        assert report.consistent and report.pending_markers == 0
        assert report.objects == report.indexed >= len(uploads.acknowledged)
        for uid in repository.index.iter_uids():  # complete: readable, whether acknowledged or not
            assert client.get(f"/api/v1/instances/{uid}/file").status_code == 200
    assert set(uploads.statuses) <= {201, 503}


class Server:
    """``ologies serve`` in its own process group, so that a SIGKILL takes its workers too."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ingest.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        poll(self._ready, timeout=90, what=f"ologies serve (log {log})")

    def _ready(self) -> bool:
        assert self.proc.poll() is None, "ologies serve exited"
        try:
            return httpx.get(self.url + "/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._log.close()

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=60)
        self._log.close()


def test_c_app_killed_between_store_and_index_is_made_whole(private, backends, tmp_path):
    settings = backends.settings(tmp_path)
    initialise(settings)
    from web.services import Services

    services = Services.build(settings)
    _, secret = services.accounts.create_key(name="fault test", role="admin", trust="REM")
    repository = services.repository
    headers = {"Authorization": f"Bearer {secret}"}
    env = backends.environment(
        OLOGIES_SPOOL_DIR=str(tmp_path), OLOGIES_RECONCILE_INTERVAL_SECONDS="1", OLOGIES_WORKERS="2",
    )  # fmt: skip
    uploads, lock = Uploads(), threading.Lock()
    caught_in_between = 0
    for round_ in range(3):
        server = Server(env, tmp_path / "serve.log")
        stop = threading.Event()

        def stream() -> None:
            with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
                while not stop.is_set():
                    with lock:
                        name, data = uploads.next()
                    try:
                        response = http.post("/api/v1/images", data=patient_fields(), files={"file": (name, data)})
                    except httpx.HTTPError:
                        continue  # killed under us: not acknowledged, so not promised
                    with lock:
                        uploads.record(response)

        threads = [threading.Thread(target=stream) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(2.0 + random.random() * 2)
        if round_ > 0:
            # A kill at a random moment only sometimes lands in the short gap between store and
            # index (CI once saw none in three rounds). Hanging the index first widens that gap to
            # every upload in flight, so that the later rounds always test what this test is for.
            private.es.pause()
            time.sleep(1.5)
        try:
            server.kill()
        finally:
            if round_ > 0:
                private.es.cont()
        stop.set()
        for thread in threads:
            thread.join(timeout=90)
        # what the kill left: objects stored and not yet indexed are the interesting case
        caught_in_between += len(repository.check().missing_from_index)
    assert set(uploads.statuses) <= {201, 202}, uploads.statuses
    assert len(uploads.acknowledged) >= 6

    server = Server(env, tmp_path / "serve.log")  # its reconciler completes what the kills left
    try:

        def consistent() -> bool:
            done = subprocess.run([sys.executable, "-m", "ingest.cli", "check"], env=env, capture_output=True, text=True)
            return done.returncode == 0

        poll(consistent, timeout=120, every=1, what="ologies check to find store and index identical")
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
            found = http.get("/api/v1/search", params={"nhs_number": NHS_A, "limit": 500}).json()
            uids = {item["sop_instance_uid"] for item in found["items"]}
            assert set(uploads.acknowledged) <= uids  # every 2xx is there and searchable
            for uid in uploads.acknowledged:
                assert http.get(f"/api/v1/instances/{uid}/file").status_code == 200
        report = repository.check()
        assert report.consistent and report.objects == report.indexed == found["total"]
        # markers of uploads killed before their object was written are dropped by --force
        done = subprocess.run([sys.executable, "-m", "ingest.cli", "reconcile", "--force"], env=env,
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0 and "0 markers remain" in done.stdout, done.stdout + done.stderr
    finally:
        server.stop()
        services.close()
    print(f"acknowledged {len(uploads.acknowledged)}; stored but not indexed right after the kills: "
          f"{caught_in_between}; objects after recovery: {report.objects}")
    assert caught_in_between > 0, "no kill landed between store and index: the test proved nothing"


def test_private_servers_use_their_own_ports(private):
    """The fault tests never touch the shared servers named by the environment."""
    shared = {os.environ.get(v, "") for v in ("OLOGIES_TEST_ES_URL", "OLOGIES_TEST_ELASTICSEARCH_URL",
                                              "OLOGIES_TEST_MINIO_URL", "OLOGIES_TEST_SEAWEEDFS_URL")}  # fmt: skip
    assert private.es.url not in shared and private.s3.url not in shared
    assert ACCESS_KEY and SECRET_KEY
