"""What every page handler receives, and the one place where page-wide concerns live.

Handlers take a ``Page`` (``PageDep``) and stay thin: read the request, ask the services, render.
When sign-in arrives (issue 6), ``get_page`` is where the signed-in user is resolved and checked,
so that every page gains it at once; ``PageRoute`` is where domain errors become HTML pages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from starlette.responses import HTMLResponse

from repository.catalogue import Catalogue
from repository.errors import BackendUnavailable, OlogiesError
from web.deps import ServicesDep
from web.errors import status_for
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

    @property
    def catalogue(self) -> Catalogue:
        return self.services.catalogue

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return render(self.request, name, context, status)


def get_page(request: Request, services: ServicesDep) -> Page:
    return Page(request, services)


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
            except OlogiesError as exc:
                return render_error(request, exc)

        return page_handler


def page_router() -> APIRouter:
    return APIRouter(route_class=PageRoute, include_in_schema=False, default_response_class=HTMLResponse)
