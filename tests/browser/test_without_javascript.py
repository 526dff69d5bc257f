"""The pages with JavaScript switched off: the upload form still finds the patient and stores
the photographs through the page route, and errors come back in the NHS pattern."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import _loopback_only, sign_in
from tests.browser.helpers import heic_photo, new_patient, phone_jpeg, screenshot, seed_images, wrong_check_digit

pytestmark = pytest.mark.browser


@pytest.fixture
def plain(browser, live_server):  # type: ignore[no-untyped-def]
    context = browser.new_context(java_script_enabled=False, base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.route("**/*", _loopback_only)
    sign_in(context, live_server)
    page = context.new_page()
    yield page
    context.close()


def test_upload_without_javascript(plain, live_server, tmp_path):  # type: ignore[no-untyped-def]
    nhs = new_patient()
    seed_images(live_server, nhs, [{"taken": "2024:04:04 12:00:00"}], tmp_path)
    plain.goto("/upload")
    plain.fill("#nhs_number", nhs)
    plain.fill("#description", "Graft site, day 5")
    plain.click("text=Find patient")  # posted: the page again, with the patient's images
    expect(plain.locator("#history img")).to_have_count(1)
    assert nhs not in plain.url and "Graft" not in plain.url  # never in the address or history
    assert plain.input_value("#description") == "Graft site, day 5"  # what was typed is kept
    assert plain.input_value("#family_name") == "Ní Bhriain"
    assert plain.input_value("#birth_date-year") == "1961"

    plain.select_option("#trust", "RBN")
    plain.select_option("#specialty", "burns-plastics")
    plain.select_option("#body_site", "45206002")  # the plain select: no search without JS
    plain.check("#laterality-4")  # not applicable
    plain.check("#consent-2")  # teaching
    plain.fill("#photographer", "Llŷr Evans")
    expect(plain.locator("#camera")).to_be_visible()  # the phone camera input
    files = [phone_jpeg(tmp_path / "nojs-1.jpg", seed=31), heic_photo(tmp_path / "nojs-2.heic", size=(320, 240))]
    plain.set_input_files("#file", [str(f) for f in files])
    plain.click("text=Upload photographs >> nth=-1")
    expect(plain.locator("h1")).to_have_text("Photographs stored")
    assert plain.locator(".nhsuk-table__body tr").count() == 2
    assert plain.locator(".nhsuk-table__body").inner_text().count("Stored") == 2
    screenshot(plain, "upload-no-js-done")
    plain.click("text=See this patient's photographs")
    expect(plain.locator(".ologies-card")).to_have_count(3)


def test_errors_without_javascript(plain, live_server, tmp_path):  # type: ignore[no-untyped-def]
    plain.goto("/upload")
    plain.fill("#nhs_number", wrong_check_digit(new_patient()))
    plain.fill("#birth_date-day", "31")
    plain.fill("#birth_date-month", "2")
    plain.fill("#birth_date-year", "1990")
    plain.click("text=Upload photographs >> nth=-1")
    summary = plain.locator(".nhsuk-error-summary")
    expect(summary).to_be_visible()
    assert summary.locator("a").all_inner_texts() == ["Date of birth must be a real date", "Choose at least one photograph"]
    assert plain.get_attribute(".nhsuk-error-summary a", "href") == "#birth_date-day"
    assert plain.title().startswith("Error: ")
    screenshot(plain, "upload-no-js-errors")

    # The date fixed, the domain's own check finds the wrong check digit (the first error it meets).
    plain.fill("#birth_date-day", "28")
    plain.set_input_files("#file", [str(phone_jpeg(tmp_path / "x.jpg", seed=41))])
    plain.click("text=Upload photographs >> nth=-1")
    expect(summary.locator("a")).to_have_text(["NHS number fails the Modulus 11 check digit"])
    assert plain.get_attribute(".nhsuk-error-summary a", "href") == "#nhs_number"
    expect(plain.locator("#nhs_number-error")).to_be_visible()


def test_other_details_for_a_known_nhs_number_without_javascript_offer_the_box_to_confirm(plain, live_server, tmp_path):  # type: ignore[no-untyped-def]
    nhs = new_patient()
    seed_images(live_server, nhs, [{"taken": "2024:05:05 12:00:00"}], tmp_path)  # Ní Bhriain, at REM
    plain.goto(f"/upload?nhs_number={nhs}")
    confirm = plain.locator("input[name='confirm_identity']")
    expect(confirm).to_have_count(0)  # not before a mismatch
    plain.fill("#family_name", "Williams")
    plain.select_option("#trust", "REM")
    plain.select_option("#specialty", "dermatology")
    plain.select_option("#body_site", "60819002")
    plain.check("#consent")
    plain.fill("#photographer", "Siân Hughes")
    photo = phone_jpeg(tmp_path / "nojs-changed.jpg", seed=43)
    plain.set_input_files("#file", [str(photo)])
    plain.click("text=Upload photographs >> nth=-1")
    expect(plain.locator(".nhsuk-error-summary a")).to_contain_text("a different last name")
    expect(plain.locator("#nhs_number-error")).to_contain_text("tick the box")
    expect(confirm).to_be_visible()
    expect(confirm).not_to_be_checked()
    assert plain.input_value("#family_name") == "Williams" and plain.input_value("#nhs_number") == nhs
    assert plain.input_value("#photographer") == "Siân Hughes"
    screenshot(plain, "upload-no-js-identity-mismatch")

    confirm.check()
    plain.set_input_files("#file", [str(photo)])  # chosen again: nothing was stored
    plain.click("text=Upload photographs >> nth=-1")
    expect(plain.locator("h1")).to_have_text("Photographs stored")


def test_sign_in_page_signs_in_and_returns_to_the_page_asked_for(browser, live_server):  # type: ignore[no-untyped-def]
    from tests.browser.conftest import BROWSER_PASSWORD, BROWSER_USER

    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.route("**/*", _loopback_only)
    page = context.new_page()
    page.goto("/search")
    assert "/sign-in?next=" in page.url  # every page needs a signed-in user
    page.fill("#username", BROWSER_USER)
    page.fill("#password", "not the password at all")
    page.click("button:has-text('Sign in')")
    expect(page.locator(".nhsuk-error-summary")).to_contain_text("Enter a correct username and password")
    page.fill("#username", BROWSER_USER)
    page.fill("#password", BROWSER_PASSWORD)
    page.click("button:has-text('Sign in')")
    expect(page.locator("h1")).to_contain_text("Find a patient")
    assert page.url.endswith("/search")
    cookie = next(c for c in context.cookies() if c["name"] == "ologies_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    screenshot(page, "signed-in-search")
    page.click("button:has-text('Sign out')")
    assert "/sign-in" in page.url
    context.close()


def test_the_upload_page_says_how_each_path_stores_photographs(plain, page):  # type: ignore[no-untyped-def]
    # Without JavaScript the batch is stored all or nothing; with it, each photograph on its own.
    plain.goto("/upload")
    expect(plain.locator("p", has_text="They are stored together: if one is refused, none of them is stored")).to_be_visible()
    expect(plain.locator("p", has_text="Each photograph is stored on its own")).to_be_hidden()
    page.goto("/upload")
    expect(page.locator("p", has_text="Each photograph is stored on its own")).to_be_visible()
    expect(page.locator("p", has_text="They are stored together")).to_be_hidden()
