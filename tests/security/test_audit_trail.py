"""The audit trail records exactly what a scripted session did, and any edit, deletion or
truncation of it is detected (RELIABILITY.md J1, J2, J8, J9)."""

from __future__ import annotations

import json

from repository import audit as audit_module
from repository.audit import RECORDS, AuditEvent, AuditLog, fhir_audit_event
from repository.backends.memory import MemoryObjectStore
from tests.conftest import NHS_A
from tests.security.conftest import World  # noqa: F401 - the fixture's type


def actions(world, subject_prefix: str = "key:") -> list[tuple[str, int, tuple[str, ...]]]:
    services = world.app.state.services
    return [(e.action, e.outcome, tuple(e.patient_ids)) for e in services.audit.events() if e.user.startswith(subject_prefix)]


def test_a_scripted_session_leaves_exactly_its_records(world):
    services = world.app.state.services
    before = len(list(services.audit.events()))
    headers = world.as_("clinician")
    world.client.get(f"/api/v1/patients/{NHS_A}/images", headers=headers)  # search (lists the REM image)
    world.client.get(f"/api/v1/instances/{world.own}/thumbnail", headers=headers)  # covered by the listing
    world.client.get(f"/api/v1/instances/{world.own}/file", headers=headers)  # download
    world.client.get(f"/api/v1/instances/{world.other}", headers=headers)  # another trust's: denied, 404
    world.client.get("/api/v1/search", headers={"Authorization": "Bearer olk_nope"})  # sign-in failure
    new = list(services.audit.events())[before:]
    summary = [(e.action, e.outcome, e.user.split(":")[0]) for e in new]
    assert summary == [("search", 0, "key"), ("download", 0, "key"), ("denied", 4, "key"), ("sign-in", 4, "anonymous")]
    search, download, denied, failed = new
    assert search.patient_ids == [NHS_A] and search.sop_instance_uids == [world.own] and search.role == "clinician"
    assert download.sop_instance_uids == [world.own] and download.trust == "REM" and download.source == "testclient"
    assert denied.sop_instance_uids == [world.other]
    assert failed.source == "testclient"
    assert services.audit.verify().intact


def test_reading_the_audit_trail_is_audited_and_reported_per_patient(world):
    headers = world.as_("information-governance")
    world.client.get(f"/api/v1/instances/{world.own}", headers=world.as_("photographer"))
    report = world.client.get(f"/api/v1/audit/patients/{NHS_A}", headers=headers).json()
    who = {(a["role"], a["action"]) for a in report["accesses"]}
    assert ("photographer", "view") in who and ("admin", "upload") in who
    events = world.client.get("/api/v1/audit/events", params={"patient": NHS_A, "format": "fhir"}, headers=headers).json()
    assert events["resourceType"] == "Bundle" and events["entry"][0]["resource"]["resourceType"] == "AuditEvent"
    last = list(world.app.state.services.audit.events())[-1]
    assert last.action == "audit-read" and last.role == "information-governance"


def chain(n: int = 7) -> tuple[MemoryObjectStore, AuditLog]:
    store = MemoryObjectStore()
    log = AuditLog(store, stream="test")
    for i in range(n):
        log.record(AuditEvent(action="view", user=f"user:{i}", patient_ids=[NHS_A]))
    log.anchor()
    return store, log


def test_an_untouched_chain_verifies():
    _, log = chain()
    report = log.verify()
    assert report.intact and report.records == 7


def test_an_edited_record_is_detected():
    store, log = chain()
    key = f"{RECORDS}test/{3:012d}.json"
    payload = json.loads(store.open(key).read())
    payload["event"]["user"] = "user:someone-else"  # hide who looked
    store.put(key, json.dumps(payload).encode())
    assert any("record 3 has been altered" in p for p in log.verify().problems)


def test_a_re_hashed_edit_is_still_detected_by_the_next_link():
    store, log = chain()
    key = f"{RECORDS}test/{3:012d}.json"
    payload = json.loads(store.open(key).read())
    payload["event"]["user"] = "user:someone-else"
    payload["hash"] = audit_module.chain_hash(payload["prev"], payload["event"])  # a careful forger
    store.put(key, json.dumps(payload).encode())
    assert any("record 4 does not follow" in p for p in log.verify().problems)


