"""A large video sent to the server, and the server's peak memory growth while it takes it.

    .venv/bin/python -m tests.bench.video_bench --gb 2                  # POST /api/v1/images
    .venv/bin/python -m tests.bench.video_bench --gb 0.33 --route stow  # a DICOM video object, STOW-RS
    .venv/bin/python -m tests.bench.video_bench --gb 0.33 --route wic   # an MP4 with DICOM JSON, STOW-RS
    .venv/bin/python -m tests.bench.video_bench --gb 0.33 --route cstore  # a DICOM video object, storescu

The video is made quickly (``tests.mediagen.big_video``: a second of 720p noise encoded once, its
packets repeated by stream copy); for ``stow`` and ``cstore`` it is wrapped in a Video Photographic Image object
on disk (``big_dicom_video``). Every request streams its body from disk. Growth is given for the
resident set and for the anonymous memory alone (the heap: what a mapped file's pages are not).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
from pydicom import dcmread

from tests.bench.common import MemorySampler, free_port, ologies_server
from tests.conftest import patient_fields
from tests.mediagen import big_dicom_video, big_video


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            yield chunk


def _related(parts: list[tuple[str, bytes | Path]], root: str) -> tuple[Iterator[bytes], dict[str, str]]:
    boundary = uuid.uuid4().hex

    def body() -> Iterator[bytes]:
        for headers, content in parts:
            yield f"--{boundary}\r\n{headers}\r\n\r\n".encode()
            yield from (_chunks(content) if isinstance(content, Path) else [content])
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    return body(), {"Content-Type": f'multipart/related; type="{root}"; boundary={boundary}', "Accept": "application/dicom+json"}


def _send(client: httpx.Client, route: str, video: Path, dimse_port: int) -> httpx.Response:
    if route == "cstore":  # dcmtk's storescu proposing MPEG-4 AVC (-xn) for this file's SOP class only (-R); its outcome stands for an HTTP status
        done = subprocess.run(["storescu", "-xn", "-R", "-aet", "BENCHSCU", "-aec", "OLOGIES", "127.0.0.1", str(dimse_port), str(video)],
                              capture_output=True, text=True, timeout=3600)  # fmt: skip
        return httpx.Response(200 if done.returncode == 0 and "Error" not in done.stderr else 500, text=done.stderr)
    if route == "api":
        with video.open("rb") as handle:
            return client.post("/api/v1/images", data=patient_fields(), files={"file": ("big.mp4", handle, "video/mp4")})
    if route == "stow":
        body, headers = _related([("Content-Type: application/dicom", video)], "application/dicom")
    else:
        from tests.web.test_dicomweb_media import video_metadata

        metadata = json.dumps([video_metadata("v1")]).encode()
        body, headers = _related([("Content-Type: application/dicom+json", metadata),
                                  ("Content-Type: video/quicktime\r\nContent-Location: v1", video)], "application/dicom+json")  # fmt: skip
    return client.post("/dicomweb/studies", content=body, headers=headers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gb", type=float, default=2.0)
    parser.add_argument("--route", choices=("api", "stow", "wic", "cstore"), default="api")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ologies-video-bench-"))
    started = time.perf_counter()
    target = int(args.gb * 1024**3)
    if args.route in ("stow", "cstore"):
        video = big_dicom_video(work, target // (1024 * 1024))
    else:
        video = big_video(work / "big.mov", target, container="mov", location=args.route == "wic")
    made = time.perf_counter() - started
    size = video.stat().st_size
    dimse_port = free_port()
    dimse = {"OLOGIES_DIMSE_PORT": str(dimse_port), "OLOGIES_DIMSE_PEERS": '{"BENCHSCU": {"trust": "REM"}}'}
    with ologies_server(dimse if args.route == "cstore" else None) as (base, pid, _data):
        key = _admin_key(_data)
        sampler = MemorySampler(pid)
        sampler.reset()
        baseline_mb, baseline_anon_mb = sampler.peak_kb / 1024, sampler.peak_anon_mb
        sampler.start()
        started = time.perf_counter()
        with httpx.Client(base_url=base, timeout=3600, headers={"Authorization": f"Bearer {key}"}) as client:
            response = _send(client, args.route, video, dimse_port)
        elapsed = time.perf_counter() - started
        peak_mb = sampler.stop()
        anon_growth_mb = sampler.peak_anon_mb - baseline_anon_mb
        retrieved = None
        if response.status_code < 300:
            study = _study_of(response, args.route, video)
            reading = MemorySampler(pid)
            reading.reset()
            before_mb, before_anon_mb = reading.peak_kb / 1024, reading.peak_anon_mb
            reading.start()
            with httpx.Client(base_url=base, timeout=3600, headers={"Authorization": f"Bearer {key}"}) as client:
                received = 0
                with client.stream("GET", f"/dicomweb/studies/{study}", headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}) as r:
                    for chunk in r.iter_bytes():
                        received += len(chunk)
            peak = reading.stop()
            retrieved = {"status": r.status_code, "bytes": received, "peak_growth_mb": round(peak - before_mb, 1),
                         "peak_anonymous_growth_mb": round(reading.peak_anon_mb - before_anon_mb, 1)}  # fmt: skip
        ranged = None
        if args.route == "api" and response.status_code < 300:
            uid = response.json()["files"][0]["sop_instance_uid"]
            with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {key}", "Range": "bytes=1000000-1999999"}) as client:
                r = client.get(f"/api/v1/instances/{uid}/video")
                ranged = (r.status_code, len(r.content))
    print(json.dumps({
        "route": args.route, "sent_bytes": size, "detail": response.text[-300:] if response.status_code >= 300 else "", "make_s": round(made, 1), "status": response.status_code,
        "upload_and_store_s": round(elapsed, 1), "mb_per_s": round(size / 1e6 / elapsed, 1),
        "server_baseline_rss_mb": round(baseline_mb, 1), "server_peak_rss_mb": round(peak_mb, 1),
        "peak_growth_mb": round(peak_mb - baseline_mb, 1),
        "peak_anonymous_growth_mb": round(anon_growth_mb, 1), "range_request": ranged,
        "wado_rs_study_retrieve": retrieved,
    }))


def _study_of(response: httpx.Response, route: str, video: Path) -> str:
    if route == "cstore":
        return str(dcmread(video, stop_before_pixels=True).StudyInstanceUID)
    if route == "api":
        return response.json()["study_instance_uid"]
    return response.json()["00081190"]["Value"][0].rsplit("/", 1)[1]


def _admin_key(data: Path) -> str:
    """An admin API key made in the server's store, as ``ologies keys create`` would."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OLOGIES_STORE_URL": (data / "store").as_uri(), "OLOGIES_INDEX_URL": f"sqlite:///{data / 'index.sqlite3'}"}
    done = subprocess.run([sys.executable, "-m", "ingest.cli", "keys", "create", "--name", "bench", "--role", "admin", "--trust", "REM"],
                          env=env, capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout.strip().split()[-1]


if __name__ == "__main__":
    main()
