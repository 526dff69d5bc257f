"""The search-index contract: the SQLite and Elasticsearch adapters must answer identically."""

from __future__ import annotations

import datetime as dt

import pytest

from repository.errors import NotFound
from search.document import ALL_FIELDS, fold
from search.attributes import AttributeQuery, Match
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


class AttributeSearchContract:
    """QIDO-RS and C-FIND matching (search/attributes.py): instances, and studies and series."""

    @pytest.fixture
    def index(self):  # pragma: no cover - supplied by subclasses
        raise NotImplementedError

    @pytest.fixture
    def studies(self, index):
        """Two studies of patient A (XC+DMS in the first), one of patient B at another trust."""
        docs = [
            make_doc(1, StudyInstanceUID="2.25.71", SeriesInstanceUID="2.25.711", InstanceNumber=2,
                     StudyDescription="Dermatology - Forearm", StudyDate="20240301", StudyTime="101500",
                     AccessionNumber="ACC1", PatientName="O'Brien-Jones^Siân"),
            make_doc(2, StudyInstanceUID="2.25.71", SeriesInstanceUID="2.25.711", InstanceNumber=1,
                     StudyDescription="Dermatology - Forearm", StudyDate="20240301", StudyTime="101500",
                     AccessionNumber="ACC1", PatientName="O'Brien-Jones^Siân"),
            make_doc(3, StudyInstanceUID="2.25.71", SeriesInstanceUID="2.25.712", Modality="DMS",
                     StudyDescription="Dermatology - Forearm", StudyDate="20240301", StudyTime="101500",
                     AccessionNumber="ACC1", PatientName="O'Brien-Jones^Siân"),
            make_doc(4, StudyInstanceUID="2.25.72", SeriesInstanceUID="2.25.721", StudyDescription="Burns [left] Zoë",
                     StudyDate="20240415", StudyTime="115959", AccessionNumber="ACC2", PatientName="Baker^Alice^^"),
            make_doc(5, StudyInstanceUID="2.25.73", SeriesInstanceUID="2.25.731", PatientID=PATIENT_B, _trust="RBN",
                     StudyDescription="", StudyDate="", StudyTime="", AccessionNumber="", PatientName="Llŷr^Zoë"),
        ]  # fmt: skip
        index.upsert_many(docs)
        return docs

    @staticmethod
    def _studies(index, *matches: Match, **kwargs) -> list[str]:  # type: ignore[no-untyped-def]
        return [r.uid for r in index.search_studies(AttributeQuery(matches=tuple(matches), **kwargs)).rows]

    def test_single_value_list_and_integer_matching(self, index, studies):
        assert self._studies(index, Match("PatientID", "equals", (PATIENT_A,))) == ["2.25.71", "2.25.72"]
        assert self._studies(index, Match("StudyInstanceUID", "any_of", ("2.25.73", "2.25.72", "2.25.9"))) == ["2.25.72", "2.25.73"]
        page = index.search_instances(AttributeQuery(matches=(Match("InstanceNumber", "equals", (2,)),)))
        assert uids(page) == ["2.25.1001"]

    def test_wildcards_are_case_sensitive_and_skip_empty_values(self, index, studies):
        assert self._studies(index, Match("StudyDescription", "wildcard", ("Derm*",))) == ["2.25.71"]
        assert self._studies(index, Match("StudyDescription", "wildcard", ("derm*",))) == []
        assert self._studies(index, Match("StudyDescription", "wildcard", ("*",))) == ["2.25.71", "2.25.72"]
        assert self._studies(index, Match("StudyDescription", "wildcard", ("Burns [left] Zo?",))) == ["2.25.72"]
        assert self._studies(index, Match("AccessionNumber", "wildcard", ("ACC?",))) == ["2.25.71", "2.25.72"]

    def test_ranges_are_inclusive_open_ended_and_partial(self, index, studies):
        assert self._studies(index, Match("StudyDate", "range", ("20240301", "20240301"))) == ["2.25.71"]
        assert self._studies(index, Match("StudyDate", "range", ("20240302", ""))) == ["2.25.72"]
        assert self._studies(index, Match("StudyDate", "range", ("", "20241231"))) == ["2.25.71", "2.25.72"]
        assert self._studies(index, Match("StudyTime", "range", ("11", "11"))) == ["2.25.72"]
        assert self._studies(index, Match("StudyTime", "range", ("1000", "1015"))) == ["2.25.71"]

    @pytest.mark.parametrize(
        "value, expected",
        [
            ("101500", ["2.25.62", "2.25.63"]),
            ("101500.0", ["2.25.62"]),
            ("101500.000000-101500.000000", ["2.25.62"]),
            ("1015", ["2.25.62", "2.25.63", "2.25.64", "2.25.66"]),
            ("101500-1015", ["2.25.62", "2.25.63", "2.25.64", "2.25.66"]),
            ("10", ["2.25.61", "2.25.62", "2.25.63", "2.25.64", "2.25.65", "2.25.66"]),
            ("101500.5-101530", ["2.25.63", "2.25.64"]),
            ("101530.000001-", ["2.25.65", "2.25.66"]),
            ("-1000", ["2.25.61"]),
            ("-095959.999999", []),
        ],
    )
    def test_times_match_by_value_whatever_their_precision(self, index, value, expected):
        """PS3.4 C.2.2.2.5: TM is a time, not a string; a value stands for the span it states
        (1015 is 10:15:00 to 10:15:59.999999), and stored values of any precision compare by
        time. The bounds come from search.qido, as QIDO-RS and C-FIND send them."""
        from search import qido

        stored = {"2.25.61": "10", "2.25.62": "1015", "2.25.63": "101500.5", "2.25.64": "101530",
                  "2.25.65": "1016", "2.25.66": "101559.999999"}  # fmt: skip
        index.upsert_many(make_doc(n, StudyInstanceUID=uid, StudyTime=time) for n, (uid, time) in enumerate(stored.items()))
        assert self._studies(index, qido.to_match(qido.ATTRIBUTES["StudyTime"], value)) == expected

    def test_person_names_ignore_case_accents_and_trailing_components(self, index, studies):
        def names(pattern: str, fuzzy: bool = False) -> list[str]:
            return self._studies(index, Match("_patient_name_folded", "name", (pattern,), fuzzy=fuzzy))

        assert names("o'brien-jones sian") == ["2.25.71"]
        assert names("o'brien*") == ["2.25.71"]
        assert names("baker alice") == ["2.25.72"]
        assert names("baker") == ["2.25.72"]  # further components may follow
        assert names("sian") == []
        assert names("sian", fuzzy=True) == ["2.25.71"]
        assert names("zo?", fuzzy=True) == ["2.25.73"]
        assert names("b*", fuzzy=True) == ["2.25.72"]  # words start at spaces only

    def test_study_rows_count_every_instance_of_a_matching_study(self, index, studies):
        page = index.search_studies(AttributeQuery(matches=(Match("Modality", "any_of", ("DMS",)),)))
        (row,) = page.rows
        assert (row.uid, row.instances, row.series, row.modalities) == ("2.25.71", 3, 2, ("DMS", "XC"))
        assert row.document["SOPInstanceUID"] == "2.25.1001"  # the smallest SOP Instance UID
        assert row.document["AccessionNumber"] == "ACC1"
        assert page.has_more is False

    def test_series_rows(self, index, studies):
        page = index.search_series(AttributeQuery(matches=(Match("StudyInstanceUID", "equals", ("2.25.71",)),)))
        assert [(r.uid, r.instances, r.modalities) for r in page.rows] == [("2.25.711", 2, ("XC",)), ("2.25.712", 1, ("DMS",))]

    def test_paging_is_stable_and_says_when_there_is_more(self, index, studies):
        first = index.search_studies(AttributeQuery(limit=2))
        assert [r.uid for r in first.rows] == ["2.25.71", "2.25.72"] and first.has_more
        last = index.search_studies(AttributeQuery(limit=2, offset=2))
        assert [r.uid for r in last.rows] == ["2.25.73"] and not last.has_more
        page = index.search_instances(AttributeQuery(limit=2, offset=1))
        assert uids(page) == ["2.25.1001", "2.25.1003"] and page.has_more  # study, series, number, UID

    def test_trust_scope_applies_to_matching_and_counting(self, index, studies):
        assert self._studies(index, trusts_visible=("RBN",)) == ["2.25.73"]
        assert self._studies(index, trusts_visible=()) == []
        index.upsert(make_doc(6, StudyInstanceUID="2.25.71", SeriesInstanceUID="2.25.713", _trust="RBN"))
        (row,) = index.search_studies(AttributeQuery(matches=(Match("StudyInstanceUID", "equals", ("2.25.71",)),), trusts_visible=("REM",))).rows
        assert row.instances == 3

    def test_many_studies_page_past_one_aggregation_page(self, index):
        index.upsert_many(make_doc(n, StudyInstanceUID=f"2.25.5{n:05d}") for n in range(1200))
        page = index.search_studies(AttributeQuery(limit=100, offset=1050))
        assert [r.uid for r in page.rows] == [f"2.25.5{n:05d}" for n in range(1050, 1150)]
        assert page.has_more


class SearchIndexContract(AttributeSearchContract):
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
