"""How fast a patient page with 200 images shows its first screen, measured in Chromium.

    .venv/bin/python -m tests.bench.patient_page_bench --images 200 --runs 15

The server runs as ``ologies serve`` in its own process over a fresh embedded store. 200 small
phone-like JPEGs are stored for one patient through ``POST /api/v1/images`` (in batches, one
study each, with a spread of dates, body sites, specialties and trusts so the timeline and the
facets have real work to do). Then Chromium opens ``/patients/{nhs}`` repeatedly:

* cold: a new browser context each run (no cache), as a clinician's first visit;
* warm: a reload in the same context, thumbnails and assets from the browser's cache.

Reported per mode: first contentful paint and DOMContentLoaded (from the page's own Performance
timeline), p50 and p95 over the runs. The target is a first screen in under a second. This is a
benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import random

import httpx

from tests import imagegen
from tests.bench.common import ologies_server, summarise
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

NHS = "9990000018"
SITES = ["60819002", "45206002", "14975008", "69536005", "89545001"]
SPECIALTIES = ["dermatology", "burns-plastics", "emergency", "medical-photography"]
TRUSTS = ["REM", "RBN", "RBS", "RJR"]
PER_BATCH = 20

TIMING = """() => {
  const paint = performance.getEntriesByName('first-contentful-paint')[0];
  const nav = performance.getEntriesByType('navigation')[0];
  return {fcp: paint ? paint.startTime : null, dcl: nav.domContentLoadedEventEnd,
          images: document.querySelectorAll('.ologies-card').length,
          loaded: performance.getEntriesByType('resource').filter(r => r.name.includes('/thumbnail')).length};
}"""


def seed(base_url: str, count: int) -> None:
    rng = random.Random(5)
    with httpx.Client(base_url=base_url, timeout=120) as client:
        for start in range(0, count, PER_BATCH):
            month = 1 + (start // PER_BATCH) % 12
            year = 2021 + start // (PER_BATCH * 12)
            files = []
            for i in range(start, min(count, start + PER_BATCH)):
                exif = imagegen.exif_bytes(datetime_original=f"{year}:{month:02d}:{1 + i % 27:02d} 10:{i % 60:02d}:00",
                                           make="Apple", model="iPhone 15 Pro", gps=False, owner=False)  # fmt: skip
                pixels = imagegen.photo(320, 240, source=imagegen.SOURCES[i % 4], seed=i)
                files.append(("file", (f"IMG_{i:04d}.jpg", imagegen.jpeg(pixels, quality=80, exif=exif), "image/jpeg")))
            fields = {
                "nhs_number": NHS, "family_name": "Benchmark", "given_name": "Patient", "birth_date": "1970-01-01",
                "sex": "U", "trust": rng.choice(TRUSTS), "specialty": rng.choice(SPECIALTIES),
                "body_site": rng.choice(SITES), "laterality": "U", "consent": "clinical-care",
                "photographer": "Bench Photographer", "description": f"batch {start // PER_BATCH}",
            }  # fmt: skip
            response = client.post("/api/v1/images", data=fields, files=files)
            response.raise_for_status()


def measure(base_url: str, runs: int) -> dict[str, object]:
    from playwright.sync_api import sync_playwright

    url = f"{base_url}/patients/{NHS}"
    results: dict[str, dict[str, list[float]]] = {"cold": {"fcp": [], "dcl": []}, "warm": {"fcp": [], "dcl": []}}
    shown = 0
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # One untimed visit first, so the server's thumbnail renditions exist (a one-off cost).
        warmup = browser.new_page()
        warmup.goto(url, wait_until="networkidle")
        warmup.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
        warmup.wait_for_load_state("networkidle")
        warmup.close()
        for _ in range(runs):
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(base_url) else r.abort())
            page = context.new_page()
            for mode in ("cold", "warm"):
                if mode == "cold":
                    page.goto(url, wait_until="load")
                else:
                    page.reload(wait_until="load")
                page.wait_for_function("() => performance.getEntriesByName('first-contentful-paint').length > 0")
                timing = page.evaluate(TIMING)
                shown = timing["images"]
                results[mode]["fcp"].append(timing["fcp"] / 1000)
                results[mode]["dcl"].append(timing["dcl"] / 1000)
            context.close()
        browser.close()
    report: dict[str, object] = {"images_on_page": shown, "runs": runs}
    for mode, metrics in results.items():
        report[mode] = {name: summarise(values) for name, values in metrics.items()}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with ologies_server() as (base_url, _pid, _data):
        seed(base_url, args.images)
        print(json.dumps(measure(base_url, args.runs), indent=1))


if __name__ == "__main__":
    main()
