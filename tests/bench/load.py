"""A bounded load test on loopback (RELIABILITY.md T and the "load held at p95" figure): a fixed
number of clients for a fixed time against ``ologies serve``, with a mix of 70% searches, 20%
thumbnails, 8% uploads of a 5 MB photograph and 2% STOW-RS batches of 10 instances; p50, p95 and
p99 per kind of request, the error rate and the server's peak memory.

    .venv/bin/python -m tests.bench.load                      # 20 clients, 30 s, embedded backends
    .venv/bin/python -m tests.bench.load --duration 300       # the full run: 20 clients, 5 minutes
    .venv/bin/python -m tests.bench.load --backends real --index-down   # MinIO + Elasticsearch,
        # then the same again while Elasticsearch is unreachable (a proxy in front of it cut)

With ``--index-down`` the second phase expects what the service promises while the index is
away: searches answer 503 (never an empty 200: counted as honest, not as errors), thumbnails and
uploads (202, "not yet searchable") and STOW-RS keep working, and their p95 is compared with the
first phase. The clients keep the first phase's pace: a search answered 503 at once still holds
its client for the first phase's mean search time, so the other requests are compared under the
same offered load (not under the extra load of clients that no longer wait for searches). An error is any other status, a connection failure or a timeout.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import statistics
import sys
import threading
import time
import uuid
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.bench.common import CpuMeter, MemorySampler, machine_speed
from tests.conftest import NHS_A, NHS_B, NHS_C, patient_fields

MIX = (("search", 70), ("thumbnail", 20), ("upload", 8), ("stow", 2))
PATIENTS = (NHS_A, NHS_B, NHS_C)
TARGETS_MS = {"search": 300, "thumbnail": 200, "upload": 2000, "stow": 3000}


def five_megabyte_jpeg(seed: int = 0) -> bytes:
    """A 12 MP camera photograph padded with comment segments to about 5 MB (the converter
    removes them; the upload, its hashing and storage are of 5 MB)."""
    from tests import imagegen

    photo = imagegen.camera_jpeg(seed=seed)
    padding = b""
    while len(photo) + len(padding) < 5 * 1024 * 1024:
        chunk = bytes(random.Random(len(padding)).getrandbits(8) for _ in range(1024)) * 63
        padding += b"\xff\xfe" + (len(chunk) + 2).to_bytes(2, "big") + chunk
    return photo[:2] + padding + photo[2:]


def unique(jpeg: bytes) -> bytes:
    """The same photograph with a unique comment: a new upload, never answered as a repeat."""
    comment = f"load {uuid.uuid4().hex}".encode()
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]


_STOW_TEMPLATE: dict[str, object] = {}


def stow_batch(n: int = 10) -> tuple[bytes, str]:
    """Ten new instances (new UIDs) of one small photograph: built from a cached JPEG, so that
    making a batch costs the load generator milliseconds, not the server's CPU."""
    from tests import dicomgen, imagegen

    if not _STOW_TEMPLATE:
        pixels = imagegen.photo(320, 240, seed=1)
        _STOW_TEMPLATE.update(pixels=pixels, jpeg=imagegen.jpeg(pixels))
    boundary = uuid.uuid4().hex
    study = dicomgen.uid()
    parts = []
    for _ in range(n):
        ds = dicomgen.photo_dataset(pixels=_STOW_TEMPLATE["pixels"], jpeg_bytes=_STOW_TEMPLATE["jpeg"],  # type: ignore[arg-type]
                                    study_uid=study, patient_id=NHS_C)  # fmt: skip
        parts.append(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + dicomgen.part10(ds) + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f'multipart/related; type="application/dicom"; boundary={boundary}'


@dataclass
class Phase:
    name: str
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    errors: int = 0
    honest_503: int = 0
    requests: int = 0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    client_cpu_s: float = 0.0  # the load clients' own CPU (they share the machine)
    cpu: dict[str, float] = field(default_factory=dict)

    def merge(self, other: "Phase") -> None:
        for kind, values in other.latencies.items():
            self.latencies[kind].extend(values)
        for kind, counts in other.statuses.items():
            for status, n in counts.items():
                self.statuses[kind][status] += n
        self.errors += other.errors
        self.honest_503 += other.honest_503
        self.requests += other.requests
        self.client_cpu_s += other.client_cpu_s

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"phase": self.name, "requests": self.requests, "seconds": round(self.seconds, 1),
                               "errors": self.errors, "error_rate": round(self.errors / max(1, self.requests), 5),
                               "honest_503": self.honest_503, "peak_rss_mb": round(self.peak_rss_mb, 1)}  # fmt: skip
        if self.cpu:
            out["cpu_cores"] = self.cpu  # average cores used, per process tree (CpuMeter)
        for kind in sorted(set(self.latencies) | set(self.statuses)):
            ordered = sorted(self.latencies.get(kind, [])) or [float("nan")]

            def pct(p: float) -> float:
                return round(ordered[min(len(ordered) - 1, int(p * (len(ordered) - 1) + 0.5))] * 1000, 1)

            out[kind] = {"n": len(self.latencies.get(kind, [])), "p50_ms": pct(0.5), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
                         "mean_ms": round(statistics.fmean(ordered) * 1000, 1),
                         "statuses": dict(self.statuses[kind])}  # fmt: skip
        return out


