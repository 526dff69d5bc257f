"""The clinician's way through: find the patient, read the timeline, open the viewer, zoom, step
through the images, compare two of the same site, and download the DICOM."""

from __future__ import annotations

import pydicom
import pytest
from playwright.sync_api import expect

from tests.browser.helpers import new_patient, screenshot, seed_images

pytestmark = pytest.mark.browser

CHEEK, NOSE = "60819002", "45206002"


@pytest.fixture
def patient(live_server, tmp_path):  # type: ignore[no-untyped-def]
    """A patient photographed over two years, in two trusts and two specialties."""
    nhs = new_patient()
    uids = seed_images(live_server, nhs, [
        {"taken": "2024:03:01 10:00:00", "body_site": CHEEK, "source": "astronaut"},
        {"taken": "2024:09:12 11:30:00", "body_site": CHEEK, "source": "coffee", "trust": "RBN"},
        {"taken": "2025:02:20 09:15:00", "body_site": NOSE, "specialty": "burns-plastics", "laterality": "U",
         "source": "rocket"},
        {"taken": "2025:02:20 09:16:00", "body_site": CHEEK, "source": "chelsea", "size": (360, 480)},
    ], tmp_path)  # fmt: skip
    return nhs, uids


def test_find_by_nhs_number_and_by_name_and_birth_date(page, patient):  # type: ignore[no-untyped-def]
    nhs, _ = patient
    page.goto("/search")
    screenshot(page, "search")
    page.fill("#nhs_number", f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}")
    page.click("text=Search by NHS number")
    page.wait_for_url(f"**/patients/{nhs}")
    assert page.inner_text("h1") == "NÍ BHRIAIN, Zoë"

    page.goto("/search")
    page.fill("#family_name", "ni bhriain")  # accents and case do not matter
    page.fill("#birth_date-day", "23")
    page.fill("#birth_date-month", "07")
    page.fill("#birth_date-year", "1961")
    page.click("text=Search by name and date of birth")
    page.wait_for_selector("#results-heading")
    results = page.locator(".ologies-patients__item")
    assert results.count() >= 1
    mine = results.filter(has_text=f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}")
    assert "4" in mine.inner_text()
    screenshot(page, "search-results")
    mine.locator("a").click()
    page.wait_for_url(f"**/patients/{nhs}")

    page.goto("/search?by=name&family_name=&birth_date%5Bday%5D=&birth_date%5Bmonth%5D=&birth_date%5Byear%5D=")
    assert page.locator(".nhsuk-error-summary a").all_inner_texts() == [
        "Enter the patient's last name", "Enter the patient's date of birth"]


def test_patient_timeline_with_facets_and_provenance(page, patient):  # type: ignore[no-untyped-def]
    nhs, _ = patient
    page.goto(f"/patients/{nhs}")
    assert page.inner_text("#timeline-heading").startswith("4 photographs")
    days = page.locator(".ologies-timeline__date").all_inner_texts()
    assert days == ["20 February 2025", "12 September 2024", "1 March 2024"]
    thumbs = page.locator(".ologies-card__thumb")
    assert thumbs.count() == 4
    for i in range(4):
        attrs = thumbs.nth(i).evaluate("img => [img.loading, img.getAttribute('width'), img.getAttribute('height')]")
        assert attrs[0] == "lazy" and int(attrs[1]) > 0 and int(attrs[2]) > 0
    card = page.locator(".ologies-card").filter(has_text="Mersey and West Lancashire")
    assert "Siân Hughes" in card.inner_text() and "Apple iPhone 15 Pro" in card.inner_text()
    screenshot(page, "patient")

    heading, cards = page.locator("#timeline-heading"), page.locator(".ologies-card")
    page.click(".ologies-facets a:has-text('Nose')")
    expect(heading).to_have_text("1 photograph (filtered)")
    page.click(".ologies-facets a:has-text('Nose')")  # chosen again: the filter is removed
    expect(heading).to_have_text("4 photographs")
    page.click(".ologies-facets a:has-text('2024')")
    expect(cards).to_have_count(2)
    page.click(".ologies-facets a:has-text('Mersey and West Lancashire')")
    expect(cards).to_have_count(1)
    page.click("text=Clear all filters")
    expect(cards).to_have_count(4)


