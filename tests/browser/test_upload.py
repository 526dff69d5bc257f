"""The upload page as a photographer uses it: a batch with a rotated phone photograph and an
HEIC, the patient found by NHS number, and every kind of bad input."""

from __future__ import annotations

import base64
import datetime as dt

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import MAX_FILE_BYTES
from tests.browser.helpers import (
    assert_accessible, heic_photo, new_patient, pdf_named_jpg, phone_jpeg, screenshot, seed_images, wrong_check_digit,
)  # fmt: skip

pytestmark = pytest.mark.browser


def fill_patient(page, nhs: str, *, born: tuple[str, str, str] = ("23", "7", "1961")) -> None:  # type: ignore[no-untyped-def]
    page.fill("#nhs_number", nhs)
    page.fill("#family_name", "Ní Bhriain")
    page.fill("#given_name", "Zoë")
    page.fill("#birth_date-day", born[0])
    page.fill("#birth_date-month", born[1])
    page.fill("#birth_date-year", born[2])
    page.check("#sex")  # Female


def fill_photographs(page) -> None:  # type: ignore[no-untyped-def]
    page.select_option("#trust", "REM")
    page.select_option("#specialty", "dermatology")
    page.fill("#body_site", "chee")  # search as you type
    page.wait_for_selector("#body_site-listbox li")
    page.press("#body_site", "ArrowDown")
    page.press("#body_site", "Enter")
    assert page.input_value("#body_site") == "Cheek"
    assert page.eval_on_selector("#body_site-select", "s => s.value") == "60819002"
    page.check("#laterality")  # Left
    page.check("#consent")  # clinical care only
    page.fill("#photographer", "Siân Hughes")


def drop_file(page, path, media_type: str) -> None:  # type: ignore[no-untyped-def]
    """Drag and drop a file onto the drop zone, as a person would from the desktop."""
    data = base64.b64encode(path.read_bytes()).decode()
    transfer = page.evaluate_handle(
        """([name, b64, type]) => {
             const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
             const transfer = new DataTransfer();
             transfer.items.add(new File([bytes], name, {type}));
             return transfer;
           }""",
        [path.name, data, media_type],
    )
    page.dispatch_event("#file", "drop", {"dataTransfer": transfer})


def results(page) -> list[tuple[str, str, int]]:  # type: ignore[no-untyped-def]
    return page.eval_on_selector_all(
        "#file-list .ologies-file",
        "items => items.map(li => [li.querySelector('.ologies-file__name').firstChild.textContent,"
        " li.querySelector('.ologies-file__result').textContent, li.querySelector('progress').value])",
    )


def wait_until_done(page) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function(
        "() => [...document.querySelectorAll('#file-list .ologies-file')]"
        ".every(li => !['waiting', 'uploading'].includes(li.dataset.state))"
        " && !document.getElementById('upload-summary').hidden"
    )


def patient_images(live_server, nhs: str) -> dict:  # type: ignore[no-untyped-def]
    _, key = live_server.services.accounts.create_key(name="browser test check", role="admin", trust="REM")
    return httpx.get(f"{live_server.url}/api/v1/patients/{nhs}/images", headers={"Authorization": f"Bearer {key}"}).json()


