"""Write ordering, idempotency, conflicts and recovery of the Repository service.

The objects here are small hand-built DICOM datasets, so these tests exercise the service alone;
the converters' objects go through the same path in tests/web.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from repository import keys
from repository.backends.memory import MemoryObjectStore
from repository.errors import Conflict, IndexUnavailable, NotFound
from repository.service import PreparedInstance, Repository
from search.backends.sqlite import SQLiteIndex
from search.query import InstanceQuery


class FlakyIndex(SQLiteIndex):
    """A real SQLite index that can be switched off, as an outage would."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.down = False

    def upsert(self, document):  # type: ignore[no-untyped-def]
        if self.down:
            raise IndexUnavailable("index is down")
        super().upsert(document)


def write_instance(tmp: Path, sop: str, patient: str = "9990000018", comment: str = "", study: str = "2.25.1") -> PreparedInstance:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.4"
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.4"
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = "2.25.2"
    ds.PatientID = patient
    ds.PatientName = "Zoë^Llŷr"
    ds.Modality = "XC"
    ds.ContentDate = "20240301"
    ds.ImageComments = comment
    path = tmp / f"{sop}-{comment}-{patient}-{study}.dcm"
    ds.save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    return PreparedInstance(path, sop, study, "2.25.2", patient, hashlib.sha256(data).hexdigest())


@pytest.fixture
def repo() -> Repository:
    index = FlakyIndex()
    index.ensure_schema()
    return Repository(MemoryObjectStore(), index)


def test_store_then_find_by_uid_and_search(repo, tmp_path):
    outcome = repo.store_instance(write_instance(tmp_path, "2.25.100"))
    assert outcome.status == "created" and outcome.indexed
    assert outcome.key == keys.instance_key("2.25.1", "2.25.2", "2.25.100")
    assert repo.read_instance_header("2.25.100").PatientName == "Zoë^Llŷr"
    assert repo.index.search(InstanceQuery(patient_id="9990000018")).total == 1
    assert list(repo.store.iter_keys(keys.PENDING)) == []


def test_same_instance_twice_is_stored_once(repo, tmp_path):
    item = write_instance(tmp_path, "2.25.100")
    repo.store_instance(item)
    again = repo.store_instance(item)
    assert again.status == "existing" and again.indexed
    assert len(list(repo.iter_instance_keys())) == 1


def test_same_image_for_another_patient_is_a_conflict_that_does_not_name_them(repo, tmp_path):
    repo.store_instance(write_instance(tmp_path, "2.25.100", patient="9990000018"))
    with pytest.raises(Conflict) as caught:
        repo.store_instance(write_instance(tmp_path, "2.25.100", patient="9990000026"))
    assert "9990000018" not in caught.value.message and "Zo" not in caught.value.message
    assert repo.read_instance_header("2.25.100").PatientID == "9990000018"


def test_different_content_under_an_existing_dicom_uid_is_a_conflict(repo, tmp_path):
    first = write_instance(tmp_path, "2.25.100", comment="a")
    repo.store_instance(PreparedInstance(**{**first.__dict__, "uid_derived_from_content": False}))
    second = write_instance(tmp_path, "2.25.100", comment="b")
    with pytest.raises(Conflict, match="different content"):
        repo.store_instance(PreparedInstance(**{**second.__dict__, "uid_derived_from_content": False}))
    same = PreparedInstance(**{**first.__dict__, "uid_derived_from_content": False})
    assert repo.store_instance(same).status == "existing"


def _object_patient(repo: Repository, uid: str) -> str:
    return str(repo.read_instance_header(uid).PatientID)


def test_concurrent_upload_for_another_patient_never_overwrites_the_stored_object(repo, tmp_path):
    # Both passed the batch preflight before either was stored (known_absent), as two requests
    # (or two parts of one STOW-RS request) arriving together do.
    repo.store_instance(write_instance(tmp_path, "2.25.100", patient="9990000018"), known_absent=True)
    with pytest.raises(Conflict, match="different patient"):
        repo.store_instance(write_instance(tmp_path, "2.25.100", patient="9990000026"), known_absent=True)
    assert _object_patient(repo, "2.25.100") == "9990000018"
    assert repo.index.get("2.25.100")["PatientID"] == "9990000018"
    assert repo.check().consistent


def test_concurrent_different_content_under_one_uid_is_refused_not_overwritten(repo, tmp_path):
    first = PreparedInstance(**{**write_instance(tmp_path, "2.25.100", comment="a").__dict__, "uid_derived_from_content": False})
    second = PreparedInstance(**{**write_instance(tmp_path, "2.25.100", comment="b").__dict__, "uid_derived_from_content": False})
    repo.store_instance(first, known_absent=True)
    with pytest.raises(Conflict, match="different content"):
        repo.store_instance(second, known_absent=True)
    assert repo.read_instance_header("2.25.100").ImageComments == "a"


def test_upload_meeting_an_in_flight_one_of_another_patient_is_refused_and_the_first_completes(repo, tmp_path):
    first = write_instance(tmp_path, "2.25.100", patient="9990000018")
    key = keys.instance_key("2.25.1", "2.25.2", "2.25.100")
    # The first upload has written its marker and object, not yet its locator or index entry.
    repo.store.put(keys.pending_key("2.25.100"), repo._marker_body(key))
    repo.store.put(key, first.path.read_bytes())
    with pytest.raises(Conflict):
        repo.store_instance(write_instance(tmp_path, "2.25.100", patient="9990000026"), known_absent=True)
    assert repo.reconcile_pending() == 1
    assert _object_patient(repo, "2.25.100") == "9990000018"
    assert repo.index.get("2.25.100")["PatientID"] == "9990000018"
    assert repo.check().consistent


