"""The composition root's product: every service object a request may need, built once."""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ingest.pipeline import Ingestor
from repository.catalogue import Catalogue
from repository.access import AccessPolicy
from repository.accounts import Accounts
from repository.audit import AuditLog
from repository.guard import Guard
from repository.errors import AlreadyExists, BackendUnavailable, ConfigurationError
from repository.metrics import instrument
from repository.registry import open_index, open_store
from repository.renditions import Renditions
from repository.service import Repository
from repository.settings import Settings

log = logging.getLogger(__name__)

SESSION_SECRET_KEY = "security/session-secret"

if TYPE_CHECKING:
    from web.auth import OIDCVerifier, Sessions

def _sessions(settings: Settings, store) -> "Sessions":  # type: ignore[no-untyped-def]
    from web.auth import Sessions

    secret = settings.session_secret
    if not secret:
        # One random key for every app server, kept with the data: created once, never rotated
        # silently (rotating it signs everyone out, which an operator may do by deleting it).
        try:
            store.put(SESSION_SECRET_KEY, secrets.token_urlsafe(48).encode(), media_type="text/plain", if_none_match=True)
        except AlreadyExists:
            pass
        with store.open(SESSION_SECRET_KEY) as handle:
            secret = handle.read().decode()
    return Sessions(secret, max_age=settings.session_max_age_seconds)


def _oidc(settings: Settings) -> "OIDCVerifier | None":
    if not settings.oidc_issuer:
        return None
    from web.auth import OIDCVerifier

    if not settings.oidc_audience:
        raise ConfigurationError("OLOGIES_OIDC_AUDIENCE is required when OLOGIES_OIDC_ISSUER is set")
    return OIDCVerifier(
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        jwks_url=settings.oidc_jwks_url or settings.oidc_issuer.rstrip("/") + "/.well-known/jwks.json",
        role_claim=settings.oidc_role_claim,
        trust_claim=settings.oidc_trust_claim,
        refresh_cooldown=settings.oidc_jwks_cooldown_seconds,
    )


def warm_up() -> None:
    """Load the DICOM standard tables the builders need now, not in the first upload."""
    from converters.iods import SOP_CLASS_UIDS
    from converters.iods.tables import preload_standard_tables

    preload_standard_tables(SOP_CLASS_UIDS)


@dataclass
class Services:
    settings: Settings
    catalogue: Catalogue
    repository: Repository
    ingestor: Ingestor
    renditions: Renditions
    accounts: Accounts
    policy: AccessPolicy
    audit: AuditLog
    guard: Guard
    sessions: "Sessions"
    oidc: "OIDCVerifier | None" = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _reconciler: threading.Thread | None = None

    @classmethod
    def build(cls, settings: Settings, *, store=None, index=None) -> "Services":  # type: ignore[no-untyped-def]
        catalogue = Catalogue.load(settings.organisations_file)
        repository = Repository(
            # timed, and failures counted, for /metrics (repository/metrics.py)
            instrument(store or open_store(settings), "store"), instrument(index or open_index(settings), "index"),
            index_retry_seconds=settings.index_retry_seconds, reindex_workers=settings.reindex_workers,
        )  # fmt: skip
        try:
            repository.index.ensure_schema()
        except BackendUnavailable as exc:
            # Start anyway: uploads are still accepted (as pending) and search answers 503.
            log.warning("index unavailable at start-up: %s", exc)
        warm_up()
        accounts = Accounts(repository.store, known_trusts=set(catalogue.trusts))
        policy = AccessPolicy(accounts.grant_for)
        audit = AuditLog(repository.store, key=settings.audit_key.encode() if settings.audit_key else None)
        return cls(
            settings=settings,
            catalogue=catalogue,
            repository=repository,
            ingestor=Ingestor(repository, settings=settings, catalogue=catalogue),
            renditions=Renditions(
                repository, thumbnail_size=settings.thumbnail_size, rendered_max_size=settings.rendered_max_size,
                cache_bytes=settings.thumbnail_cache_mb * 1024 * 1024,
            ),
            accounts=accounts,
            policy=policy,
            audit=audit,
            guard=Guard(repository, policy, audit),
            sessions=_sessions(settings, repository.store),
            oidc=_oidc(settings),
        )

    def start_reconciler(self) -> None:
        """Drain "index pending" markers in the background whenever the index is back."""

        def loop() -> None:
            while not self._stop.wait(self.settings.reconcile_interval_seconds):
                self.reconcile_once()

        self._reconciler = threading.Thread(target=loop, name="ologies-reconciler", daemon=True)
        self._reconciler.start()

    def reconcile_once(self) -> int:
        try:
            self.repository.index.ensure_schema()
            done = self.repository.reconcile_pending()
            if done:
                log.info("reconciler indexed %d pending instances", done)
            return done
        except BackendUnavailable as exc:
            log.info("reconciler waiting: %s", exc)
            return 0

    def close(self) -> None:
        self._stop.set()
        try:
            self.audit.anchor()  # pin this process's chain head, so a cut-off tail is detectable
        except BackendUnavailable as exc:
            log.error("could not anchor the audit chain at shutdown: %s", exc)
        if self._reconciler is not None:
            self._reconciler.join(timeout=5)
        self.repository.index.close()
        self.repository.store.close()
