"""Pre-forked web workers for ``ologies serve --workers N`` (N > 1).

uvicorn's own supervisor *spawns* its workers, so each one imports the whole application again
(about 120 MB before it serves a request) and nothing is shared. Here the parent imports the
application once, binds the socket and forks: the workers share the imported code and tables
copy-on-write, so two workers cost far less than twice one (measure it as PSS, not RSS).

The parent runs no threads, because forking a process that has threads can copy a lock that
some thread holds. It only forks, waits, replaces a worker that dies, and passes SIGTERM and
SIGINT on to its children (uvicorn in each worker then finishes in-flight uploads). The DICOM
listener and the metrics exporter, which need threads, run together in one more child.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: a child that dies sooner than this after starting, this many times running, is not restarted:
#: it would only crash again (a bad setting, a missing store) while the parent looked healthy
QUICK_DEATH_SECONDS, QUICK_DEATHS_ALLOWED = 5.0, 5


@dataclass
class _Child:
    role: str
    target: Callable[[], None]
    started: float = field(default_factory=time.monotonic)


#: modules that the application imports inside functions, and that every worker would otherwise
#: load for itself on its first request; the backends only when configured (boto3 and the
#: Elasticsearch client are 20 MB that the embedded default never uses)
_LOADED_ON_FIRST_USE = ("repository.reconcile", "pillow_heif", "pynetdicom")


def backend_modules(store_url: str, index_url: str) -> tuple[str, ...]:
    """The adapter modules that the configured backends need."""
    store = "repository.backends.s3" if store_url.startswith("s3://") else "repository.backends.filesystem"
    index = "search.backends.elasticsearch" if index_url.startswith(("http://", "https://")) else "search.backends.sqlite"
    return store, index


def preload(modules: tuple[str, ...] = ()) -> None:
    """Import what every worker needs before forking, so that the pages are shared."""
    import gc
    import importlib

    from PIL import Image

    import web.app  # noqa: F401  (the application, converters, templates' code)
    from web.services import warm_up

    warm_up()  # the trimmed DICOM standard tables the builders consult
    Image.init()  # every Pillow format plugin, loaded on first use otherwise
    for module in (*_LOADED_ON_FIRST_USE, *modules):
        try:
            importlib.import_module(module)
        except ImportError:  # an optional extra that is not installed
            pass

    # Move everything imported so far out of the collector's reach: a collection in a worker
    # would otherwise write to every object's header and unshare the pages (CPython's advice
    # for pre-fork servers, see gc.freeze).
    gc.collect()
    gc.freeze()


def serve_prefork(
    uvicorn_config: dict[str, Any], workers: int, *, sidecar: Callable[[], None] | None = None,
    preload_modules: tuple[str, ...] = (),
) -> int:
    """Run ``workers`` uvicorn workers on one listening socket (and ``sidecar`` in a child of its
    own) until SIGTERM or SIGINT; returns the exit status."""
    import uvicorn

    config = uvicorn.Config(**uvicorn_config)
    sock = config.bind_socket()
    preload(preload_modules)
    children: dict[int, _Child] = {}
    stopping = False
    quick_deaths = 0

    def fork(child: _Child) -> None:
        pid = os.fork()
        if pid == 0:  # the child: never returns into the parent's loop
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                child.target()
            except BaseException:  # noqa: BLE001 - reported, then the child exits
                log.exception("%s worker failed", child.role)
                code = 1
            finally:
                os._exit(code)
        child.started = time.monotonic()
        children[pid] = child

    def web_worker() -> None:
        uvicorn.Server(uvicorn.Config(**uvicorn_config)).run(sockets=[sock])

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(workers):
        fork(_Child("web", web_worker))
    if sidecar is not None:
        fork(_Child("dicom listener and metrics", sidecar))
    log.info("serving with %d pre-forked workers", workers)
    status = 0
    while children:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        child = children.pop(pid, None)
        if child is None:
            continue
        _forget_metrics_of(pid)
        if stopping:
            continue
        code = os.waitstatus_to_exitcode(wait_status)
        log.error("%s worker %d ended (exit %d); starting another", child.role, pid, code)
        if time.monotonic() - child.started < QUICK_DEATH_SECONDS:
            quick_deaths += 1
            if quick_deaths >= QUICK_DEATHS_ALLOWED:
                log.critical("%s workers keep dying at start-up: stopping", child.role)
                status = 1
                stop(signal.SIGTERM, None)
                continue
            time.sleep(1.0)
        fork(child)
    sock.close()
    return status


def _forget_metrics_of(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters stay summed, as Prometheus expects)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
    except (OSError, ImportError):  # pragma: no cover - best effort
        pass


def sidecar_target(run: Callable[[], None]) -> Callable[[], None]:
    """Wrap a blocking sidecar so that SIGTERM ends it cleanly (as KeyboardInterrupt)."""

    def target() -> None:
        def interrupt(_signum: int, _frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, interrupt)
        try:
            run()
        except KeyboardInterrupt:
            pass

    return target

