"""The ``ologies`` command: init, serve, ingest, reindex, reconcile, check.

Domain errors map to exit codes here as they map to HTTP statuses in ``web/errors.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from repository.errors import (
    BackendUnavailable,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    OlogiesError,
    Unauthenticated,
)

EXIT_CODES: list[tuple[type[OlogiesError], int]] = [
    (InvalidInput, 2),
    (Conflict, 3),
    (NotFound, 4),
    (BackendUnavailable, 75),  # EX_TEMPFAIL: try again later
    (Unauthenticated, 77),  # EX_NOPERM
    (Forbidden, 77),
]


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from repository.settings import Settings

    overrides = {k: v for k, v in {"store_url": args.store_url, "index_url": args.index_url}.items() if v}
    return Settings(**overrides)


def _services(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from web.services import Services

    return Services.build(_settings(args))


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    from web.multiprocess import prepare_multiprocess_metrics

    prepare_multiprocess_metrics()  # before prometheus_client is imported here or in a worker
    from ingest.allocator import tune_allocator

    tune_allocator()  # here, so that every process forked from this one has it (the DICOM listener too)
    import uvicorn

    from web.observability import configure_logging

    settings = _settings(args)  # validate once here, so a bad setting fails before any worker
    configure_logging(level=settings.log_level, json=settings.log_format == "json")
    _check_store(settings)
    from ingest.spool import tidy_spool

    tidy_spool(settings.spool_dir)  # what an earlier run stopped mid-upload left
    # Workers are separate processes (the GIL would otherwise serialise the Python work of
    # concurrent uploads); they read their settings from the environment.
    for name, value in (("OLOGIES_STORE_URL", args.store_url), ("OLOGIES_INDEX_URL", args.index_url)):
        if value:
            os.environ[name] = value
    workers = args.workers or settings.workers
    dimse_port = args.dimse_port or settings.dimse_port
    metrics_port = args.metrics_port or settings.metrics_port
    uvicorn_config = dict(
        app="web.app:create_app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        log_level="info",
        log_config=None,  # our JSON logging (web/observability.py), already configured
        access_log=False,  # it prints raw paths (NHS numbers); ours names the route template
        timeout_graceful_shutdown=30,  # in-flight uploads finish after SIGTERM
    )
    if workers > 1:  # forked after one import of the application, sharing its pages
        from web.prefork import backend_modules, serve_prefork, sidecar_target

        sidecar = None
        if dimse_port or metrics_port:
            sidecar = sidecar_target(lambda: _run_sidecar(settings, dimse_port, metrics_port))
        modules = backend_modules(settings.store_url, settings.index_url)
        return serve_prefork(uvicorn_config, workers, sidecar=sidecar, preload_modules=modules)
    with _beside_the_web(settings, dimse_port, metrics_port):
        uvicorn.run(**uvicorn_config)
    return 0


@contextmanager
def _beside_the_web(settings, dimse_port: int | None, metrics_port: int | None) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The DICOM listener and the exporter of every worker's metrics, while the block runs (in the
    server's own process, or in the child of a pre-forked one)."""
    from web.observability import start_metrics_exporter

    listener = exporter = services = None
    try:
        if dimse_port:
            from ingest.dimse import DimseListener
            from web.services import Services

            services = Services.build(settings)
            listener = DimseListener(services)
            listener.start(port=dimse_port)
        if metrics_port:
            exporter = start_metrics_exporter(settings.metrics_host, metrics_port, settings)
        yield
    finally:
        if listener is not None:
            listener.stop()
        if exporter is not None:
            exporter.shutdown()
        if services is not None:
            services.close()


def _run_sidecar(settings, dimse_port: int | None, metrics_port: int | None) -> None:  # type: ignore[no-untyped-def]
    """The sidecar child of a pre-forked server: listener and exporter until interrupted."""
    import threading

    with _beside_the_web(settings, dimse_port, metrics_port):
        threading.Event().wait()


def cmd_dimse(args: argparse.Namespace) -> int:
    """Run only the DICOM listener (C-STORE, C-ECHO, C-FIND) until interrupted."""
    from ingest.allocator import tune_allocator
    from ingest.dimse import serve_forever

    tune_allocator()
    services = _services(args)
    serve_forever(services, host=args.host, port=args.port)
    services.close()
    return 0


