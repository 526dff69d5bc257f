"""The image viewer (full resolution, previous and next within the patient's images, details,
downloads) and the side-by-side comparison of two images of the same body site, on the same side,
over time."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Response

from repository.errors import InvalidInput
from web.pages import timeline
from web.pages.context import Page, PageDep, page_router
from web.routes.instances import instance_metadata

router = page_router()
Uid = Annotated[str, Query(max_length=64)]
THUMBNAIL_BOX = 120


def _sequence(page: Page, patient_id: str) -> list[dict[str, Any]]:
    """The patient's images, newest first: the order of the timeline the viewer steps through."""
    query = timeline.patient_query(patient_id, facets=False)
    images = timeline.views(page.search(query))
    for image in images:
        image["thumb_width"], image["thumb_height"] = timeline.thumbnail_box(image, THUMBNAIL_BOX)
    return images


def _site(image: dict[str, Any]) -> tuple[str, str]:
    """Where on the body: the body site's code and the side. Left and right are different sites
    (a left forearm compared with the right one looks like change that is not there)."""
    return (image.get("body_site") or {}).get("code") or "", image.get("laterality") or ""


def _same_site(images: list[dict[str, Any]], image: dict[str, Any]) -> list[dict[str, Any]]:
    site = _site(image)
    return [i for i in images if _site(i) == site and i["sop_instance_uid"] != image["sop_instance_uid"]]


@router.get("/images/{uid}")
def viewer(page: PageDep, uid: str) -> Response:
    image = instance_metadata(uid, page.services, page.caller)
    images = _sequence(page, image["patient"]["nhs_number"])
    uids = [i["sop_instance_uid"] for i in images]
    at = uids.index(uid) if uid in uids else -1  # -1: stored but not yet indexed
    newer = images[at - 1] if at > 0 else None
    older = images[at + 1] if 0 <= at < len(images) - 1 else None
    return page.render(
        "viewer.jinja",
        image=image,
        position=at + 1,
        count=len(images),
        older=older,
        newer=newer,
        same_site=_same_site(images, image),
        labels=timeline.Labels(page.catalogue),
    )


@router.get("/compare")
def compare(page: PageDep, left: Uid, right: Uid = "") -> Response:
    """With one image, a choice of the patient's other images of that body site; with two, both."""
    first = instance_metadata(left, page.services, page.caller)
    labels = timeline.Labels(page.catalogue)
    if not right:
        images = _sequence(page, first["patient"]["nhs_number"])
        return page.render("compare_pick.jinja", image=first, candidates=_same_site(images, first), labels=labels)
    second = instance_metadata(right, page.services, page.caller)
    if first["patient"]["nhs_number"] != second["patient"]["nhs_number"]:
        # Never put two patients side by side: it invites a wrong-patient comparison.
        raise InvalidInput("These two images are of different patients and cannot be compared", field="right")
    earlier, later = sorted((first, second), key=lambda i: (i.get("acquisition_datetime") or i.get("capture_date") or ""))
    same_site = _site(first) == _site(second)
    same_code = _site(first)[0] == _site(second)[0]
    return page.render("compare.jinja", earlier=earlier, later=later, same_site=same_site, same_code=same_code, labels=labels)
