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
