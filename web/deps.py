"""Typed dependency aliases, so that routes receive services rather than reach for globals."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from web.services import Services


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]
