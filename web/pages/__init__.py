"""The web pages for photographers and clinicians: server-rendered with the NHS.UK design system,
built on the same services as the JSON API, and usable without JavaScript.

``create_app`` includes ``router``. Page-wide concerns (sign-in, error pages) live in
``web.pages.context``, so each page handler stays a few lines long.
"""

from __future__ import annotations

from fastapi import APIRouter

from web.pages import assets, clinical, signin, upload, viewer

router = APIRouter(include_in_schema=False)
for _module in (assets, signin, upload, clinical, viewer):
    router.include_router(_module.router)
