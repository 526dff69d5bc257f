"""Information governance over HTTP: the audit trail ("who has seen my photographs"), consent
withdrawal, teaching exports, retention, legal holds and approved deletions. Every decision is
``AccessPolicy``'s (through ``Guard``); every use is audited, reading the audit trail included."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from repository.access import Action, PurposeValues, RoleValues
from repository.audit import fhir_audit_event
from repository.errors import InvalidInput
from repository.governance import Governance
from repository.patients import normalise_patient_id
from web.auth import CallerDep
from web.deps import ServicesDep

router = APIRouter(prefix="/api/v1", tags=["governance"])


class ConsentChange(BaseModel):
    status: str = Field(pattern="^(withdrawn|active)$", description="withdrawn, or active to reinstate")
    note: str = Field(default="", max_length=500)


class ExportRequest(BaseModel):
    sop_instance_uids: list[str] = Field(min_length=1, max_length=500)
    purpose: PurposeValues = PurposeValues.TEACHING


class Reason(BaseModel):
    reason: str = Field(min_length=5, max_length=500)


def _patient(nhs_number: str) -> str:
    return normalise_patient_id(nhs_number, allow_test_numbers=True)[0]


@router.get("/audit/events")
def audit_events(
    services: ServicesDep, caller: CallerDep,
    patient: Annotated[str | None, Query(description="NHS number")] = None,
    user: Annotated[str | None, Query(description="subject, e.g. user:jsmith")] = None,
    since: Annotated[dt.datetime | None, Query()] = None,
    format: Annotated[str, Query(pattern="^(json|fhir)$")] = "json",  # noqa: A002
) -> dict[str, Any]:  # fmt: skip
    """Audit records (information governance and administrators). Reading them is audited too."""
    services.guard.require(caller, Action.AUDIT_READ)
    patient_id = _patient(patient) if patient else None
    # Information governance sees every access to a patient's images (whoever made it), and
    # otherwise the activity of its own trust; administrators see everything.
    trust = None if caller.principal.role is RoleValues.ADMIN or patient_id else caller.principal.trust
    events = services.audit.query(patient_id=patient_id, user=user, trust=trust, since=since)
    services.guard.record(caller, "audit-read", patient_ids=[patient_id] if patient_id else [], detail=f"events user={bool(user)}")
    if format == "fhir":
        return {"resourceType": "Bundle", "type": "searchset", "total": len(events),
                "entry": [{"resource": fhir_audit_event(e)} for e in events]}  # fmt: skip
    return {"total": len(events), "events": [e.__dict__ for e in events]}


@router.get("/audit/patients/{nhs_number}")
def patient_access_report(nhs_number: str, services: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    """Who has seen this patient's photographs: every access, by whom, from which trust, why."""
    services.guard.require(caller, Action.AUDIT_READ)
    patient_id = _patient(nhs_number)
    accesses = [
        {"time": e.time, "who": e.user_name or e.user, "user": e.user, "role": e.role, "trust": e.trust,
         "action": e.action, "outcome": e.outcome, "images": len(e.sop_instance_uids), "reason": e.reason or None}
        for e in services.audit.query(patient_id=patient_id)
        if e.action in {"search", "view", "download", "export", "grant", "upload", "change", "denied"}
    ]  # fmt: skip
    services.guard.record(caller, "audit-read", patient_ids=[patient_id], detail="patient access report")
    return {"nhs_number": patient_id, "accesses": accesses,
            "cross_trust_overrides": [a for a in accesses if a["action"] == "grant"]}  # fmt: skip


