"""The load test (tests/bench/load.py) in short: no errors under concurrent searches, thumbnails,
5 MB uploads and STOW-RS batches; and with Elasticsearch cut off, searches answer 503 (never an
empty 200) while thumbnails, uploads and STOW-RS go on. Latencies are reported, not asserted
(timings on a shared CI machine are for the figures run, ``python -m tests.figures``)."""

from __future__ import annotations

import os

import pytest

from tests.bench.load import run

SECONDS = float(os.environ.get("OLOGIES_LOAD_SECONDS", "10"))


def test_load_on_embedded_backends_has_no_errors():
    result = run(SECONDS, 8, backends="embedded", workers=2, log=print)
    clean = result["phases"][0]
    assert clean["errors"] == 0, clean
    assert all(clean[kind]["n"] > 0 for kind in ("search", "thumbnail", "upload")), clean
    assert clean["cpu_cores"]["server"] > 0 and clean["cpu_cores"]["clients"] > 0, clean  # who had the cores
    assert result["machine_speed"]["sha256_mb_s"] > 0, result


@pytest.mark.integration
@pytest.mark.slow
def test_load_while_the_index_is_down_keeps_the_paths_that_do_not_need_it():
    from tests.integration.conftest import es_url_from_env

    if not (es_url_from_env() and os.environ.get("OLOGIES_TEST_MINIO_URL")):
        pytest.skip("needs MinIO and Elasticsearch installed by infra/ (OLOGIES_TEST_MINIO_URL, OLOGIES_TEST_ES_URL)")
    result = run(SECONDS, 8, backends="real", index_down=True, workers=2, log=print)
    clean, down = result["phases"]
    assert clean["errors"] == 0, clean
    assert down["errors"] == 0, down  # no 200 search while the index is away, no failed upload
    assert down["honest_503"] > 0, down  # every search answered 503 with Retry-After
    for kind in ("thumbnail", "upload"):
        assert down[kind]["n"] > 0, down
    assert all(clean["cpu_cores"][name] > 0 for name in ("server", "minio", "elasticsearch", "clients")), clean
    assert set(down["upload"]["statuses"]) <= {"201", "202"}, down


def test_mix_names_kinds_and_weights():
    import argparse

    from tests.bench.load import MIX, parse_mix

    assert parse_mix("search:100") == (("search", 100),)
    assert parse_mix("search:70,thumbnail:20,upload:8,stow:2") == MIX
    for bad in ("search", "searches:1", "search:x", "search:0"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_mix(bad)
