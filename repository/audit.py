"""A tamper-evident, append-only audit trail of every access to patient data (DECISIONS.md 19),
in the spirit of IHE ATNA: who (user, role, trust, source address), what (action, patient,
objects), outcome, when, and the reason where one was given.

Records are objects in the object store, one chain per writing process ("stream"):

    audit/records/{stream}/{seq:012d}.json   {"event": ..., "seq", "prev", "hash"}
                                             (or "events": [...], several written together)
    audit/anchors/{stream}/{seq:012d}.json   the stream's head, written every ANCHOR_EVERY records

``hash`` is over ``prev`` and the canonical JSON of the event(s), so editing a record breaks the
chain at the next one; sequence numbers are contiguous from 1, so deleting one leaves a gap;
anchors pin heads, so cutting off records up to an anchor is seen too. A record is written
(create-if-absent) before the response that it describes is sent: no access without a durable
record.

What this detects depends on who is editing. With an audit key (``OLOGIES_AUDIT_KEY``, kept
outside the store) records and anchors carry HMAC-SHA256 and ``"mac": "hmac-sha256"``: someone
who can write to the store but does not hold the key cannot edit a record and re-chain the rest,
nor rewrite the stream without the key (a record or anchor without a valid MAC is reported).
Without a key the chain is plain SHA-256: it finds damage and edits that were not re-chained,
not a careful forger. Neither can see the newest records of a stream cut off after its last
anchor, nor a whole stream removed: only a store that refuses deletion (S3 Object Lock,
``OLOGIES_S3_OBJECT_LOCK``) prevents those.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

from repository.access import Principal
from repository.errors import AlreadyExists, NotFound
from repository.store import ObjectStore

log = logging.getLogger(__name__)

RECORDS = "audit/records/"
ANCHORS = "audit/anchors/"
ANCHOR_EVERY = 50
GENESIS = "0" * 64

# DICOM PS3.15 A.5 audit event IDs (DCM codes) for each action.
EVENT_CODES = {
    "upload": ("110107", "Import"),
    "search": ("110112", "Query"),
    "view": ("110103", "DICOM Instances Accessed"),
    "download": ("110103", "DICOM Instances Accessed"),
    "export": ("110106", "Export"),
    "change": ("110110", "Patient Record"),
    "delete": ("110105", "DICOM Study Deleted"),
    "sign-in": ("110114", "User Authentication"),
    "denied": ("110113", "Security Alert"),
    "grant": ("110113", "Security Alert"),  # emergency/cross-trust override
    "audit-read": ("110101", "Audit Log Used"),
}
OUTCOME_SUCCESS, OUTCOME_MINOR_FAILURE, OUTCOME_SERIOUS_FAILURE = 0, 4, 8


@dataclass
class AuditEvent:
    action: str
    outcome: int = OUTCOME_SUCCESS
    user: str = ""  # Principal.subject, or what was presented for a failed sign-in ("anonymous")
    user_name: str = ""
    role: str = ""
    trust: str = ""
    source: str = ""  # client address
    patient_ids: list[str] = field(default_factory=list)
    study_uids: list[str] = field(default_factory=list)
    sop_instance_uids: list[str] = field(default_factory=list)
    reason: str = ""
    detail: str = ""  # route or query summary; never a patient name
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"))

    @classmethod
    def by(cls, principal: Principal | None, action: str, *, source: str = "", **values: object) -> "AuditEvent":
        if principal is None:
            return cls(action=action, user="anonymous", source=source, **values)  # type: ignore[arg-type]
        return cls(
            action=action, user=principal.subject, user_name=principal.name, role=principal.role.value,
            trust=principal.trust, source=source, **values,  # type: ignore[arg-type]
        )  # fmt: skip


def _canonical(event: object) -> bytes:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


MAC = "hmac-sha256"


def chain_hash(prev: str, content: object, key: bytes | None = None) -> str:
    """SHA-256 (HMAC-SHA256 with ``key``) over the previous record's hash and this record's
    event (or list of events)."""
    data = prev.encode() + _canonical(content)
    return hmac.new(key, data, hashlib.sha256).hexdigest() if key else hashlib.sha256(data).hexdigest()


def _anchor_mac(key: bytes, anchor: dict) -> str:  # type: ignore[type-arg]
    fields = {k: anchor.get(k) for k in ("seq", "hash", "time")}
    return hmac.new(key, _canonical(fields), hashlib.sha256).hexdigest()


@dataclass
class VerifyReport:
    streams: int = 0
    records: int = 0  # events, counting each of a group written together
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


class _Waiting:
    """One event waiting to be written, and how its write ended."""

    __slots__ = ("body", "done", "error")

    def __init__(self, body: dict) -> None:  # type: ignore[type-arg]
        self.body = body
        self.done = False
        self.error: BaseException | None = None


class AuditLog:
    def __init__(self, store: ObjectStore, *, stream: str | None = None, key: bytes | None = None) -> None:
        self.store = store
        self._key = key or None  # the audit key: records and anchors carry its MAC
        # One chain per process: no cross-process lock is needed to keep it linear.
        self.stream = stream or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._seq = 0
        self._prev = GENESIS
        self._lock = threading.Lock()  # the chain's head
        self._turn = threading.Condition()  # the queue, and whose turn it is to write
        self._queue: list[_Waiting] = []
        self._writing = False

    def record(self, event: AuditEvent) -> None:
        """Write ``event`` durably before returning (group commit).

        Requests record their access concurrently, and a record is a write to the object store
        (an fsync, or a PUT): one at a time, ten requests waiting on each other's PUTs made a
        search wait ~10 store round trips under load. So whoever finds no write in progress
        writes every event waiting at that moment as one record, and the others wait for it;
        each caller still returns only once its own event is stored, and learns if it was not.
        """
        waiting = _Waiting(asdict(event))
        with self._turn:
            self._queue.append(waiting)
            while self._writing and not waiting.done:
                self._turn.wait()
            if waiting.done:
                if waiting.error is not None:
                    raise waiting.error
                return
            batch, self._queue, self._writing = self._queue, [], True
        error: BaseException | None = None
        try:
            self._write([w.body for w in batch])
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of the batch
            error = exc
        with self._turn:
            for w in batch:
                w.done, w.error = True, error
            self._writing = False
            self._turn.notify_all()
        if error is not None:
            raise error

    def _write(self, bodies: list[dict]) -> None:  # type: ignore[type-arg]
        # One event keeps the original record layout ({"event": ...}); several are {"events": [...]}.
        content: object = bodies[0] if len(bodies) == 1 else bodies
        field_name = "event" if len(bodies) == 1 else "events"
        with self._lock:
            for _ in range(3):
                seq, digest = self._seq + 1, chain_hash(self._prev, content, self._key)
                payload = {field_name: content, "seq": seq, "prev": self._prev, "hash": digest}
                if self._key:
                    payload["mac"] = MAC
                key = f"{RECORDS}{self.stream}/{seq:012d}.json"
                try:
                    self.store.put(key, _canonical(payload), media_type="application/json", if_none_match=True)
                except AlreadyExists:
                    # A write whose answer was lost (a store that hung or died after writing, a
                    # retried PUT) is there after all: it links to our head, so it is the chain's
                    # next record; take it as the head and write ours after it. Without this,
                    # every later record of this process was refused (409) until a restart
                    # (found by the fault loop, tests/integration/fault_loop.py).
                    found = self._read(key)
                    if found.get("prev") != self._prev or found.get("seq") != seq:
                        raise
                    self._seq, self._prev = seq, str(found["hash"])
                    if found["hash"] == digest:
                        break  # it was this very record
                    continue
                self._seq, self._prev = seq, digest
                break
            else:
                raise AlreadyExists(f"audit stream {self.stream}: no free sequence number after {self._seq}")
            if self._seq % ANCHOR_EVERY == 0:
                self._anchor_locked()

    def anchor(self) -> None:
        with self._lock:
            if self._seq:
                self._anchor_locked()

    def _anchor_locked(self) -> None:
        anchor: dict[str, object] = {"seq": self._seq, "hash": self._prev, "time": dt.datetime.now(dt.timezone.utc).isoformat()}
        if self._key:
            anchor["mac"] = _anchor_mac(self._key, anchor)
        self.store.put(f"{ANCHORS}{self.stream}/{self._seq:012d}.json", _canonical(anchor), media_type="application/json")

    # -- reading -----------------------------------------------------------------------------
    def _streams(self) -> set[str]:
        return {k[len(RECORDS) :].split("/")[0] for k in self.store.iter_keys(RECORDS)}

    def _read(self, key: str) -> dict:  # type: ignore[type-arg]
        with self.store.open(key) as handle:
            return json.loads(handle.read())  # type: ignore[no-any-return]

    def events(self) -> Iterator[AuditEvent]:
        for key in sorted(self.store.iter_keys(RECORDS)):
            try:
                bodies = _bodies(self._read(key))
            except (NotFound, ValueError, TypeError, KeyError):
                continue
            for body in bodies:
                try:
                    yield AuditEvent(**body)
                except TypeError:
                    continue

    def query(
        self, *, patient_id: str | None = None, user: str | None = None, trust: str | None = None,
        since: dt.datetime | None = None, actions: Iterable[str] | None = None,
    ) -> list[AuditEvent]:  # fmt: skip
        wanted = set(actions) if actions else None
        found = []
        for event in self.events():
            if patient_id and patient_id not in event.patient_ids:
                continue
            if user and event.user != user:
                continue
            if trust and event.trust != trust:
                continue
            if wanted and event.action not in wanted:
                continue
            if since and dt.datetime.fromisoformat(event.time.replace("Z", "+00:00")) < since:
                continue
            found.append(event)
        found.sort(key=lambda e: e.time)
        return found

    def verify(self) -> VerifyReport:
        report = VerifyReport()
        for stream in sorted(self._streams()):
            report.streams += 1
            keys = sorted(self.store.iter_keys(f"{RECORDS}{stream}/"))
            heads: dict[int, str] = {}
            prev, expected = GENESIS, 1
            for key in keys:
                seq = int(key.rsplit("/", 1)[1].split(".")[0])
                if seq != expected:
                    report.problems.append(f"{stream}: record {expected} is missing (next is {seq})")
                    expected = seq
                try:
                    payload = self._read(key)
                except (ValueError, NotFound):
                    report.problems.append(f"{stream}: record {seq} is unreadable")
                    expected += 1
                    continue
                if payload.get("seq") != seq or payload.get("prev") != prev:
                    report.problems.append(f"{stream}: record {seq} does not follow record {seq - 1}")
                content = payload["events"] if "events" in payload else payload.get("event", {})
                keyed = payload.get("mac") == MAC
                if self._key and not keyed:
                    report.problems.append(f"{stream}: record {seq} has no MAC of the audit key (written without it, or rewritten)")
                elif keyed and not self._key:
                    report.problems.append(f"{stream}: record {seq} is keyed: it can be checked only with the audit key")
                elif chain_hash(payload.get("prev", ""), content, self._key) != payload.get("hash"):
                    report.problems.append(f"{stream}: record {seq} has been altered")
                prev = payload.get("hash", "")
                heads[seq] = prev
                expected += 1
                report.records += len(content) if isinstance(content, list) else 1
            for anchor_key in self.store.iter_keys(f"{ANCHORS}{stream}/"):
                anchor = self._read(anchor_key)
                if heads.get(anchor["seq"]) != anchor["hash"]:
                    report.problems.append(f"{stream}: records up to {anchor['seq']} differ from the anchor")
                if self._key and not hmac.compare_digest(str(anchor.get("mac", "")), _anchor_mac(self._key, anchor)):
                    report.problems.append(f"{stream}: the anchor at {anchor['seq']} has no valid MAC of the audit key")
        return report


def _bodies(payload: dict) -> list[dict]:  # type: ignore[type-arg]
    """The events of one record: one ({"event": ...}), or a group committed together."""
    return list(payload["events"]) if "events" in payload else [payload["event"]]


def fhir_audit_event(event: AuditEvent) -> dict[str, object]:
    """The event as a FHIR R4 AuditEvent resource (DICOM event codes, as IHE BALP does)."""
    code, display = EVENT_CODES.get(event.action, ("110100", "Application Activity"))
    entities: list[dict[str, object]] = [
        {"what": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": pid}},
         "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"}}
        for pid in event.patient_ids
    ]  # fmt: skip
    entities += [
        {"what": {"identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"}},
         "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"}}
        for uid in event.study_uids + event.sop_instance_uids
    ]  # fmt: skip
    return {
        "resourceType": "AuditEvent",
        "id": event.event_id,
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": code, "display": display},
        "subtype": [{"system": "urn:ologies:action", "code": event.action}],
        "recorded": event.time,
        "outcome": str(event.outcome),
        "purposeOfEvent": [{"text": event.reason}] if event.reason else [],
        "agent": [{
            "who": {"identifier": {"value": event.user}, "display": event.user_name or event.user},
            "role": [{"text": event.role}] if event.role else [],
            "requestor": True,
            "network": {"address": event.source, "type": "2"} if event.source else None,
        }],
        "source": {"observer": {"display": f"ologies {event.trust}".strip()}},
        "entity": entities,
    }  # fmt: skip
