"""Who may do what: roles, trust scoping, cross-trust grants and consent (DECISIONS.md 18).

This is the one place where access is decided. The web routes, DICOMweb and the DIMSE listener
all ask ``AccessPolicy``; none of them decides on its own. Nothing here knows about HTTP.

Rules:
- Users act for one trust in one role. Devices may only upload, for their own trust.
- Clinicians and photographers see their own trust's images. A clinician who needs another
  trust's images of a patient for direct care states a reason once for that patient and is
  granted time-limited access to that patient's images at every trust (audited, reportable).
- Information governance reads the audit trail and manages consent, retention and legal holds
  for their trust; administrators may do everything, everywhere.
- Another trust's image is answered as "not found" to anyone without a grant, so that its
  existence does not leak (RELIABILITY.md I1); only counts per trust are shown to clinicians,
  so that they know to ask.
- Consent limits use: teaching and publication purposes see only images whose recorded
  consent allows that purpose and has not been withdrawn.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum

from repository.errors import Forbidden, NotFound, ReasonRequired


class RoleValues(str, Enum):
    PHOTOGRAPHER = "photographer"
    CLINICIAN = "clinician"
    DEVICE = "device"
    INFORMATION_GOVERNANCE = "information-governance"
    ADMIN = "admin"


class Action(str, Enum):
    UPLOAD = "upload"
    SEARCH = "search"
    VIEW = "view"
    DOWNLOAD = "download"
    EXPORT = "export"
    CHANGE = "change"  # consent withdrawal, patient reconciliation
    AUDIT_READ = "audit-read"
    ADMINISTER = "administer"  # accounts, keys, retention approval, legal hold


class PurposeValues(str, Enum):
    DIRECT_CARE = "direct-care"
    TEACHING = "teaching"
    PUBLICATION = "publication"


PERMISSIONS: dict[RoleValues, frozenset[Action]] = {
    RoleValues.PHOTOGRAPHER: frozenset({Action.UPLOAD, Action.SEARCH, Action.VIEW}),
    RoleValues.CLINICIAN: frozenset({Action.UPLOAD, Action.SEARCH, Action.VIEW, Action.DOWNLOAD, Action.EXPORT}),
    RoleValues.DEVICE: frozenset({Action.UPLOAD}),
    RoleValues.INFORMATION_GOVERNANCE: frozenset({Action.SEARCH, Action.AUDIT_READ, Action.CHANGE}),
    RoleValues.ADMIN: frozenset(Action),
}

# Consent levels (as indexed) that allow each purpose; a withdrawn consent allows none but care.
CONSENT_FOR_PURPOSE: dict[PurposeValues, frozenset[str]] = {
    PurposeValues.DIRECT_CARE: frozenset({"clinical-care", "teaching", "publication"}),
    PurposeValues.TEACHING: frozenset({"teaching", "publication"}),
    PurposeValues.PUBLICATION: frozenset({"publication"}),
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a person (local account or OIDC) or a device (API key)."""

    subject: str  # stable identifier: "user:jsmith", "key:4f2a...", "oidc:<sub>"
    name: str
    role: RoleValues
    trust: str  # ODS code the caller acts for
    department: str = ""
    kind: str = "user"  # user, device, oidc

    def may(self, action: Action) -> bool:
        return action in PERMISSIONS[self.role]


@dataclass(frozen=True)
class Grant:
    """Time-limited access for one caller to one patient's images at every trust."""

    subject: str
    patient_id: str
    reason: str
    granted_at: dt.datetime
    expires_at: dt.datetime

    def active(self, now: dt.datetime) -> bool:
        return self.granted_at <= now < self.expires_at


class AccessPolicy:
    """Decisions only; where grants are kept is the ``Accounts`` store's business."""

    def __init__(self, grants_lookup, *, now=None) -> None:  # type: ignore[no-untyped-def]
        self._grant_for = grants_lookup  # (subject, patient_id) -> Grant | None
        self._now = now or (lambda: dt.datetime.now(dt.timezone.utc))

    def require(self, principal: Principal, action: Action) -> None:
        if not principal.may(action):
            raise Forbidden(f"the {principal.role.value} role may not {action.value}")

    def has_grant(self, principal: Principal, patient_id: str) -> bool:
        grant = self._grant_for(principal.subject, patient_id)
        return grant is not None and grant.active(self._now())

    def visible_trusts(self, principal: Principal, patient_id: str | None = None) -> tuple[str, ...] | None:
        """Trusts whose images this caller may see (``None``: all of them)."""
        if principal.role is RoleValues.ADMIN:
            return None
        if patient_id and principal.role is RoleValues.CLINICIAN and self.has_grant(principal, patient_id):
            return None
        return (principal.trust,)

    def check_instance(
        self,
        principal: Principal,
        action: Action,
        *,
        trust: str,
        patient_id: str,
        consent: str = "",
        consent_status: str = "",
        purpose: PurposeValues = PurposeValues.DIRECT_CARE,
    ) -> None:
        """Allow ``action`` on one stored instance, or raise.

        Another trust's instance without a grant is ``NotFound`` (no existence oracle).
        """
        self.require(principal, action)
        visible = self.visible_trusts(principal, patient_id)
        if visible is not None and trust not in visible:
            raise NotFound("instance not found")
        self.check_consent(consent, consent_status, purpose)

    @staticmethod
    def check_consent(consent: str, consent_status: str, purpose: PurposeValues) -> None:
        if purpose is PurposeValues.DIRECT_CARE:
            return  # care uses the record whatever the consent to wider use (GMC guidance)
        if consent_status.upper() == "WITHDRAWN":
            raise Forbidden("the patient has withdrawn consent for this image's use beyond direct care")
        if consent not in CONSENT_FOR_PURPOSE[purpose]:
            raise Forbidden(f"the recorded consent ({consent or 'none'}) does not allow use for {purpose.value}")

    def require_reason_for_other_trust(self, principal: Principal, patient_id: str, other_trusts: int) -> None:
        """Raise ``ReasonRequired`` if the caller could see more with a grant it has not asked for."""
        if other_trusts and principal.role is RoleValues.CLINICIAN and not self.has_grant(principal, patient_id):
            raise ReasonRequired("this patient has images at other trusts: give a reason for direct care to see them")

    def upload_trust(self, principal: Principal, requested: str | None) -> str:
        """The trust an upload is filed under: always the caller's own (RELIABILITY.md I3)."""
        self.require(principal, Action.UPLOAD)
        if requested and requested.upper() != principal.trust and principal.role is not RoleValues.ADMIN:
            raise Forbidden(f"you upload for {principal.trust}, not for {requested.upper()}")
        return (requested or principal.trust).upper() if principal.role is RoleValues.ADMIN else principal.trust
