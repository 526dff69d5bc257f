from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from repository.errors import BackendUnavailable
from web.deps import ServicesDep

router = APIRouter(tags=["health"])

#: a readiness answer never waits longer than this for a backend (a hung store or cluster
#: otherwise holds the probe for its client's full timeouts and retries)
READINESS_DEADLINE_SECONDS = 3.0
# Few threads: while a backend hangs, probes queue here and report "no answer" at the deadline
# instead of each holding a worker thread of its own.
_probes = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ologies-readyz")


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(services: ServicesDep) -> JSONResponse:
    """Readiness: the object store and the index both answer, within a short deadline."""
    backends = (("store", services.repository.store), ("index", services.repository.index))
    pings = {name: _probes.submit(backend.ping) for name, backend in backends}
    checks: dict[str, str] = {}
    for name, ping in pings.items():
        try:
            ping.result(timeout=READINESS_DEADLINE_SECONDS)
            checks[name] = "ok"
        except FutureTimeout:
            checks[name] = f"unavailable: no answer within {READINESS_DEADLINE_SECONDS:g} s"
        except BackendUnavailable as exc:
            checks[name] = f"unavailable: {exc.message}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503)
