"""Patient-level actions: reconciling an unidentified patient, and a lesion's images over time."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from repository.access import Action, RoleValues
from repository.audit import OUTCOME_MINOR_FAILURE
from repository.errors import NotFound
from repository.patients import normalise_patient_id
from repository.reconcile import PatientIdentity, reconcile_patient
from search.query import InstanceQuery
from web.auth import CallerDep
from web.deps import ServicesDep
from web.views import instance_view

router = APIRouter(prefix="/api/v1/patients", tags=["patients"])


class ReconcileRequest(BaseModel):
    nhs_number: str = Field(description="the patient's NHS number, now known (Modulus 11 checked)")
    family_name: str = Field(min_length=1, max_length=64)
    given_name: str = Field(default="", max_length=64)
    birth_date: str = Field(default="", description="YYYY-MM-DD")
    sex: str = Field(default="", description="F, M, O or U")


@router.post("/{temporary_id}/reconcile")
async def reconcile(temporary_id: str, body: ReconcileRequest, services: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    """Link every image stored under a temporary identifier (TMP-<ODS>-<ref>) to the NHS number:
    the objects are rewritten (UIDs kept), re-indexed, and the change is audited."""
    guard = services.guard
    guard.require(caller, Action.CHANGE, patient_ids=[temporary_id.upper()])
    # TMP-<ODS>-<reference> is the trust's own identifier: only that trust (or an administrator)
    # links it to an NHS number; to another trust it is "not found", as its images are.
    parts = temporary_id.upper().split("-")
    if caller.principal.role is not RoleValues.ADMIN and (len(parts) < 3 or parts[1] != caller.principal.trust):
        guard.record(caller, "denied", outcome=OUTCOME_MINOR_FAILURE, patient_ids=[temporary_id.upper()],
                     detail="reconcile of another trust's temporary identifier")  # fmt: skip
        raise NotFound(f"no images are stored under {temporary_id.upper()}")
    identity = PatientIdentity.parse(
        nhs_number=body.nhs_number, family_name=body.family_name, given_name=body.given_name,
        birth_date=body.birth_date, sex=body.sex, allow_test_numbers=bool(services.settings.allow_test_nhs_numbers),
    )  # fmt: skip
    result = await run_in_threadpool(
        reconcile_patient, services.repository, temporary_id, identity, spool_dir=services.settings.spool_dir
    )
    guard.record(
        caller, "change", patient_ids=[result.temporary_id, result.nhs_number], study_uids=result.study_instance_uids,
        sop_instance_uids=result.sop_instance_uids, detail=f"patient reconciled from {result.temporary_id}",
    )  # fmt: skip
    return {
        "temporary_id": result.temporary_id,
        "nhs_number": result.nhs_number,
        "instances": len(result.sop_instance_uids),
        "studies": result.study_instance_uids,
        "already_reconciled": result.already_reconciled,
    }


@router.get("/{nhs_number}/tracking/{tracking_id}")
def tracking(nhs_number: str, tracking_id: str, services: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    """Every image of one tracked lesion or wound (Tracking ID), oldest first, for comparison."""
    patient_id, _ = normalise_patient_id(nhs_number, allow_test_numbers=True)
    query = InstanceQuery(patient_id=patient_id, tracking_id=tracking_id, limit=500, newest_first=False, facets=())
    page = services.guard.search(caller, query, detail="lesion tracking")
    images = [instance_view(doc) for doc in page.items]
    return {
        "nhs_number": patient_id,
        "tracking_id": tracking_id,
        "total": page.total,
        "first_capture": images[0]["capture_date"] if images else None,
        "last_capture": images[-1]["capture_date"] if images else None,
        "images": images,
    }