@router.get("/audit/verify")
def verify_audit(services: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    """Check every hash chain and anchor of the audit trail."""
    services.guard.require(caller, Action.AUDIT_READ)
    report = services.audit.verify()
    services.guard.record(caller, "audit-read", detail=f"verify: {'intact' if report.intact else 'BROKEN'}")
    return {"intact": report.intact, "streams": report.streams, "records": report.records, "problems": report.problems}


@router.post("/instances/{uid}/consent")
def change_consent(uid: str, body: ConsentChange, services: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    """Record that the patient withdrew (or reinstated) consent to use beyond direct care."""
    doc = services.guard.open_instance(caller, uid, Action.CHANGE, audit=False, detail="consent change")
    updated = Governance(services.repository).set_consent_status(uid, body.status)
    services.guard.record(
        caller, "change", patient_ids=[str(doc.get("PatientID"))], sop_instance_uids=[uid],
        detail=f"consent {body.status}", reason=body.note,
    )  # fmt: skip
    return {"sop_instance_uid": uid, "consent": updated.get("_consent"), "consent_status": updated.get("_consent_status")}


@router.post("/exports", response_class=Response, responses={200: {"content": {"application/zip": {}}}})
def export(body: ExportRequest, services: ServicesDep, caller: CallerDep) -> Response:
    """De-identified copies (PS3.15 basic profile, image kept) of the instances whose recorded
    consent allows the purpose; the others are listed as refused, never exported."""
    if body.purpose is PurposeValues.DIRECT_CARE:
        raise InvalidInput("exports are for teaching or publication", field="purpose")
    services.guard.require(caller, Action.EXPORT)
    guard = services.guard
    result = Governance(services.repository).export(
        body.sop_instance_uids,
        allowed=lambda uid: guard.open_instance(caller, uid, Action.EXPORT, purpose=body.purpose, audit=False, detail="export"),
        salt=secrets.token_hex(16),
    )  # fmt: skip
    guard.record(caller, "export", patient_ids=result.patient_ids, sop_instance_uids=result.exported,
                 detail=f"{body.purpose.value}: {len(result.refused)} refused")  # fmt: skip
    if not result.exported:
        raise InvalidInput("none of these images may be exported: " + "; ".join(sorted(set(result.refused.values()))), field="sop_instance_uids")
    return Response(
        result.archive, media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="ologies-teaching-export.zip"',
                 "X-Ologies-Refused": json.dumps(result.refused)},
    )  # fmt: skip


def _own_records(caller: Any) -> tuple[str, ...] | None:
    """The trusts whose records of this patient the caller governs: information governance its
    own trust's (another trust's are "not found", as everywhere); administrators every trust's."""
    # Not the policy's visible_trusts: a clinician's cross-trust grant is for direct care only.
    return None if caller.principal.role is RoleValues.ADMIN else (caller.principal.trust,)


@router.get("/patients/{nhs_number}/retention")
def retention(nhs_number: str, services: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    """When the patient's images at the caller's trust may first be considered for deletion."""
    services.guard.require(caller, Action.AUDIT_READ)
    patient_id = _patient(nhs_number)
    try:
        return Governance(services.repository).retention(patient_id, trusts=_own_records(caller))
    finally:  # the answer says whether and how many images are held: reading it is audited
        services.guard.record(caller, "view", patient_ids=[patient_id], detail="retention")


@router.put("/patients/{nhs_number}/legal-hold")
def set_legal_hold(nhs_number: str, body: Reason, services: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    """Hold a patient's images against any deletion (an inquiry or a claim)."""
    services.guard.require(caller, Action.ADMINISTER)
    patient_id = _patient(nhs_number)
    hold = Governance(services.repository).set_hold(patient_id, by=caller.principal.subject, reason=body.reason)
    services.guard.record(caller, "change", patient_ids=[patient_id], detail="legal hold set", reason=body.reason)
    return hold


@router.delete("/patients/{nhs_number}/legal-hold", status_code=204)
def release_legal_hold(nhs_number: str, services: ServicesDep, caller: CallerDep) -> Response:
    services.guard.require(caller, Action.ADMINISTER)
    patient_id = _patient(nhs_number)
    Governance(services.repository).release_hold(patient_id)
    services.guard.record(caller, "change", patient_ids=[patient_id], detail="legal hold released")
    return Response(status_code=204)


@router.post("/patients/{nhs_number}/deletion-requests", status_code=201)
def request_deletion(nhs_number: str, body: Reason, services: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    """Ask for a patient's images to be deleted after their retention period; an administrator
    (not the requester) must approve it. Nothing is ever deleted automatically."""
    services.guard.require(caller, Action.CHANGE)
    patient_id = _patient(nhs_number)
    trusts = _own_records(caller)
    request = Governance(services.repository).request_deletion(
        patient_id, by=caller.principal.subject, reason=body.reason, trust=trusts[0] if trusts else "")  # fmt: skip
    services.guard.record(caller, "change", patient_ids=[patient_id], detail=f"deletion requested {request.request_id}", reason=body.reason)
    return request.__dict__


@router.post("/deletion-requests/{request_id}/approval")
def approve_deletion(request_id: str, services: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    services.guard.require(caller, Action.ADMINISTER)
    governance = Governance(services.repository)
    patient_id = governance._load(request_id).patient_id
    deleted = governance.approve_deletion(request_id, by=caller.principal.subject)
    services.guard.record(caller, "delete", patient_ids=[patient_id], sop_instance_uids=deleted, detail=f"deletion {request_id} approved")
    return {"request_id": request_id, "deleted": len(deleted)}