def test_a_deleted_record_leaves_a_gap():
    store, log = chain()
    store.delete(f"{RECORDS}test/{4:012d}.json")
    assert any("record 4 is missing" in p for p in log.verify().problems)


def test_a_cut_off_tail_contradicts_the_anchor():
    store, log = chain()
    for seq in (6, 7):
        store.delete(f"{RECORDS}test/{seq:012d}.json")
    assert any("differ from the anchor" in p for p in log.verify().problems)


def test_fhir_export_names_patient_and_objects():
    event = AuditEvent(action="download", user="user:jsmith", role="clinician", trust="REM", patient_ids=[NHS_A],
                       sop_instance_uids=["2.25.1"], reason="direct care", source="10.0.0.1")  # fmt: skip
    resource = fhir_audit_event(event)
    assert resource["type"]["code"] == "110103"
    assert resource["entity"][0]["what"]["identifier"]["value"] == NHS_A
    assert resource["entity"][1]["what"]["identifier"]["value"] == "urn:oid:2.25.1"


AUDIT_KEY = b"k" * 32


def keyed_chain(n: int = 7) -> tuple[MemoryObjectStore, AuditLog]:
    store = MemoryObjectStore()
    log = AuditLog(store, stream="test", key=AUDIT_KEY)
    for i in range(n):
        log.record(AuditEvent(action="view", user=f"user:{i}", patient_ids=[NHS_A]))
    log.anchor()
    return store, log


def rechain_from(store: MemoryObjectStore, seq: int, hasher) -> None:  # type: ignore[no-untyped-def]
    """What a forger with write access to the store does: edit record ``seq``, recompute every
    later link with ``hasher`` and rewrite the anchor to match."""
    keys = sorted(store.iter_keys(f"{RECORDS}test/"))
    prev = json.loads(store.open(keys[seq - 2]).read())["hash"] if seq > 1 else audit_module.GENESIS
    for key in keys[seq - 1 :]:
        payload = json.loads(store.open(key).read())
        if key == keys[seq - 1]:
            payload["event"]["user"] = "user:someone-else"
            payload["event"]["patient_ids"] = []
        payload["prev"], payload["hash"] = prev, hasher(prev, payload["event"])
        prev = payload["hash"]
        store.put(key, json.dumps(payload).encode())
    (anchor_key,) = store.iter_keys(audit_module.ANCHORS)
    anchor = json.loads(store.open(anchor_key).read())
    anchor["hash"] = prev
    store.put(anchor_key, json.dumps(anchor).encode())


def test_a_keyed_chain_verifies_with_its_key_and_is_marked_keyed():
    store, log = keyed_chain()
    assert log.verify().intact
    assert json.loads(store.open(f"{RECORDS}test/{1:012d}.json").read())["mac"] == "hmac-sha256"
    assert not AuditLog(store, stream="other", key=b"x" * 32).verify().intact  # another key
    assert not AuditLog(store, stream="other").verify().intact  # no key: cannot be checked


def test_a_whole_rechained_edit_is_detected_with_the_audit_key():
    store, log = keyed_chain()
    rechain_from(store, 3, lambda prev, content: audit_module.chain_hash(prev, content, b"guessed" * 5))
    problems = log.verify().problems
    assert any("record 3 has been altered" in p for p in problems)
    assert any("anchor at 7 has no valid MAC" in p for p in problems)


def test_rewriting_a_keyed_stream_as_an_unkeyed_one_is_detected():
    store, log = keyed_chain()
    rechain_from(store, 3, lambda prev, content: audit_module.chain_hash(prev, content))
    for key in list(store.iter_keys(f"{RECORDS}test/")):
        payload = json.loads(store.open(key).read())
        payload.pop("mac", None)
        store.put(key, json.dumps(payload).encode())
    assert any("has no MAC of the audit key" in p for p in log.verify().problems)


def test_the_service_keys_its_audit_trail_with_the_configured_key(settings, tmp_path):
    from web.services import Services

    services = Services.build(settings.model_copy(update={"audit_key": "s" * 40}))
    try:
        services.audit.record(AuditEvent(action="view", user="user:1"))
        (key,) = services.repository.store.iter_keys(RECORDS)
        assert json.loads(services.repository.store.open(key).read())["mac"] == "hmac-sha256"
        assert services.audit.verify().intact
    finally:
        services.close()