def test_batch_with_rotated_phone_photo_and_heic_is_stored(page, live_server, tmp_path):  # type: ignore[no-untyped-def]
    nhs = new_patient()
    rotated = phone_jpeg(tmp_path / "IMG_0001.jpg", orientation=6, size=(300, 400), source="coffee")
    plain = phone_jpeg(tmp_path / "IMG_0002.jpg", seed=2)
    heic = heic_photo(tmp_path / "IMG_0003.HEIC")
    page.goto("/upload")
    fill_patient(page, nhs)
    page.wait_for_selector("#history:has-text('No photographs are stored')")
    fill_photographs(page)
    page.set_input_files("#file-input", [str(rotated), str(plain)])
    drop_file(page, heic, "image/heic")
    assert len(results(page)) == 3

    # The preview of the rotated photograph is upright, as its EXIF orientation says.
    page.wait_for_function("() => document.querySelector('#file-list img').naturalWidth > 0")
    width, height = page.eval_on_selector("#file-list img", "img => [img.naturalWidth, img.naturalHeight]")
    assert (width, height) == (300, 400)
    assert page.eval_on_selector("#file-list img", "img => getComputedStyle(img).imageOrientation") == "from-image"
    screenshot(page, "upload-chosen")

    # Record every per-file progress value the page shows while uploading.
    page.evaluate("""() => {
        window.progressSeen = {};
        new MutationObserver(() => document.querySelectorAll('#file-list .ologies-file').forEach((li, i) => {
          window.progressSeen[i] = Math.max(window.progressSeen[i] || 0, li.querySelector('progress').value);
        })).observe(document.getElementById('file-list'), {subtree: true, attributes: true, childList: true, characterData: true});
    }""")
    page.click("#upload-button")
    wait_until_done(page)
    rows = results(page)
    assert [r[1] for r in rows] == ["Stored"] * 3, rows
    assert [r[2] for r in rows] == [100] * 3
    assert page.eval_on_selector("#batch-progress", "p => p.value") == 100
    assert page.inner_text("#upload-summary h2") == "Upload finished: 3 stored"
    assert page.evaluate("() => document.activeElement.id") == "upload-summary"
    screenshot(page, "upload-done")

    history = patient_images(live_server, nhs)
    assert history["total"] == 3
    assert len(history["studies"]) == 1, "one batch is one study, although each file was its own request"
    by_type = {i["original_media_type"]: i for i in history["studies"][0]["instances"]}
    assert set(by_type) == {"image/jpeg", "image/heic"}
    rotated_stored = [i for i in history["studies"][0]["instances"] if i["rows"] == 400]
    assert rotated_stored and rotated_stored[0]["columns"] == 300, "the rotated photograph is stored upright"


def test_known_patient_is_found_and_prefilled(page, live_server, tmp_path):  # type: ignore[no-untyped-def]
    nhs = new_patient()
    seed_images(live_server, nhs, [{"taken": "2024:01:10 09:00:00"}, {"taken": "2025:02:11 09:00:00"}], tmp_path)
    page.goto("/upload")
    page.fill("#nhs_number", nhs)
    page.wait_for_selector("#history .ologies-thumbs img")
    assert page.locator("#history .ologies-thumbs img").count() == 2
    assert "has 2 photographs" in page.inner_text("#history")
    assert page.input_value("#family_name") == "Ní Bhriain"
    assert page.input_value("#given_name") == "Zoë"
    assert [page.input_value(f"#birth_date-{p}") for p in ("day", "month", "year")] == ["23", "7", "1961"]
    assert page.is_checked("#sex")
    screenshot(page, "upload-known-patient")

    # The same photograph again (under another name) is "already stored", not a second copy.
    first = phone_jpeg(tmp_path / "wound.jpg", seed=7)
    copy = tmp_path / "wound-copy.jpg"
    copy.write_bytes(first.read_bytes())
    fill_photographs(page)
    page.set_input_files("#file-input", [str(first)])
    page.click("#upload-button")
    wait_until_done(page)
    page.set_input_files("#file-input", [str(copy)])
    page.click("#upload-button")
    wait_until_done(page)
    assert [r[1] for r in results(page)] == ["Stored", "Already stored: this photograph was uploaded before, so it was not stored twice"]
    assert patient_images(live_server, nhs)["total"] == 3


def test_refused_file_shows_its_reason_and_nothing_is_stored(page, live_server, tmp_path):  # type: ignore[no-untyped-def]
    nhs = new_patient()
    fake = pdf_named_jpg(tmp_path / "consent-form.jpg")
    good = phone_jpeg(tmp_path / "wound.jpg", seed=11)
    page.goto("/upload")
    fill_patient(page, nhs)
    fill_photographs(page)
    page.set_input_files("#file-input", [str(fake), str(good)])
    page.click("#upload-button")
    wait_until_done(page)
    (fake_name, fake_result, _), (good_name, good_result, _) = results(page)
    assert fake_name == "consent-form.jpg" and fake_result.startswith("Refused: ")
    assert "consent-form.jpg" in fake_result and len(fake_result) > len("Refused: ") + 20, fake_result
    assert good_result == "Stored"
    assert "1 stored, 1 refused" in page.inner_text("#upload-summary")
    screenshot(page, "upload-refused")
    history = patient_images(live_server, nhs)
    assert history["total"] == 1
    assert history["studies"][0]["instances"][0]["original_media_type"] == "image/jpeg"


