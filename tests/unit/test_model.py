"""Validation of the upload context: one test per rule, each naming the field at fault."""

from __future__ import annotations

import datetime as dt

import pytest

from repository.catalogue import Catalogue
from repository.errors import InvalidInput
from repository.model import ConsentValues, IngestContext, LateralityValues
from repository.patients import normalise_nhs_number, normalise_patient_id
from tests.conftest import NHS_A, patient_fields

CATALOGUE = Catalogue.load()


def parse(**overrides: str) -> IngestContext:
    return IngestContext.parse(
        patient_fields(**overrides), catalogue=CATALOGUE, allow_test_numbers=True, today=dt.date(2026, 11, 28)
    )


def test_valid_context_round_trips_names_exactly():
    ctx = parse(family_name="O'Brien-Jones", given_name="Zoë")
    assert ctx.patient.patient_id == NHS_A
    assert ctx.patient.family_name == "O'Brien-Jones"
    assert ctx.patient.given_name == "Zoë"
    assert ctx.laterality is LateralityValues.L
    assert ctx.consent is ConsentValues.CLINICAL_CARE
    assert ctx.body_site.meaning == "Forearm"
    assert ctx.trust.ods == "REM"
    assert ctx.consent_recorded_by == "Llŷr Evans"  # defaults to the photographer


@pytest.mark.parametrize(
    "field, value",
    [
        ("nhs_number", "9990000019"),  # wrong check digit
        ("nhs_number", "1111111111"),  # one repeated digit
        ("nhs_number", "12345"),
        ("nhs_number", ""),
        ("family_name", ""),
        ("birth_date", "2031-01-01"),  # future
        ("birth_date", "2024-02-30"),  # impossible
        ("birth_date", "02/03/1984"),
        ("sex", "X"),
        ("trust", "ZZZ"),
        ("specialty", "cardiology"),
        ("body_site", "123"),
        ("laterality", "left"),
        ("consent", "maybe"),
        ("consent", ""),
        ("photographer", ""),
        ("study_uid", "1.2.abc"),
        ("modality", "CT"),
        ("description", "a\x00b"),
        ("family_name", "Smith^John"[:0] + "x" * 65),
    ],
)
def test_each_invalid_field_is_named(field, value):
    with pytest.raises(InvalidInput) as caught:
        parse(**{field: value})
    assert caught.value.field == field


@pytest.mark.parametrize("field", ["family_name", "given_name"])
@pytest.mark.parametrize("value", ["Jones^Smith", "Jones=Smith", "Jones\\Smith", "Jones\tSmith", "Jones\nSmith", "Jones\x7f"])
def test_a_name_with_a_person_name_delimiter_or_a_tab_is_refused_naming_the_field(field, value):
    # Before any file is converted: the DICOM builder would otherwise refuse each file in turn.
    with pytest.raises(InvalidInput) as caught:
        parse(**{field: value})
    assert caught.value.field == field
    assert caught.value.message == f"{field} must not contain ^, =, \\, a tab or a line break"


@pytest.mark.parametrize("family, given", [("O'Brien-Jones", "Siân"), ("Llŷr", "Zoë"), ("Ní Bhriain", "Mary Ann"), ("x" * 63, "")])
def test_names_with_apostrophes_hyphens_spaces_and_accents_are_kept(family, given):
    ctx = parse(family_name=family, given_name=given)
    assert (ctx.patient.family_name, ctx.patient.given_name) == (family, given)


def test_family_and_given_name_must_fit_one_person_name_together():
    with pytest.raises(InvalidInput) as caught:
        parse(family_name="x" * 40, given_name="y" * 24)  # Family^Given: 65 characters
    assert caught.value.field == "given_name"
    with pytest.raises(InvalidInput) as caught:
        parse(family_name="x" * 64, given_name="")
    assert caught.value.field == "family_name"
    parse(family_name="x" * 40, given_name="y" * 23)


def test_nhs_number_rules():
    assert normalise_nhs_number("999 000 0018", allow_test_numbers=True) == "9990000018"
    assert normalise_nhs_number("943-476-5919", allow_test_numbers=False) == "9434765919"
    with pytest.raises(InvalidInput, match="test range"):
        normalise_nhs_number("9990000018", allow_test_numbers=False)
    with pytest.raises(InvalidInput, match="Modulus 11"):
        normalise_nhs_number("9434765918", allow_test_numbers=True)


def test_check_digit_ten_is_invalid():
    # 999000002: weights give 11 - (sum % 11) == 10 -> no valid check digit exists
    digits = next(
        f"999{i:06d}" for i in range(1000)
        if 11 - sum(int(d) * (10 - k) for k, d in enumerate(f"999{i:06d}")) % 11 == 10
    )  # fmt: skip
    for last in "0123456789":
        with pytest.raises(InvalidInput):
            normalise_nhs_number(digits + last, allow_test_numbers=True)


def test_temporary_identifier_for_unidentified_patient():
    ctx = parse(nhs_number="TMP-REM-ED12345", family_name="", birth_date="")
    assert ctx.patient.is_temporary and ctx.patient.patient_id == "TMP-REM-ED12345"
    assert ctx.patient.birth_date is None
    with pytest.raises(InvalidInput):
        normalise_patient_id("TMP-../x", allow_test_numbers=True)
    with pytest.raises(InvalidInput, match="TMP-REM-") as caught:  # another trust's identifier
        parse(nhs_number="TMP-RBN-ED12345", family_name="", birth_date="", trust="REM")
    assert caught.value.field == "nhs_number"


def test_predecessor_ods_code_maps_to_current_trust():
    assert parse(trust="RVY").trust.ods == "RBN"  # Southport & Ormskirk -> MWL


def test_body_site_search_as_you_type():
    assert [s.meaning for s in CATALOGUE.search_body_sites("fore")][:2] == ["Forearm", "Forehead"]
    assert CATALOGUE.search_body_sites("HAND")[0].code == "85562004"
