"""Operations: structured JSON logs with a request ID, Prometheus metrics per request, and the
``/metrics`` endpoint.

**Logs** are one JSON object per line (structlog, also for the standard-library loggers of the
service, uvicorn and the libraries): ``timestamp`` (UTC, ``Z``), ``level``, ``logger``, ``event``
and, while a request is served, its ``request_id``. Each request ends with one ``request`` line
naming its route *template* (``/api/v1/patients/{nhs_number}/images``), never the path or the
query string, which may hold an NHS number or a name (RELIABILITY.md J6, ASVS 16.2.5). As a
second line of defence every string in a log event is scrubbed of anything shaped like an NHS
number (ten digits, alone or as 3-3-4, passing Modulus 11). Uvicorn's own access log, which
prints raw paths, is switched off by ``ologies serve``.

**Request IDs**: an ``X-Request-ID`` sent by the client (or the reverse proxy) is kept if it is a
plain token of at most 128 characters, otherwise a new one is made; either way it is returned in
the response's ``X-Request-ID`` and bound to every log line of the request, including those
written from worker threads.

**/metrics** (Prometheus text format) holds counts and durations only, labelled by route template,
status, ingest route and error code: no patient data. It is still not public: it answers the
client addresses in ``OLOGIES_METRICS_ALLOW`` (CIDR list, empty by default) and otherwise only an
administrator's credentials (401/403 for anyone else). The usual deployment scrapes the separate
exporter of ``ologies serve --metrics-port`` instead, bound to loopback or an internal interface
and never routed through the public reverse proxy.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from repository import metrics
from repository.access import RoleValues
from repository.errors import Forbidden

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# ten digits, alone or as 3-3-4 with spaces or hyphens, not part of a longer number or of a UID
_NHS_LIKE = re.compile(r"(?<![\d.])(\d{3})[ -]?(\d{3})[ -]?(\d{4})(?!\d)")
REDACTED = "[nhs-number]"

access_log = logging.getLogger("ologies.access")


# -- logging -----------------------------------------------------------------------------------
def _mod11_valid(digits: str) -> bool:
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1)))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(digits[9])


def redact_text(text: str) -> str:
    """``text`` with every NHS-number-shaped sequence replaced."""

    def replace(match: re.Match[str]) -> str:
        return REDACTED if _mod11_valid("".join(match.groups())) else match.group(0)

    return _NHS_LIKE.sub(replace, text)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_redact(v) for v in value)
    return value


def _drop_noise(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event.pop("color_message", None)  # uvicorn's ANSI-coloured copy of the message
    if event.get("message") == event.get("event"):
        event.pop("message")  # the standard library's copy of the same text
    return event


def redact_processor(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: scrub NHS-number-shaped text from every value (after the message and
    any traceback have been rendered into strings)."""
    return {k: _redact(v) for k, v in event.items()}


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def json_formatter() -> logging.Formatter:
    """The formatter of every log line: JSON, timestamps in UTC, NHS numbers scrubbed."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _drop_noise,
            redact_processor,
            structlog.processors.JSONRenderer(ensure_ascii=True),
        ],
    )


def configure_logging(*, level: str = "INFO", json: bool = True, stream: Any = None) -> None:
    """Route structlog and the standard library through one handler on ``stream`` (stderr):
    JSON lines, or readable lines for a developer's terminal (``json=False``). Idempotent."""
    structlog.configure(
        processors=[*_shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    if json:
        handler.setFormatter(json_formatter())
    else:
        handler.setFormatter(structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_shared_processors(),
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact_processor,
                        structlog.dev.ConsoleRenderer(colors=False)],
        ))  # fmt: skip
    handler.set_name("ologies")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "ologies" or type(h) is logging.StreamHandler]:
        root.removeHandler(old)  # ours from an earlier call, and logging.basicConfig's
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # raw paths; ours names the route template


# -- per request -------------------------------------------------------------------------------
def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "<unmatched>"


class RequestObservation:
    """ASGI middleware (outermost): request ID in and out, metrics by route template and status,
    and one access log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = dict(scope.get("headers") or []).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers") or [])
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        metrics.HTTP_IN_FLIGHT.inc()
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, observed_send)
            finally:
                metrics.HTTP_IN_FLIGHT.dec()
                elapsed = time.perf_counter() - started
                route = route_template(scope)
                method = scope.get("method", "")
                metrics.HTTP_DURATION.labels(method, route, str(status)).observe(elapsed)
                access_log.info("request", extra={
                    "method": method, "route": route, "status": status, "duration_ms": round(elapsed * 1000, 1),
                    "client": (scope.get("client") or ("", 0))[0],
                })  # fmt: skip


# -- /metrics ----------------------------------------------------------------------------------
router = APIRouter(include_in_schema=False)


def _networks(spec: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip()]


def address_allowed(host: str, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


@router.get("/metrics")
def metrics_endpoint(request: Request) -> Response:
    """Prometheus metrics: to allow-listed scrapers, or an administrator."""
    services = request.app.state.services
    allow = getattr(services.settings, "metrics_allow", "") or ""
    host = request.client.host if request.client else ""
    if not address_allowed(host, _networks(allow)):
        from web.auth import get_caller

        caller = get_caller(request)  # 401 without credentials
        if caller.principal.role is not RoleValues.ADMIN:
            raise Forbidden("metrics are for the monitoring system and administrators")
    return Response(metrics.exposition(pending_depth(services)), media_type=CONTENT_TYPE_LATEST)


def pending_depth(services: Any) -> metrics.PendingDepth:
    """The cached pending-index gauge of these services (one per app)."""
    collector = getattr(services, "_pending_depth", None)
    if collector is None:
        collector = metrics.PendingDepth(services.repository.pending_count)
        object.__setattr__(services, "_pending_depth", collector)
    return collector


def install_observability(app: Any) -> None:
    """Add the request middleware (outermost) and the ``/metrics`` route to ``app``."""
    app.add_middleware(RequestObservation)
    app.include_router(router)


# -- ologies serve -----------------------------------------------------------------------------
def start_metrics_exporter(host: str, port: int, settings: Any) -> Any:
    """Serve every worker's metrics (and the pending-index depth) on ``host:port`` from this
    process, in a thread; returns the server (``shutdown()`` it)."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client import multiprocess

    from repository.keys import PENDING
    from repository.registry import open_store

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    store = open_store(settings)
    registry.register(metrics.PendingDepth(lambda: sum(1 for _ in store.iter_keys(PENDING))))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