def test_too_large_and_interrupted_uploads_say_so_and_retry_works(page, live_server, tmp_path):  # type: ignore[no-untyped-def]
    nhs = new_patient()
    big = tmp_path / "huge.jpg"
    big.write_bytes(b"\xff\xd8\xff" + bytes(MAX_FILE_BYTES + 1024 * 1024))
    photo = phone_jpeg(tmp_path / "bedside.jpg", seed=21)
    page.goto("/upload")
    fill_patient(page, nhs)
    fill_photographs(page)
    page.set_input_files("#file-input", [str(big)])
    assert results(page)[0][1] == (
        "Refused: too large (7.0 MB). The largest photograph accepted is 6 MB. Nothing was stored for this file.")

    # The connection drops mid-upload: the page says nothing was stored and offers a retry.
    page.route("**/api/v1/images", lambda route: route.abort("connectionreset"))
    page.set_input_files("#file-input", [str(photo)])
    page.click("#upload-button")
    wait_until_done(page)
    assert results(page)[1][1] == "Upload interrupted — nothing was stored for this file; retry."
    assert patient_images(live_server, nhs)["total"] == 0
    screenshot(page, "upload-interrupted")
    page.unroute("**/api/v1/images")
    page.click("#file-list .ologies-file:nth-child(2) button:has-text('Retry')")
    wait_until_done(page)
    assert results(page)[1][1] == "Stored"
    assert patient_images(live_server, nhs)["total"] == 1

    # A 413 from the server (a proxy's limit, say) is shown with its reason.
    page.route("**/api/v1/images", lambda route: route.fulfill(status=413, json={"error": {
        "code": "payload_too_large", "message": "request body is larger than the limit of 1048576 bytes", "field": None}}))
    page.set_input_files("#file-input", [str(phone_jpeg(tmp_path / "another.jpg", seed=22))])
    page.click("#upload-button")
    wait_until_done(page)
    assert results(page)[2][1] == "Refused: too large. request body is larger than the limit of 1048576 bytes"


def test_wrong_check_digit_and_future_birth_date_give_the_error_summary(page, live_server):  # type: ignore[no-untyped-def]
    page.goto("/upload")
    page.fill("#nhs_number", wrong_check_digit(new_patient()))
    # Checked as typed: the message is beside the field before anything is submitted.
    page.wait_for_selector("#nhs_number-error")
    assert "Modulus 11" in page.inner_text("#nhs_number-error")
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    page.fill("#birth_date-day", str(tomorrow.day))
    page.fill("#birth_date-month", str(tomorrow.month))
    page.fill("#birth_date-year", str(tomorrow.year))
    page.click("#upload-button")
    summary = page.locator(".nhsuk-error-summary")
    summary.wait_for()
    assert page.evaluate("() => document.activeElement.classList.contains('nhsuk-error-summary')")
    links = summary.locator("a").all_inner_texts()
    assert links[0] == "NHS number fails the Modulus 11 check digit"
    assert "Date of birth must be today or in the past" in links
    assert "Choose at least one photograph" in links
    assert page.title().startswith("Error: ")
    screenshot(page, "upload-errors")
    assert_accessible(page, "upload-errors")
    summary.locator("a", has_text="Modulus 11").click()
    assert page.evaluate("() => document.activeElement.id") == "nhs_number"


def test_an_error_from_the_api_on_a_field_is_shown_in_the_forms_words(page, live_server, tmp_path):  # type: ignore[no-untyped-def]
    page.goto("/upload")
    fill_patient(page, new_patient())
    page.fill("#family_name", "x" * 70)  # the page does not check the length: the API does
    fill_photographs(page)
    page.set_input_files("#file-input", [str(phone_jpeg(tmp_path / "IMG_0001.jpg", seed=61))])
    page.click("#upload-button")
    summary = page.locator(".nhsuk-error-summary")
    summary.wait_for()
    assert summary.locator("a").all_inner_texts() == ["Last name must be 64 characters or fewer"]
    assert summary.locator("a").get_attribute("href") == "#family_name"
    assert page.inner_text("#family_name-error").endswith("Last name must be 64 characters or fewer")