def test_retry_after_a_crash_before_the_locator_completes_the_same_upload(repo, tmp_path):
    item = write_instance(tmp_path, "2.25.100")
    key = keys.instance_key("2.25.1", "2.25.2", "2.25.100")
    repo.store.put(keys.pending_key("2.25.100"), repo._marker_body(key))
    repo.store.put(key, item.path.read_bytes())
    outcome = repo.store_instance(item)
    assert outcome.status == "created" and outcome.indexed
    assert repo.locate("2.25.100") == key and repo.pending_count() == 0
    assert repo.check().consistent


def test_concurrent_upload_under_other_study_uids_leaves_no_stray_object(repo, tmp_path):
    repo.store_instance(write_instance(tmp_path, "2.25.100", patient="9990000018"), known_absent=True)
    with pytest.raises(Conflict):
        repo.store_instance(write_instance(tmp_path, "2.25.100", patient="9990000026", study="2.25.7"), known_absent=True)
    assert list(repo.iter_instance_keys()) == [keys.instance_key("2.25.1", "2.25.2", "2.25.100")]
    assert repo.check().consistent


def test_racing_uploads_of_one_uid_for_two_patients_agree_in_store_and_index(tmp_path):
    import threading

    for round_ in range(30):
        index = SQLiteIndex(":memory:")
        index.ensure_schema()
        repo = Repository(MemoryObjectStore(), index)
        items = [write_instance(tmp_path, "2.25.100", patient=p, comment=str(round_)) for p in ("9990000018", "9990000026")]
        results: list[object] = []
        start = threading.Barrier(2)

        def upload(item: PreparedInstance) -> None:
            start.wait()
            try:
                results.append(repo.store_instance(item, known_absent=True).status)
            except Conflict:
                results.append("conflict")

        threads = [threading.Thread(target=upload, args=(item,)) for item in items]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(map(str, results)) == ["conflict", "created"], results
        assert repo.index.get("2.25.100")["PatientID"] == _object_patient(repo, "2.25.100")


def test_index_outage_keeps_the_upload_and_the_reconciler_completes_it(repo, tmp_path):
    repo.index.down = True
    outcome = repo.store_instance(write_instance(tmp_path, "2.25.100"))
    assert outcome.status == "created" and not outcome.indexed
    assert repo.pending_count() == 1
    assert repo.read_instance_header("2.25.100").SOPInstanceUID == "2.25.100"  # readable by UID
    with pytest.raises(IndexUnavailable):
        repo.reconcile_pending()
    repo.index.down = False
    assert repo.reconcile_pending() == 1
    assert repo.pending_count() == 0
    assert repo.index.get("2.25.100")["PatientID"] == "9990000018"
    assert repo.check().consistent


def test_crash_between_store_and_index_is_recovered(repo, tmp_path):
    item = write_instance(tmp_path, "2.25.100")
    # Simulate a process that died after writing the marker and the object, before the locator
    # and the index: exactly what a kill -9 at that point leaves behind.
    key = keys.instance_key("2.25.1", "2.25.2", "2.25.100")
    repo.store.put(keys.pending_key("2.25.100"), repo._marker_body(key))
    repo.store.put(key, item.path.read_bytes())
    with pytest.raises(NotFound):
        repo.locate("2.25.100")
    report = repo.check()
    assert report.missing_from_index == ["2.25.100"] and report.pending_markers == 1
    assert repo.reconcile_pending() == 1
    assert repo.locate("2.25.100") == key
    assert repo.check().consistent and repo.check().pending_markers == 0


def test_marker_of_an_upload_that_never_wrote_its_object_is_dropped(repo, tmp_path):
    repo.store.put(keys.pending_key("2.25.9"), repo._marker_body(keys.instance_key("2.25.1", "2.25.2", "2.25.9")))
    assert repo.reconcile_pending() == 0
    assert repo.pending_count() == 1  # young: the upload may still be writing
    assert repo.reconcile_pending(force=True) == 0
    assert repo.pending_count() == 0


def test_reindex_rebuilds_index_and_locators_from_the_store_alone(repo, tmp_path):
    for n in range(5):
        repo.store_instance(write_instance(tmp_path, f"2.25.{200 + n}"))
    for key in list(repo.store.iter_keys(keys.LOCATORS)):
        repo.store.delete(key)
    repo.index.rebuild([])
    assert repo.index.count() == 0
    seen: list[str] = []
    assert repo.reindex(progress=seen.append) == 5
    assert len(seen) == 5
    assert repo.index.count() == 5
    assert repo.locate("2.25.203").endswith("2.25.203.dcm")
    assert repo.check().consistent


def test_check_reports_index_entries_without_objects(repo, tmp_path):
    repo.store_instance(write_instance(tmp_path, "2.25.100"))
    repo.store.delete(keys.instance_key("2.25.1", "2.25.2", "2.25.100"))
    report = repo.check()
    assert report.missing_from_store == ["2.25.100"] and not report.consistent


def test_reindex_from_a_store_listing_far_fewer_instances_than_the_index_is_refused(repo, tmp_path):
    for n in range(4):
        repo.store_instance(write_instance(tmp_path, f"2.25.{300 + n}"))
    emptied = Repository(MemoryObjectStore(), repo.index)  # a mistyped prefix: the same index, no objects
    with pytest.raises(Conflict, match="OLOGIES_STORE_URL"):
        emptied.reindex()
    assert repo.index.count() == 4  # the live index is untouched
    assert emptied.reindex(force=True) == 0 and repo.index.count() == 0  # said on purpose
