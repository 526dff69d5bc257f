"""The one table from domain errors to HTTP statuses, and the handlers that apply it.

Bodies are ``{"error": {"code", "message", "field"}}`` with a stable machine ``code``.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from repository.errors import (
    BackendUnavailable,
    ConfigurationError,
    Conflict,
    ConversionFailed,
    InvalidInput,
    MalformedRequest,
    NotAcceptable,
    NotFound,
    OlogiesError,
    PayloadTooLarge,
    QueryError,
    StorageFull,
    Unauthenticated,
    Forbidden,
    UnsupportedMediaType,
)

log = logging.getLogger(__name__)

# Most specific first: the first class that matches decides the status.
STATUS_BY_ERROR: list[tuple[type[OlogiesError], int]] = [
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (UnsupportedMediaType, 415),
    (PayloadTooLarge, 413),
    (QueryError, 400),
    (MalformedRequest, 400),
    (NotAcceptable, 406),
    (ConversionFailed, 422),
    (InvalidInput, 422),
    (BackendUnavailable, 503),
    (StorageFull, 507),
    (ConfigurationError, 500),
]


def _route(request: Request) -> str:
    """The route template (``/api/v1/patients/{nhs_number}/images``) for logs: a raw path can
    hold an NHS number (RELIABILITY.md J6)."""
    return str(getattr(request.scope.get("route"), "path", "") or "<unmatched>")


def status_for(exc: OlogiesError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(code: str, message: str, field: str | None = None) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "field": field}}


async def _ologies_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OlogiesError)
    status = status_for(exc)
    headers = {}
    if isinstance(exc, BackendUnavailable):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="ologies"'
    if status >= 500:
        log.error("%s on %s %s: %s", exc.code, request.method, _route(request), exc.message, exc_info=status == 500)
    return JSONResponse(error_body(exc.code, exc.message, exc.field), status_code=status, headers=headers)


def first_validation_error(exc: RequestValidationError) -> tuple[dict, str | None]:  # type: ignore[type-arg]
    """FastAPI's first complaint and the field it names (``None`` when it names none)."""
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    return first, ".".join(location) or None


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first, field = first_validation_error(exc)
    message = f"{field}: {first.get('msg', 'invalid')}" if field else str(first.get("msg", "invalid request"))
    status = 400 if first.get("loc", ("",))[0] == "query" else 422
    return JSONResponse(error_body("invalid_input", message, field), status_code=status)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        error_body("http_error", str(exc.detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, _route(request))
    return JSONResponse(error_body("internal_error", "an unexpected error occurred"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(OlogiesError, _ologies_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, _unexpected)
