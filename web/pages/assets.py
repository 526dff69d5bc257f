"""Static files of the pages (our CSS/JS and the built NHS.UK assets) and the start page.

Static files are served by a route rather than a mount so that the pages stay one router that
``create_app`` includes. URLs carry ``?v=<asset version>`` (see templating), so a versioned
request may be cached for a year: a new release changes the URL, never the bytes under it.
"""

from __future__ import annotations

from fastapi import Request, Response
from starlette.staticfiles import StaticFiles

from web.pages.context import PageDep, page_router
from web.pages.templating import STATIC

router = page_router()
_files = StaticFiles(directory=STATIC, check_dir=False)  # vendor/ may be absent: 404s, no crash


@router.get("/static/{path:path}", response_class=Response)
async def static(path: str, request: Request) -> Response:
    response = await _files.get_response(path, request.scope)
    if request.query_params.get("v"):
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    else:
        response.headers["Cache-Control"] = "public, max-age=300"
    return response


@router.get("/")
def home(page: PageDep) -> Response:
    return page.render("home.jinja")
