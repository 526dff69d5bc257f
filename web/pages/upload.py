"""Photographers' upload page.

With JavaScript the page sends each photograph as its own ``POST /api/v1/images`` (see
static/js/upload-queue.js), so one refused photograph does not stop the others; without it, the
form posts here and this route hands the whole batch to the same ingestor the API uses, which
stores all of it or none, then shows what became of each file (or, when one is refused, says that
none was stored).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import Query, Response
from starlette.concurrency import run_in_threadpool

from repository.errors import IdentityMismatch, InvalidInput, OlogiesError
from repository.identity import confirmed
from repository.patients import normalise_patient_id
from web.errors import status_for
from web.pages import forms, timeline
from web.pages.context import Page, PageDep, page_router
from web.routes.images import FORM_FIELDS
from web.uploads import receive_form

router = page_router()
HISTORY_SHOWN = 8  # the latest few images: enough to recognise the patient and the wound
THUMBNAIL_BOX = 120


def _render_form(
    page: Page, values: dict[str, Any], errors: forms.FormErrors, history: dict[str, Any] | None, *, mismatch: bool = False
) -> Response:
    """``mismatch``: the details given differ from those the trust holds for the NHS number, so
    the box confirming that the patient's details have changed is shown (unticked). It is shown
    only then, or again while it is ticked: a box always there would be ticked out of habit."""
    settings = page.services.settings
    return page.render(
        "upload.jinja",
        422 if errors else 200,
        values=values,
        # What was typed, when it was typed (it may not be a date); otherwise the prefilled date.
        birth_date_parts=values.get("birth_date_parts") or forms.birth_date_parts(values.get("birth_date")),
        errors=errors,
        history=history,
        confirm_identity={"shown": mismatch or confirmed(values), "checked": confirmed(values)},
        allow_test_numbers=bool(settings.allow_test_nhs_numbers),
        max_file_bytes=min(settings.max_file_bytes, settings.max_upload_bytes - 256 * 1024),
        **forms.choices(page.catalogue),
    )


def _history(page: Page, nhs_number: str, values: dict[str, Any], errors: forms.FormErrors) -> dict[str, Any] | None:
    """The patient's latest images and, for a patient already known, the demographics to prefill."""
    try:
        patient_id, _ = normalise_patient_id(nhs_number, allow_test_numbers=bool(page.services.settings.allow_test_nhs_numbers))
    except InvalidInput as exc:
        errors.add_exception(exc)
        return None
    result = page.search(timeline.patient_query(patient_id, facets=False))
    images = timeline.views(result)[:HISTORY_SHOWN]
    for image in images:
        image["thumb_width"], image["thumb_height"] = timeline.thumbnail_box(image, THUMBNAIL_BOX)
    if images:
        for name, value in forms.demographics_from(images[0]).items():
            if not values.get(name):
                values[name] = value
    values["nhs_number"] = patient_id
    return {"patient_id": patient_id, "total": result.total, "images": images}


@router.get("/upload")
def upload_form(page: PageDep, nhs_number: str = Query("", max_length=64)) -> Response:
    """The form; with ``?nhs_number=`` (the "Find patient" button without JavaScript) it also
    shows the patient's latest images and prefills the patient's details from them."""
    values: dict[str, Any] = {"nhs_number": nhs_number}
    errors = forms.FormErrors()
    history = _history(page, nhs_number, values, errors) if nhs_number else None
    return _render_form(page, values, errors, history)


@router.post("/upload/find")
async def upload_find(page: PageDep) -> Response:
    """"Find patient" without JavaScript: the form is posted, not sent as a query, so that the
    patient's details typed so far never go into the address bar, the browser's history or a
    proxy's log. Shows the form again with the patient's latest images and details; any file
    chosen already is discarded (it is chosen again for the upload)."""
    settings = page.services.settings
    spool = Path(tempfile.mkdtemp(prefix="ologies-page-find-", dir=settings.spool_dir))
    try:
        received = await receive_form(page.request, spool, max_file_bytes=settings.max_file_bytes, max_files=settings.max_files_per_upload)
    finally:
        await run_in_threadpool(shutil.rmtree, spool, True)
    form = received.fields
    errors = forms.FormErrors()
    values: dict[str, Any] = {name: form.get(name) or "" for name in FORM_FIELDS}
    values["birth_date_parts"] = {p: form.get(f"birth_date[{p}]") or "" for p in ("day", "month", "year")}
    if not any(values["birth_date_parts"].values()):
        values.pop("birth_date_parts")  # nothing typed: the record's date may be filled in
    nhs_number = str(values.get("nhs_number") or "")
    history = _history(page, nhs_number, values, errors) if nhs_number else None
    if not nhs_number:
        errors.add("nhs_number", forms.REQUIRED["nhs_number"])
    return _render_form(page, values, errors, history)


@router.post("/upload")
async def upload_submit(page: PageDep) -> Response:
    settings = page.services.settings
    errors = forms.FormErrors()
    values: dict[str, Any] = {}
    incoming: list[Any] = []
    batch_sent = False  # the ingestor stores a batch all or nothing
    spool = Path(tempfile.mkdtemp(prefix="ologies-page-upload-", dir=settings.spool_dir))
    try:
        # The API's own receiver: files stream to disk and are hashed on the way in.
        received = await receive_form(
            page.request, spool, max_file_bytes=settings.max_file_bytes, max_files=settings.max_files_per_upload
        )
        form = received.fields
        values = {name: form.get(name) or "" for name in FORM_FIELDS}
        values["birth_date"] = forms.birth_date_from_parts(form, errors)
        values["birth_date_parts"] = {p: form.get(f"birth_date[{p}]") or "" for p in ("day", "month", "year")}
        # A browser sends an empty part for a file input left empty (the camera input, usually).
        incoming = [f for f in received.files.get("file", []) if f.path.stat().st_size > 0]
        if not incoming:
            errors.add("file", forms.REQUIRED["file"])
        if errors:
            return _render_form(page, values, errors, None)
        fields = {name: values[name] for name in FORM_FIELDS}
        batch_sent = True
        batch = await run_in_threadpool(
            page.services.guard.upload, page.caller, page.services.ingestor.ingest, incoming, fields, route="web"
        )
    except OlogiesError as exc:
        errors.add_exception(exc, nothing_stored=len(incoming) if batch_sent else 0)
        response = _render_form(page, values, errors, None, mismatch=isinstance(exc, IdentityMismatch))
        response.status_code = status_for(exc)
        return response
    finally:
        await run_in_threadpool(shutil.rmtree, spool, True)
    return page.render("upload_done.jinja", batch=batch, patient_id=batch_patient(values))


def batch_patient(values: dict[str, Any]) -> str:
    return str(values.get("nhs_number") or "").replace(" ", "").replace("-", "").upper()
