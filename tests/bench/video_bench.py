"""Upload of a 2 GB video through ``POST /api/v1/images``: the server's peak memory growth.

    .venv/bin/python -m tests.bench.video_bench --gb 2

The video is made quickly: a short 720p H.264 clip of noise (so its frames are large) is encoded
once, then its packets are repeated by stream copy, with shifted timestamps, until the file is
big enough. The upload streams from disk (httpx reads the file in chunks).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from tests.bench.common import MemorySampler, ologies_server
from tests.conftest import patient_fields


def make_big_video(path: Path, target_bytes: int) -> Path:
    import av

    clip = path.with_suffix(".clip.mp4")
    rng = np.random.default_rng(0)
    with av.open(str(clip), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "1", "profile": "high", "level": "4.1"}
        for _ in range(30):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with av.open(str(clip)) as source, av.open(str(path), "w", format="mp4") as out:
        video = source.streams.video[0]
        target = out.add_stream_from_template(video)
        packets = [p for p in source.demux(video) if p.dts is not None]
        span = max(p.pts for p in packets) + packets[0].duration - min(p.pts for p in packets)
        clip_bytes = sum(p.size for p in packets)
        loops = max(1, target_bytes // clip_bytes + 1)
        for loop in range(loops):
            for packet in packets:
                copy = av.Packet(bytes(packet))
                copy.pts, copy.dts = packet.pts + loop * span, packet.dts + loop * span
                copy.duration, copy.time_base = packet.duration, packet.time_base
                copy.is_keyframe = packet.is_keyframe
                copy.stream = target
                out.mux(copy)
    clip.unlink()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gb", type=float, default=2.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ologies-video-bench-"))
    started = time.perf_counter()
    video = make_big_video(work / "big.mp4", int(args.gb * 1024**3))
    made = time.perf_counter() - started
    size = video.stat().st_size
    with ologies_server() as (base, pid, _data):
        from tests.bench.common import free_port  # noqa: F401 - same helpers as the other benches

        key = _admin_key(_data)
        sampler = MemorySampler(pid)
        sampler.reset()
        baseline_mb = sampler.peak_kb / 1024
        sampler.start()
        started = time.perf_counter()
        with video.open("rb") as handle, httpx.Client(base_url=base, timeout=3600, headers={"Authorization": f"Bearer {key}"}) as client:
            response = client.post("/api/v1/images", data=patient_fields(), files={"file": ("big.mp4", handle, "video/mp4")})
        elapsed = time.perf_counter() - started
        peak_mb = sampler.stop()
        uid = response.json()["files"][0]["sop_instance_uid"] if response.status_code < 300 else None
        ranged = None
        if uid:
            with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {key}", "Range": "bytes=1000000-1999999"}) as client:
                r = client.get(f"/api/v1/instances/{uid}/video")
                ranged = (r.status_code, len(r.content))
    print(json.dumps({
        "video_bytes": size, "make_s": round(made, 1), "status": response.status_code,
        "upload_and_store_s": round(elapsed, 1), "mb_per_s": round(size / 1e6 / elapsed, 1),
        "server_baseline_rss_mb": round(baseline_mb, 1), "server_peak_rss_mb": round(peak_mb, 1),
        "peak_growth_mb": round(peak_mb - baseline_mb, 1), "range_request": ranged,
    }))


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