def _check_store(settings) -> None:  # type: ignore[no-untyped-def]
    """Stop ``serve`` with one clear message if the store is missing or unreachable: every worker
    needs it at start-up (keys, sessions, audit), and would otherwise fail over and over."""
    from repository.errors import StoreUnavailable
    from repository.registry import open_store

    store = open_store(settings)
    try:
        store.ping()
    except StoreUnavailable as exc:
        raise StoreUnavailable(f"{exc.message}; is the store up, and has `ologies init` been run?") from exc
    finally:
        store.close()


def cmd_init(args: argparse.Namespace) -> int:
    """Prepare the backends once per deployment (idempotent): the bucket, if it is missing and
    allowed, and the search index with its alias. Nothing else creates a bucket: ``serve`` and
    the other commands refuse a missing one as a configuration problem."""
    from repository.registry import open_index, open_store

    settings = _settings(args)
    store, index = open_store(settings), open_index(settings)
    try:
        ensure_bucket = getattr(store, "ensure_bucket", None)
        if ensure_bucket is not None and not args.no_create_bucket:
            created = ensure_bucket()
            print(f"store: bucket {store.bucket} {'created' if created else 'already exists'}")
        store.ping()
        print(f"store: {_redacted(settings.store_url)} answers")
        index.ensure_schema()
        print(f"index: {_redacted(settings.index_url)} ready")
    finally:
        index.close()
        store.close()
    return 0


