"""STOW-RS (PS3.18 10.5): ``POST /dicomweb/studies[/{study}]``.

Two kinds of request are accepted:

* ``multipart/related; type="application/dicom"``: each part a DICOM object (Part 10, or a bare
  data set), checked and stored as received by ``converters.dicom.prepare_dicom``;
* ``multipart/related; type="application/dicom+json"`` (IHE Web Image Capture): DICOM JSON
  metadata plus bulk data parts (``image/jpeg``, ``image/png``, ``video/mp4``,
  ``video/quicktime``, ``application/pdf``) named by ``BulkDataURI`` (matching a part's
  ``Content-Location`` or ``cid:`` its ``Content-ID``), wrapped by :mod:`web.dicomweb.wic`. A
  BulkDataURI that names anything but a part of the request is refused (400): nothing is ever
  fetched.

Each instance is stored or refused on its own; the response lists both with the standard codes
(``converters.dicom``): 200 when all were stored without warnings, 202 when some were stored and
some failed, had warnings or are not yet searchable, 409 when none was stored.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converters import dicom as dcm
from converters.dicom import PreparedDicom, Provenance, dicom_status_for, prepare_dicom
from repository.access import RoleValues
from repository.errors import MalformedRequest, OlogiesError, UnsupportedMediaType
from repository.guard import Caller
from web.dicomweb import wic
from web.dicomweb.multipart import ReceivedPart, ReceivedRelated

log = logging.getLogger(__name__)

DICOM = "application/dicom"
STORE_CONCURRENCY = 4  # instances of one request stored at once
DICOM_JSON = "application/dicom+json"


@dataclass
class StowOutcome:
    stored: list[tuple[str, str, str, int | None]] = field(default_factory=list)  # class, uid, url, warning
    failed: list[tuple[str, str, int]] = field(default_factory=list)  # class, uid, reason
    other_failures: list[int] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # for the Warning header and logs
    pending: int = 0  # stored but not yet searchable
    studies: set[str] = field(default_factory=set)

    @property
    def status(self) -> int:
        if not self.stored:
            return 409
        if self.failed or self.other_failures or self.pending or any(w is not None for *_, w in self.stored):
            return 202
        return 200


class Stow:
    """Stores the parts of one STOW-RS request for one caller."""

    def __init__(self, services: Any, caller: Caller, *, base_url: str, study_uid: str | None, spool: Path) -> None:
        self.services = services
        self.spool = spool
        self.caller = caller
        self.base_url = base_url
        self.study_uid = study_uid
        settings = services.settings
        self.allow_test_numbers = bool(settings.allow_test_nhs_numbers)
        self.limits = dcm.DicomLimits(max_bytes=settings.max_file_bytes, max_pixels=settings.max_image_pixels)
        principal = caller.principal
        trust = services.policy.upload_trust(principal, None)
        specialty = principal.department if principal.role is RoleValues.DEVICE else ""
        self.provenance = Provenance("stowrs", trust=trust, specialty=specialty)
        self.outcome = StowOutcome()
        self._audit: dict[str, tuple[set[str], list[str]]] = {}
        self._deferred: list[tuple[PreparedDicom, Any, tuple[dcm.Coercion, ...]]] = []  # stored, to index
        # Parts are checked one after another (Python work, one interpreter lock), but stored
        # several at a time: storing is mostly waiting for the object store, and a batch of ten
        # stored one by one waited for ten stores' round trips in turn (3 s under load).
        self._storing = ThreadPoolExecutor(STORE_CONCURRENCY, thread_name_prefix="stow-store")
        self._in_flight: list[tuple[Future[Any], PreparedDicom, Path, int, tuple[dcm.Coercion, ...]]] = []
        self._submitted: dict[str, tuple[PreparedDicom, int]] = {}  # SOP Instance UID -> first part storing it

    # -- entry point -------------------------------------------------------------------------
    def run(self, received: ReceivedRelated) -> StowOutcome:
        try:
            if received.type == DICOM:
                for part in received.parts:
                    if part.media_type not in (DICOM, "application/octet-stream"):
                        self._other_failure(dcm.SOP_CLASS_NOT_SUPPORTED, f"part {part.number} is {part.media_type}, not {DICOM}")
                        continue
                    self._store_bytes(part.source(), part.sha256, part.number, Provenance(**{**self.provenance.__dict__}))
            elif received.type == DICOM_JSON:
                self._store_json(received.parts)
            else:
                raise UnsupportedMediaType(
                    f"STOW-RS accepts multipart/related with type {DICOM} or {DICOM_JSON}, not {received.type or 'nothing'}",
                    field="content-type",
                )
        finally:
            self._finish_storing()
            # The request's instances are indexed together: one write and, on Elasticsearch, one
            # refresh, instead of one each (a batch of ten waited for ten refreshes under load).
            # Also when a later part ended the request: what was stored is made searchable.
            indexed = self.services.repository.index_deferred([outcome for _, outcome, _ in self._deferred])
            for (prepared, _, coercions), outcome in zip(self._deferred, indexed):
                self._stored(prepared, outcome.indexed, coercions)
        self._record_audit()
        return self.outcome

    # -- one DICOM object --------------------------------------------------------------------
    def _store_bytes(self, data: bytes | Path, sha256: str, number: int, provenance: Provenance, *, coercions: tuple[dcm.Coercion, ...] = ()) -> None:
        out = self.spool / f"object-{number:05d}.dcm"
        try:
            prepared = prepare_dicom(
                data, out, provenance=provenance, allow_test_numbers=self.allow_test_numbers,
                limits=self.limits, expected_study_uid=self.study_uid, original_sha256=sha256,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - one instance's failure must never fail the others
            out.unlink(missing_ok=True)
            self._failed(exc, number)
            return
        uid = prepared.instance.sop_instance_uid
        first = self._submitted.get(uid)
        if first is not None and _same_instance(first[0], prepared):
            # The same instance twice in one request: stored once, and answered once (the
            # response lists instances, not parts). Storing the copy beside the first would find
            # the first's pending marker (its index write waits for the end of the request) and
            # call it not yet searchable: a false 202 and a false index-outage warning.
            out.unlink(missing_ok=True)
            self.outcome.messages.append(f"part {number} ({uid}) repeats part {first[1]}: one instance, answered once")
            return
        self._submitted.setdefault(uid, (prepared, number))  # different content: the store refuses one (0x0111)
        store = self.services.repository.store_instance
        self._in_flight.append((self._storing.submit(store, prepared.instance, defer_index=True), prepared, out, number, coercions))

    def _finish_storing(self) -> None:
        """Wait for every store begun, in the order of the parts, and note how each ended."""
        try:
            for future, prepared, out, number, coercions in self._in_flight:
                try:
                    outcome = future.result()
                except Exception as exc:  # noqa: BLE001
                    _tag(exc, prepared.sop_class_uid, prepared.instance.sop_instance_uid)
                    self._failed(exc, number)
                else:
                    self._deferred.append((prepared, outcome, coercions))
                finally:
                    out.unlink(missing_ok=True)
        finally:
            self._in_flight.clear()
            self._storing.shutdown(wait=True)

    def _stored(self, prepared: PreparedDicom, indexed: bool, extra: tuple[dcm.Coercion, ...]) -> None:
        item = prepared.instance
        coercions = extra + prepared.coercions
        warning = None
        if coercions:
            warning = dcm.COERCED if any(c.action == "modified" for c in coercions) else dcm.ELEMENTS_DISCARDED
            self.outcome.messages.append(f"{item.sop_instance_uid}: {dcm.describe(coercions)}")
        if not indexed:
            self.outcome.pending += 1
            log.info("STOW-RS %s stored, not yet searchable (index unavailable)", item.sop_instance_uid)
        url = f"{self.base_url}/studies/{item.study_instance_uid}/series/{item.series_instance_uid}/instances/{item.sop_instance_uid}"
        self.outcome.stored.append((prepared.sop_class_uid, item.sop_instance_uid, url, warning))
        self.outcome.studies.add(item.study_instance_uid)
        studies, uids = self._audit.setdefault(item.patient_id, (set(), []))
        studies.add(item.study_instance_uid)
        uids.append(item.sop_instance_uid)

    def _failed(self, exc: BaseException, number: int) -> None:
        status = dicom_status_for(exc)
        message = exc.message if isinstance(exc, OlogiesError) else "processing failure"
        if not isinstance(exc, OlogiesError):
            log.exception("STOW-RS part %d failed unexpectedly", number)
        sop_class = getattr(exc, "sop_class_uid", "")
        sop_uid = getattr(exc, "sop_instance_uid", "")
        log.warning("STOW-RS part %d (%s) refused with 0x%04X: %s", number, sop_uid or "not identified", status, message)
        self.outcome.messages.append(f"part {number}{' (' + sop_uid + ')' if sop_uid else ''}: {message}")
        if sop_uid:
            self.outcome.failed.append((sop_class, sop_uid, status))
        else:
            self.outcome.other_failures.append(status)
        self.services.guard.record_failed_upload(self.caller, "", getattr(exc, "code", "error"), "stowrs")

    def _other_failure(self, status: int, message: str) -> None:
        self.outcome.other_failures.append(status)
        self.outcome.messages.append(message)

    # -- DICOM JSON metadata with bulk data (IHE Web Image Capture) ---------------------------
    def _store_json(self, parts: list[ReceivedPart]) -> None:
        metadata: list[tuple[int, dict[str, Any]]] = []
        bulk: dict[str, ReceivedPart] = {}
        for part in parts:
            if part.media_type in (DICOM_JSON, "application/json"):
                if part.size > 16 * 1024 * 1024:
                    raise MalformedRequest(f"part {part.number}: DICOM JSON metadata larger than 16 MiB", field="body")
                try:
                    loaded = json.loads(part.read())
                except (ValueError, UnicodeDecodeError) as exc:
                    raise MalformedRequest(f"part {part.number} is not valid DICOM JSON: {exc}", field="body") from exc
                for item in loaded if isinstance(loaded, list) else [loaded]:
                    if not isinstance(item, dict):
                        raise MalformedRequest(f"part {part.number}: each DICOM JSON data set must be an object", field="body")
                    metadata.append((part.number, item))
            else:
                for name in (part.content_location, f"cid:{part.content_id}" if part.content_id else ""):
                    if name:
                        bulk[name] = part
        if not metadata:
            raise MalformedRequest("a DICOM JSON request needs at least one application/dicom+json part", field="body")
        for number, item in metadata:  # refuse the whole request before storing anything
            for uri in _bulk_uris(item):
                if uri not in bulk:
                    raise MalformedRequest(
                        f"part {number}: BulkDataURI {uri[:100]!r} does not name a part of this request "
                        "(nothing is fetched from elsewhere)",
                        field="BulkDataURI",
                    )
        for number, item in metadata:
            try:
                built = wic.build(item, bulk, self.services.settings, self.spool)
            except Exception as exc:  # noqa: BLE001
                self._failed(_identified(exc, item), number)
                continue
            provenance = Provenance(**{**self.provenance.__dict__, "original_media_type": built.media_type})
            self._store_bytes(built.path, built.sha256, number, provenance, coercions=built.coercions)

    # -- audit -------------------------------------------------------------------------------
    def _record_audit(self) -> None:
        for patient_id, (studies, uids) in self._audit.items():
            self.services.guard.record_upload(self.caller, patient_id, sorted(studies), uids, "stowrs")


def _same_instance(a: PreparedDicom, b: PreparedDicom) -> bool:
    """Whether two parts are one instance, as the repository would recognise a repeat (the same
    patient, and the same bytes or content, or a UID derived from the content)."""
    x, y = a.instance, b.instance
    if x.sop_instance_uid != y.sop_instance_uid or x.patient_id != y.patient_id:
        return False
    same_bytes = x.sha256 is not None and x.sha256 == y.sha256
    same_content = x.content_sha256 is not None and x.content_sha256 == y.content_sha256
    return same_bytes or same_content or (x.uid_derived_from_content and y.uid_derived_from_content)


def _bulk_uris(item: dict[str, Any]) -> list[str]:
    found: list[str] = []

    def walk(value: Any, depth: int) -> None:
        if depth > 16:
            raise MalformedRequest("DICOM JSON metadata is nested too deeply", field="body")
        if isinstance(value, dict):
            uri = value.get("BulkDataURI")
            if isinstance(uri, str):
                found.append(uri)
            for inner in value.values():
                walk(inner, depth + 1)
        elif isinstance(value, list):
            for inner in value:
                walk(inner, depth + 1)

    walk(item, 0)
    return found


def _identified(exc: BaseException, item: dict[str, Any]) -> BaseException:
    """Attach the SOP Class and Instance UIDs of the metadata to ``exc`` for the response."""
    for attribute, tag in (("sop_class_uid", "00080016"), ("sop_instance_uid", "00080018")):
        value = (item.get(tag) or {}).get("Value") if isinstance(item.get(tag), dict) else None
        if value and isinstance(value[0], str) and not getattr(exc, attribute, ""):
            setattr(exc, attribute, value[0])
    return exc


def warning_header(messages: list[str]) -> str:
    """A Warning header (RFC 7234 5.5, as PS3.18 8.x uses it) summarising what happened."""
    text = "; ".join(messages)[:1500].replace("\\", "/").replace('"', "'")
    # printable ASCII only: the messages quote values from the received data sets, and a header
    # may carry neither CR/LF (injection) nor characters outside Latin-1 (which cannot be sent)
    text = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
    return f'299 ologies "{text}"'


def _tag(exc: BaseException, sop_class_uid: str, sop_instance_uid: str) -> None:
    try:
        exc.sop_class_uid = sop_class_uid  # type: ignore[attr-defined]
        exc.sop_instance_uid = sop_instance_uid  # type: ignore[attr-defined]
    except AttributeError:
        pass