def test_a_second_press_of_upload_during_a_batch_is_ignored(page, live_server, tmp_path):  # type: ignore[no-untyped-def]
    nhs = new_patient()
    page.goto("/upload")
    fill_patient(page, nhs)
    fill_photographs(page)
    photos = [phone_jpeg(tmp_path / f"twice-{n}.jpg", seed=70 + n) for n in range(4)]
    page.set_input_files("#file-input", [str(p) for p in photos])
    # Both presses in one task: the second certainly comes while the first batch is being sent.
    page.evaluate("() => { const button = document.getElementById('upload-button'); button.click(); button.click(); }")
    wait_until_done(page)
    assert [r[1] for r in results(page)] == ["Stored"] * 4
    assert "Upload finished: 4 stored" in page.inner_text("#upload-summary")
    assert page.locator(".nhsuk-error-summary").count() == 0 and page.locator("#file-error").count() == 0
    assert not page.title().startswith("Error: ")
    assert patient_images(live_server, nhs)["total"] == 4


def test_signed_out_or_a_stale_page_keeps_the_photograph_to_send_after_signing_in(page, live_server, tmp_path):  # type: ignore[no-untyped-def]
    from tests.browser.conftest import sign_in

    nhs = new_patient()
    page.goto("/upload")
    fill_patient(page, nhs)
    fill_photographs(page)
    page.set_input_files("#file-input", [str(phone_jpeg(tmp_path / "ward.jpg", seed=81))])

    # The session ends (401): not a refusal of the photograph.
    page.context.clear_cookies()
    page.click("#upload-button")
    wait_until_done(page)
    [(_, result, _)] = results(page)
    assert result.startswith("Not sent: you were signed out") and "Refused" not in result
    expect_summary = page.locator(".nhsuk-error-summary a")
    assert "Sign in again in a new tab" in expect_summary.inner_text()
    # Still signed out: pressing Upload says so, and sends nothing.
    page.click("#upload-button")
    page.wait_for_function("() => document.querySelector('.nhsuk-error-summary a').textContent.startsWith('You are not signed in')")
    assert patient_images(live_server, nhs)["total"] == 0

    # Signed in again in another tab: the page's CSRF token is now the old session's (a 403
    # csrf_failed at first); Upload takes the new one and sends the kept photograph.
    sign_in(page.context, live_server)
    page.click("#upload-button")
    page.wait_for_function("() => document.querySelector('#file-list .ologies-file').dataset.state === 'stored'")
    assert results(page)[0][1] == "Stored"
    assert page.locator(".nhsuk-error-summary").count() == 0
    assert patient_images(live_server, nhs)["total"] == 1

    # A stale page (signed in again elsewhere) before the first press: the same.
    page.set_input_files("#file-input", [str(phone_jpeg(tmp_path / "ward-2.jpg", seed=82))])
    stale = page.get_attribute("meta[name='csrf-token']", "content")
    page.context.clear_cookies()
    sign_in(page.context, live_server)
    page.click("#upload-button")
    page.wait_for_function("() => document.querySelectorAll('#file-list .ologies-file')[1].dataset.state === 'signed-out'")
    page.click("#upload-button")
    page.wait_for_function("() => document.querySelectorAll('#file-list .ologies-file')[1].dataset.state === 'stored'")
    assert page.get_attribute("meta[name='csrf-token']", "content") != stale
    assert patient_images(live_server, nhs)["total"] == 2


def test_a_refused_photograph_chosen_again_replaces_the_refused_one(page, live_server, tmp_path):  # type: ignore[no-untyped-def]
    fake = pdf_named_jpg(tmp_path / "scan.jpg")
    page.goto("/upload")
    fill_patient(page, new_patient())
    fill_photographs(page)
    page.set_input_files("#file-input", [str(fake)])
    page.click("#upload-button")
    wait_until_done(page)
    assert results(page)[0][1].startswith("Refused: ")
    page.set_input_files("#file-input", [str(fake)])
    assert [(name, result) for name, result, _ in results(page)] == [("scan.jpg", "Ready to upload")]


