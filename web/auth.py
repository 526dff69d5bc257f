"""Authentication for every route: bearer JWTs from an OpenID Connect provider (NHS CIS2, Entra
ID, Keycloak), device and service API keys, and signed session cookies for the web pages (with
CSRF protection). The result is a ``Principal``; what it may do is ``AccessPolicy``'s decision.

Failures say only "authentication required" (401): never which part was wrong. Each failure is
audited as a sign-in failure with the client's address.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from repository.access import Principal, RoleValues
from repository.audit import OUTCOME_MINOR_FAILURE, AuditEvent
from repository.errors import Forbidden, Unauthenticated
from repository.guard import Caller
from web.services import Services

SESSION_COOKIE = "ologies_session"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
MAX_HEADER_BYTES = 8192


class OIDCVerifier:
    """Validates bearer JWTs: signature by a key from the provider's JWKS (refetched when a new
    key id appears, so key rotation needs no restart), issuer, audience, expiry and not-before;
    only asymmetric algorithms are accepted, so ``alg: none`` and HS256-with-the-public-key fail.
    """

    ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]

    def __init__(
        self, *, issuer: str, audience: str, jwks_url: str, role_claim: str, trust_claim: str, refresh_cooldown: float = 30.0
    ) -> None:
        self.issuer, self.audience = issuer, audience
        self.role_claim, self.trust_claim = role_claim, trust_claim
        self.jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5, cooldown_duration=refresh_cooldown)

    def principal(self, token: str) -> Principal:
        try:
            key = self.jwks.get_signing_key_from_jwt(token).key
            claims = jwt.decode(
                token, key, algorithms=self.ALGORITHMS, audience=self.audience, issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]}, leeway=30,
            )  # fmt: skip
        except (jwt.PyJWTError, ValueError, KeyError) as exc:
            raise Unauthenticated("invalid credentials") from exc
        roles = claims.get(self.role_claim)
        roles = [roles] if isinstance(roles, str) else list(roles or [])
        role = next((RoleValues(r) for r in roles if r in {v.value for v in RoleValues}), None)
        trust = claims.get(self.trust_claim)
        if role is None or not isinstance(trust, str) or not trust:
            raise Unauthenticated("invalid credentials")
        return Principal(f"oidc:{claims['sub']}", str(claims.get("name") or claims["sub"]), role, trust.upper(), kind="oidc")


class Sessions:
    """Signed session cookies: ``{"u": username, "c": csrf token, "g": session generation}``,
    re-checked against the account on each use, so that a disabled account, or a session its
    user signed out of (``Accounts.end_sessions`` moves the generation on), stops working on
    every worker and server within ``repository.accounts.CACHE_SECONDS``."""

    def __init__(self, secret: str, *, max_age: int) -> None:
        self.serializer = URLSafeTimedSerializer(secret, salt="ologies-session")
        self.max_age = max_age

    def issue(self, username: str, generation: int = 0) -> tuple[str, str]:
        csrf = secrets.token_urlsafe(24)
        return self.serializer.dumps({"u": username, "c": csrf, "g": generation, "t": int(time.time())}), csrf

    def read(self, cookie: str) -> dict[str, Any] | None:
        try:
            data = self.serializer.loads(cookie, max_age=self.max_age)
        except BadSignature:
            return None
        if not (isinstance(data, dict) and isinstance(data.get("u"), str) and isinstance(data.get("c"), str)):
            return None
        generation = data.get("g", 0)  # cookies from before generations count as the first
        return {**data, "g": generation} if isinstance(generation, int) and not isinstance(generation, bool) else None


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def authenticate(request: Request, services: Services) -> tuple[Principal, dict[str, Any] | None]:
    """The principal behind the request's credentials (and the session, for cookies)."""
    header = request.headers.get("authorization", "")
    api_key = request.headers.get("x-api-key", "")
    if len(header) > MAX_HEADER_BYTES or len(api_key) > MAX_HEADER_BYTES:
        raise Unauthenticated("invalid credentials")
    if header:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() == "basic" and token:
            # DICOMweb clients (PACS, viewers, Orthanc's "Username"/"Password") often speak only
            # Basic: the password is an API key, the user name is ignored.
            return services.accounts.authenticate_key(_basic_password(token)), None
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("invalid credentials")
        if token.startswith("olk_"):
            return services.accounts.authenticate_key(token), None
        if services.oidc is None:
            raise Unauthenticated("invalid credentials")
        return services.oidc.principal(token), None
    if api_key:
        return services.accounts.authenticate_key(api_key), None
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        session = services.sessions.read(cookie)
        if session is not None:
            principal = services.accounts.active_user(session["u"], session["g"])
            if request.method in UNSAFE_METHODS:
                check_csrf(request, session)
            return principal, session
    raise Unauthenticated("authentication required")


class CsrfRefused(Forbidden):
    """A change made with a session cookie but without that session's CSRF token: a page from
    before the user signed in again (or another site). Its own code, so that the page's script
    can say "reload or sign in again" instead of refusing the photograph."""

    code = "csrf_failed"


def check_csrf(request: Request, session: dict[str, Any]) -> None:
    """A change made with a session cookie must carry the session's CSRF token (a header from
    the page's scripts, or the form action's query parameter)."""
    presented = request.headers.get(CSRF_HEADER) or request.query_params.get("csrf_token") or ""
    # As bytes: compare_digest refuses a str with non-ASCII characters (a TypeError, a 500).
    if not hmac.compare_digest(presented.encode(), str(session["c"]).encode()):
        raise CsrfRefused("the form has expired or did not come from this site: reload the page and try again")


def _basic_password(token: str) -> str:
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise Unauthenticated("invalid credentials") from None
    return decoded.partition(":")[2]


def get_caller(request: Request) -> Caller:
    """Authenticate the request (401 otherwise): every route except health and sign-in uses it."""
    services: Services = request.app.state.services
    try:
        principal, session = authenticate(request, services)
    except (Unauthenticated, Forbidden) as exc:
        services.audit.record(AuditEvent.by(
            None, "sign-in", source=client_address(request), outcome=OUTCOME_MINOR_FAILURE,
            detail=f"{request.method} {request.url.path}: {exc.code}",
        ))  # fmt: skip
        raise
    request.state.session = session
    return Caller(principal, client_address(request))


CallerDep = Annotated[Caller, Depends(get_caller)]
