"""``ologies users``, ``ologies keys`` and ``ologies audit``: accounts for a fresh install (which
is never open: nothing works until an account or key exists), and the audit trail's checks.

Secrets are printed once, when made, and never kept: only their hashes are stored.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from typing import TYPE_CHECKING

from repository.access import Principal, RoleValues

if TYPE_CHECKING:
    from repository.guard import Caller

ROLES = [r.value for r in RoleValues]


def cli_caller() -> "Caller":
    """Who the command line acts as: the operating-system user at the server, an administrator
    (they can read the store directly anyway), recorded as such in the audit trail."""
    from repository.guard import Caller  # imported here: it pulls in pydicom, which `serve`'s parent does not need

    user = getpass.getuser()
    return Caller(Principal(f"cli:{user}", user, RoleValues.ADMIN, "CLI", kind="user"), "localhost")


def _services(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from ingest.cli import _services as build

    return build(args)


def cmd_users_add(args: argparse.Namespace) -> int:
    services = _services(args)
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password (12+ characters): ")
    record = services.accounts.add_user(
        args.username, name=args.name, role=args.role, trust=args.trust, password=password, department=args.department
    )
    services.audit.record(_event(services, "change", f"user {record.username} added ({record.role}, {record.trust})"))
    print(f"user {record.username} added: {record.role} at {record.trust}")
    services.close()
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    services = _services(args)
    services.accounts.set_disabled(args.username, not args.enable)
    services.audit.record(_event(services, "change", f"user {args.username} {'enabled' if args.enable else 'disabled'}"))
    print(f"user {args.username} {'enabled' if args.enable else 'disabled'}")
    services.close()
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    services = _services(args)
    record, secret = services.accounts.create_key(name=args.name, role=args.role, trust=args.trust, department=args.department)
    services.audit.record(_event(services, "change", f"key {record.key_id} created ({record.role}, {record.trust})"))
    print(f"key {record.key_id}: {record.role} at {record.trust}{' / ' + record.department if record.department else ''}")
    print("secret (shown once, store it now):")
    print(secret)
    services.close()
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    services = _services(args)
    for key in services.accounts.keys():
        state = "revoked" if key.revoked else "active"
        print(f"{key.key_id}  {state:7}  {key.role:22} {key.trust:4} {key.department or '-':20} {key.name}")
    services.close()
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    services = _services(args)
    services.accounts.revoke_key(args.key_id)
    services.audit.record(_event(services, "change", f"key {args.key_id} revoked"))
    print(f"key {args.key_id} revoked")
    services.close()
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    services = _services(args)
    report = services.audit.verify()
    print(json.dumps({"streams": report.streams, "records": report.records, "intact": report.intact, "problems": report.problems}, indent=2))
    services.close()
    return 0 if report.intact else 1


def cmd_audit_report(args: argparse.Namespace) -> int:
    services = _services(args)
    events = services.audit.query(patient_id=args.patient, user=args.user)
    services.audit.record(_event(services, "audit-read", f"report patient={bool(args.patient)} user={bool(args.user)}",
                                 patient_ids=[args.patient] if args.patient else []))  # fmt: skip
    if args.format == "fhir":
        from repository.audit import fhir_audit_event

        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": fhir_audit_event(e)} for e in events]}
        print(json.dumps(bundle, indent=2, ensure_ascii=False))
    else:
        for e in events:
            print(f"{e.time}  {e.action:10} outcome={e.outcome}  {e.user_name or e.user} ({e.role}, {e.trust})  "
                  f"{len(e.sop_instance_uids)} objects  {e.reason}")  # fmt: skip
    services.close()
    return 0


def _event(services, action: str, detail: str, **values):  # type: ignore[no-untyped-def]
    from repository.audit import AuditEvent

    caller = cli_caller()
    return AuditEvent.by(caller.principal, action, source=caller.source, detail=detail, **values)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    users = sub.add_parser("users", help="local accounts for the web pages").add_subparsers(dest="users_command", required=True)
    add = users.add_parser("add", help="add an account (asks for its password)")
    add.add_argument("username")
    add.add_argument("--name", required=True)
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--trust", required=True, help="ODS code")
    add.add_argument("--department", default="")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(func=cmd_users_add)
    disable = users.add_parser("disable", help="disable (or --enable) an account")
    disable.add_argument("username")
    disable.add_argument("--enable", action="store_true")
    disable.set_defaults(func=cmd_users_disable)

    keys = sub.add_parser("keys", help="API keys for devices and services").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="make a key and print its secret once")
    create.add_argument("--name", required=True, help="what uses it, e.g. 'Dermatoscope, Aintree OPD'")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--trust", required=True, help="ODS code")
    create.add_argument("--department", default="", help="for a device: the specialty it uploads for")
    create.set_defaults(func=cmd_keys_create)
    keys.add_parser("list", help="list keys (never their secrets)").set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=cmd_keys_revoke)

    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(dest="audit_command", required=True)
    audit.add_parser("verify", help="check the hash chains and anchors").set_defaults(func=cmd_audit_verify)
    report = audit.add_parser("report", help="who accessed a patient's images, or what a user accessed")
    report.add_argument("--patient", help="NHS number")
    report.add_argument("--user", help="subject, e.g. user:jsmith or key:<id>")
    report.add_argument("--format", choices=["text", "fhir"], default="text")
    report.set_defaults(func=cmd_audit_report)
