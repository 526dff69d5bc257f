"""Upload throughput of camera (12 MP, ~4 MB) and dermatoscope (2 MP) JPEGs through
``POST /api/v1/images`` at concurrency 1 and 4, with the server's peak memory.

    .venv/bin/python -m tests.bench.upload_bench --count 60

Every upload is distinct (a unique JPEG comment segment is inserted, which the converter then
strips), so nothing is answered from the idempotency path.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

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
        **summarise(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--profiles", default="camera,dermatoscope")
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--base-url", help="measure an already running server instead of starting one")
    parser.add_argument("--server-pid", type=int)
    parser.add_argument("--api-key", help="for --base-url: a key made with `ologies keys create`")
    args = parser.parse_args()
    results = []
    for profile in args.profiles.split(","):
        bases = make_bases(profile)
        for conc in (int(c) for c in args.concurrency.split(",")):
            if args.base_url:
                key = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else None
                result = run(args.base_url, args.server_pid or 0, bases, args.count, conc, headers=key)
            else:
                with ologies_server() as (base_url, pid, data):
                    headers = admin_headers(data)
                    run(base_url, pid, bases, 4, conc, headers=headers)  # warm-up
                    result = run(base_url, pid, bases, args.count, conc, headers=headers)
            result["profile"] = profile
            results.append(result)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