def _redacted(url: str) -> str:
    """A URL without any user:password part, for printing."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc)) if "@" in parts.netloc else url


def cmd_ingest(args: argparse.Namespace) -> int:
    from ingest.pipeline import IncomingFile

    services = _services(args)
    fields = {name: getattr(args, name) for name in _FIELDS}
    files = [IncomingFile(Path(p), Path(p).name, private=False) for p in args.files]
    for f in files:
        if not f.path.is_file():
            raise InvalidInput(f"{f.filename}: no such file", field="file")
    from ingest.cli_security import cli_caller

    # Audited as the operating-system user; filed under the trust the command names.
    batch = services.guard.upload(cli_caller(), services.ingestor.ingest, files, fields, route="cli")
    out = {
        "study_instance_uid": batch.study_instance_uid,
        "searchable": batch.all_indexed,
        "files": [
            {"filename": r.filename, "status": r.outcome.status, "sop_instance_uid": r.outcome.sop_instance_uid}
            for r in batch.files
        ],
    }
    print(json.dumps(out, indent=2, ensure_ascii=False))
    services.close()
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    """Rebuild the index from a listing of the store. Interrupted (Ctrl-C, a crash, a kill), it
    is run again: Elasticsearch continues the interrupted index and skips what it holds; SQLite
    rebuilds in one transaction, so an interrupted run changed nothing."""
    from tqdm import tqdm

    services = _services(args)
    repository = services.repository
    try:
        total = None if args.quiet else sum(1 for _ in repository.iter_instance_keys())
        with tqdm(desc="reindex", total=total, unit=" instances", disable=args.quiet) as bar:
            count = repository.reindex(progress=lambda _key: bar.update(1), force=args.force)
    except KeyboardInterrupt:
        print("reindex interrupted: the live index is unchanged; run `ologies reindex` again to resume",
              file=sys.stderr)  # fmt: skip
        return 130
    finally:
        services.close()
    report = repository.last_reindex
    rebuild = getattr(report, "rebuild", None)
    if rebuild is not None:  # Elasticsearch: say what the rebuild did
        how = "resumed an interrupted rebuild" if rebuild.resumed else "new index"
        print(f"index {rebuild.index} ({how}): {rebuild.created} created, "
              f"{rebuild.skipped} skipped (already written by live uploads), "
              f"{rebuild.carried_over} already there from the interrupted run (not read again); "
              f"{rebuild.seconds:.1f} s")  # fmt: skip
    if report is not None and (report.locators_restored or report.locators_removed or report.markers_cleared or report.unreadable):
        print(f"{report.locators_restored} locators restored, {report.locators_removed} removed (their object "
              f"was gone), {report.markers_cleared} pending markers cleared, {report.unreadable} objects "
              f"unreadable (see the log)")  # fmt: skip
    print(f"indexed {count} instances")
    return 1 if report is not None and report.unreadable else 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    services = _services(args)
    done = services.repository.reconcile_pending(force=args.force)
    print(f"indexed {done} pending instances; {services.repository.pending_count()} markers remain")
    services.close()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    services = _services(args)
    report = services.repository.check()
    print(json.dumps({
        "objects": report.objects,
        "indexed": report.indexed,
        "pending_markers": report.pending_markers,
        "missing_from_index": report.missing_from_index,
        "missing_from_store": report.missing_from_store,
        "locators_without_object": report.locators_without_object,
        "objects_without_locator": report.objects_without_locator,
        "consistent": report.consistent,
    }, indent=2))  # fmt: skip
    services.close()
    return 0 if report.consistent else 1


_FIELDS = (
    "nhs_number", "family_name", "given_name", "birth_date", "sex", "trust", "specialty",
    "body_site", "laterality", "consent", "consent_recorded_by", "description", "photographer",
    "accession_number", "study_uid", "modality", "tracking_id",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ologies", description=__doc__)
    parser.add_argument("--store-url", help="override OLOGIES_STORE_URL")
    parser.add_argument("--index-url", help="override OLOGIES_INDEX_URL")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="create the bucket (if missing) and the search index; idempotent")
    init.add_argument("--no-create-bucket", action="store_true",
                      help="only check that the bucket exists and answers (it is provisioned elsewhere)")
    init.set_defaults(func=cmd_init)

    serve = sub.add_parser("serve", help="run the web service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, help="worker processes (default OLOGIES_WORKERS, 1)")
    serve.add_argument("--dimse-port", type=int, help="also run the DICOM listener on this port (OLOGIES_DIMSE_PORT)")
    serve.add_argument("--metrics-port", type=int,
                       help="also export the metrics of all workers on this port, no sign-in (OLOGIES_METRICS_PORT; "
                            "bound to OLOGIES_METRICS_HOST, 127.0.0.1)")
    serve.set_defaults(func=cmd_serve)

    dimse = sub.add_parser("dimse", help="run the DICOM listener only (Storage, Verification, Study Root C-FIND)")
    dimse.add_argument("--host", help="address to listen on (default OLOGIES_DIMSE_HOST, 127.0.0.1)")
    dimse.add_argument("--port", type=int, help="port (default OLOGIES_DIMSE_PORT, else 11112)")
    dimse.set_defaults(func=cmd_dimse)

    ingest = sub.add_parser("ingest", help="store image files for one patient")
    ingest.add_argument("files", nargs="+", metavar="FILE")
    for name in _FIELDS:
        ingest.add_argument("--" + name.replace("_", "-"), dest=name, default=None)
    ingest.set_defaults(func=cmd_ingest)

    reindex = sub.add_parser("reindex", help="rebuild the search index from the object store")
    reindex.add_argument("--quiet", action="store_true")
    reindex.add_argument("--force", action="store_true",
                         help="rebuild even if the store lists fewer than half the instances the live index holds")  # fmt: skip
    reindex.set_defaults(func=cmd_reindex)

    reconcile = sub.add_parser("reconcile", help="index instances left pending by an index outage or a crash")
    reconcile.add_argument("--force", action="store_true", help="also drop markers of uploads that never completed")
    reconcile.set_defaults(func=cmd_reconcile)

    check = sub.add_parser("check", help="report objects without index entries and index entries without objects")
    check.set_defaults(func=cmd_check)

    from ingest import cli_security

    cli_security.register(sub)
    from ingest import cli_media  # watch, reconcile-patient

    cli_media.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command in ("dimse", "watch"):  # long-running services: JSON logs, NHS numbers scrubbed (as serve)
        from web.observability import configure_logging

        configure_logging(level="DEBUG" if args.verbose else "INFO")
    try:
        return int(args.func(args))
    except OlogiesError as exc:
        where = f" ({exc.field})" if exc.field else ""
        print(f"ologies: {exc.code}{where}: {exc.message}", file=sys.stderr)
        for cls, code in EXIT_CODES:
            if isinstance(exc, cls):
                return code
        return 1
    except ValueError as exc:  # settings validation
        print(f"ologies: invalid configuration: {exc}", file=sys.stderr)
        return 78  # EX_CONFIG


if __name__ == "__main__":
    sys.exit(main())
