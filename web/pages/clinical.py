"""Clinicians' pages: find a patient (by NHS number, or by name and date of birth) and the
patient's image history as a timeline with facets."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Query, Response
from fastapi.responses import RedirectResponse

from repository.errors import InvalidInput, QueryError
from repository.patients import normalise_patient_id
from search.query import InstanceQuery
from web.pages import forms, timeline
from web.pages.context import Page, PageDep, page_router

router = page_router()
Opt = Annotated[str, Query(max_length=64)]
THUMBNAIL_BOX = 160  # shown size on the timeline; the 256-pixel rendition stays sharp on 2x screens


def _patient_id(page: Page, value: str) -> str:
    return normalise_patient_id(value, allow_test_numbers=bool(page.services.settings.allow_test_nhs_numbers))[0]


@router.get("/search")
def search(page: PageDep, nhs_number: Opt = "", family_name: Opt = "") -> Response:
    """Without parameters, the form; with an NHS number, straight to the patient's page."""
    params = page.request.query_params
    errors = forms.FormErrors()
    values = {"nhs_number": nhs_number, "family_name": family_name}
    birth_date = forms.birth_date_from_parts(params, errors)
    values["birth_date"] = birth_date
    values["birth_date_parts"] = {p: params.get(f"birth_date[{p}]", "") for p in ("day", "month", "year")}
    mode = params.get("by", "nhs_number" if nhs_number or not family_name else "name")
    if not params:
        return page.render("search.jinja", values=values, errors=errors, mode="nhs_number", patients=None)
    patients = None
    if mode == "nhs_number":
        try:
            patient_id = _patient_id(page, nhs_number)
        except InvalidInput as exc:
            errors.add_exception(exc)
        else:
            found = page.search(InstanceQuery(patient_id=patient_id, limit=1, facets=()))
            if found.total:
                return RedirectResponse(f"/patients/{patient_id}", status_code=303)
            patients = []
    else:
        if not family_name.strip():
            errors.add("family_name", forms.REQUIRED["family_name"])
        if not birth_date and not errors.get("birth_date"):
            errors.add("birth_date", forms.REQUIRED["birth_date"])
        if not errors:
            patients = _patients_named(page, family_name, birth_date)
    status = 422 if errors else 200
    return page.render("search.jinja", status, values=values, errors=errors, mode=mode, patients=patients)


def _patients_named(page: Page, name: str, birth_date: str) -> list[dict[str, Any]]:
    """The distinct patients among the images that match a name and a date of birth."""
    query = InstanceQuery(
        patient_name=name.strip(), patient_birth_date=dt.date.fromisoformat(birth_date), limit=500, facets=()
    )  # fmt: skip
    patients: dict[str, dict[str, Any]] = {}
    for view in timeline.views(page.search(query)):
        patient = view["patient"]
        entry = patients.setdefault(patient["nhs_number"], {**patient, "images": 0, "latest": ""})
        entry["images"] += 1
        entry["latest"] = max(entry["latest"], view.get("capture_date") or "")
    return sorted(patients.values(), key=lambda p: p["latest"], reverse=True)


@router.get("/patients/{nhs_number}")
def patient(
    page: PageDep,
    nhs_number: str,
    specialty: Opt = "",
    body_site: Opt = "",
    year: Opt = "",
    trust: Opt = "",
) -> Response:
    patient_id = _patient_id(page, nhs_number)
    filters = {"specialty": specialty, "body_site": body_site, "year": year, "trust": trust}
    if year and not (year.isdigit() and len(year) == 4):
        raise QueryError("year must be written with 4 numbers", field="year")
    result = page.search(timeline.patient_query(patient_id, filters), detail="patient page")
    images = timeline.views(result)
    labels = timeline.Labels(page.catalogue)
    for image in images:
        image["thumb_width"], image["thumb_height"] = timeline.thumbnail_box(image, THUMBNAIL_BOX)
    base = f"/patients/{patient_id}"
    filtered = any(filters.values())
    # The patient's details come from the newest image; a filtered page may show none, so ask
    # for one unfiltered image rather than show a nameless page.
    newest = images[0] if images else _newest(page, patient_id)
    return page.render(
        "patient.jinja",
        patient_id=patient_id,
        patient=newest["patient"] if newest else None,
        total=result.total,
        days=timeline.by_day(images),
        facets=timeline.facet_groups(result, filters, labels, base),
        filtered=filtered,
        clear_href=base,
        labels=labels,
        shown_limit=timeline.PATIENT_LIMIT,
    )


def _newest(page: Page, patient_id: str) -> dict[str, Any] | None:
    found = page.search(InstanceQuery(patient_id=patient_id, limit=1, facets=()))
    return timeline.views(found)[0] if found.items else None
