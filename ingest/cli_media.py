"""``ologies watch`` and ``ologies reconcile-patient`` (registered by ``ingest/cli.py``)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from pathlib import Path

log = logging.getLogger(__name__)


def cmd_watch(args: argparse.Namespace) -> int:
    from ingest.cli import _FIELDS, _services
    from ingest.watch import WatchConfig, Watcher

    services = _services(args)
    defaults = {name: value for name in _FIELDS if (value := getattr(args, name, None))}
    config = WatchConfig(
        folder=Path(args.folder), settle_seconds=args.settle, poll_seconds=args.poll,
        context_grace_seconds=args.context_grace, defaults=defaults, workers=args.workers,
    )  # fmt: skip

    def audited(batch, name: str) -> None:  # type: ignore[no-untyped-def]
        # The folder is a device's route in: the upload is audited as the watcher's.
        services.guard.record_upload(
            None, batch.patient_id,
            sorted({f.outcome.study_instance_uid for f in batch.files}),
            [f.outcome.sop_instance_uid for f in batch.files], f"watch {config.folder.name}/{name}",
        )  # fmt: skip

    watcher = Watcher(services.ingestor, config, on_stored=audited)
    if args.once:
        outcomes = watcher.scan_once()
        print(json.dumps([o.__dict__ for o in outcomes], indent=2, ensure_ascii=False))
        services.close()
        return 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"watching {config.folder.resolve()} (Ctrl-C to stop)", flush=True)
    watcher.run(stop)
    services.close()
    return 0


def cmd_reconcile_patient(args: argparse.Namespace) -> int:
    from ingest.cli import _services
    from repository.reconcile import PatientIdentity, reconcile_patient

    services = _services(args)
    identity = PatientIdentity.parse(
        nhs_number=args.nhs_number, family_name=args.family_name, given_name=args.given_name or "",
        birth_date=args.birth_date or "", sex=args.sex or "", allow_test_numbers=bool(services.settings.allow_test_nhs_numbers),
    )  # fmt: skip
    result = reconcile_patient(services.repository, args.temporary_id, identity, spool_dir=services.settings.spool_dir)
    services.guard.record(
        None, "change", patient_ids=[result.temporary_id, result.nhs_number], study_uids=result.study_instance_uids,
        sop_instance_uids=result.sop_instance_uids, detail=f"patient reconciled from {result.temporary_id} (command line)",
    )  # fmt: skip
    print(json.dumps({"temporary_id": result.temporary_id, "nhs_number": result.nhs_number,
                      "instances": len(result.sop_instance_uids), "studies": result.study_instance_uids}, indent=2))  # fmt: skip
    services.close()
    return 0


def register(sub) -> None:  # type: ignore[no-untyped-def]
    from ingest.cli import _FIELDS

    watch = sub.add_parser("watch", help="ingest files dropped into a folder (sidecar JSON, CSV manifest or DICOM header)")
    watch.add_argument("folder", metavar="DIR")
    watch.add_argument("--settle", type=float, default=5.0, help="seconds a file must stay unchanged (default 5)")
    watch.add_argument("--poll", type=float, default=1.0, help="seconds between scans (default 1)")
    watch.add_argument("--context-grace", type=float, default=120.0, help="seconds to wait for a sidecar or manifest row")
    watch.add_argument("--workers", type=int, default=2, help="files ingested at once (default 2)")
    watch.add_argument("--once", action="store_true", help="one pass, print what happened, exit")
    for name in _FIELDS:
        watch.add_argument("--" + name.replace("_", "-"), dest=name, default=None, help=argparse.SUPPRESS)
    watch.set_defaults(func=cmd_watch)

    reconcile = sub.add_parser("reconcile-patient", help="link images stored under a temporary ID to the NHS number")
    reconcile.add_argument("temporary_id", metavar="TMP-ODS-REF")
    reconcile.add_argument("--nhs-number", required=True)
    reconcile.add_argument("--family-name", required=True)
    reconcile.add_argument("--given-name")
    reconcile.add_argument("--birth-date", help="YYYY-MM-DD")
    reconcile.add_argument("--sex", choices=["F", "M", "O", "U"])
    reconcile.set_defaults(func=cmd_reconcile_patient)
