"""``ologies reindex`` of 100,000 stored instances into SQLite (file store) and Elasticsearch
(S3 store), with the reindex process's peak memory; and that memory against object size.

    source infra/test-env.sh   # or pass --es-url / --s3-url
    .venv/bin/python -m tests.bench.reindex_bench --instances 100000 --backends sqlite,es
    .venv/bin/python -m tests.bench.reindex_bench --memory      # small objects against ~5 MB ones

The instances are copies of one converted photograph with new UIDs and patient numbers
(tests/integration/objects.py), written straight to the store with their locators, as uploads
leave them; the index knows nothing of them until the reindex. Only the reindex is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from repository.registry import open_store
from repository.settings import Settings
from tests.bench.common import MemorySampler
from tests.integration.objects import Copier, template, write_copies


def reindex(env: dict[str, str]) -> dict[str, float]:
    """Run ``ologies reindex`` once; its wall time and peak resident memory."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ingest.cli", "reindex", "--quiet"], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    sampler = MemorySampler(proc.pid)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    peak = sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"reindex failed ({proc.returncode}): {err[-2000:]}")
    return {"reindex_seconds": round(seconds, 1), "reindex_peak_rss_mb": round(peak, 1), "summary": out.strip()}


def environment(backend: str, args: argparse.Namespace, data: Path, name: str) -> dict[str, str]:
    if backend == "sqlite":
        return {"OLOGIES_STORE_URL": (data / "store").as_uri(), "OLOGIES_INDEX_URL": f"sqlite:///{data / 'index.sqlite3'}"}
    from tests.integration.conftest import Backends

    backends = Backends("s3", args.s3_url, args.es_url, name, name)
    env = {k: v for k, v in backends.environment().items() if k.startswith("OLOGIES_")}
    env["OLOGIES_REINDEX_WORKERS"] = str(args.workers)
    subprocess.run([sys.executable, "-m", "ingest.cli", "init"], env={**os.environ, **env}, check=True, capture_output=True)
    return env


def settings_of(env: dict[str, str]) -> Settings:
    values = {k[len("OLOGIES_"):].lower(): v for k, v in env.items()}
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def cleanup(backend: str, args: argparse.Namespace, name: str) -> None:
    if backend == "es":
        from tests.integration.conftest import remove_bucket, remove_indices

        remove_indices(args.es_url, name)
        remove_bucket(args.s3_url, name)


def run(backend: str, args: argparse.Namespace, count: int, data_template: bytes, label: str) -> dict[str, object]:
    data = Path(tempfile.mkdtemp(prefix="ologies-reindex-bench-"))
    name = f"ologies-bench-{uuid.uuid4().hex[:10]}"
    env = environment(backend, args, data, name)
    try:
        store = open_store(settings_of(env))
        started = time.perf_counter()
        write_copies(store, Copier(data_template), count, workers=args.workers,
                     progress=lambda n: print(f"  written {n}/{count}", file=sys.stderr, end="\r"))  # fmt: skip
        written = time.perf_counter() - started
        store.close()
        result: dict[str, object] = {"backend": backend, "objects": label, "instances": count,
                                     "object_kb": round(len(data_template) / 1024, 1), "write_seconds": round(written, 1)}  # fmt: skip
        result.update(reindex(env))
        result["instances_per_s"] = round(count / float(result["reindex_seconds"]), 1)  # type: ignore[arg-type]
        return result
    finally:
        cleanup(backend, args, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,es")
    parser.add_argument("--workers", type=int, default=8, help="threads writing the copies; OLOGIES_REINDEX_WORKERS")
    parser.add_argument("--memory", action="store_true", help="peak memory for small against large objects")
    parser.add_argument("--es-url", default=os.environ.get("OLOGIES_TEST_ES_URL") or os.environ.get("OLOGIES_TEST_ELASTICSEARCH_URL"))
    parser.add_argument("--s3-url", default=os.environ.get("OLOGIES_TEST_MINIO_URL") or os.environ.get("OLOGIES_TEST_SEAWEEDFS_URL"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ologies-reindex-template-"))
    small = template(work)
    for backend in args.backends.split(","):
        if backend == "es" and not (args.es_url and args.s3_url):
            raise SystemExit("es needs --es-url and --s3-url (or source infra/test-env.sh)")
        if args.memory:
            from tests import imagegen

            large = template(work, jpeg=imagegen.camera_jpeg(seed=3))
            count = min(args.instances, 300)
            for label, data in (("small", small), ("large", large)):
                print(json.dumps(run(backend, args, count, data, label)), flush=True)
        else:
            print(json.dumps(run(backend, args, args.instances, small, "small")), flush=True)


if __name__ == "__main__":
    main()
