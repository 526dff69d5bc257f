"""Upload throughput of camera (12 MP, ~4 MB) and dermatoscope (2 MP) JPEGs through
``POST /api/v1/images`` at concurrency 1 and 4, with the server's peak memory.

    .venv/bin/python -m tests.bench.upload_bench --count 60
    .venv/bin/python -m tests.bench.upload_bench --backends embedded,s3es   # S3 + Elasticsearch too

``s3es`` runs the server with ``OLOGIES_STORE_URL=s3://`` (MinIO or SeaweedFS) and
``OLOGIES_INDEX_URL=http://`` (Elasticsearch), a fresh bucket and index prefix per run, removed
afterwards; the servers come from ``--s3-url`` / ``--es-url`` or the ``OLOGIES_TEST_*`` variables
of infra/test-env.sh.

Every upload is distinct (a unique JPEG comment segment is inserted, which the converter then
strips), so nothing is answered from the idempotency path.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx

from tests.bench.common import MemorySampler, admin_headers, ologies_server, summarise
from tests.conftest import patient_fields


def make_bases(profile: str, n: int = 4) -> list[bytes]:
    from tests import imagegen

    maker = imagegen.camera_jpeg if profile == "camera" else imagegen.dermatoscope_jpeg
    return [maker(seed=i) for i in range(n)]


def variant(base: bytes, i: int) -> bytes:
    comment = f"bench upload {i} {time.time_ns()}".encode()
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return base[:2] + segment + base[2:]


def run(base_url: str, pid: int, bases: list[bytes], count: int, concurrency: int,
        headers: dict[str, str] | None = None) -> dict[str, object]:
    payloads = [variant(bases[i % len(bases)], i) for i in range(count)]
    fields = patient_fields()
    local = __import__("threading").local()
    latencies: list[float] = []
    failures = 0

    def send(data: bytes) -> None:
        nonlocal failures
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=base_url, timeout=120, headers=headers)
        started = time.perf_counter()
        response = client.post("/api/v1/images", data=fields, files={"file": ("photo.jpg", io.BytesIO(data), "image/jpeg")})
        latencies.append(time.perf_counter() - started)
        if response.status_code != 201:
            failures += 1
            print(f"upload failed: {response.status_code} {response.text[:300]}", file=sys.stderr)

    sampler = MemorySampler(pid)
    sampler.reset()
    sampler.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, payloads))
    elapsed = time.perf_counter() - started
    peak = sampler.stop()
    mb = sum(len(p) for p in payloads) / 1e6
    return {
        "concurrency": concurrency,
        "instances": count,
        "failures": failures,
        "instances_per_s": round(count / elapsed, 1),
        "mb_per_s": round(mb / elapsed, 1),
        "mean_file_mb": round(mb / count, 2),
        "server_peak_rss_mb": round(peak, 1),
        "server_peak_pss_mb": round(sampler.peak_pss_mb, 1),
        **summarise(latencies),
    }


@contextmanager
def server_for(backend: str, args: argparse.Namespace) -> Iterator[tuple[str, int, dict[str, str]]]:
    """``ologies serve`` on the embedded default or on S3 + Elasticsearch; yields its base URL,
    pid and an administrator's headers."""
    if backend == "embedded":
        with ologies_server() as (base_url, pid, data):
            yield base_url, pid, admin_headers(data)
        return
    import subprocess
    import uuid

    from tests.integration.conftest import Backends, remove_bucket, remove_indices

    if not (args.s3_url and args.es_url):
        raise SystemExit("s3es needs --s3-url and --es-url (or source infra/test-env.sh)")
    name = "minio" if args.s3_url == os.environ.get("OLOGIES_TEST_MINIO_URL") else "s3"
    suffix = uuid.uuid4().hex[:10]
    backends = Backends(name, args.s3_url, args.es_url, f"ologies-bench-{suffix}", f"ologies-bench-{suffix}")
    env = {k: v for k, v in backends.environment().items() if k.startswith("OLOGIES_")}
    if backend == "s3es-unpublished":  # acknowledged once indexed, visible within 1 s
        env["OLOGIES_ES_PUBLISH_WRITES"] = "false"
    subprocess.run([sys.executable, "-m", "ingest.cli", "init"], env={**os.environ, **env}, check=True,
                   capture_output=True)  # fmt: skip
    try:
        with ologies_server(env) as (base_url, pid, data):
            yield base_url, pid, admin_headers(data, env)
    finally:
        remove_indices(args.es_url, backends.es_prefix)
        remove_bucket(args.s3_url, backends.bucket)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--profiles", default="camera,dermatoscope")
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--base-url", help="measure an already running server instead of starting one")
    parser.add_argument("--server-pid", type=int)
    parser.add_argument("--api-key", help="for --base-url: a key made with `ologies keys create`")
    parser.add_argument("--backends", default="embedded",
                        help="embedded, s3es and/or s3es-unpublished (OLOGIES_ES_PUBLISH_WRITES=false), comma-separated")
    parser.add_argument("--s3-url", default=os.environ.get("OLOGIES_TEST_MINIO_URL") or os.environ.get("OLOGIES_TEST_SEAWEEDFS_URL"))
    parser.add_argument("--es-url", default=os.environ.get("OLOGIES_TEST_ES_URL") or os.environ.get("OLOGIES_TEST_ELASTICSEARCH_URL"))
    args = parser.parse_args()
    results = []
    for profile in args.profiles.split(","):
        bases = make_bases(profile)
        for conc in (int(c) for c in args.concurrency.split(",")):
            if args.base_url:
                key = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else None
                result = run(args.base_url, args.server_pid or 0, bases, args.count, conc, headers=key)
                result["profile"] = profile
                results.append(result)
                print(json.dumps(result), flush=True)
                continue
            for backend in args.backends.split(","):
                with server_for(backend, args) as (base_url, pid, headers):
                    run(base_url, pid, bases, 4, conc, headers=headers)  # warm-up
                    result = run(base_url, pid, bases, args.count, conc, headers=headers)
                result["profile"], result["backend"] = profile, backend
                results.append(result)
                print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
