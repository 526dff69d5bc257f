"""The index document's capture date is a real calendar date or nothing: Elasticsearch sorts on
its date sub-field, SQLite on the string, and the two orders agree only for real dates."""

from __future__ import annotations

import pytest
from pydicom import Dataset

from repository.store import StoredObject
from search.document import document_from_dataset

STORED = StoredObject("studies/1/series/2/instances/3.dcm", 100, None, "application/dicom")


def capture_of(**dates: str) -> tuple[object, object]:
    ds = Dataset()
    ds.SOPInstanceUID = "2.25.3"
    for keyword, value in dates.items():
        setattr(ds, keyword, value)
    doc = document_from_dataset(ds, STORED)
    return doc["_capture_date"], doc["_year"]


@pytest.mark.parametrize(("dates", "expected"), [
    ({"ContentDate": "20240229", "StudyDate": "20230101"}, ("2024-02-29", 2024)),  # a leap day is real
    ({"ContentDate": "20240230", "StudyDate": "20230105"}, ("2023-01-05", 2023)),  # not a date: the next one
    ({"ContentDate": "20241301", "AcquisitionDateTime": "20240102101500"}, ("2024-01-02", 2024)),
    ({"ContentDate": "00000000"}, ("", None)),
    ({"StudyDate": "2024"}, ("", None)),
    ({}, ("", None)),
])  # fmt: skip
@pytest.mark.filterwarnings("ignore:Invalid value for VR DA")  # the impossible dates are the point
def test_capture_date_is_the_first_real_date(dates, expected):
    assert capture_of(**dates) == expected