class Load:
    def __init__(self, base_url: str, headers: dict[str, str], *, clients: int = 20, seed: int = 8, photo: bool = True,
                 mix: tuple[tuple[str, int], ...] = MIX) -> None:  # fmt: skip
        self.base_url = base_url
        self.mix = mix
        self.headers = headers
        self.clients = clients
        self.rng = random.Random(seed)
        self.photo = five_megabyte_jpeg(seed) if photo else b""
        self.uids: list[str] = []
        self.lock = threading.Lock()

    def seed_data(self, n: int = 30) -> None:
        """Photographs of three patients, for the searches and thumbnails to find."""
        from tests import imagegen

        with httpx.Client(base_url=self.base_url, headers=self.headers, timeout=120) as http:
            for i in range(n):
                data = imagegen.jpeg(imagegen.photo(640, 480, seed=10_000 + i))
                fields = patient_fields(PATIENTS[i % 3])
                response = http.post("/api/v1/images", data=fields, files={"file": (f"{i}.jpg", data)})
                response.raise_for_status()
                self.uids += [f["sop_instance_uid"] for f in response.json()["files"]]

    def _request(self, http: httpx.Client, kind: str, rng: random.Random) -> httpx.Response:
        if kind == "search":
            params = rng.choice(({"nhs_number": rng.choice(PATIENTS)}, {"q": "lesion"}, {"name": "brien"},
                                 {"specialty": "dermatology", "limit": 20}))  # fmt: skip
            return http.get("/api/v1/search", params=params)
        if kind == "thumbnail":
            with self.lock:
                uid = rng.choice(self.uids)
            return http.get(f"/api/v1/instances/{uid}/thumbnail")
        if kind == "upload":
            if not self.photo:
                self.photo = five_megabyte_jpeg(8)
            return http.post("/api/v1/images", data=patient_fields(rng.choice(PATIENTS)),
                             files={"file": ("clinic.jpg", io.BytesIO(unique(self.photo)), "image/jpeg")})  # fmt: skip
        body, content_type = stow_batch()
        return http.post("/dicomweb/studies", content=body,
                         headers={"Content-Type": content_type, "Accept": "application/dicom+json"})  # fmt: skip

    def run(self, name: str, duration: float, *, index_down: bool = False, server_pid: int | None = None,
            search_pace: float = 0.0, cpu_roots: dict[str, int] | None = None) -> Phase:  # fmt: skip
        """``clients`` clients for ``duration`` seconds, in up to four processes (one process's
        GIL would otherwise be the bottleneck being measured). ``search_pace``: with the index
        down, a client whose search is answered 503 waits out this many seconds from its start
        (the clean phase's mean search), so that the other requests meet the same offered load as
        in the clean phase instead of the load of clients no longer waiting for searches."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        phase = Phase(name)
        # every 0.5 s: at 50 ms the sampler took 13% of a core from the server it measured
        sampler = MemorySampler(server_pid, interval=0.5) if server_pid else None
        if sampler:
            sampler.reset()
            sampler.start()
        meter = CpuMeter(cpu_roots).start() if cpu_roots else None
        processes = max(1, min(4, self.clients // 5))  # five clients a process, at most four
        shares = [self.clients // processes + (1 if i < self.clients % processes else 0) for i in range(processes)]
        jobs = [(self.base_url, self.headers, list(self.uids), share, duration, index_down, f"{name}:{i}", search_pace,
                 self.mix) for i, share in enumerate(shares)]  # fmt: skip
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            for part in pool.map(_client_process, jobs):
                phase.merge(part)
                phase.seconds = max(phase.seconds, part.seconds)  # the measured window, not start-up
        if sampler:
            phase.peak_rss_mb = sampler.stop()
        if meter:
            cpu = meter.stop()
            clients = phase.client_cpu_s / max(phase.seconds, 1e-9)
            phase.cpu = {**cpu, "clients": round(clients, 3), "rest": round(cpu["rest"] - clients, 3)}
        return phase


def _client_process(job: tuple[str, dict[str, str], list[str], int, float, bool, str, float, tuple[tuple[str, int], ...]]) -> Phase:
    """One process of the load generator: ``threads`` clients until the deadline."""
    base_url, headers, uids, threads, duration, index_down, name, search_pace, mix = job
    # the 5 MB photograph made before the clock starts, if this mix uploads
    load = Load(base_url, headers, clients=threads, photo=any(k == "upload" and w for k, w in mix))
    load.uids = uids
    phase = Phase(name)
    kinds = [k for k, _ in mix]
    weights = [w for _, w in mix]
    record_lock = threading.Lock()
    time.sleep(1.0)  # every process imported and ready: start together
    deadline = time.monotonic() + duration
    cpu_started = time.process_time()

    def client(number: int) -> None:
        rng = random.Random(f"{name}:{number}")
        with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
            while time.monotonic() < deadline:
                kind = rng.choices(kinds, weights)[0]
                started = time.perf_counter()
                detail = ""
                try:
                    response = load._request(http, kind, rng)
                    status = response.status_code
                except httpx.HTTPError as exc:
                    status, detail = 0, type(exc).__name__
                elapsed = time.perf_counter() - started
                if kind == "search" and index_down and status == 503 and search_pace > elapsed:
                    time.sleep(search_pace - elapsed)  # keep the clean phase's pace (Load.run)
                with record_lock:
                    phase.requests += 1
                    phase.statuses[kind][str(status) if status else detail] += 1
                    if kind == "search" and index_down and status == 503:
                        phase.honest_503 += 1  # what the service promises: never an empty 200
                        continue
                    if not 200 <= status < 300 or (kind == "search" and index_down):
                        phase.errors += 1  # (a 200 search while the index is away would be a lie)
                        continue
                    phase.latencies[kind].append(elapsed)

    pool = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(threads)]
    started = time.monotonic()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=duration + 120)
    phase.seconds = time.monotonic() - started
    phase.client_cpu_s = time.process_time() - cpu_started
    phase.latencies = dict(phase.latencies)  # type: ignore[assignment]  # picklable
    phase.statuses = {k: dict(v) for k, v in phase.statuses.items()}  # type: ignore[assignment]
    return phase


def run(duration: float, clients: int, *, backends: str = "embedded", index_down: bool = False, workers: int = 2,
        warmup: float = 20.0, log: Any = print, mix: tuple[tuple[str, int], ...] = MIX) -> dict[str, Any]:  # fmt: skip
    """Start the servers, seed, run the phases; the summary (also what ``tests.figures`` reports)."""
    import platform
    import tempfile

    from tests.serverproc import ServerProcess

    with ExitStack() as stack:
        speed = machine_speed()  # before any server starts: how fast the machine is this hour
        log(f"machine speed: {speed}")
        env: dict[str, str] = {}
        proxy = None
        roots: dict[str, int] = {}
        work = Path(tempfile.mkdtemp(prefix="ologies-load-"))
        stack.callback(shutil.rmtree, work, True)  # GBs of objects and server data a run
        if backends == "real":
            env, proxy, roots = _real_backends(stack, work)
        elif index_down:
            raise SystemExit("--index-down needs --backends real (Elasticsearch behind a proxy that can be cut)")
        server = ServerProcess(env=env, workers=workers, data=work)
        server.start()
        stack.callback(server.stop)
        load = Load(server.url, server.headers(), clients=clients, mix=mix)
        load.seed_data()
        if warmup > 0:
            # Elasticsearch and the server start cold (the JVM compiles its hot paths in the
            # first tens of seconds): the figures are of the service running, not starting
            log(f"warm-up: {clients} clients for {warmup:g} s (not counted)")
            load.run("warm-up", warmup)
        log(f"seeded {len(load.uids)} photographs; {clients} clients for {duration:g} s")
        roots = {"server": server.pid, **roots}
        phases = [load.run("clean", duration, server_pid=server.pid, cpu_roots=roots)]
        log(json.dumps(phases[-1].summary()))
        if index_down and proxy is not None:
            proxy.set("down")
            clean_search = phases[0].latencies.get("search") or [0.0]
            phases.append(load.run("index down", duration, index_down=True, server_pid=server.pid, cpu_roots=roots,
                                   search_pace=statistics.fmean(clean_search)))  # fmt: skip
            proxy.set("up")
            log(json.dumps(phases[-1].summary()))
        return {
            "clients": clients, "duration_s": duration, "backends": backends, "workers": workers,
            "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs, Python {platform.python_version()}",
            "machine_speed": speed,
            "mix": dict(mix), "targets_p95_ms": TARGETS_MS, "phases": [p.summary() for p in phases],
        }  # fmt: skip


def _real_backends(stack: ExitStack, work: Path) -> tuple[dict[str, str], Any, dict[str, int]]:
    """Private MinIO and Elasticsearch (infra/ scripts, free ports), Elasticsearch behind a proxy;
    the environment for the server, the proxy and the servers' process ids."""
    from tests.integration.conftest import ACCESS_KEY, SECRET_KEY
    from tests.integration.proxy import TcpProxy
    from tests.integration.servers import PrivateServer

    s3, es = PrivateServer("minio", work / "servers"), PrivateServer("elasticsearch", work / "servers")
    (work / "servers").mkdir(exist_ok=True)
    for server in (s3, es):
        server.start()
        stack.callback(server.stop)
    proxy = TcpProxy("127.0.0.1", es.port)
    stack.callback(proxy.close)
    bucket = f"ologies-load-{uuid.uuid4().hex[:8]}"
    env = {
        "OLOGIES_STORE_URL": f"s3://{bucket}/ologies", "OLOGIES_S3_ENDPOINT_URL": s3.url,
        "OLOGIES_S3_ACCESS_KEY": ACCESS_KEY, "OLOGIES_S3_SECRET_KEY": SECRET_KEY,
        "OLOGIES_S3_SERVER_SIDE_ENCRYPTION": "AES256", "OLOGIES_INDEX_URL": proxy.url,
        "OLOGIES_ES_INDEX_PREFIX": bucket, "OLOGIES_ALLOW_TEST_NHS_NUMBERS": "true",
        "OLOGIES_ES_SEARCH_TIMEOUT": "1.5", "OLOGIES_ES_TIMEOUT": "2", "OLOGIES_INDEX_RETRY_SECONDS": "5",
    }  # fmt: skip
    from repository.registry import open_index, open_store
    from repository.settings import Settings

    settings = Settings(_env_file=None, **{k[len("OLOGIES_"):].lower(): v for k, v in env.items()})  # type: ignore[arg-type]
    store, index = open_store(settings), open_index(settings)
    store.ensure_bucket()
    index.ensure_schema()
    store.close()
    index.close()
    return env, proxy, {"minio": s3.pid, "elasticsearch": es.pid}


