"""An audit record whose write succeeded but whose answer was lost (the store hung or died after
writing; boto retried a PUT that had landed) must not stop the audit trail: the fault loop found
every later request of that process refused with 409 until a restart. The record that landed is
taken as the chain's next link, the chain stays intact, and nothing is written twice."""

from __future__ import annotations

from repository.audit import AuditEvent, AuditLog
from repository.backends.memory import MemoryObjectStore
from repository.errors import StoreUnavailable


class LosesAnswers(MemoryObjectStore):
    """Writes, then raises as if the answer never came back, for the next ``n`` audit records."""

    def __init__(self) -> None:
        super().__init__()
        self.lose = 0

    def put(self, key, source, **kwargs):  # type: ignore[no-untyped-def]
        stored = super().put(key, source, **kwargs)
        if key.startswith("audit/records/") and self.lose:
            self.lose -= 1
            raise StoreUnavailable("read timeout (the write landed)")
        return stored


def event(n: int) -> AuditEvent:
    return AuditEvent.by(None, "search", source="10.0.0.1", detail=f"request {n}")


def test_a_record_whose_answer_was_lost_does_not_block_the_next():
    store = LosesAnswers()
    audit = AuditLog(store, stream="worker-1")
    audit.record(event(1))
    store.lose = 1
    try:
        audit.record(event(2))  # refused to its caller (503): the access did not happen
    except StoreUnavailable:
        pass
    audit.record(event(3))  # was AlreadyExists (409) for ever after
    audit.record(event(4))
    report = audit.verify()
    assert report.intact, report.problems
    assert report.records == 4  # 2 is recorded (an over-record, never an under-record), 3 and 4 after it


def test_the_same_record_retried_after_a_lost_answer_is_written_once():
    store = LosesAnswers()
    audit = AuditLog(store, stream="worker-2")
    store.lose = 1
    same = event(7)
    try:
        audit.record(same)
    except StoreUnavailable:
        audit.record(same)  # a caller that retries the very same event
    assert audit.verify().records == 1 and audit.verify().intact
