"""Watched-folder ingest of dermatoscope images against the REST upload rate.

    .venv/bin/python -m tests.bench.watch_bench --count 1000

REST: ``ologies serve`` (default workers) receiving one image per request at concurrency 2.
Watch: ``ologies watch`` as its own process (default 2 workers, 1 s settle time) over a fresh
store, timed from the moment the files are in the folder until the last one is in ``done/``.
Every image is distinct (a unique JPEG comment, which the converter strips).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.common import ologies_server
from tests.bench.upload_bench import make_bases, run, variant
from tests.bench.video_bench import _admin_key
from tests.conftest import patient_fields


def watch_rate(count: int, bases: list[bytes]) -> dict[str, object]:
    data = Path(tempfile.mkdtemp(prefix="ologies-watch-bench-"))
    folder = data / "drop"
    folder.mkdir()
    fields = patient_fields()
    with (folder / "session.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", *fields])
        writer.writeheader()
        for i in range(count):
            writer.writerow({"file": f"{i:05d}.jpg", **fields})
    for i in range(count):  # written as .part and renamed, as a careful device does
        (folder / f"{i:05d}.jpg.part").write_bytes(variant(bases[i % len(bases)], i))
        os.replace(folder / f"{i:05d}.jpg.part", folder / f"{i:05d}.jpg")
    env = {**os.environ, "OLOGIES_STORE_URL": (data / "store").as_uri(),
           "OLOGIES_INDEX_URL": f"sqlite:///{data / 'index.sqlite3'}", "OLOGIES_ALLOW_TEST_NHS_NUMBERS": "true",
           "OLOGIES_SPOOL_DIR": str(data)}  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ingest.cli", "watch", str(folder), "--settle", "1", "--poll", "0.5"],
                            env=env, stdout=subprocess.DEVNULL, stderr=(data / "watch.log").open("w"))  # fmt: skip
    try:
        deadline = started + 3600
        while time.perf_counter() < deadline:
            done = sum(1 for _ in (folder / "done").glob("*.jpg"))
            failed = sum(1 for _ in (folder / "failed").glob("*.jpg"))
            if done + failed >= count:
                break
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"mode": "watch", "instances": count, "done": done, "failed": failed,
            "elapsed_s": round(elapsed, 1), "instances_per_s": round(count / elapsed, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    bases = make_bases("dermatoscope")
    with ologies_server() as (base_url, pid, data):
        key = _admin_key(data)
        rest = run(base_url, pid, bases, args.count, args.concurrency, headers={"Authorization": f"Bearer {key}"})
    rest["mode"] = "rest"
    print(json.dumps(rest), flush=True)
    watched = watch_rate(args.count, bases)
    print(json.dumps(watched), flush=True)
    ratio = watched["instances_per_s"] / rest["instances_per_s"]  # type: ignore[operator]
    print(json.dumps({"watch_over_rest": round(ratio, 2), "within_20_percent": ratio >= 0.8}))


if __name__ == "__main__":
    main()