def parse_mix(text: str) -> tuple[tuple[str, int], ...]:
    """``search:70,thumbnail:20``: kinds from MIX with whole-number weights."""
    known = {k for k, _ in MIX}
    mix = []
    for item in text.split(","):
        kind, _, weight = item.partition(":")
        if kind.strip() not in known or not weight.strip().isdigit():
            raise argparse.ArgumentTypeError(f"{item!r}: want KIND:WEIGHT with KIND one of {sorted(known)}")
        mix.append((kind.strip(), int(weight)))
    if not any(w for _, w in mix):
        raise argparse.ArgumentTypeError("every weight is 0")
    return tuple(mix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per phase (the full run: 300)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backends", choices=("embedded", "real"), default="embedded")
    parser.add_argument("--index-down", action="store_true", help="a second phase with Elasticsearch cut off")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds of the same load first, not counted")
    parser.add_argument("--out", type=Path, help="write the summary as JSON here")
    parser.add_argument("--mix", type=parse_mix, default=MIX,
                        help="kinds of request and their weights, e.g. search:100 to measure searches alone "
                             "(default search:70,thumbnail:20,upload:8,stow:2)")  # fmt: skip
    args = parser.parse_args(argv)
    result = run(args.duration, args.clients, backends=args.backends, index_down=args.index_down, workers=args.workers,
                 warmup=args.warmup, mix=args.mix)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