def test_viewer_zooms_and_steps_through_the_patients_images(page, patient):  # type: ignore[no-untyped-def]
    nhs, uids = patient
    page.goto(f"/patients/{nhs}")
    page.click(f"a[href='/images/{uids[1]}']")
    page.wait_for_url(f"**/images/{uids[1]}")
    page.wait_for_load_state()
    image = page.locator(".ologies-viewer__image")
    page.wait_for_function("() => document.querySelector('.ologies-viewer__image').complete")
    assert image.evaluate("img => img.naturalWidth") == 480
    details = page.inner_text(".nhsuk-summary-list")
    assert "12 September 2024, 11:30:00 (UTC+01:00)" in details  # British Summer Time, shown with its offset
    assert "Cheek (left)" in details and "For clinical care only" in details

    stage = page.locator("[data-viewer-stage]")
    page.click("button[data-zoom='in']")
    assert float(stage.get_attribute("data-scale")) == pytest.approx(1.5)
    stage.focus()
    page.keyboard.press("+")
    assert float(stage.get_attribute("data-scale")) == pytest.approx(2.25)
    page.keyboard.press("ArrowRight")
    assert "translate(-" in image.evaluate("img => img.style.transform")
    box = stage.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, 400)  # wheel down: zoom out
    assert float(stage.get_attribute("data-scale")) < 2.25
    page.keyboard.press("0")
    assert float(stage.get_attribute("data-scale")) == 1
    page.click("button[data-zoom='in']")
    screenshot(page, "viewer")

    page.click("a[rel='prev']")  # older
    page.wait_for_url(f"**/images/{uids[0]}")
    expect(page.locator("a[rel='prev']")).to_have_count(0)
    page.focus("[data-viewer-stage]")
    page.keyboard.press("n")  # newer, from the keyboard
    page.wait_for_url(f"**/images/{uids[1]}")
    page.click("a[rel='next']")
    page.wait_for_url(f"**/images/{uids[2]}")  # the nose, at 09:15
    page.click("a[rel='next']")
    page.wait_for_url(f"**/images/{uids[3]}")  # the cheek, a minute later: the newest
    expect(page.locator("a[rel='next']")).to_have_count(0)


def test_compare_two_images_of_the_same_site(page, patient, live_server, tmp_path):  # type: ignore[no-untyped-def]
    nhs, uids = patient
    page.goto(f"/images/{uids[3]}")
    page.click("#compare-link")
    expect(page.locator("input[name='right']")).to_have_count(2)  # the other two cheeks, not the nose
    screenshot(page, "compare-choose")
    page.check(f"input[value='{uids[0]}']")
    page.click("text=Compare side by side")
    page.wait_for_url("**/compare?**")
    headings = page.locator(".ologies-compare h2").all_inner_texts()
    assert headings[0].startswith("Earlier: 1 March 2024") and headings[1].startswith("Later: 20 February 2025")
    page.wait_for_function("() => [...document.querySelectorAll('.ologies-viewer__image')].every(i => i.complete)")
    stages = page.locator("[data-viewer-stage]")
    page.locator("button[data-zoom='in']").first.click()
    assert [s.get_attribute("data-scale") for s in stages.all()] == ["1.500", "1.500"], "zoom is synchronised"
    page.uncheck("#sync-zoom")
    page.locator("button[data-zoom='in']").nth(1).click()
    assert [s.get_attribute("data-scale") for s in stages.all()] == ["1.500", "2.250"]
    screenshot(page, "compare")

    # Two patients are never put side by side: that invites a wrong-patient comparison.
    [stranger] = seed_images(live_server, new_patient(), [{"taken": "2025:01:01 10:00:00", "source": "rocket"}], tmp_path)
    response = page.goto(f"/compare?left={uids[0]}&right={stranger}")
    assert response.status == 422
    assert "different patients" in page.inner_text("main")


def test_download_dicom_and_check_it(page, patient, tmp_path):  # type: ignore[no-untyped-def]
    nhs, uids = patient
    page.goto(f"/images/{uids[2]}")
    with page.expect_download() as info:
        page.click("#download-dicom")
    path = tmp_path / "download.dcm"
    info.value.save_as(path)
    assert info.value.suggested_filename == f"{uids[2]}.dcm"
    ds = pydicom.dcmread(path)
    assert ds.PatientID == nhs
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.77.1.4"  # VL Photographic Image Storage
    assert ds.SOPInstanceUID == uids[2]
    assert ds.AnatomicRegionSequence[0].CodeValue == NOSE
    with page.expect_download() as jpeg:
        page.click("#download-jpeg")
    assert jpeg.value.suggested_filename.endswith(".jpg")
