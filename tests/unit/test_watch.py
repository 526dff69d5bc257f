"""``ologies watch``: a folder receiving files slowly, sidecars and manifests, bad input with
reasons, restarts without double ingestion (a manual clock stands in for waiting)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pydicom
import pytest

from ingest.watch import WatchConfig, Watcher, open_for_writing
from repository.private_tags import get_private
from search.query import InstanceQuery
from tests import imagegen, mediagen
from tests.conftest import NHS_A, NHS_B, patient_fields

FIELDS = {k: v for k, v in patient_fields().items()}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "drop"
    path.mkdir()
    return path


@pytest.fixture
def watch(services, folder):
    clock = Clock()

    def make(**options):
        config = WatchConfig(folder=folder, settle_seconds=2, context_grace_seconds=30, workers=1, **options)
        return Watcher(services.ingestor, config, clock=clock)

    make.clock = clock
    return make


def settle(watcher, clock, passes=2):
    """Scan, let the settle time pass, scan again: what a running watcher does over seconds."""
    outcomes = []
    for _ in range(passes):
        outcomes += watcher.scan_once()
        clock.now += 3
    return outcomes + watcher.scan_once()


def stored(services):
    return services.repository.index.search(InstanceQuery(limit=500)).items


def test_sidecar_file_is_ingested_and_moved_to_done(services, folder, watch):
    (folder / "lesion.jpg").write_bytes(imagegen.dermatoscope_jpeg(seed=1))
    (folder / "lesion.jpg.json").write_text(json.dumps({**FIELDS, "modality": "DMS"}))
    outcomes = settle(watch(), watch.clock)
    assert [o.status for o in outcomes] == ["stored"]
    assert (folder / "done" / "lesion.jpg").exists() and (folder / "done" / "lesion.jpg.json").exists()
    assert not (folder / "lesion.jpg").exists()
    docs = stored(services)
    assert len(docs) == 1 and docs[0]["Modality"] == "DMS" and docs[0]["_ingest_route"] == "watch"


def test_file_still_being_written_is_never_ingested(services, folder, watch):
    watcher = watch()
    data = imagegen.jpeg(imagegen.photo(320, 240))
    (folder / "slow.jpg.json").write_text(json.dumps(FIELDS))
    with (folder / "slow.jpg").open("wb") as handle:
        handle.write(data[:1000])
        handle.flush()
        for _ in range(4):  # size unchanged for longer than the settle time, but still open
            watcher.scan_once()
            watch.clock.now += 3
        assert open_for_writing(folder / "slow.jpg")
        assert watcher.scan_once() == [] and stored(services) == []
        handle.write(data[1000:])
    assert not open_for_writing(folder / "slow.jpg")
    outcomes = settle(watcher, watch.clock)
    assert [o.status for o in outcomes] == ["stored"]


def test_growing_file_waits_until_its_size_settles(services, folder, watch):
    watcher = watch(check_open_files=False)
    data = imagegen.jpeg(imagegen.photo(320, 240))
    (folder / "grow.jpg.json").write_text(json.dumps(FIELDS))
    for end in (500, 2000, len(data)):  # a copy arriving in bursts, closed between them
        with (folder / "grow.jpg").open("ab") as handle:
            handle.write(data[os.path.getsize(folder / "grow.jpg") if (folder / "grow.jpg").exists() else 0 : end])
        assert watcher.scan_once() == []
        watch.clock.now += 1  # less than the settle time between bursts
    assert settle(watcher, watch.clock)[0].status == "stored"
    assert (folder / "done" / "grow.jpg").read_bytes() == data


def test_part_names_are_ignored_until_renamed(services, folder, watch):
    watcher = watch()
    (folder / "clip.mp4.part").write_bytes(mediagen.video(folder.parent / "v.mp4").read_bytes())
    (folder / "clip.mp4.json").write_text(json.dumps(FIELDS))
    assert settle(watcher, watch.clock) == []
    os.replace(folder / "clip.mp4.part", folder / "clip.mp4")
    outcomes = settle(watcher, watch.clock)
    assert [o.status for o in outcomes] == ["stored"]
    assert stored(services)[0]["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.77.1.4.1"


def test_manifest_with_a_missing_file_and_an_invalid_nhs_number(services, folder, watch):
    columns = ["file", *FIELDS]
    rows = [
        {"file": "a.jpg", **FIELDS},
        {"file": "b.jpg", **FIELDS, "nhs_number": NHS_B},
        {"file": "bad.jpg", **FIELDS, "nhs_number": "9990000019"},  # fails Modulus 11
        {"file": "never.jpg", **FIELDS},
    ]
    with (folder / "session.csv").open("w", newline="", encoding="utf-8") as handle:
        import csv

        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    for seed, name in enumerate(("a.jpg", "b.jpg", "bad.jpg")):
        (folder / name).write_bytes(imagegen.jpeg(imagegen.photo(64, 48, seed=seed)))
    watcher = watch()
    outcomes = {o.name: o for o in settle(watcher, watch.clock)}
    assert outcomes["a.jpg"].status == outcomes["b.jpg"].status == "stored"
    assert outcomes["bad.jpg"].status == "failed"
    reason = (folder / "failed" / "bad.jpg.reason.txt").read_text()
    assert "Modulus 11" in reason and "nhs_number" in reason
    assert (folder / "failed" / "bad.jpg").exists()
    assert {d["PatientID"] for d in stored(services)} == {NHS_A, NHS_B}
    # the missing file is reported once the manifest is old enough, then the manifest is done
    old = os.path.getmtime(folder / "session.csv") - 60
    os.utime(folder / "session.csv", (old, old))
    watcher.scan_once()
    assert "never arrived" in (folder / "failed" / "never.jpg.reason.txt").read_text()
    assert (folder / "done" / "session.csv").exists()


def test_bad_files_fail_with_reasons_and_the_watcher_keeps_going(services, folder, watch):
    video = mediagen.video(folder.parent / "v.mp4").read_bytes()
    cases = {
        "cut.mp4": video[: len(video) // 2],
        "list.mp4": b"#EXTM3U\n#EXTINF:10,\nfile:///etc/passwd\n",
        "js.pdf": mediagen.pdf(b"<< /S /JavaScript /JS (app.alert(1)) >>", catalog_extra=b"/OpenAction 6 0 R "),
        "good.jpg": imagegen.jpeg(imagegen.photo(64, 48)),
    }
    for name, data in cases.items():
        (folder / name).write_bytes(data)
        (folder / f"{name}.json").write_text(json.dumps(FIELDS))
    (folder / "broken.jpg").write_bytes(imagegen.jpeg(imagegen.photo(64, 48, seed=3)))
    (folder / "broken.jpg.json").write_text("{not json")
    outcomes = {o.name: o.status for o in settle(watch(), watch.clock)}
    assert outcomes == {"cut.mp4": "failed", "list.mp4": "failed", "js.pdf": "failed", "good.jpg": "stored", "broken.jpg": "failed"}
    assert "truncated" in (folder / "failed" / "cut.mp4.reason.txt").read_text()
    assert "detected" in (folder / "failed" / "list.mp4.reason.txt").read_text()
    assert "JavaScript" in (folder / "failed" / "js.pdf.reason.txt").read_text()
    assert "not valid JSON" in (folder / "failed" / "broken.jpg.reason.txt").read_text()
    assert len(stored(services)) == 1  # nothing half-stored


def test_file_without_context_fails_after_the_grace_period(services, folder, watch):
    watcher = watch()
    (folder / "orphan.jpg").write_bytes(imagegen.jpeg(imagegen.photo(64, 48)))
    assert settle(watcher, watch.clock) == []  # waiting: its sidecar may still come
    watch.clock.now += 60
    outcomes = watcher.scan_once()
    assert [o.status for o in outcomes] == ["failed"]
    assert "no context" in (folder / "failed" / "orphan.jpg.reason.txt").read_text()


def test_restart_mid_batch_does_not_ingest_twice(services, folder, watch, monkeypatch):
    for seed in range(4):
        (folder / f"{seed}.jpg").write_bytes(imagegen.jpeg(imagegen.photo(64, 48, seed=seed)))
        (folder / f"{seed}.jpg.json").write_text(json.dumps(FIELDS))
    first = watch()
    real_move, real_ingest, moves = Watcher._move, Watcher._ingest, {"n": 0, "dead": False}

    def crash_on_third_move(self, path, where):
        moves["n"] += 1
        if moves["n"] == 3:
            moves["dead"] = True
            raise KeyboardInterrupt("killed")  # the process dies after storing, before moving
        return real_move(self, path, where)

    def nothing_after_death(self, path, fields):
        if moves["dead"]:
            raise KeyboardInterrupt("dead processes do nothing")
        return real_ingest(self, path, fields)

    monkeypatch.setattr(Watcher, "_move", crash_on_third_move)
    monkeypatch.setattr(Watcher, "_ingest", nothing_after_death)
    with pytest.raises(KeyboardInterrupt):
        settle(first, watch.clock)
    monkeypatch.setattr(Watcher, "_move", real_move)
    monkeypatch.setattr(Watcher, "_ingest", real_ingest)
    before = len(stored(services))
    assert before == 3
    restarted = watch()  # a new process: reads the journal
    outcomes = {o.name: o.status for o in settle(restarted, watch.clock)}
    assert outcomes == {"2.jpg": "existing", "3.jpg": "stored"}
    assert len(stored(services)) == 4
    assert sorted(p.name for p in (folder / "done").glob("*.jpg")) == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]
    # and a file dropped again later is recognised as the same image, not stored twice
    (folder / "again.jpg").write_bytes((folder / "done" / "0.jpg").read_bytes())
    (folder / "again.jpg.json").write_text(json.dumps(FIELDS))
    assert [o.status for o in settle(restarted, watch.clock)] == ["existing"]
    assert len(stored(services)) == 4


def test_files_of_one_patient_and_day_share_a_study(services, folder, watch):
    for seed in range(3):
        (folder / f"{seed}.jpg").write_bytes(imagegen.jpeg(imagegen.photo(64, 48, seed=seed)))
    (folder / "shared.csv").write_text("file,nhs_number\n0.jpg,{0}\n1.jpg,{0}\n2.jpg,{1}\n".format(NHS_A, NHS_B))
    watcher = watch(defaults={k: v for k, v in FIELDS.items() if k != "nhs_number"})
    settle(watcher, watch.clock)
    by_patient = {}
    for doc in stored(services):
        by_patient.setdefault(doc["PatientID"], set()).add(doc["StudyInstanceUID"])
    assert len(by_patient[NHS_A]) == 1 and len(by_patient[NHS_B]) == 1 and by_patient[NHS_A] != by_patient[NHS_B]


def test_dicom_file_uses_its_own_header(services, folder, watch, tmp_path):
    pytest.importorskip("ingest.dicom", reason="DICOM input (converters/dicom.py) has not landed")
    (folder / "photo.jpg").write_bytes(imagegen.jpeg(imagegen.photo(64, 48)))
    (folder / "photo.jpg.json").write_text(json.dumps(FIELDS))
    settle(watch(), watch.clock)
    uid = stored(services)[0]["SOPInstanceUID"]
    dicom = services.repository.open_instance(uid).read()
    other = pydicom.dcmread(__import__("io").BytesIO(dicom))
    other.SOPInstanceUID = other.SOPInstanceUID + ".1"
    other.PatientID = NHS_B
    other.save_as(folder / "from-modality.dcm", enforce_file_format=True)
    outcomes = settle(watch(defaults={"trust": "REM", "specialty": "dermatology", "consent": "clinical-care"}), watch.clock)
    assert [o.status for o in outcomes] == ["stored"], (folder / "failed").iterdir() and [
        p.read_text() for p in (folder / "failed").glob("*.txt")]
    kept = services.repository.read_instance_header(other.SOPInstanceUID)
    assert kept.PatientID == NHS_B and get_private(kept).get("IngestRoute") == "watch"


def test_video_and_pdf_objects_are_held_to_the_upload_rules(services, folder, watch, tmp_path):
    from tests import mediagen

    (folder / "clip.dcm").write_bytes(mediagen.dicom_video(tmp_path / "v", location=True))
    (folder / "consent.dcm").write_bytes(mediagen.dicom_pdf(mediagen.pdf(catalog_extra=b"/OpenAction << /S /JavaScript /JS (x) >> ")))
    outcomes = settle(watch(defaults={"trust": "REM", "specialty": "burns-plastics", "consent": "clinical-care"}), watch.clock)
    assert sorted((o.name, o.status) for o in outcomes) == [("clip.dcm", "stored"), ("consent.dcm", "failed")]
    assert "JavaScript" in (folder / "failed" / "consent.dcm.reason.txt").read_text()
    (doc,) = stored(services)
    raw = services.repository.open_instance(doc["SOPInstanceUID"]).read()
    assert mediagen.LOCATION_MARKER not in raw  # the container's location removed on the way in


def test_a_dicom_file_is_mapped_from_a_copy_never_in_place(services, folder, watch, tmp_path, monkeypatch):
    """A watched file may still be rewritten by its device, and a mapped file cut short under its
    reader kills the process (SIGBUS): the object is copied into the spool by streaming and the
    copy is mapped; the watched file itself is never mapped or read whole."""
    import ingest.dicom
    from tests import mediagen

    seen = []
    real = ingest.dicom.prepare_dicom

    def recording(data, out, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(data)
        return real(data, out, **kwargs)

    monkeypatch.setattr(ingest.dicom, "prepare_dicom", recording)
    sent = mediagen.dicom_video(tmp_path / "v")
    (folder / "clip.dcm").write_bytes(sent)
    outcomes = settle(watch(defaults={"trust": "REM", "specialty": "burns-plastics", "consent": "clinical-care"}), watch.clock)
    assert [(o.name, o.status) for o in outcomes] == [("clip.dcm", "stored")]
    (given,) = seen
    assert isinstance(given, Path) and folder not in given.parents
    assert not given.exists()  # the copy went with the spool
    assert (folder / "done" / "clip.dcm").read_bytes() == sent
