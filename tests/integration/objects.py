"""Many small, valid stored instances, quickly: for reindex tests and the reindex benchmark.

One photograph goes through the real upload path once (converter, IOD builder, Repository), then
copies of that object are written straight to the store with new UIDs and patient numbers. The
UIDs are swapped byte for byte (every UID and number has a fixed length), so a copy costs no
DICOM encoding, and every copy is a complete, self-describing object as an upload would store.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

from repository import keys
from repository.store import DICOM_MEDIA_TYPE, ObjectStore

DIGITS = 39  # "2.25." + one marker digit + 39 digits: 45 characters, well under 64
_SENTINELS = {kind: f"2.25.{kind}" + str(kind) * DIGITS for kind in (1, 2, 3)}  # sop, study, series
_SENTINEL_PATIENT = "9990000018"


def nhs_test_number(n: int) -> str:
    """The ``n``-th valid Modulus 11 number of the 999 test range (never a real patient)."""
    found = -1
    for body in range(999_000_000, 1_000_000_000):
        digits = [int(c) for c in str(body)]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1))) % 11
        check = 0 if check == 11 else check
        if check == 10 or len(set(digits + [check])) == 1:
            continue
        found += 1
        if found == n:
            return f"{body}{check}"
    raise ValueError(n)


def template(workdir: Path, *, seed: int = 1, jpeg: bytes | None = None) -> bytes:
    """One converted photograph (``jpeg``, else a small one), stored by the real pipeline, with
    sentinel UIDs put in."""
    from pydicom import dcmread, dcmwrite

    from repository.settings import Settings
    from tests import imagegen
    from tests.conftest import patient_fields
    from web.services import Services

    from ingest.pipeline import IncomingFile

    settings = Settings(
        _env_file=None, store_url="memory://", index_url="sqlite:///:memory:",
        allow_test_nhs_numbers=True, spool_dir=workdir,
    )  # fmt: skip
    services = Services.build(settings)
    photo = workdir / "template.jpg"
    photo.write_bytes(jpeg or imagegen.jpeg(imagegen.photo(64, 48, seed=seed)))
    batch = services.ingestor.ingest([IncomingFile(photo, "template.jpg")], patient_fields(), route="cli")
    uid = batch.files[0].outcome.sop_instance_uid
    ds = dcmread(services.repository.open_instance(uid))
    services.close()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = _SENTINELS[1]
    ds.StudyInstanceUID, ds.SeriesInstanceUID = _SENTINELS[2], _SENTINELS[3]
    assert ds.PatientID == _SENTINEL_PATIENT
    path = workdir / "template.dcm"
    dcmwrite(path, ds, enforce_file_format=True)
    data = path.read_bytes()
    for sentinel in _SENTINELS.values():
        assert data.count(sentinel.encode()) >= 1
    return data


class Copier:
    """Copies of ``template`` with fresh UIDs: ``make(n)`` -> (key, sop_uid, bytes)."""

    def __init__(self, data: bytes, *, patients: int = 1000, per_study: int = 10) -> None:
        self.data = data
        self.run = secrets.randbelow(10**12)
        self.per_study = per_study
        self.patients = [nhs_test_number(i).encode() for i in range(patients)]

    def uids(self, n: int) -> tuple[str, str, str]:
        def uid(kind: int, value: int) -> str:
            return f"2.25.{kind}{self.run:012d}{value:0{DIGITS - 12}d}"

        return uid(1, n), uid(2, n // self.per_study), uid(3, n // self.per_study)

    def make(self, n: int) -> tuple[str, str, bytes]:
        sop, study, series = self.uids(n)
        data = self.data
        for kind, value in ((1, sop), (2, study), (3, series)):
            data = data.replace(_SENTINELS[kind].encode(), value.encode())
        data = data.replace(_SENTINEL_PATIENT.encode(), self.patients[n % len(self.patients)])
        return keys.instance_key(study, series, sop), sop, data


def write_copies(
    store: ObjectStore, copier: Copier, count: int, *, workers: int = 8, start: int = 0,
    progress: Callable[[int], None] | None = None,
) -> list[str]:  # fmt: skip
    """Store ``count`` copies with their locators (as uploads leave them); return the SOP UIDs."""

    def write(n: int) -> str:
        key, sop, data = copier.make(n)
        store.put(key, data, media_type=DICOM_MEDIA_TYPE)
        store.put(keys.locator_key(sop), key.encode(), media_type="text/plain")
        return sop

    uids: list[str] = []
    numbers: Iterator[int] = iter(range(start, start + count))
    with ThreadPoolExecutor(workers) as pool:
        while chunk := list(islice(numbers, 1000)):
            uids += pool.map(write, chunk)
            if progress:
                progress(len(uids))
    return uids


def scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="ologies-objects-", dir=os.environ.get("TMPDIR")))
