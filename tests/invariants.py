"""The repository invariants of RELIABILITY.md section 3, checked after every hostile input, every
injected fault and every load run: ``assert_repository_consistent()``.

* **INV-1 nothing lost.** Every acknowledged item (a 2xx answer, a C-STORE success, a watched file
  moved to done/) is findable by its UID without the index (its locator), its object is there and
  reads as DICOM, the object's recorded OriginalSHA256 is the digest of the bytes the client sent,
  where the store records a digest of the object (S3, memory) the object's bytes have it, and the
  index holds a document for it or a "pending" marker says it will.
* **INV-2 nothing half-visible.** No index document and no locator without its object; no object
  without a locator unless a pending marker covers it (none at all after a reconcile); in strict
  mode (no faults) no object that nobody was told is stored, no derived rendition of one, and no
  upload spool left on disk.

``Ledger`` keeps what was acknowledged, and checks each item in full once (reading the object) and
the listings on every call, so that a corpus of thousands of cases stays quick.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repository import keys
from repository.errors import NotFound
from repository.private_tags import get_private
from repository.service import read_header


class InvariantViolation(AssertionError):
    pass


@dataclass
class Ledger:
    #: SOP Instance UID -> SHA-256 of the bytes the client sent for it (None: not known here)
    acknowledged: dict[str, str | None] = field(default_factory=dict)
    _checked: set[str] = field(default_factory=set)

    def ack(self, uid: str, original_sha256: str | None) -> None:
        if uid in self.acknowledged and self.acknowledged[uid] and original_sha256 and self.acknowledged[uid] != original_sha256:
            # the same UID acknowledged for two different uploads: only DICOM input keeps its own
            # UIDs, and identical content under one UID is fine (ContentSHA256)
            return
        self.acknowledged.setdefault(uid, original_sha256)

    def ack_response(self, body: Any, original_sha256: str | None) -> int:
        """Record every instance a JSON upload answer (``files[]``) acknowledges."""
        n = 0
        for item in (body or {}).get("files", []) if isinstance(body, dict) else []:
            uid = item.get("sop_instance_uid")
            if uid:
                self.ack(uid, original_sha256)
                n += 1
        return n


def _object_digest(store: Any, key: str) -> str:
    digest = hashlib.sha256()
    with store.open(key) as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_item(repository: Any, uid: str, original_sha256: str | None) -> list[str]:
    """INV-1 for one acknowledged instance; the problems found (empty: none)."""
    problems: list[str] = []
    try:
        key = repository.locate(uid)
    except NotFound:
        return [f"{uid}: acknowledged but not findable by UID (no locator)"]
    store = repository.store
    try:
        with store.open(key) as handle:
            header = read_header(handle)
    except NotFound:
        return [f"{uid}: acknowledged, locator names {key} but there is no object"]
    except Exception as exc:  # noqa: BLE001 - any unreadable object is a violation
        return [f"{uid}: the stored object does not read as DICOM: {type(exc).__name__}: {exc}"]
    if str(header.SOPInstanceUID) != uid:
        problems.append(f"{uid}: the object at {key} is {header.SOPInstanceUID}")
    recorded_original = get_private(header).get("OriginalSHA256")
    if original_sha256 and recorded_original and recorded_original != original_sha256:
        problems.append(f"{uid}: OriginalSHA256 {recorded_original[:12]} is not the digest of what was sent {original_sha256[:12]}")
    recorded = store.head(key).sha256
    if recorded and _object_digest(store, key) != recorded:
        problems.append(f"{uid}: object bytes do not match the digest the store recorded")
    try:
        repository.index.get(uid)
    except NotFound:
        if not store.exists(keys.pending_key(uid)):
            problems.append(f"{uid}: neither indexed nor marked pending")
    return problems


def assert_repository_consistent(
    repository: Any,
    ledger: Ledger | None = None,
    *,
    strict: bool = False,
    reconciled: bool = False,
    spool: Path | None = None,
    full: bool = False,
) -> dict[str, int]:
    """Check INV-1 and INV-2; raise ``InvariantViolation`` listing every problem.

    strict
        No faults were injected: every stored object was acknowledged, and nothing else is left.
    reconciled
        A reconcile pass has just completed: no pending marker and no object without a locator.
    spool
        The upload spool folder: no ``ologies-*`` leftovers in it.
    full
        Re-read every acknowledged item, not only those not yet checked.

    Returns counts (objects, indexed, pending, acknowledged, stored_unacknowledged).
    """
    ledger = ledger or Ledger()
    problems: list[str] = []
    for uid, sha in ledger.acknowledged.items():
        if full or uid not in ledger._checked:
            found = check_item(repository, uid, sha)
            problems += found
            if not found:
                ledger._checked.add(uid)
    # one listing of each, in the order Repository.check uses (index and locators before the
    # objects: an upload in flight can then only look "not yet indexed", never half visible)
    indexed = set(repository.index.iter_uids())
    located = {k[len(keys.LOCATORS):] for k in repository.store.iter_keys(keys.LOCATORS)}
    stored = {keys.uids_from_instance_key(k)[2] for k in repository.iter_instance_keys()}
    pending = {k[len(keys.PENDING):] for k in repository.store.iter_keys(keys.PENDING)}
    problems += [f"{uid}: index document without an object" for uid in sorted(indexed - stored)]
    problems += [f"{uid}: locator without an object" for uid in sorted(located - stored)]
    for uid in sorted(stored - located):
        if reconciled or uid not in pending:
            problems.append(f"{uid}: stored but not findable by UID (no locator{'' if reconciled else ', no pending marker'})")
    if reconciled and pending & stored:
        problems.append(f"{len(pending & stored)} pending markers left after a reconcile")
    unacknowledged = stored - set(ledger.acknowledged)
    if strict:
        problems += [f"{uid}: stored but never acknowledged" for uid in sorted(unacknowledged)]
        derived = {k[len(keys.DERIVED):].split("/", 1)[0] for k in repository.store.iter_keys(keys.DERIVED)}
        problems += [f"{uid}: a rendition of an instance that is not stored" for uid in sorted(derived - stored)]
    if spool is not None:
        left = sorted(p.name for p in spool.glob("ologies-*"))
        problems += [f"upload spool left behind: {name}" for name in left]
    if problems:
        shown = "\n  ".join(problems[:30])
        raise InvariantViolation(f"{len(problems)} invariant violations:\n  {shown}")
    return {
        "objects": len(stored),
        "indexed": len(indexed),
        "pending": len(pending),
        "acknowledged": len(ledger.acknowledged),
        "stored_unacknowledged": len(unacknowledged),
    }
