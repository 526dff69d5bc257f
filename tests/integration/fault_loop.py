"""A counted loop of injected faults against the real servers, during a bounded stream of uploads
and searches: the "faults injected / acknowledged items lost" figure of RELIABILITY.md section 4.

tests/integration/test_faults.py walks through each fault once, with a close look at what the
service answers (E1-E3, F1-F3, G1-G2). This loop adds the count: it injects ``faults`` faults,
one after another with a moment of health between them, while uploaders and searchers keep
going, and then checks every acknowledged item (tests/invariants.py) once everything is back.

Faults (each counts as one), against private servers on free ports (never the shared ones):

* ``store-hang`` / ``index-hang`` / ``both-hang``: SIGSTOP the S3 server, Elasticsearch or both
  for 0.05-0.8 s, then SIGCONT (a stalled process or a partition);
* ``store-kill``: SIGKILL the S3 server, then start it again on its data;
* ``index-kill``: the same for Elasticsearch (slow to start: at most one in ``index_kill_every``);
* ``app-kill``: SIGKILL ``ologies serve`` and its workers, then start it again (a crash between
  storing and indexing, RELIABILITY.md G5).

What is measured: uploads acknowledged (2xx) and refused (503, connection cut by a kill), the
slowest answer (the service answers 503 rather than hanging), searches that answered 200 with
nothing while acknowledged items existed (search-down honesty: must be 0), and after recovery,
acknowledged items lost (INV-1) and half-visible items (INV-2).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests import imagegen
from tests.conftest import NHS_A, patient_fields
from tests.invariants import InvariantViolation, Ledger, assert_repository_consistent, check_item
from tests.serverproc import ServerProcess

FAULTS = ("store-hang", "index-hang", "both-hang", "store-kill", "index-kill", "app-kill")
WEIGHTS = (55, 22, 8, 7, 1, 7)


@dataclass
class FaultReport:
    faults: dict[str, int] = field(default_factory=dict)
    uploads: dict[str, int] = field(default_factory=dict)  # outcome -> count
    searches: dict[str, int] = field(default_factory=dict)
    acknowledged: int = 0
    lost: list[str] = field(default_factory=list)
    half_visible: list[str] = field(default_factory=list)
    dishonest_searches: int = 0
    slowest_answer_s: float = 0.0
    recovery_s: float = 0.0
    seconds: float = 0.0
    s3_server: str = ""

    @property
    def injected(self) -> int:
        return sum(self.faults.values())

    def summary(self) -> dict[str, Any]:
        return {
            "faults_injected": self.injected,
            "faults": dict(self.faults),
            "acknowledged": self.acknowledged,
            "acknowledged_lost": len(self.lost),
            "half_visible": len(self.half_visible),
            "uploads": dict(self.uploads),
            "searches": dict(self.searches),
            "dishonest_searches": self.dishonest_searches,
            "slowest_answer_s": round(self.slowest_answer_s, 1),
            "recovery_s": round(self.recovery_s, 1),
            "seconds": round(self.seconds, 1),
            "s3_server": self.s3_server,
        }


class _Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[str, int] = {}

    def add(self, key: str) -> None:
        with self.lock:
            self.values[key] = self.values.get(key, 0) + 1


class FaultLoop:
    """``s3`` and ``es`` are started ``tests.integration.servers.PrivateServer``s; the app runs
    as ``ologies serve`` over a bucket and an index prefix of its own."""

    def __init__(self, s3: Any, es: Any, work: Path, *, seed: int = 8, uploaders: int = 3, searchers: int = 2,
                 index_kill_every: int = 250, log: Any = None) -> None:  # fmt: skip
        self.s3, self.es, self.work = s3, es, work
        self.rng = random.Random(seed)
        self.uploaders, self.searchers = uploaders, searchers
        self.index_kill_every = index_kill_every
        self.log = log or (lambda message: None)
        suffix = uuid.uuid4().hex[:10]
        self.bucket, self.prefix = f"ologies-loop-{suffix}", f"ologies-loop-{suffix}"
        from tests.integration.conftest import ACCESS_KEY, SECRET_KEY

        self.env = {
            "OLOGIES_STORE_URL": f"s3://{self.bucket}/ologies", "OLOGIES_S3_ENDPOINT_URL": s3.url,
            "OLOGIES_S3_ACCESS_KEY": ACCESS_KEY, "OLOGIES_S3_SECRET_KEY": SECRET_KEY,
            "OLOGIES_S3_SERVER_SIDE_ENCRYPTION": "AES256",
            "OLOGIES_INDEX_URL": es.url, "OLOGIES_ES_INDEX_PREFIX": self.prefix,
            "OLOGIES_ALLOW_TEST_NHS_NUMBERS": "true", "OLOGIES_SPOOL_DIR": str(work),
            # fail fast: a hung backend becomes a 503 in seconds, never a request held for minutes
            "OLOGIES_S3_CONNECT_TIMEOUT": "1", "OLOGIES_S3_READ_TIMEOUT": "3", "OLOGIES_S3_MAX_ATTEMPTS": "2",
            "OLOGIES_ES_TIMEOUT": "2", "OLOGIES_ES_SEARCH_TIMEOUT": "1.5", "OLOGIES_INDEX_RETRY_SECONDS": "1",
            "OLOGIES_RECONCILE_INTERVAL_SECONDS": "1", "OLOGIES_WORKERS": "2",
        }  # fmt: skip
        self.report = FaultReport(s3_server=s3.service)
        self.ledger = Ledger()
        self._ledger_lock = threading.Lock()
        self._seed = seed * 1_000_000
        self._seed_lock = threading.Lock()
        self._slowest = 0.0
        self._ever_searchable = threading.Event()
        self._stop = threading.Event()
        self._uploads, self._searches = _Counter(), _Counter()
        self.server: ServerProcess | None = None

    # -- the app -------------------------------------------------------------------------------
    def settings(self) -> Any:
        from repository.settings import Settings

        values = {k[len("OLOGIES_"):].lower(): v for k, v in self.env.items()}
        return Settings(_env_file=None, **values)  # type: ignore[arg-type]

    def prepare(self) -> None:
        from repository.registry import open_index, open_store

        settings = self.settings()
        store, index = open_store(settings), open_index(settings)
        store.ensure_bucket()
        index.ensure_schema()
        store.close()
        index.close()
        self.server = ServerProcess(env=self.env, workers=2, data=self.work)
        self.server.start()
        self.headers = self.server.headers()

    def cleanup(self) -> None:
        from tests.integration.conftest import remove_bucket, remove_indices

        if self.server is not None:
            self.server.stop()
        with contextlib.suppress(Exception):
            remove_indices(self.es.url, self.prefix)
        with contextlib.suppress(Exception):
            remove_bucket(self.s3.url, self.bucket)

    # -- the workload --------------------------------------------------------------------------
    def _photo(self) -> bytes:
        with self._seed_lock:
            self._seed += 1
            seed = self._seed
        return imagegen.jpeg(imagegen.photo(48, 32, seed=seed))

    def _timed(self, seconds: float) -> None:
        self._slowest = max(self._slowest, seconds)

    def _uploader(self) -> None:
        assert self.server is not None
        with httpx.Client(base_url=self.server.url, headers=self.headers, timeout=120) as http:
            while not self._stop.is_set():
                data = self._photo()
                started = time.monotonic()
                try:
                    response = http.post("/api/v1/images", data=patient_fields(), files={"file": ("p.jpg", data)})
                except httpx.HTTPError:
                    self._uploads.add("connection lost")  # the app was killed under it: not acknowledged
                    time.sleep(0.2)
                    continue
                self._timed(time.monotonic() - started)
                status = response.status_code
                if status in (200, 201, 202):
                    with self._ledger_lock:
                        self.ledger.ack_response(response.json(), hashlib.sha256(data).hexdigest())
                    self._uploads.add(str(status))
                else:
                    self._uploads.add(str(status))
                    if status == 503:
                        time.sleep(0.1)

    def _searcher(self) -> None:
        assert self.server is not None
        with httpx.Client(base_url=self.server.url, headers=self.headers, timeout=120) as http:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = http.get("/api/v1/search", params={"nhs_number": NHS_A, "limit": 5})
                except httpx.HTTPError:
                    self._searches.add("connection lost")
                    time.sleep(0.2)
                    continue
                self._timed(time.monotonic() - started)
                self._searches.add(str(response.status_code))
                if response.status_code == 200:
                    total = int(response.json().get("total", 0))
                    if total > 0:
                        self._ever_searchable.set()
                    elif self._ever_searchable.is_set():
                        self.report.dishonest_searches += 1  # "no photographs" while there are some
                time.sleep(0.05)

    # -- the faults ----------------------------------------------------------------------------
    def _inject(self, kind: str) -> None:
        assert self.server is not None
        hang = self.rng.uniform(0.05, 0.8)
        if kind == "store-hang":
            self.s3.pause()
            time.sleep(hang)
            self.s3.cont()
        elif kind == "index-hang":
            self.es.pause()
            time.sleep(hang)
            self.es.cont()
        elif kind == "both-hang":
            self.s3.pause()
            self.es.pause()
            time.sleep(hang)
            self.es.cont()
            self.s3.cont()
        elif kind == "store-kill":
            self.s3.kill()
            time.sleep(self.rng.uniform(0.1, 1.0))
            self.s3.resume()
        elif kind == "index-kill":
            self.es.kill()
            self.es.resume()
        elif kind == "app-kill":
            self.server.kill()
            time.sleep(self.rng.uniform(0.0, 0.5))
            self.server.start()

    def _choose(self, done: int) -> str:
        kind = self.rng.choices(FAULTS, WEIGHTS)[0]
        if kind == "index-kill" and self.report.faults.get("index-kill", 0) >= max(1, done // self.index_kill_every):
            kind = "index-hang"  # Elasticsearch takes half a minute to start: keep kills rare
        return kind

    def run(self, faults: int) -> FaultReport:
        started = time.monotonic()
        self.prepare()
        threads = [threading.Thread(target=self._uploader, daemon=True) for _ in range(self.uploaders)]
        threads += [threading.Thread(target=self._searcher, daemon=True) for _ in range(self.searchers)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(2)  # a little healthy traffic first
            for done in range(faults):
                kind = self._choose(done + 1)
                self._inject(kind)
                self.report.faults[kind] = self.report.faults.get(kind, 0) + 1
                time.sleep(self.rng.uniform(0.1, 0.4))  # a moment of health: uploads progress
                if (done + 1) % 50 == 0:
                    self.log(f"{done + 1}/{faults} faults; {len(self.ledger.acknowledged)} acknowledged; "
                             f"uploads {self._uploads.values}; searches {self._searches.values}")  # fmt: skip
        finally:
            self._stop.set()
            for thread in threads:
                thread.join(timeout=180)
            with contextlib.suppress(Exception):
                self.s3.cont()
            with contextlib.suppress(Exception):
                self.es.cont()
        self.report.uploads = dict(self._uploads.values)
        self.report.searches = dict(self._searches.values)
        self.report.slowest_answer_s = self._slowest
        self._verify()
        self.report.seconds = time.monotonic() - started
        return self.report

    def _verify(self) -> None:
        """Everything back: the running app's reconciler drains the pending markers by itself;
        then every acknowledged item is checked, and nothing may be half visible."""
        from web.services import Services

        assert self.server is not None
        started = time.monotonic()
        deadline = started + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.server.url + "/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        services = Services.build(self.settings())
        try:
            repository = services.repository
            self.report.acknowledged = len(self.ledger.acknowledged)
            while time.monotonic() < deadline:  # the app's own reconciler, not ours
                pending = {k.rsplit("/", 1)[-1] for k in repository.store.iter_keys("pending-index/")}
                if not pending & set(self.ledger.acknowledged):
                    break
                time.sleep(1)
            self.report.recovery_s = time.monotonic() - started
            repository.reconcile_pending(force=True)  # markers of uploads that never wrote an object
            for uid, sha in self.ledger.acknowledged.items():
                problems = check_item(repository, uid, sha)
                if problems:
                    self.report.lost.extend(problems)
            try:
                assert_repository_consistent(repository, Ledger(), reconciled=True)
            except InvariantViolation as exc:
                self.report.half_visible = [line.strip() for line in str(exc).splitlines()[1:]]
            indexed = set(repository.index.iter_uids())
            self.report.lost += [f"{uid}: acknowledged, not searchable after recovery"
                                 for uid in self.ledger.acknowledged if uid not in indexed]  # fmt: skip
        finally:
            services.close()


def run_fault_loop(faults: int, *, work: Path, s3_service: str = "minio", seed: int = 8, log: Any = None) -> FaultReport:
    """Start private servers, run the loop, stop them; the report."""
    from tests.integration.servers import PrivateServer

    run_dir = work / "servers"
    run_dir.mkdir(parents=True, exist_ok=True)
    s3, es = PrivateServer(s3_service, run_dir), PrivateServer("elasticsearch", run_dir)
    started = []
    try:
        for server in (s3, es):
            server.start()
            started.append(server)
        loop = FaultLoop(s3, es, work, seed=seed, log=log)
        try:
            return loop.run(faults)
        finally:
            loop.cleanup()
    finally:
        for server in started:
            with contextlib.suppress(Exception):
                server.cont()
            with contextlib.suppress(Exception):
                server.stop()
