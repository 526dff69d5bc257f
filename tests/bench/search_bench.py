"""Search latency (p50, p95) through the HTTP API with 100,000 indexed instances, on the embedded
SQLite index and on Elasticsearch.

    source infra/test-env.sh   # or pass --es-url / --s3-url
    .venv/bin/python -m tests.bench.search_bench --instances 100000 --backends sqlite,es

The index is filled directly (documents as ``search.document`` builds them, generated for 1,000
patients over six years, bulk-loaded with the index's own ``rebuild``), then ``ologies serve``
answers typical queries one after another: a patient's history, free text, the unfiltered page
with its facets, a facet filter, a date range, a name, and a patient within a date range. Each
request is a real one: signed in, authorised and audited (the audit record goes to the store).
With ``--es-store s3`` (the default when an S3 server is known) the Elasticsearch server runs
over S3 as in production; SQLite runs over the embedded file store.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

from search.document import fold
from tests.bench.common import admin_headers, ologies_server, summarise
from tests.contract.index_contract import make_doc
from tests.integration.objects import nhs_test_number

NAMES = [("O'Brien-Jones", "Siân"), ("Llŷr", "Zoë"), ("Evans", "Gareth"), ("Nowak", "Łucja"),
         ("Ødegaard", "Søren"), ("Okafor", "Chidi"), ("MacLeod", "Mairead"), ("Nguyễn", "Thảo"),
         ("Smith", "John"), ("Patel", "Priya"), ("Jones", "Carys"), ("Kowalski", "Tomasz")]  # fmt: skip
WORDS = ["lesion", "burn", "ulcer", "wound", "naevus", "rash", "scar", "graft", "laceration", "melanoma"]
PHRASES = ["pigmented {} irregular border", "{} review at six weeks", "healing {} dorsum of hand",
           "{} after debridement", "suspected {} for MDT"]  # fmt: skip
SPECIALTIES = ["dermatology", "emergency", "burns-plastics", "neuroscience", "medical-photography"]
TRUSTS = ["REM", "RBN", "RBQ", "RBS", "REP"]
SITES = [("14975008", "Forearm"), ("85562004", "Hand"), ("46862004", "Buttock"), ("22943007", "Trunk"),
         ("69536005", "Head"), ("30021000", "Lower leg")]  # fmt: skip
START = dt.date(2020, 1, 1)


def documents(count: int, patients: int) -> Iterator[dict[str, object]]:
    rng = random.Random(7)
    numbers = [nhs_test_number(i) for i in range(patients)]
    for n in range(count):
        p = n % patients
        family, given = NAMES[p % len(NAMES)]
        family = f"{family}{'' if p < len(NAMES) else '-' + str(p)}"
        capture = START + dt.timedelta(days=rng.randrange(6 * 365))
        site = SITES[rng.randrange(len(SITES))]
        study = f"2.25.9{p:05d}{capture.toordinal()}"
        yield make_doc(
            n, capture=capture, PatientID=numbers[p], PatientName=f"{family}^{given}",
            _patient_name_folded=fold(f"{family} {given}"), StudyInstanceUID=study,
            SeriesInstanceUID=study + "1", ImageComments=rng.choice(PHRASES).format(rng.choice(WORDS)),
            _specialty=SPECIALTIES[p % len(SPECIALTIES)], _trust=TRUSTS[p % len(TRUSTS)],
            _body_site_code=site[0], _body_site_meaning=site[1],
        )  # fmt: skip


def queries(patients: int) -> dict[str, list[tuple[str, dict[str, str]]]]:
    rng = random.Random(11)
    nhs = [nhs_test_number(i) for i in range(patients)]

    def month(days: int = 30) -> dict[str, str]:
        first = START + dt.timedelta(days=30 * rng.randrange(66))
        return {"from": first.isoformat(), "to": (first + dt.timedelta(days=days)).isoformat()}

    return {
        "patient history": [(f"/api/v1/patients/{rng.choice(nhs)}/images", {}) for _ in range(40)],
        "free text": [("/api/v1/search", {"q": rng.choice(WORDS)}) for _ in range(40)],
        "all, with facets": [("/api/v1/search", {}) for _ in range(40)],
        "facet filter": [("/api/v1/search", {"specialty": SPECIALTIES[i], "trust": TRUSTS[i]})
                         for i in (rng.randrange(len(TRUSTS)) for _ in range(40))],  # fmt: skip
        "date range": [("/api/v1/search", month()) for _ in range(40)],
        "name": [("/api/v1/search", {"name": rng.choice(["zoe", "sian", "obrien", "lucja", "soren", "nguyen"])})
                 for _ in range(40)],  # fmt: skip
        "patient + dates": [("/api/v1/search", {"nhs_number": rng.choice(nhs), **month(365)}) for _ in range(40)],
    }


def measure(base_url: str, headers: dict[str, str], patients: int, rounds: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        for name, requests in queries(patients).items():
            latencies, totals = [], []
            for path, params in requests[:5]:  # warm-up
                client.get(path, params=params)
            for _ in range(rounds):
                for path, params in requests:
                    started = time.perf_counter()
                    response = client.get(path, params=params)
                    latencies.append(time.perf_counter() - started)
                    if response.status_code != 200:
                        raise RuntimeError(f"{path} {params}: {response.status_code} {response.text[:300]}")
                    totals.append(response.json()["total"])
            results[name] = {**summarise(latencies), "requests": len(latencies),
                             "median_hits": statistics.median(totals)}  # fmt: skip
    return results


def load(index, count: int, patients: int) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    index.ensure_schema()
    index.rebuild(documents(count, patients))
    seconds = time.perf_counter() - started
    assert index.count() == count, index.count()
    return seconds


def load_sqlite_fresh(path: Path, count: int, patients: int) -> float:
    """Fill a new SQLite index in one transaction, as ``SQLiteIndex._write`` does but without its
    per-document ``DELETE FROM instances_fts WHERE uid = ?``: ``uid`` is an UNINDEXED FTS5
    column, so each such delete scans the whole text table and a 100,000-document rebuild takes
    quadratic time (infra/README.md, benchmarks). The rows written are the same."""
    import sqlite3

    from search.backends.sqlite import _INSERT, SQLiteIndex, _fts_body
    from search.document import ALL_FIELDS

    started = time.perf_counter()
    SQLiteIndex(path).ensure_schema()
    conn = sqlite3.connect(path)
    with conn:
        for doc in documents(count, patients):
            conn.execute(_INSERT, [doc.get(f) for f in ALL_FIELDS])
            conn.execute("INSERT INTO instances_fts (uid, body) VALUES (?, ?)",
                         (doc["SOPInstanceUID"], fold(_fts_body(doc))))  # fmt: skip
    conn.close()
    seconds = time.perf_counter() - started
    assert SQLiteIndex(path).count() == count
    return seconds


def run_sqlite(args: argparse.Namespace) -> dict[str, object]:
    import tempfile

    data = Path(tempfile.mkdtemp(prefix="ologies-search-bench-"))
    env = {"OLOGIES_STORE_URL": (data / "store").as_uri(), "OLOGIES_INDEX_URL": f"sqlite:///{data / 'index.sqlite3'}"}
    seconds = load_sqlite_fresh(data / "index.sqlite3", args.instances, args.patients)
    with ologies_server(env) as (base_url, _pid, server_data):
        headers = admin_headers(server_data, env)
        return {"backend": "sqlite + file store", "load_seconds": round(seconds, 1),
                "queries": measure(base_url, headers, args.patients, args.rounds)}  # fmt: skip


def run_es(args: argparse.Namespace) -> dict[str, object]:
    import subprocess
    import tempfile

    from elasticsearch import Elasticsearch

    from search.backends.elasticsearch import ElasticsearchIndex
    from tests.integration.conftest import Backends, remove_bucket, remove_indices

    suffix = uuid.uuid4().hex[:10]
    prefix = f"ologies-bench-{suffix}"
    if args.es_store == "s3":
        backends = Backends("s3", args.s3_url, args.es_url, prefix, prefix)
        env = {k: v for k, v in backends.environment().items() if k.startswith("OLOGIES_")}
        subprocess.run([sys.executable, "-m", "ingest.cli", "init"], env={**os.environ, **env}, check=True,
                       capture_output=True)  # fmt: skip
    else:
        data = Path(tempfile.mkdtemp(prefix="ologies-search-bench-"))
        env = {"OLOGIES_STORE_URL": (data / "store").as_uri(), "OLOGIES_INDEX_URL": args.es_url,
               "OLOGIES_ES_INDEX_PREFIX": prefix}  # fmt: skip
    index = ElasticsearchIndex(Elasticsearch(args.es_url, request_timeout=120), prefix=prefix)
    try:
        seconds = load(index, args.instances, args.patients)
        index.close()
        with ologies_server(env) as (base_url, _pid, server_data):
            headers = admin_headers(server_data, env)
            return {"backend": f"elasticsearch + {args.es_store} store", "load_seconds": round(seconds, 1),
                    "queries": measure(base_url, headers, args.patients, args.rounds)}  # fmt: skip
    finally:
        remove_indices(args.es_url, prefix)
        if args.es_store == "s3":
            remove_bucket(args.s3_url, prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="passes over each query set (40 queries each)")
    parser.add_argument("--backends", default="sqlite,es")
    parser.add_argument("--es-url", default=os.environ.get("OLOGIES_TEST_ES_URL") or os.environ.get("OLOGIES_TEST_ELASTICSEARCH_URL"))
    parser.add_argument("--s3-url", default=os.environ.get("OLOGIES_TEST_MINIO_URL") or os.environ.get("OLOGIES_TEST_SEAWEEDFS_URL"))
    parser.add_argument("--es-store", choices=["s3", "file"], default=None,
                        help="the store under the Elasticsearch server (default: s3 if an S3 server is known)")
    args = parser.parse_args()
    args.es_store = args.es_store or ("s3" if args.s3_url else "file")
    for backend in args.backends.split(","):
        if backend == "es" and not args.es_url:
            raise SystemExit("es needs --es-url (or source infra/test-env.sh)")
        result = run_sqlite(args) if backend == "sqlite" else run_es(args)
        result.update(instances=args.instances, patients=args.patients)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
