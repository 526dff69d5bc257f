from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from repository.errors import BackendUnavailable
from web.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(services: ServicesDep) -> JSONResponse:
    """Readiness: the object store and the index both answer."""
    checks: dict[str, str] = {}
    for name, backend in (("store", services.repository.store), ("index", services.repository.index)):
        try:
            backend.ping()
            checks[name] = "ok"
        except BackendUnavailable as exc:
            checks[name] = f"unavailable: {exc.message}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503)
