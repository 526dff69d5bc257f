"""The pages' routes over the app factory (no browser): form errors come back as the NHS error
pattern with what was typed kept, never as a 500."""

from __future__ import annotations

import re

from tests import imagegen
from tests.conftest import NHS_A, patient_fields

PASTED_NHS_NUMBER = "9990000018"  # 2**31 or more: int() takes it, datetime.date cannot


def _upload_form(**overrides: str) -> dict[str, str]:
    """The no-JavaScript form's fields: the date of birth in three boxes."""
    values = patient_fields(**overrides)
    day, month, year = "2", "3", "1984"
    values.pop("birth_date")
    values.update({"birth_date[day]": day, "birth_date[month]": month, "birth_date[year]": year})
    values.update({k: v for k, v in overrides.items() if k.startswith("birth_date[")})
    return values


def _summary(html: str) -> list[str]:
    box = html.split('class="nhsuk-error-summary', 1)[1].split("</ul>", 1)[0]
    return [re.sub(r"<[^>]+>", "", item).strip() for item in re.findall(r"<li>(.*?)</li>", box, re.S)]


def test_a_huge_number_in_a_date_box_is_a_form_error_on_search(client):
    response = client.get("/search", params={
        "by": "name", "family_name": "Jones", "birth_date[day]": PASTED_NHS_NUMBER, "birth_date[month]": "3", "birth_date[year]": "1984",
    })  # fmt: skip
    assert response.status_code == 422 and response.headers["content-type"].startswith("text/html")
    assert _summary(response.text) == ["Date of birth must be a real date"]
    assert f'value="{PASTED_NHS_NUMBER}"' in response.text and 'value="Jones"' in response.text


def test_a_huge_number_in_a_date_box_is_a_form_error_on_upload(client):
    photo = imagegen.jpeg(imagegen.photo(32, 32, seed=3))
    response = client.post(
        "/upload", data=_upload_form(**{"birth_date[year]": "99999999999999999999"}), files={"file": ("a.jpg", photo, "image/jpeg")}
    )
    assert response.status_code == 422 and response.headers["content-type"].startswith("text/html")
    assert _summary(response.text) == ["Date of birth must be a real date"]
    assert 'value="99999999999999999999"' in response.text and f'value="{NHS_A}"' in response.text
    assert "Pigmented lesion, irregular border" in response.text


def _store(client, seed: int, **fields: str) -> str:
    photo = imagegen.jpeg(imagegen.photo(48, 32, seed=seed))
    response = client.post("/api/v1/images", data=patient_fields(**fields), files={"file": (f"{seed}.jpg", photo, "image/jpeg")})
    assert response.status_code == 201, response.text
    return response.json()["files"][0]["sop_instance_uid"]


def test_left_and_right_are_not_the_same_site_in_the_viewer_and_the_comparison(client):
    """Clinical safety: a left forearm set beside the right one looks like change that is not there."""
    left_1, left_2 = _store(client, 11, laterality="L"), _store(client, 12, laterality="L")
    right = _store(client, 13, laterality="R")

    viewer = client.get(f"/images/{right}").text
    assert "There are no other photographs of this body site on this side" in viewer and 'id="compare-link"' not in viewer
    viewer = client.get(f"/images/{left_1}").text
    assert "1 other photograph of the forearm (left)." in viewer
    pick = client.get("/compare", params={"left": left_1}).text
    assert left_2 in pick and right not in pick
    assert "There are no other photographs of the forearm (right)" in client.get("/compare", params={"left": right}).text

    same = client.get("/compare", params={"left": left_1, "right": left_2}).text
    assert "<h1>Compare photographs of the forearm (left)</h1>" in same and "Different" not in same
    assert same.count(", forearm (left)</h2>") == 2

    sides = client.get("/compare", params={"left": left_1, "right": right})
    assert sides.status_code == 200
    assert "<h1>Compare photographs of different sides</h1>" in sides.text
    assert "Important: </span>Different sides" in sides.text  # the warning callout
    assert "the earlier one is of the forearm (left) and the later one of the forearm (right)" in sides.text
    assert ", forearm (left)</h2>" in sides.text and ", forearm (right)</h2>" in sides.text


def test_a_caret_or_a_tab_in_a_name_is_an_error_on_the_name_not_on_each_file(client):
    photos = [("file", (f"{n}.jpg", imagegen.jpeg(imagegen.photo(32, 32, seed=20 + n)), "image/jpeg")) for n in range(2)]
    api = client.post("/api/v1/images", data=patient_fields(family_name="Jones^Smith"), files=photos)
    assert api.status_code == 422, api.text
    assert api.json()["error"]["field"] == "family_name"
    page = client.post("/upload", data=_upload_form(given_name="Siân\tMair"), files=photos)
    assert page.status_code == 422
    assert 'href="#given_name"' in page.text and 'id="given_name-error"' in page.text
    assert client.get("/api/v1/search").json()["total"] == 0  # nothing was stored
    stored = client.post("/api/v1/images", data=patient_fields(family_name="O'Brien-Jones", given_name="Llŷr Zoë"), files=photos)
    assert stored.status_code == 201, stored.text


