"""Prometheus metrics of the service: what operators graph and alert on (RELIABILITY.md section 4).

Every metric is labelled with bounded values only: route templates (never a raw path, which can
hold an NHS number), status codes, ingest routes, outcome codes and backend operation names.
Nothing here may carry patient data.

**Several worker processes** (``ologies serve --workers N``): ``ologies serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before any worker starts, so each worker writes its
samples there and any one of them (or the separate exporter of ``--metrics-port``) reports the sum
over all of them. Without that variable (tests, a single embedded process) the values are this
process's own.

Metrics:

* ``ologies_http_request_duration_seconds{method,route,status}`` histogram (its ``_count`` is the
  request count: ``rate()`` of it is the request rate);
* ``ologies_http_requests_in_flight`` gauge (summed over live workers);
* ``ologies_ingest_total{route,outcome}``: instances accepted (``outcome="stored"``) and uploads
  refused (``outcome`` = the error code, e.g. ``unsupported_media_type``) by ingest route (``api``,
  ``web``, ``stowrs``, ``cstore``, ``watch``, ``cli``);
* ``ologies_backend_duration_seconds{backend,operation}`` histogram and
  ``ologies_backend_errors_total{backend,operation}``: object store and index calls, and those
  that failed as unavailable;
* ``ologies_index_pending_depth``: "index pending" markers in the store (instances stored but not
  yet searchable), counted at most once per ``ttl`` seconds whatever the scrape rate.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from repository.errors import BackendUnavailable

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # set up by web/multiprocess.py for ologies serve

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)

HTTP_DURATION = Histogram(
    "ologies_http_request_duration_seconds",
    "HTTP requests by route template and status, with their duration",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "ologies_http_requests_in_flight", "HTTP requests being served now", multiprocess_mode="livesum"
)
INGEST = Counter(
    "ologies_ingest_total",
    "Instances stored (outcome=stored) and uploads refused (outcome=error code), by ingest route",
    ["route", "outcome"],
)
BACKEND_DURATION = Histogram(
    "ologies_backend_duration_seconds",
    "Object store and index calls, by backend and operation",
    ["backend", "operation"],
    buckets=_LATENCY_BUCKETS,
)
BACKEND_ERRORS = Counter(
    "ologies_backend_errors_total",
    "Object store and index calls that failed because the backend was unavailable",
    ["backend", "operation"],
)


def count_ingest(route: str, outcome: str, n: int = 1) -> None:
    if n > 0:
        INGEST.labels(route=route or "unknown", outcome=outcome or "error").inc(n)


# -- backends ----------------------------------------------------------------------------------
class Instrumented:
    """A transparent proxy over an object store or a search index that times each call and counts
    the calls that raise ``BackendUnavailable``. Attributes are looked up on the wrapped object at
    each use (nothing cached), so it behaves exactly as the object it wraps."""

    def __init__(self, inner: Any, backend: str) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_backend", backend)

    @property
    def wrapped(self) -> Any:
        return self._inner

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name.startswith("_") or not callable(value) or inspect.isclass(value):
            return value
        return functools.partial(_timed, self._backend, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._inner, name, value)

    def __repr__(self) -> str:
        return f"Instrumented({self._inner!r})"


def _timed(backend: str, operation: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    started = time.perf_counter()
    try:
        result = fn(*args, **kwargs)
    except BackendUnavailable:
        BACKEND_ERRORS.labels(backend, operation).inc()
        raise
    finally:
        BACKEND_DURATION.labels(backend, operation).observe(time.perf_counter() - started)
    if inspect.isgenerator(result):
        return _counted_iteration(backend, operation, result)
    return result


def _counted_iteration(backend: str, operation: str, items: Iterator[Any]) -> Iterator[Any]:
    try:
        yield from items
    except BackendUnavailable:
        BACKEND_ERRORS.labels(backend, operation).inc()
        raise


def instrument(inner: Any, backend: str) -> Any:
    return inner if isinstance(inner, Instrumented) else Instrumented(inner, backend)


# -- pending-index depth -----------------------------------------------------------------------
class PendingDepth(Collector):
    """``ologies_index_pending_depth`` from a listing of the store's pending markers, cached for
    ``ttl`` seconds (a listing of a large bucket is not free; a scrape every few seconds must not
    turn into a listing every few seconds). A store that does not answer reports NaN."""

    def __init__(self, count: Callable[[], int], *, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._count = count
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._value: float | None = None
        self._at = 0.0

    def value(self) -> float:
        with self._lock:
            now = self._clock()
            if self._value is None or now - self._at >= self.ttl:
                try:
                    self._value = float(self._count())
                except BackendUnavailable:
                    self._value = float("nan")
                self._at = now
            return self._value

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "ologies_index_pending_depth",
            "Instances stored but not yet searchable (index pending markers in the store)",
            value=self.value(),
        )


def exposition(*extra: Collector) -> bytes:
    """The text exposition of every metric: all workers' samples in multi-process mode, this
    process's otherwise, followed by the ``extra`` collectors (computed now, by this process)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY

        body = generate_latest(REGISTRY)
    if extra:
        registry = CollectorRegistry(auto_describe=False)
        for collector in extra:
            registry.register(collector)
        body += generate_latest(registry)
    return body
