"""Every read and write of patient data by a caller goes through ``Guard``: it asks the access
policy, scopes searches to the trusts the caller may see, and writes the audit record before the
data goes out. The JSON API, the web pages, DICOMweb and the DIMSE listener all use it, so no
route can forget a check (DECISIONS.md 18-19).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from repository.access import AccessPolicy, Action, Principal, PurposeValues, RoleValues
from repository.audit import OUTCOME_MINOR_FAILURE, AuditEvent, AuditLog
from repository.errors import Forbidden, IndexUnavailable, NotFound, OlogiesError
from repository.metrics import count_ingest
from repository.service import Repository
from search.query import InstanceQuery, SearchPage

# A thumbnail fetched soon after a listing that showed it to the same caller is covered by the
# listing's audit record (which names every instance shown); other fetches are audited singly.
LISTING_COVERS_SECONDS = 600.0


@dataclass(frozen=True)
class Caller:
    principal: Principal
    source: str = ""


class Guard:
    def __init__(self, repository: Repository, policy: AccessPolicy, audit: AuditLog) -> None:
        self.repository = repository
        self.policy = policy
        self.audit = audit
        self._listed: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def record(self, caller: Caller | None, action: str, **values: Any) -> None:
        principal = caller.principal if caller else None
        self.audit.record(AuditEvent.by(principal, action, source=caller.source if caller else "", **values))

    def require(self, caller: Caller, action: Action, **audit_values: Any) -> None:
        try:
            self.policy.require(caller.principal, action)
        except Forbidden:
            self.record(caller, "denied", outcome=OUTCOME_MINOR_FAILURE, detail=f"{action.value} refused", **audit_values)
            raise

    # -- searching ---------------------------------------------------------------------------
    def search(self, caller: Caller, query: InstanceQuery, *, detail: str = "") -> SearchPage:
        """Search within the trusts the caller may see; the listing is audited with what it showed."""
        self.require(caller, Action.SEARCH)
        visible = self.policy.visible_trusts(caller.principal, query.patient_id)
        page = self.repository.index.search(dataclasses.replace(query, trusts_visible=visible))
        shown = [str(d["SOPInstanceUID"]) for d in page.items]
        self.record(
            caller, "search", detail=detail,
            patient_ids=sorted({str(d.get("PatientID")) for d in page.items}),
            sop_instance_uids=shown,
        )  # fmt: skip
        self._remember_listing(caller, shown)
        return page

    def other_trust_counts(self, caller: Caller, patient_id: str) -> dict[str, int]:
        """Images of this patient at trusts the caller cannot see yet: counts only, and only to
        clinicians (who may state a reason to see them)."""
        if caller.principal.role is not RoleValues.CLINICIAN:
            return {}
        if self.policy.visible_trusts(caller.principal, patient_id) is None:
            return {}
        page = self.repository.index.search(InstanceQuery(patient_id=patient_id, limit=1, facets=("trust",)))
        return {t: n for t, n in page.facets.get("trust", {}).items() if t != caller.principal.trust}

    def grant_cross_trust(self, caller: Caller, patient_id: str, reason: str, accounts: Any, hours: float) -> Any:
        if caller.principal.role not in (RoleValues.CLINICIAN, RoleValues.ADMIN):
            self.record(caller, "denied", outcome=OUTCOME_MINOR_FAILURE, patient_ids=[patient_id], detail="cross-trust grant refused")
            raise Forbidden("only clinicians may open another trust's images for direct care")
        grant = accounts.grant(caller.principal, patient_id, reason, hours=hours)
        self.record(caller, "grant", patient_ids=[patient_id], reason=grant.reason, detail=f"until {grant.expires_at.isoformat()}")
        return grant

    # -- one instance ------------------------------------------------------------------------
    def document(self, uid: str) -> dict[str, Any]:
        """The instance's index document, or one derived from the object while it is pending or
        while the index is down. After an index failure the index is not asked again for
        ``index_retry_seconds``: each view would otherwise pay for the failure first."""
        repository = self.repository
        if not repository.index_paused():
            try:
                return repository.index.get(uid)
            except NotFound:
                pass
            except IndexUnavailable:
                repository.pause_index()
        return repository.document_for_key(repository.locate(uid))

    def open_instance(
        self, caller: Caller, uid: str, action: Action, *, purpose: PurposeValues = PurposeValues.DIRECT_CARE,
        audit: bool = True, detail: str = "",
    ) -> dict[str, Any]:  # fmt: skip
        """Check that the caller may ``action`` this instance; audit it; return its document."""
        try:
            doc = self.document(uid)
        except NotFound:
            self.record(caller, "denied", outcome=OUTCOME_MINOR_FAILURE, sop_instance_uids=[uid], detail=f"{detail}: not found")
            raise
        patient_id = str(doc.get("PatientID") or "")
        try:
            self.policy.check_instance(
                caller.principal, action, trust=str(doc.get("_trust") or ""), patient_id=patient_id,
                consent=str(doc.get("_consent") or ""), consent_status=str(doc.get("_consent_status") or ""),
                purpose=purpose,
            )  # fmt: skip
        except (Forbidden, NotFound):
            self.record(caller, "denied", outcome=OUTCOME_MINOR_FAILURE, patient_ids=[patient_id], sop_instance_uids=[uid], detail=detail)
            raise
        if audit and not (action is Action.VIEW and self._was_listed(caller, uid)):
            self.record(
                caller, "download" if action is Action.DOWNLOAD else "view", patient_ids=[patient_id],
                study_uids=[str(doc.get("StudyInstanceUID") or "")], sop_instance_uids=[uid], detail=detail,
            )  # fmt: skip
        return doc

    # -- uploads -----------------------------------------------------------------------------
    def authorize_upload(self, caller: Caller, fields: Mapping[str, str | None]) -> dict[str, str | None]:
        """The fields an upload is filed with: under the caller's own trust (and, for a device,
        its own department), never another's (RELIABILITY.md I3)."""
        self.require(caller, Action.UPLOAD)
        principal = caller.principal
        checked = dict(fields)
        try:
            checked["trust"] = self.policy.upload_trust(principal, fields.get("trust"))
        except Forbidden:
            self.record(caller, "denied", outcome=OUTCOME_MINOR_FAILURE, detail="upload for another trust refused")
            raise
        if principal.role is RoleValues.DEVICE and principal.department:
            requested = (fields.get("specialty") or "").strip().lower()
            if requested and requested != principal.department:
                self.record(caller, "denied", outcome=OUTCOME_MINOR_FAILURE, detail="upload for another department refused")
                raise Forbidden(f"this device uploads for {principal.department}, not {requested}")
            checked["specialty"] = principal.department
        return checked

    def upload(self, caller: Caller, ingest: Callable[..., Any], files: Any, fields: Mapping[str, str | None], *, route: str) -> Any:
        """Authorise, run ``ingest(files, fields, route=...)`` and audit the outcome either way."""
        checked = self.authorize_upload(caller, fields)
        patient_hint = (fields.get("nhs_number") or "").replace(" ", "").upper()
        try:
            batch = ingest(files, checked, route=route)
        except OlogiesError as exc:
            self.record_failed_upload(caller, patient_hint if len(patient_hint) <= 24 else "", exc.code, route)
            raise
        self.record_upload(
            caller, batch.patient_id, [batch.study_instance_uid],
            [f.outcome.sop_instance_uid for f in batch.files], route,
        )  # fmt: skip
        return batch

    def record_upload(self, caller: Caller, patient_id: str, study_uids: list[str], sop_uids: list[str], route: str) -> None:
        count_ingest(route, "stored", len(sop_uids))  # every ingest route audits here: count here too
        self.record(caller, "upload", patient_ids=[patient_id], study_uids=study_uids, sop_instance_uids=sop_uids, detail=route)

    def record_failed_upload(self, caller: Caller, patient_id: str, code: str, route: str) -> None:
        count_ingest(route, code)
        self.record(
            caller, "upload", outcome=OUTCOME_MINOR_FAILURE, patient_ids=[patient_id] if patient_id else [],
            detail=f"{route}: {code}",
        )  # fmt: skip

    # -- the listing cache -------------------------------------------------------------------
    def _remember_listing(self, caller: Caller, uids: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._listed) > 100_000:
                self._listed = {k: t for k, t in self._listed.items() if now - t < LISTING_COVERS_SECONDS}
            for uid in uids:
                self._listed[(caller.principal.subject, uid)] = now

    def _was_listed(self, caller: Caller, uid: str) -> bool:
        with self._lock:
            seen = self._listed.get((caller.principal.subject, uid))
        return seen is not None and time.monotonic() - seen < LISTING_COVERS_SECONDS
