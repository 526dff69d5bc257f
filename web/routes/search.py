"""``GET /api/v1/search``: instance search with free text, filters, facets and paging."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from repository.patients import normalise_patient_id
from search.query import MAX_LIMIT, InstanceQuery, parse_date
from web.auth import CallerDep
from web.deps import ServicesDep
from web.views import instance_view

router = APIRouter(prefix="/api/v1", tags=["search"])
Opt = Annotated[str | None, Query()]


@router.get("/search")
def search(
    services: ServicesDep,
    caller: CallerDep,
    q: Annotated[str, Query(max_length=200, description="free text over description, body site and name")] = "",
    nhs_number: Opt = None,
    name: Annotated[str | None, Query(max_length=64, description="patient name, any part, accents ignored")] = None,
    birth_date: Opt = None,
    specialty: Opt = None,
    body_site: Opt = None,
    trust: Opt = None,
    modality: Opt = None,
    tracking_id: Opt = None,
    study_uid: Opt = None,
    date_from: Annotated[str | None, Query(alias="from", description="capture date YYYY-MM-DD")] = None,
    date_to: Annotated[str | None, Query(alias="to", description="capture date YYYY-MM-DD")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """Search instances; answers 503 (never an empty 200) while the index is unavailable."""
    patient_id = normalise_patient_id(nhs_number, allow_test_numbers=True)[0] if nhs_number else None
    query = InstanceQuery(
        text=q,
        patient_id=patient_id,
        patient_name=name or None,
        patient_birth_date=parse_date(birth_date, "birth_date"),
        specialty=specialty or None,
        body_site=body_site or None,
        trust=trust.upper() if trust else None,
        modality=modality.upper() if modality else None,
        tracking_id=tracking_id or None,
        study_instance_uid=study_uid or None,
        date_from=parse_date(date_from, "from"),
        date_to=parse_date(date_to, "to"),
        limit=limit,
        offset=offset,
    )
    # Record which filters were used, not their values (names and numbers are patient data).
    used = ",".join(k for k, v in (("q", q), ("nhs_number", nhs_number), ("name", name), ("birth_date", birth_date),
                                   ("specialty", specialty), ("body_site", body_site), ("trust", trust)) if v)  # fmt: skip
    page = services.guard.search(caller, query, detail=f"search: {used or 'all'}")
    return {
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
        "items": [instance_view(doc) for doc in page.items],
        "facets": page.facets,
    }
