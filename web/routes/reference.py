"""Coded lists for clients and forms: body sites (search as you type), trusts, specialties."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from web.auth import get_caller
from web.deps import ServicesDep

# Coded lists hold no patient data, but the service is closed to the unauthenticated.
router = APIRouter(prefix="/api/v1", tags=["reference"], dependencies=[Depends(get_caller)])


@router.get("/body-sites")
def body_sites(services: ServicesDep, q: Annotated[str, Query(max_length=64)] = "", limit: int = 50) -> list[dict[str, Any]]:
    """SNOMED CT body sites (CID 4029/4031), matching ``q`` on meaning or code."""
    catalogue = services.catalogue
    sites = catalogue.search_body_sites(q, limit=max(1, min(limit, 200))) if q else list(catalogue.body_sites.values())
    return [asdict(s) for s in sites]


@router.get("/trusts")
def trusts(services: ServicesDep) -> list[dict[str, Any]]:
    return [{"ods": t.ods, "name": t.name, "predecessors": list(t.predecessors)} for t in services.catalogue.trusts.values()]


@router.get("/specialties")
def specialties(services: ServicesDep) -> list[dict[str, str]]:
    return [asdict(s) for s in services.catalogue.specialties.values()]
