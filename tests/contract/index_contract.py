"""The search-index contract: the SQLite and Elasticsearch adapters must answer identically."""

from __future__ import annotations

import datetime as dt

import pytest

from repository.errors import NotFound
from search.document import ALL_FIELDS, fold
from search.query import InstanceQuery

PATIENT_A = "9434765919"
PATIENT_B = "9990000018"


def make_doc(n: int, **overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {f: None for f in ALL_FIELDS}
    capture = overrides.pop("capture", dt.date(2024, 1, 1) + dt.timedelta(days=n))
    assert isinstance(capture, dt.date)
    name = str(overrides.pop("PatientName", "O'Brien-Jones^Siân"))
    doc.update({
        "SOPInstanceUID": f"2.25.{1000 + n}",
        "SOPClassUID": "1.2.840.10008.5.1.4.1.1.77.1.4",
        "StudyInstanceUID": f"2.25.{900000 + n // 10}",
        "SeriesInstanceUID": f"2.25.{800000 + n // 5}",
        "PatientID": PATIENT_A,
        "PatientName": name,
        "_patient_name_folded": fold(name.replace("^", " ")),
        "PatientBirthDate": "19800101",
        "PatientSex": "F",
        "Modality": "XC",
        "StudyDate": capture.strftime("%Y%m%d"),
        "ContentDate": capture.strftime("%Y%m%d"),
        "ContentTime": "101500",
        "ImageComments": "pigmented lesion, irregular border",
        "_capture_date": capture.isoformat(),
        "_year": capture.year,
        "_trust": "REM",
        "_specialty": "dermatology",
        "_body_site_code": "14975008",
        "_body_site_meaning": "Forearm",
        "Laterality": "L",
        "_consent": "clinical-care",
        "_object_key": f"studies/x/series/y/instances/{n}.dcm",
        "_size": 1234,
        "Rows": 100,
        "Columns": 200,
    })  # fmt: skip
    doc.update(overrides)
    return doc


def uids(page) -> list[str]:
    return [str(d["SOPInstanceUID"]) for d in page.items]


class SearchIndexContract:
    @pytest.fixture
    def index(self):  # pragma: no cover - supplied by subclasses
        raise NotImplementedError

    def test_upsert_get_replace_delete(self, index):
        index.upsert(make_doc(1))
        assert index.get("2.25.1001")["PatientID"] == PATIENT_A
        index.upsert(make_doc(1, ImageComments="healed"))
        assert index.get("2.25.1001")["ImageComments"] == "healed"
        assert index.count() == 1
        index.delete("2.25.1001")
        with pytest.raises(NotFound):
            index.get("2.25.1001")
        assert index.count() == 0

    def test_round_trips_unicode_exactly(self, index):
        index.upsert(make_doc(2, PatientName="Llŷr^Zoë"))
        assert index.get("2.25.1002")["PatientName"] == "Llŷr^Zoë"

    def test_filters_are_anded(self, index):
        index.upsert_many([
            make_doc(1),
            make_doc(2, PatientID=PATIENT_B),
            make_doc(3, _specialty="burns-plastics", _trust="RBN"),
            make_doc(4, _body_site_code="85562004", _body_site_meaning="Hand"),
            make_doc(5, Modality="DMS"),
        ])  # fmt: skip
        assert uids(index.search(InstanceQuery(patient_id=PATIENT_B))) == ["2.25.1002"]
        assert uids(index.search(InstanceQuery(specialty="burns-plastics"))) == ["2.25.1003"]
        assert uids(index.search(InstanceQuery(trust="RBN", specialty="burns-plastics"))) == ["2.25.1003"]
        assert uids(index.search(InstanceQuery(trust="RBN", specialty="dermatology"))) == []
        assert uids(index.search(InstanceQuery(body_site="85562004"))) == ["2.25.1004"]
        assert uids(index.search(InstanceQuery(modality="DMS"))) == ["2.25.1005"]
        assert index.search(InstanceQuery(patient_id=PATIENT_A)).total == 4

    def test_newest_first_and_paging(self, index):
        index.upsert_many(make_doc(n) for n in range(30))
        first = index.search(InstanceQuery(limit=10))
        assert first.total == 30
        assert uids(first) == [f"2.25.{1000 + n}" for n in range(29, 19, -1)]
        third = index.search(InstanceQuery(limit=10, offset=20))
        assert uids(third) == [f"2.25.{1000 + n}" for n in range(9, -1, -1)]
        oldest = index.search(InstanceQuery(limit=1, newest_first=False))
        assert uids(oldest) == ["2.25.1000"]

    def test_date_range_is_inclusive(self, index):
        index.upsert_many(make_doc(n, capture=dt.date(2024, 3, 1) + dt.timedelta(days=n)) for n in range(10))
        page = index.search(InstanceQuery(date_from=dt.date(2024, 3, 3), date_to=dt.date(2024, 3, 5)))
        assert sorted(uids(page)) == ["2.25.1002", "2.25.1003", "2.25.1004"]

    def test_free_text_ignores_case_and_accents(self, index):
        index.upsert_many([
            make_doc(1, ImageComments="Pigmented lesion on the forearm"),
            make_doc(2, ImageComments="Burn, partial thickness", _body_site_meaning="Hand"),
            make_doc(3, ImageComments="Café-au-lait macule"),
        ])  # fmt: skip
        assert uids(index.search(InstanceQuery(text="PIGMENTED"))) == ["2.25.1001"]
        assert uids(index.search(InstanceQuery(text="hand burn"))) == ["2.25.1002"]
        assert uids(index.search(InstanceQuery(text="cafe"))) == ["2.25.1003"]
        assert uids(index.search(InstanceQuery(text="les"))) == ["2.25.1001"]  # prefix
        assert index.search(InstanceQuery(text='"unbalanced AND OR (')).total == 0

    def test_name_search_tolerates_case_accents_and_punctuation(self, index):
        index.upsert_many([
            make_doc(1, PatientName="O'Brien-Jones^Siân"),
            make_doc(2, PatientName="Llŷr^Zoë", PatientID=PATIENT_B),
        ])  # fmt: skip
        assert uids(index.search(InstanceQuery(patient_name="sian"))) == ["2.25.1001"]
        assert uids(index.search(InstanceQuery(patient_name="O'BRIEN"))) == ["2.25.1001"]
        assert uids(index.search(InstanceQuery(patient_name="zoe"))) == ["2.25.1002"]
        assert uids(index.search(InstanceQuery(patient_name="llŷr"))) == ["2.25.1002"]
        assert uids(index.search(InstanceQuery(patient_name="100%"))) == []

    def test_facets_count_the_whole_match(self, index):
        index.upsert_many([
            make_doc(1),
            make_doc(2),
            make_doc(3, _specialty="emergency", _trust="RBN", capture=dt.date(2023, 5, 1)),
        ])  # fmt: skip
        page = index.search(InstanceQuery(limit=1))
        assert page.facets["specialty"] == {"dermatology": 2, "emergency": 1}
        assert page.facets["trust"] == {"REM": 2, "RBN": 1}
        assert page.facets["year"] == {"2024": 2, "2023": 1}
        assert page.facets["body_site"] == {"14975008": 3}
        narrowed = index.search(InstanceQuery(specialty="emergency"))
        assert narrowed.facets["specialty"] == {"emergency": 1}

    def test_trust_scope(self, index):
        index.upsert_many([make_doc(1), make_doc(2, _trust="RBN")])
        assert uids(index.search(InstanceQuery(trusts_visible=("RBN",)))) == ["2.25.1002"]
        assert index.search(InstanceQuery(trusts_visible=())).total == 0

    def test_lookup_by_uid_lists(self, index):
        index.upsert_many(make_doc(n) for n in range(5))
        page = index.search(InstanceQuery(sop_instance_uids=("2.25.1001", "2.25.1003")))
        assert sorted(uids(page)) == ["2.25.1001", "2.25.1003"]
        assert uids(index.search(InstanceQuery(study_instance_uid="2.25.900000"))) != []

    def test_rebuild_replaces_everything(self, index):
        index.upsert_many(make_doc(n) for n in range(5))
        assert index.rebuild(make_doc(n) for n in range(10, 13)) == 3
        assert sorted(index.iter_uids()) == ["2.25.1010", "2.25.1011", "2.25.1012"]
        assert index.count() == 3

    def test_paging_past_ten_thousand(self, index):
        index.upsert_many(make_doc(n, capture=dt.date(2020, 1, 1) + dt.timedelta(days=n % 2000)) for n in range(10_050))
        page = index.search(InstanceQuery(limit=20, offset=10_030, facets=()))
        assert page.total == 10_050
        assert len(page.items) == 20

    def test_ping(self, index):
        index.ping()


class FoldingContract:
    """Names typed without their special letters still find the patient, on every backend."""

    @pytest.fixture
    def index(self):  # pragma: no cover - supplied by subclasses
        raise NotImplementedError

    @pytest.mark.parametrize(
        "name, typed",
        [("Ørjan^Test", "orjan"), ("O’Brien^Pat", "o'brien"), ("Smith–Jones^B", "smith-j"), ("Łukasz^Ę", "lukasz")],
    )
    def test_special_letters_fold(self, index, name, typed):
        index.upsert(make_doc(1, PatientName=name))
        assert uids(index.search(InstanceQuery(patient_name=typed))) == ["2.25.1001"]
