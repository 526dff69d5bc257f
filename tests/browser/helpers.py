"""Helpers of the browser tests: test photographs on disk, patients seeded through the Ingestor,
accessibility checks with axe-core, and screenshots kept as test artefacts."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from ingest.pipeline import IncomingFile
from tests import imagegen
from tests.browser.conftest import AXE, SCREENSHOTS

_serial = itertools.count(1000)


def nhs_number(serial: int) -> str | None:
    """The NHS number in the 999 test range (never a real patient) with this serial, if any."""
    stem = f"999{serial:06d}"
    total = sum(int(d) * (10 - i) for i, d in enumerate(stem))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return None if check == 10 else stem + str(check)  # 10: no valid number has this stem


def new_patient() -> str:
    """A patient no other test uses."""
    while (number := nhs_number(next(_serial))) is None:
        pass
    return number


def wrong_check_digit(valid: str) -> str:
    return valid[:9] + str((int(valid[9]) + 1) % 10)


def fields(nhs: str, **overrides: str) -> dict[str, str]:
    values = {
        "nhs_number": nhs, "family_name": "Ní Bhriain", "given_name": "Zoë", "birth_date": "1961-07-23",
        "sex": "F", "trust": "REM", "specialty": "dermatology", "body_site": "60819002", "laterality": "L",
        "consent": "clinical-care", "description": "Lesion on the left cheek", "photographer": "Siân Hughes",
    }  # fmt: skip
    values.update(overrides)
    return values


def phone_jpeg(path: Path, *, source: str = "astronaut", seed: int = 0, taken: str = "2025:06:01 10:00:00",
               orientation: int | None = None, size: tuple[int, int] = (480, 360)) -> Path:
    """A phone-like JPEG of an upright ``size`` image; with ``orientation`` the pixels are stored
    turned so that the EXIF tag makes them upright again, as phones do."""
    upright = imagegen.photo(*size, source=source, seed=seed)
    pixels = imagegen.stored_for_orientation(upright, orientation) if orientation else upright
    exif = imagegen.exif_bytes(orientation=orientation, datetime_original=taken, make="Apple", model="iPhone 15 Pro")
    path.write_bytes(imagegen.jpeg(pixels, exif=exif))
    return path


def heic_photo(path: Path, *, size: tuple[int, int] = (400, 300)) -> Path:
    exif = imagegen.exif_bytes(datetime_original="2025:06:01 10:05:00", make="Apple", model="iPhone 15 Pro")
    path.write_bytes(imagegen.heic(imagegen.photo(*size, source="chelsea", seed=3), exif=exif))
    return path


def pdf_named_jpg(path: Path) -> Path:
    path.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
    return path


def seed_images(server: Any, nhs: str, specs: list[dict[str, Any]], tmp: Path) -> list[str]:
    """Store one image per spec (keys: taken, body_site, specialty, trust, laterality, source) for
    patient ``nhs`` through the Ingestor; return their SOP Instance UIDs, oldest first."""
    uids = []
    for number, spec in enumerate(specs):
        # The noise seed differs per patient: the same bytes for two patients would be a 409.
        path = phone_jpeg(tmp / f"seed-{nhs}-{number}.jpg", source=spec.get("source", "astronaut"), seed=int(nhs) + number,
                          taken=spec["taken"], size=spec.get("size", (480, 360)))  # fmt: skip
        values = fields(nhs, **{k: v for k, v in spec.items() if k in ("body_site", "specialty", "trust", "laterality", "description")})
        batch = server.services.ingestor.ingest([IncomingFile(path, path.name)], values, route="web")
        uids.append(batch.files[0].outcome.sop_instance_uid)
    return uids


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical WCAG 2.1 A/AA violations on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        AXE_TAGS,
    )
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def assert_accessible(page: Any, name: str) -> None:
    violations = axe_violations(page)
    report = SCREENSHOTS.parent / "axe"
    report.mkdir(parents=True, exist_ok=True)
    (report / f"{name}.json").write_text(json.dumps(violations, indent=1))
    assert not violations, f"axe found serious or critical problems on {name}: {json.dumps(violations, indent=1)}"