def file_state(page, index: int) -> str:  # type: ignore[no-untyped-def]
    return page.eval_on_selector_all("#file-list .ologies-file", "(items, i) => items[i].dataset.state", index)


def test_other_details_for_a_known_nhs_number_are_held_back_until_the_change_is_confirmed(page, live_server, tmp_path):  # type: ignore[no-untyped-def]
    nhs = new_patient()
    page.goto("/upload")
    fill_patient(page, nhs)
    fill_photographs(page)
    confirm = page.locator("input[name='confirm_identity']")
    assert confirm.count() == 0  # not offered before a mismatch: it would be ticked out of habit
    page.set_input_files("#file-input", [str(phone_jpeg(tmp_path / "before.jpg", seed=91))])
    page.click("#upload-button")
    wait_until_done(page)
    assert results(page)[0][1] == "Stored"

    # The same NHS number with another last name (married since, or the wrong patient's number).
    page.fill("#family_name", "Williams")
    page.set_input_files("#file-input", [str(phone_jpeg(tmp_path / "after.jpg", seed=92))])
    page.click("#upload-button")
    page.wait_for_function("() => document.querySelectorAll('#file-list .ologies-file')[1].dataset.state === 'unconfirmed'")
    message = page.inner_text("#nhs_number-error")
    assert "born 1961-07-23" in message and "a different last name" in message, message
    assert "confirm_identity" not in message and "tick" in message, message
    assert page.locator(".nhsuk-error-summary a").inner_text() == message.removeprefix("Error:").strip()
    result = results(page)[1][1]
    assert result.startswith("Not sent: ") and "Refused" not in result, result
    expect(page.locator("#nhs_number-status")).to_contain_text("The details typed below differ from this patient's record")
    screenshot(page, "upload-identity-mismatch")
    assert_accessible(page, "upload-identity-mismatch")
    assert confirm.count() == 1 and confirm.is_visible() and not confirm.is_checked()
    assert page.locator("label[for='confirm_identity']").inner_text().startswith("I have checked: the patient's details have changed")
    assert patient_images(live_server, nhs)["total"] == 1

    confirm.check()
    page.click("#upload-button")
    page.wait_for_function("() => document.querySelectorAll('#file-list .ologies-file')[1].dataset.state === 'stored'")
    assert results(page)[1][1] == "Stored"
    assert page.locator(".nhsuk-error-summary").count() == 0
    assert confirm.count() == 0  # done with: the next patient starts without it
    history = patient_images(live_server, nhs)
    assert history["total"] == 2
    assert {i["patient"]["name"]["family"] for s in history["studies"] for i in s["instances"]} == {"Ní Bhriain", "Williams"}


def test_find_patient_says_when_the_typed_details_differ_from_the_record(page, live_server, tmp_path):  # type: ignore[no-untyped-def]
    nhs = new_patient()
    seed_images(live_server, nhs, [{"taken": "2025:03:03 09:00:00"}], tmp_path)
    status = page.locator("#nhs_number-status")
    page.goto("/upload")
    page.fill("#family_name", "Williams")
    page.fill("#nhs_number", nhs)
    page.wait_for_selector("#history .ologies-thumbs img")
    expect(status).to_contain_text("Patient found: Zoë Ní Bhriain.")
    text = status.inner_text()
    assert "The details typed below differ from this patient's record: check the NHS number." in text, text
    assert "are filled in below" not in text
    assert page.input_value("#family_name") == "Williams"  # typing is never overwritten
    assert page.input_value("#given_name") == "Zoë"  # an empty box is filled, as before

    # Nothing typed: the details are filled in, and the status says so.
    page.goto("/upload")
    page.fill("#nhs_number", nhs)
    expect(status).to_have_text("Patient found: Zoë Ní Bhriain. Their details are filled in below.")
    assert page.input_value("#family_name") == "Ní Bhriain"

    # The same details typed in other capitals and without accents are no difference.
    page.goto("/upload")
    page.fill("#family_name", "NI BHRIAIN")
    page.fill("#given_name", "zoe")
    page.fill("#nhs_number", nhs)
    expect(status).to_contain_text("Patient found: Zoë Ní Bhriain.")
    assert "differ" not in status.inner_text()
