"""What every page handler receives, and the one place where page-wide concerns live.

Handlers take a ``Page`` (``PageDep``) and stay thin: read the request, ask the services, render.
When sign-in arrives (issue 6), ``get_page`` is where the signed-in user is resolved and checked,
so that every page gains it at once; ``PageRoute`` is where domain errors become HTML pages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import HTMLResponse, RedirectResponse

from repository.catalogue import Catalogue
from repository.errors import BackendUnavailable, NotFound, OlogiesError, QueryError, Unauthenticated
from repository.guard import Caller
from search.query import InstanceQuery, SearchPage
from web.auth import get_caller
from web.deps import ServicesDep
from web.errors import first_validation_error, status_for
from web.pages.templating import build_templates
from web.services import Services

TEMPLATES = build_templates()


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    headers = {"Cache-Control": "no-store"}  # pages show patient data: never from a shared cache
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status, headers=headers)


@dataclass
class Page:
    request: Request
    services: Services
    caller: Caller
    csrf_token: str = ""

    @property
    def catalogue(self) -> Catalogue:
        return self.services.catalogue

    def search(self, query: InstanceQuery, *, detail: str = "page") -> SearchPage:
        """Every page's search goes through the guard: scoped to the caller's trusts, audited."""
        return self.services.guard.search(self.caller, query, detail=detail)

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("csrf_token", self.csrf_token)
        context.setdefault("signed_in", self.caller.principal)
        return render(self.request, name, context, status)


def get_page(request: Request, services: ServicesDep) -> Page:
    """The signed-in caller (a session cookie, or API credentials), or a redirect to sign in."""
    caller = get_caller(request)
    session = getattr(request.state, "session", None) or {}
    return Page(request, services, caller, session.get("c", ""))


PageDep = Annotated[Page, Depends(get_page)]


def render_error(request: Request, exc: OlogiesError) -> HTMLResponse:
    status = status_for(exc)
    response = render(request, "error.jinja", {"status": status, "error": exc}, status)
    if isinstance(exc, BackendUnavailable):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


class PageRoute(APIRoute):
    """Renders domain errors as an NHS-styled page instead of the API's JSON body."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthenticated:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/sign-in?next={quote(target, safe='')}", status_code=303)
            except OlogiesError as exc:
                return render_error(request, exc)
            except RequestValidationError as exc:  # a page's query or form, not its data: say so on a page
                return render_error(request, _as_query_error(exc))

        return page_handler


def _as_query_error(exc: RequestValidationError) -> QueryError:
    first, field = first_validation_error(exc)
    reason = str(first.get("msg", "invalid")).rstrip(".").lower()
    what = f"“{field}” in this page's address is missing or wrong ({reason})" if field else "this page's address is wrong"
    return QueryError(what, field=field)


def page_router() -> APIRouter:
    return APIRouter(route_class=PageRoute, include_in_schema=False, default_response_class=HTMLResponse)


_NOT_PAGES = ("/api/", "/dicomweb", "/metrics", "/healthz", "/readyz", "/openapi.json", "/docs", "/redoc", "/static/")


def install_page_errors(app: FastAPI) -> None:
    """A browser that asks for an address with no page gets the "Not found" page, not the API's
    JSON body; API, DICOMweb and other machine routes keep their JSON."""
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from web.errors import http_error

    async def not_found_page(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        path = request.url.path
        if (exc.status_code == 404 and request.method in ("GET", "HEAD") and not path.startswith(_NOT_PAGES)
                and "text/html" in request.headers.get("accept", "")):  # fmt: skip
            return render_error(request, NotFound("there is no page at this address"))
        return await http_error(request, exc)

    app.add_exception_handler(StarletteHTTPException, not_found_page)
