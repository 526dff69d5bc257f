"""RELIABILITY.md section 3 A: the hostile-input corpus (tests/corpus/make.py, about 1,100 files
generated now) through every ingest route: the REST API, the upload page's form, STOW-RS, C-STORE
and the watched folder. After every case the invariants are checked (nothing lost, nothing
half-visible, nothing stored that was refused, no spool left: tests/invariants.py), every answer
is a 2xx or a 4xx (a 5xx other than 503, an exception, a watcher "internal error" or a silent
listener is a crash), the process's memory (with the listener's workers) stays within its budget,
and at the end every served rendition of what was stored is scanned for GPS, owner, maker-note,
EXIF and XMP metadata and a non-zero preamble.

``OLOGIES_CORPUS_SCALE`` (default 1) multiplies the mutated variants and ``OLOGIES_CORPUS_SEED``
(default 8) changes them: ``OLOGIES_CORPUS_SCALE=10 OLOGIES_CORPUS_SEED=$RANDOM`` is the long run.
The report is written to ``test-artifacts/corpus/report.json``.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from tests import imagegen
from tests.conftest import patient_fields
from tests.corpus.make import build, families
from tests.corpus.runner import ROUTES, run_corpus

SCALE = int(os.environ.get("OLOGIES_CORPUS_SCALE", "1"))
SEED = int(os.environ.get("OLOGIES_CORPUS_SEED", "8"))
REPORT = Path(__file__).resolve().parents[2] / "test-artifacts" / "corpus" / "report.json"


def test_corpus_is_large_distinct_and_covers_the_catalogue():
    cases = build(SEED, SCALE)
    assert len(cases) >= 1000
    assert len({c.id for c in cases}) == len(cases)
    assert len({c.sha256 for c in cases}) >= 0.95 * len(cases)  # distinct files, not renamed copies
    covered = set(families(cases))
    for family in ("A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8", "A9", "A10", "A11", "A12", "A13", "A14", "A15",
                   "A16", "A17", "EXIF", "MP4", "PDF", "BITFLIP", "OVERWRITE", "RANDOM", "REGRESSION", "O1"):  # fmt: skip
        assert family in covered, family
    assert build(SEED, SCALE)[500].data == cases[500].data  # the same seed gives the same bytes


def test_every_hostile_input_through_every_route_keeps_the_invariants(tmp_path):
    cases = build(SEED, SCALE)
    # the renditions of every third stored item, and of all that carried GPS (the figures run scans all)
    report = run_corpus(cases, routes=ROUTES, work=tmp_path, leak_every=3)
    report.write(REPORT)
    summary = report.summary()
    assert not report.skipped_routes, f"routes not exercised: {report.skipped_routes}"
    assert summary["tried"] >= 2000, summary
    failures = report.failures()
    assert not failures, f"{len(failures)} failures (report: {REPORT}):\n" + "\n".join(failures[:40])
    assert summary["metadata_artefacts_scanned"] > 50, summary
    # every route stored the valid controls and refused the plainly wrong
    for route, outcomes in summary["by_route"].items():
        assert outcomes.get("stored", 0) > 0 and outcomes.get("refused", 0) > 0, (route, outcomes)


def test_compressed_request_bodies_are_refused_not_inflated(client):
    """A10 (the Orthanc CVE-2026-5438 class): a gzip Content-Encoding body is never inflated."""
    photo = imagegen.jpeg(imagegen.photo(32, 24, seed=5))
    boundary = "b0undary"
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in patient_fields().items()
    ) + f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'.encode() + photo + f"\r\n--{boundary}--\r\n".encode()
    bomb = gzip.compress(body + b"\0" * (16 << 20))  # 16 MiB of padding inflates from ~16 KiB
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Encoding": "gzip"}
    response = client.post("/api/v1/images", content=bomb, headers=headers)
    assert response.status_code in (400, 413, 415, 422), response.text[:300]
    stow = client.post("/dicomweb/studies", content=bomb, headers={
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=x', "Content-Encoding": "gzip"})  # fmt: skip
    assert stow.status_code in (400, 413, 415), stow.text[:300]


@pytest.mark.parametrize("name", ["A3-dicom-pe-preamble", "A3-dicom-elf-preamble"])
def test_executable_preambles_are_zeroed_when_stored(client, services, name):
    """A3 (CVE-2019-11687): a DICOM file whose preamble is a PE or ELF header is stored with the
    preamble zeroed, or refused."""
    case = next(c for c in build() if c.id == name)
    response = client.post("/api/v1/images", data={"trust": "REM", "specialty": "dermatology", "consent": "clinical-care"},
                           files={"file": ("a.dcm", case.data)})  # fmt: skip
    if response.status_code >= 400:
        assert response.status_code < 500
        return
    uid = response.json()["files"][0]["sop_instance_uid"]
    with services.repository.open_instance(uid) as handle:
        assert handle.read(132) == bytes(128) + b"DICM"
