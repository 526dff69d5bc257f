"""WCAG 2.1 AA in a real browser: axe-core on every main page, the keyboard's first stop, and a
390-pixel phone screen. Screenshots of each page are kept in test-artifacts/screenshots/."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import assert_accessible, new_patient, screenshot, seed_images

pytestmark = pytest.mark.browser


@pytest.fixture
def images(live_server, tmp_path):  # type: ignore[no-untyped-def]
    nhs = new_patient()
    uids = seed_images(live_server, nhs, [
        {"taken": "2024:05:01 10:00:00", "source": "coffee"},
        {"taken": "2025:05:01 10:00:00", "source": "chelsea"},
    ], tmp_path)  # fmt: skip
    return nhs, uids


def pages(nhs: str, uids: list[str]) -> dict[str, str]:
    return {
        "home": "/",
        "upload": "/upload",
        "upload-known-patient-no-js-lookup": f"/upload?nhs_number={nhs}",
        "search": "/search",
        "search-by-name": "/search?by=name&family_name=bhriain&birth_date%5Bday%5D=23&birth_date%5Bmonth%5D=7&birth_date%5Byear%5D=1961",
        "patient": f"/patients/{nhs}",
        "viewer": f"/images/{uids[1]}",
        "compare-choose": f"/compare?left={uids[1]}",
        "compare-side-by-side": f"/compare?left={uids[0]}&right={uids[1]}",
        "not-found": "/images/2.25.1",
    }


def test_no_serious_or_critical_axe_violations_on_the_main_pages(page, images):  # type: ignore[no-untyped-def]
    nhs, uids = images
    for name, url in pages(nhs, uids).items():
        page.goto(url)
        page.wait_for_load_state("networkidle")
        screenshot(page, f"a11y-{name}")
        assert_accessible(page, name)


def test_skip_link_is_the_first_stop_and_moves_focus_to_the_content(page, images):  # type: ignore[no-untyped-def]
    page.goto("/search")
    page.keyboard.press("Tab")
    focused = page.evaluate("() => [document.activeElement.className, document.activeElement.getAttribute('href')]")
    assert focused == ["nhsuk-skip-link", "#maincontent"]
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "maincontent"


def test_body_site_search_works_from_the_keyboard(page, live_server):  # type: ignore[no-untyped-def]
    page.goto("/upload")
    page.focus("#body_site")
    page.keyboard.type("fore")
    listbox = page.locator("#body_site-listbox")
    expect(listbox).to_be_visible()
    assert page.get_attribute("#body_site", "aria-expanded") == "true"
    page.keyboard.press("ArrowDown")
    active = page.get_attribute("#body_site", "aria-activedescendant")
    chosen = page.inner_text(f"#{active}")
    page.keyboard.press("Enter")
    assert page.input_value("#body_site") == chosen
    assert page.get_attribute("#body_site", "aria-expanded") == "false"
    assert page.eval_on_selector("#body_site-select", "s => s.value") != ""


@pytest.mark.parametrize("name", ["upload", "patient", "viewer", "compare-side-by-side"])
def test_390_pixel_phone_has_no_horizontal_scroll(phone, images, name):  # type: ignore[no-untyped-def]
    nhs, uids = images
    phone.goto(pages(nhs, uids)[name])
    phone.wait_for_load_state("networkidle")
    width = phone.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"{name} is {width}px wide on a 390px screen"
    screenshot(phone, f"phone-{name}")
