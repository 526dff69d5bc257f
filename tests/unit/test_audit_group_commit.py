"""Concurrent audit records are written together (group commit): one store write carries every
event waiting at that moment, each caller returns only once its own event is stored, a failed
write fails every caller whose event it carried, and the chain stays intact."""

from __future__ import annotations

import threading
import time

from repository.audit import RECORDS, AuditEvent, AuditLog
from repository.backends.memory import MemoryObjectStore
from repository.errors import StoreUnavailable


class SlowStore(MemoryObjectStore):
    """Each audit record write takes 30 ms (a PUT under load); can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = False
        self.writes = 0

    def put(self, key, source, **kwargs):  # type: ignore[no-untyped-def]
        if key.startswith(RECORDS):
            time.sleep(0.03)
            if self.fail:
                raise StoreUnavailable("store down")
            self.writes += 1
        return super().put(key, source, **kwargs)


def event(n: int) -> AuditEvent:
    return AuditEvent.by(None, "search", source="10.0.0.1", detail=f"request {n}")


def stored_details(audit: AuditLog) -> set[str]:
    return {e.detail for e in audit.events()}


def record_all(audit: AuditLog, numbers: range) -> dict[int, BaseException | None]:
    outcome: dict[int, BaseException | None] = {}
    start = threading.Barrier(len(numbers))

    def one(n: int) -> None:
        start.wait()
        try:
            audit.record(event(n))
            # returned: the event must already be in the store
            assert f"request {n}" in stored_details(audit)
            outcome[n] = None
        except BaseException as exc:  # noqa: BLE001
            outcome[n] = exc

    threads = [threading.Thread(target=one, args=(n,)) for n in numbers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return outcome


def test_concurrent_records_are_written_together_and_all_kept():
    store = SlowStore()
    audit = AuditLog(store, stream="worker-1")
    outcome = record_all(audit, range(20))
    assert all(error is None for error in outcome.values()), outcome
    assert stored_details(audit) == {f"request {n}" for n in range(20)}
    assert store.writes < 10  # one at a time would be 20 writes of 30 ms each
    report = audit.verify()
    assert report.intact, report.problems
    assert report.records == 20


def test_a_failed_group_write_fails_every_caller_in_it_and_the_chain_continues():
    store = SlowStore()
    audit = AuditLog(store, stream="worker-2")
    audit.record(event(-1))
    store.fail = True
    outcome = record_all(audit, range(8))
    assert all(isinstance(error, StoreUnavailable) for error in outcome.values()), outcome
    store.fail = False
    audit.record(event(99))
    assert stored_details(audit) == {"request -1", "request 99"}
    report = audit.verify()
    assert report.intact and report.records == 2
