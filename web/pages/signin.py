"""Sign in and out of the web pages with a local account (the embedded default); deployments
with an OpenID Connect provider put their bearer-token proxy or portal in front instead.

The session is a signed, HttpOnly, SameSite=Strict cookie; every form that changes something
carries the session's CSRF token, signing out included. Signing out ends the session on the
server, not only in this browser: every session of the user issued until then is void, on every
worker and server (see ``repository.accounts``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Form, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from repository.audit import OUTCOME_MINOR_FAILURE, AuditEvent
from repository.errors import Unauthenticated
from web.auth import SESSION_COOKIE, check_csrf, client_address
from web.deps import ServicesDep
from web.pages.context import page_router, render
from web.pages.forms import FormErrors

router = page_router()


def _safe_next(target: str) -> str:
    """Only a path on this site: never an open redirect to somewhere else."""
    parts = urlsplit(target or "/")
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return "/"
    return parts.path + (f"?{parts.query}" if parts.query else "")


@router.get("/sign-in")
def sign_in_form(request: Request, next: str = "/") -> Response:  # noqa: A002 - the query name
    return render(request, "sign_in.jinja", {"next": _safe_next(next), "errors": FormErrors(), "username": ""})


@router.post("/sign-in")
async def sign_in(
    request: Request, services: ServicesDep, username: str = Form(""), password: str = Form(""), next: str = Form("/")  # noqa: A002
) -> Response:
    source = client_address(request)
    try:
        principal, generation = await run_in_threadpool(services.accounts.sign_in, username[:64], password[:256])
    except Unauthenticated:
        services.audit.record(AuditEvent.by(None, "sign-in", source=source, outcome=OUTCOME_MINOR_FAILURE, detail="web sign-in failed"))
        errors = FormErrors()
        errors.add("username", "Enter a correct username and password")
        return render(request, "sign_in.jinja", {"next": _safe_next(next), "errors": errors, "username": username[:64]}, 401)
    services.audit.record(AuditEvent.by(principal, "sign-in", source=source, detail="web sign-in"))
    cookie, _csrf = services.sessions.issue(principal.subject.removeprefix("user:"), generation)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE, cookie, max_age=services.settings.session_max_age_seconds, httponly=True,
        samesite="strict", secure=services.settings.cookie_secure, path="/",
    )  # fmt: skip
    return response


@router.post("/sign-out")
def sign_out(request: Request, services: ServicesDep) -> Response:
    """End the session on the server, then in the browser. A session still in force needs the
    form's CSRF token (another site must not sign the user out); without one there is nothing to
    end on the server, and the browser's cookie is cleared all the same."""
    cookie = request.cookies.get(SESSION_COOKIE)
    session = services.sessions.read(cookie) if cookie else None
    if session is not None:
        try:
            principal = services.accounts.active_user(session["u"], session["g"])
        except Unauthenticated:
            principal = None  # already void (or the account disabled): nothing more to end
        if principal is not None:
            check_csrf(request, session)
            services.accounts.end_sessions(session["u"])
            services.audit.record(AuditEvent.by(principal, "sign-in", source=client_address(request), detail="web sign-out"))
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