def test_page_errors_use_the_forms_labels_and_keep_file_names_as_typed(client):
    photo = [("file", ("a.jpg", imagegen.jpeg(imagegen.photo(32, 32, seed=30)), "image/jpeg"))]
    cases = [
        ({"family_name": "x" * 70}, "Last name must be 64 characters or fewer"),
        ({"given_name": "Jones^Smith"}, "First name must not contain ^, =, \\, a tab or a line break"),
        ({"birth_date[year]": "2999"}, "Date of birth must be today or in the past"),
        ({"birth_date[year]": "1066"}, "Date of birth must be in 1880 or later"),
        ({"family_name": "x" * 40, "given_name": "y" * 30}, "Last name and first name together must be 63 characters or fewer"),
    ]
    for fields, message in cases:
        response = client.post("/upload", data=_upload_form(**fields), files=photo)
        assert response.status_code == 422 and _summary(response.text) == [message], fields

    notes = [("file", ("notes.txt", b"not a photograph at all", "text/plain"))]
    refused = client.post("/upload", data=_upload_form(), files=notes)
    assert refused.status_code == 415
    [message] = _summary(refused.text)
    assert message.startswith("notes.txt: "), message

    # The API's JSON is the domain's own, for programs.
    api = client.post("/api/v1/images", data=patient_fields(family_name="x" * 70), files=photo)
    assert api.json()["error"] == {"code": "invalid_input", "message": "family_name is longer than 64 characters", "field": "family_name"}


def test_without_javascript_a_refused_photograph_says_that_none_was_stored(client):
    intro = client.get("/upload").text
    assert "<p data-js-hide>Photographs are stored for one patient at a time. They are stored together: if one is refused, none" in intro
    assert "<p data-js-show hidden>Photographs are stored for one patient at a time. Each photograph is stored on its own" in intro

    photos = [
        ("file", ("notes.txt", b"not a photograph at all", "text/plain")),
        ("file", ("fresh.jpg", imagegen.jpeg(imagegen.photo(32, 32, seed=40)), "image/jpeg")),
    ]
    refused = client.post("/upload", data=_upload_form(), files=photos)
    assert refused.status_code == 415
    [message] = _summary(refused.text)
    assert message.startswith("notes.txt: ")
    assert message.endswith(". None of the photographs was stored: choose them again without this one and upload them"), message
    assert client.get("/api/v1/search").json()["total"] == 0  # as it says: fresh.jpg was not stored either
    one = client.post("/upload", data=_upload_form(), files=photos[:1])
    assert _summary(one.text)[0].endswith(". The photograph was not stored")


def _outside_templates(html: str) -> str:
    """The page as shown: a ``<template>``'s content is inert until a script uses it."""
    return re.sub(r"<template\b.*?</template>", "", html, flags=re.S)


def test_without_javascript_other_details_for_the_nhs_number_offer_a_confirmation_to_tick(client):
    confirm = re.compile(r'<input[^>]*name="confirm_identity"[^>]*>')
    # Not offered before a mismatch: a box always there invites ticking it out of habit.
    assert not confirm.search(_outside_templates(client.get("/upload").text))
    _store(client, 50)  # O'Brien-Jones
    photo = [("file", ("b.jpg", imagegen.jpeg(imagegen.photo(32, 32, seed=51)), "image/jpeg"))]

    refused = client.post("/upload", data=_upload_form(family_name="Williams"), files=photo)
    assert refused.status_code == 409 and refused.headers["content-type"].startswith("text/html")
    [message] = _summary(refused.text)
    assert "O&#39;BRIEN-JONES, Siân, born 1984-03-02" in message and "a different last name" in message, message
    assert "confirm_identity" not in message and "tick" in message, "the page's words, not the API's field name"
    assert 'id="nhs_number-error"' in refused.text
    shown = _outside_templates(refused.text)
    [box] = confirm.findall(shown)
    assert 'value="true"' in box and "checked" not in box, box
    assert "I have checked: the patient&#39;s details have changed since their last photographs" in shown
    # What was typed is kept; the photographs must be chosen again (nothing was stored).
    assert 'value="Williams"' in refused.text and f'value="{NHS_A}"' in refused.text and 'value="1984"' in refused.text
    assert "choose the photographs again" in shown
    assert client.get("/api/v1/search").json()["total"] == 1

    confirmed = client.post("/upload", data=_upload_form(family_name="Williams", confirm_identity="true"), files=photo)
    assert confirmed.status_code == 200, _summary(confirmed.text)
    assert "Photographs stored" in confirmed.text
    assert client.get("/api/v1/search").json()["total"] == 2


def test_a_page_asked_for_wrongly_is_an_error_page_not_json(client):
    response = client.get("/compare", headers={"Accept": "text/html"})  # no left photograph
    assert response.status_code == 400 and response.headers["content-type"].startswith("text/html")
    assert "left" in response.text and '"error"' not in response.text
    too_long = client.get("/search", params={"by": "name", "family_name": "x" * 65}, headers={"Accept": "text/html"})
    assert too_long.status_code == 400 and too_long.headers["content-type"].startswith("text/html")


def test_an_address_with_no_page_is_the_not_found_page_for_a_browser_and_json_for_the_api(client):
    page = client.get("/no-such-page", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "Not found" in page.text
    api = client.get("/api/v1/no-such-route", headers={"Accept": "text/html"})
    assert api.status_code == 404 and api.json()["error"]["code"] == "http_error"
    assert client.get("/no-such-page").json()["error"]["code"] == "http_error"  # no text/html: a program
