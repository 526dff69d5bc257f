"""The DICOM network listener (pynetdicom): Storage SCP, Verification SCP and Study Root C-FIND.

Started by ``ologies serve --dimse-port N`` (one listener in the CLI's parent process, beside the
web workers) or ``ologies dimse``. What it guards against (RELIABILITY.md 2.6):

* **Who may associate.** Calling AE titles are an allow-list (``dimse_peers``), each acting for
  one trust (and department); a peer may also be tied to addresses. An empty list lets nobody
  in. AE titles are labels, not authentication: use a firewall or DICOM TLS beyond the LAN.
* **Idle sockets cannot lock modalities out.** An association that does not negotiate within
  ``dimse_acse_timeout`` (5 s) is dropped; no address may hold more than
  ``dimse_max_associations_per_peer`` connections, and no calling AE title more than that many
  associations, so one misbehaving host cannot take the ``dimse_max_associations`` slots.
* **All cores.** pynetdicom runs every association in a thread of one process; checking and
  storing a data set (the CPU-heavy part) runs in a pool of ``workers`` processes, so four
  modalities sending at once are not serialised by the GIL.
* **Bounded data.** Each PDU's length is checked from its 6-byte header before the rest is
  read: an A-ASSOCIATE-RQ (or any other PDU but P-DATA-TF) of more than ``MAX_CONTROL_PDU``,
  or a P-DATA-TF of more than ``dimse_max_pdu`` bytes, is answered with an A-ABORT (invalid PDU
  parameter value, PS3.8 9.3.8) and the connection closed; a data set growing past
  ``dimse_max_dataset_bytes`` aborts the association; received data sets go to a temporary file
  (``STORE_RECV_CHUNKED_DATASET``), never whole into memory, removed once stored or refused, or
  when the association ends before they are whole; they are then checked by
  ``converters.dicom.prepare_dicom`` as every other DICOM input is.
* **What is stored** and the statuses answered are those of STOW-RS (``converters.dicom``):
  0x0000, warnings 0xB000 (coerced) / 0xB006 (elements discarded), failures 0xA700 (out of
  resources, store down), 0xA900 (identifier or attributes wrong), 0xC000 (cannot understand),
  0x0111 (a different object is stored under this SOP Instance UID, or the same image for
  another patient), 0x0110 (anything unexpected). Only accepted SOP classes and transfer
  syntaxes are negotiated: anything else is a rejected presentation context.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydicom import Dataset

from converters import dicom as dcm
from converters.dicom import Provenance, dicom_status_for, prepare_dicom
from repository.access import Action, Principal, RoleValues
from repository.errors import ConfigurationError, Forbidden, OlogiesError, QueryError
from repository.guard import Caller
from repository.settings import DimsePeer, Settings
from search import qido
from search.attributes import MAX_WINDOW, AttributeQuery

log = logging.getLogger(__name__)

VERIFICATION = "1.2.840.10008.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
#: transfer syntaxes offered for storage, most preferred first (converters.dicom accepts them)
STORAGE_SYNTAXES = [
    dcm.EXPLICIT_VR_LE, dcm.IMPLICIT_VR_LE, dcm.JPEG_BASELINE, dcm.JPEG_EXTENDED,
    dcm.JPEG_LS_LOSSLESS, dcm.JPEG_LS_NEAR_LOSSLESS, dcm.JPEG_2000_LOSSLESS, dcm.JPEG_2000,
    dcm.RLE_LOSSLESS, dcm.DEFLATED_EXPLICIT_VR_LE,
]  # fmt: skip
#: for the video SOP classes: their MPEG-4 AVC and HEVC syntaxes only (converters.dicom_media)
VIDEO_SYNTAXES = sorted(dcm.VIDEO_TRANSFER_SYNTAXES)
AUDIT_EVERY = 100  # instances stored on one association between audit records
#: TCP connections held at once, idle ones included. pynetdicom counts a connection as an
#: association from its accept, so an idle socket would take one of ``dimse_max_associations``
#: until the ACSE timeout; 50 of them, reconnecting from 50 addresses, locked modalities out
#: (tests/bench/dimse_flood.py: 71% of associations succeeded). So pynetdicom's own limit is this
#: ceiling (an idle connection costs a thread for at most the ACSE timeout), and
#: ``dimse_max_associations`` is enforced on associations whose A-ASSOCIATE request was admitted.
MAX_CONNECTIONS = 1000
# A-ASSOCIATE-RJ result, source and reason (PS3.8 9.3.4)
REJECTED_PERMANENT, REJECTED_TRANSIENT = 0x01, 0x02
SOURCE_SERVICE_USER, SOURCE_PRESENTATION = 0x01, 0x03
CALLING_AE_NOT_RECOGNISED, LOCAL_LIMIT_EXCEEDED = 0x03, 0x02
#: the largest PDU other than a P-DATA-TF accepted: an A-ASSOCIATE-RQ of 128 presentation
#: contexts (the most there can be: their IDs are the odd numbers 1-255, PS3.8 9.3.2.2), each
#: with ten transfer syntaxes, is about 40 KB
MAX_CONTROL_PDU = 64 * 1024
PDU_P_DATA_TF = 0x04
#: A-ABORT PDU, service-provider source, reason "invalid-PDU-parameter value" (PS3.8 9.3.8)
ABORT_INVALID_PDU_PARAMETER = bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 0x02, 0x06])
_LEVELS = {"STUDY": "study", "SERIES": "series", "IMAGE": "instance"}
_KEY_OF = {"study": "StudyInstanceUID", "series": "SeriesInstanceUID", "instance": "SOPInstanceUID"}


def peer_principal(title: str, peer: DimsePeer) -> Principal:
    try:
        role = RoleValues(peer.role)
    except ValueError:
        raise ConfigurationError(f"OLOGIES_DIMSE_PEERS: {title} has an unknown role {peer.role!r}") from None
    return Principal(f"ae:{title}", title, role, peer.trust.upper(), peer.department, kind="device")


# -- the store worker processes ---------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _worker_init(settings: Settings) -> None:
    from ingest.allocator import tune_allocator
    from repository.registry import open_index, open_store
    from repository.service import Repository

    tune_allocator()  # a spawned process: nothing inherited

    _WORKER["repository"] = Repository(
        open_store(settings), open_index(settings), index_retry_seconds=settings.index_retry_seconds
    )
    _WORKER["settings"] = settings


def check_and_store(repository: Any, settings: Settings, path: str, provenance: Provenance, expected: str) -> tuple[int, dict[str, Any]]:
    """Check the received data set at ``path`` and store it: (status, what was stored)."""
    spooled = Path(settings.spool_dir or tempfile.gettempdir()) / f"ologies-cstore-{os.getpid()}-{threading.get_ident()}.dcm"
    try:
        limits = dcm.DicomLimits(max_bytes=settings.dimse_max_dataset_bytes, max_pixels=settings.max_image_pixels)
        prepared = prepare_dicom(
            Path(path), spooled, provenance=provenance, limits=limits,
            allow_test_numbers=bool(settings.allow_test_nhs_numbers),
        )  # fmt: skip
        if prepared.instance.sop_instance_uid != expected:
            return dcm.DATASET_DOES_NOT_MATCH, {"message": "the data set's SOP Instance UID is not the request's"}
        repository.store_instance(prepared.instance)
        item = prepared.instance
        stored = {"patient": item.patient_id, "study": item.study_instance_uid, "sop": item.sop_instance_uid,
                  "coercions": dcm.describe(prepared.coercions)}  # fmt: skip
        return prepared.warning_status or 0x0000, stored
    except Exception as exc:  # noqa: BLE001 - every failure becomes a status, never a crash
        if not isinstance(exc, OlogiesError):
            log.exception("C-STORE failed unexpectedly")
        return dicom_status_for(exc), {"message": getattr(exc, "message", "processing failure")}
    finally:
        spooled.unlink(missing_ok=True)


def _store_in_worker(path: str, provenance: Provenance, expected: str) -> tuple[int, dict[str, Any]]:
    return check_and_store(_WORKER["repository"], _WORKER["settings"], path, provenance, expected)


class DimseListener:
    """Owns the pynetdicom AE and its server; ``start`` returns once it is listening.

    ``processes``: store workers (default: ``settings.workers``; 0 stores in the association's
    thread, as an in-memory store requires).
    """

    def __init__(self, services: Any, settings: Settings | None = None, *, processes: int | None = None) -> None:
        self.services = services
        self.settings = settings or services.settings
        if processes is None:
            processes = 0 if self.settings.store_url.startswith("memory:") else self.settings.workers
        self.processes = processes
        self._pool: Any = None
        self.peers = {title.strip(): peer for title, peer in self.settings.dimse_peers.items()}
        self.principals = {title: peer_principal(title, peer) for title, peer in self.peers.items()}
        self._lock = threading.Lock()
        self._per_address: Counter[str] = Counter()
        self._per_title: Counter[str] = Counter()
        self._admitted = 0  # association requests admitted (idle connections are not counted)
        self._received: dict[int, int] = {}  # association id -> bytes of the message in flight
        self._stored: dict[int, tuple[Caller, list[tuple[str, str, str]]]] = {}
        self.server: Any = None
        self.ae: Any = None
        self._previous_sigterm: Any = None  # the SIGTERM handler replaced by start, while listening

    # -- set-up ----------------------------------------------------------------------------------
    def build_ae(self) -> Any:
        from pynetdicom import AE, _config

        _config.STORE_RECV_CHUNKED_DATASET = True
        _config.LOG_REQUEST_IDENTIFIERS = False  # no patient data in logs
        _config.LOG_RESPONSE_IDENTIFIERS = False
        s = self.settings
        ae = AE(ae_title=s.dimse_ae_title)
        ae.maximum_associations = max(MAX_CONNECTIONS, s.dimse_max_associations)  # admitted requests: _requested
        ae.acse_timeout = s.dimse_acse_timeout
        ae.dimse_timeout = s.dimse_dimse_timeout
        ae.network_timeout = s.dimse_network_timeout
        ae.maximum_pdu_size = s.dimse_max_pdu
        ae.require_called_aet = True
        # An empty allow-list lets nobody in (pynetdicom reads an empty list as "anyone").
        ae.require_calling_aet = list(self.peers) or ["NO PEERS ALLOWED"]  # _requested rejects it first
        ae.add_supported_context(VERIFICATION)
        for sop_class in dcm.ACCEPTED_SOP_CLASSES:
            video = sop_class in dcm.VIDEO_SOP_CLASSES
            ae.add_supported_context(sop_class, VIDEO_SYNTAXES if video else STORAGE_SYNTAXES)
        ae.add_supported_context(STUDY_ROOT_FIND, [dcm.EXPLICIT_VR_LE, dcm.IMPLICIT_VR_LE])
        self.ae = ae
        return ae

    def start(self, host: str | None = None, port: int | None = None) -> Any:
        from pynetdicom import evt

        if self.processes:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(
                self.processes, mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init, initargs=(self.settings,),
            )  # fmt: skip
        ae = self.build_ae()
        address = (host or self.settings.dimse_host, int(port if port is not None else (self.settings.dimse_port or 11112)))
        listener = self
        server_class = _bounded_server_class(listener)
        handlers = [
            (evt.EVT_C_ECHO, self._echo),
            (evt.EVT_C_STORE, self._store),
            (evt.EVT_C_FIND, self._find),
            (evt.EVT_REQUESTED, self._requested),
            (evt.EVT_CONN_OPEN, self._opened),
            (evt.EVT_CONN_CLOSE, self._closed),
            (evt.EVT_DATA_RECV, self._data_received),
            (evt.EVT_DIMSE_RECV, self._message_received),
        ]
        self.server = ae.make_server(address, evt_handlers=handlers, server_class=server_class)
        ae._servers.append(self.server)  # as start_server does, so that shutdown() finds it
        thread = threading.Thread(target=self.server.serve_forever, name="ologies-dimse", daemon=True)
        thread.start()
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._terminated)
        log.info("DIMSE listener %s on %s:%d", self.settings.dimse_ae_title, *self.server.server_address[:2])
        return self.server

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        """Stop listening, abort the associations still open and end the store processes."""
        if self.server is not None:
            server, self.server = self.server, None
            server.shutdown()
            server.server_close()
            for assoc in server.active_associations:  # as pynetdicom's AE.shutdown does
                assoc.abort()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._previous_sigterm is not None and threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGTERM) == self._terminated:
                signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    def _terminated(self, signum: int, frame: Any) -> None:
        """SIGTERM (installed by ``start`` in the main thread): stop, so that the store
        processes end with the listener (they were left running, with the index open, when the
        process was ended by the signal's default action, as ``ologies dimse`` was and uvicorn
        re-raises it after its own shutdown in ``ologies serve``); then what the signal did before."""
        previous = self._previous_sigterm
        log.info("DIMSE listener: SIGTERM, stopping")
        self.stop()
        if callable(previous):
            previous(signum, frame)
        elif previous in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signum)

    # -- connection accounting -------------------------------------------------------------------
    def allow_connection(self, address: str) -> bool:
        """Called for each TCP connection before anything is read from it."""
        restricted = self.peers and all(p.hosts for p in self.peers.values())
        if restricted and not any(address in p.hosts for p in self.peers.values()):
            log.warning("DIMSE connection from %s refused: no peer may call from there", address)
            return False
        with self._lock:
            if sum(self._per_address.values()) >= MAX_CONNECTIONS:
                log.warning("DIMSE connection from %s refused: %d connections open", address, MAX_CONNECTIONS)
                return False
            if self._per_address[address] >= self.settings.dimse_max_associations_per_peer:
                log.warning("DIMSE connection from %s refused: it already holds %d", address, self._per_address[address])
                return False
            self._per_address[address] += 1
        return True

    def connection_closed(self, address: str) -> None:
        with self._lock:
            self._per_address[address] -= 1
            if self._per_address[address] <= 0:
                del self._per_address[address]

    def _requested(self, event: Any) -> None:
        """Decide on the A-ASSOCIATE request before pynetdicom negotiates it, so that a refusal
        is an A-ASSOCIATE-RJ with its reason (PS3.8 9.3.4), which a modality reports and retries
        as it should, not an association accepted and then aborted. Permanent for a title not
        allowed from this address; transient (local limit exceeded) when the limits are reached."""
        assoc = event.assoc
        title = str(assoc.requestor.primitive.calling_ae_title).strip()
        address = str(assoc.requestor.address)
        peer = self.peers.get(title)
        if peer is None or (peer.hosts and address not in peer.hosts):
            log.warning("DIMSE association from %s as %s rejected: not allowed from there", address, title)
            return self._reject(assoc, REJECTED_PERMANENT, SOURCE_SERVICE_USER, CALLING_AE_NOT_RECOGNISED)
        with self._lock:
            if self._per_title[title] >= self.settings.dimse_max_associations_per_peer:
                refusal = f"{title} already has {self._per_title[title]}"
            elif self._admitted >= self.settings.dimse_max_associations:
                refusal = f"{self._admitted} associations already"
            else:
                refusal = ""
                self._admitted += 1
                self._per_title[title] += 1
                assoc._ologies_title = title  # noqa: SLF001 - counted, to be released on close
        if refusal:  # rejected outside the lock: closing the connection runs _closed, which takes it
            log.warning("DIMSE association from %s rejected: %s", address, refusal)
            self._reject(assoc, REJECTED_TRANSIENT, SOURCE_PRESENTATION, LOCAL_LIMIT_EXCEEDED)

    @staticmethod
    def _reject(assoc: Any, result: int, source: int, reason: int) -> None:
        # What pynetdicom's own negotiation does to reject; it skips negotiating a request
        # rejected in an EVT_REQUESTED handler (Association.run).
        assoc.acse.send_reject(result, source, reason)
        assoc.kill()

    @staticmethod
    def _opened(event: Any) -> None:
        # raised just before pynetdicom starts the association's thread: the connection's thread
        # waits for it, to count the connection until it has ended (process_request_thread)
        sock = event.assoc.dul.socket.socket
        if isinstance(sock, _PduBoundedSocket):
            sock.association = event.assoc

    def _closed(self, event: Any) -> None:
        assoc = event.assoc
        title = getattr(assoc, "_ologies_title", None)
        with self._lock:
            if title is not None:
                self._admitted -= 1
                self._per_title[title] -= 1
                if self._per_title[title] <= 0:
                    del self._per_title[title]
                assoc._ologies_title = None
            self._received.pop(id(assoc), None)
        self._flush_audit(assoc)

    def _data_received(self, event: Any) -> None:
        assoc = event.assoc
        key = id(assoc)
        size = self._received.get(key, 0) + len(event.data)
        self._received[key] = size
        if size > self.settings.dimse_max_dataset_bytes + self.settings.dimse_max_pdu:
            log.warning("DIMSE association aborted: a data set of more than %d bytes", self.settings.dimse_max_dataset_bytes)
            assoc.abort()

    def _message_received(self, event: Any) -> None:
        self._received[id(event.assoc)] = 0

    # -- services --------------------------------------------------------------------------------
    def caller_for(self, event: Any) -> Caller:
        title = str(event.assoc.requestor.ae_title).strip()
        principal = self.principals.get(title)
        if principal is None:
            raise Forbidden(f"calling AE title {title!r} is not allowed")
        return Caller(principal, str(event.assoc.requestor.address))

    def _echo(self, event: Any) -> int:
        return 0x0000

    def _store(self, event: Any) -> int:
        received: Path | None = None
        try:
            received = Path(event.dataset_path)
            caller = self.caller_for(event)
            self.services.guard.require(caller, Action.UPLOAD)
            principal = caller.principal
            if received.stat().st_size > self.settings.dimse_max_dataset_bytes:
                return dcm.OUT_OF_RESOURCES
            provenance = Provenance(
                "cstore", trust=self.services.policy.upload_trust(principal, None),
                specialty=principal.department, source_ae_title=principal.name,
            )  # fmt: skip
            expected = str(event.request.AffectedSOPInstanceUID)
            if self._pool is not None:
                status, stored = self._pool.submit(_store_in_worker, str(received), provenance, expected).result()
            else:
                status, stored = check_and_store(self.services.repository, self.settings, str(received), provenance, expected)
            if "sop" in stored:
                self._remember(event.assoc, caller, stored["patient"], stored["study"], stored["sop"])
                if stored["coercions"]:
                    log.info("C-STORE %s: %s", stored["sop"], stored["coercions"])
            else:
                log.warning("C-STORE refused (0x%04X): %s", status, stored.get("message", ""))
            return status
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status, never a crash
            if not isinstance(exc, OlogiesError):
                log.exception("C-STORE failed unexpectedly")
            return dicom_status_for(exc)
        finally:
            if received is not None:
                try:
                    received.unlink(missing_ok=True)
                except OSError:
                    pass

    def _remember(self, assoc: Any, caller: Caller, patient: str, study: str, sop: str) -> None:
        with self._lock:
            _, stored = self._stored.setdefault(id(assoc), (caller, []))
            stored.append((patient, study, sop))
            full = len(stored) >= AUDIT_EVERY
        if full:
            self._flush_audit(assoc)

    def _flush_audit(self, assoc: Any) -> None:
        with self._lock:
            caller, stored = self._stored.pop(id(assoc), (None, []))
        if caller is None or not stored:
            return
        by_patient: dict[str, tuple[set[str], list[str]]] = {}
        for patient, study, sop in stored:
            studies, uids = by_patient.setdefault(patient, (set(), []))
            studies.add(study)
            uids.append(sop)
        for patient, (studies, uids) in by_patient.items():
            try:
                self.services.guard.record_upload(caller, patient, sorted(studies), uids, "cstore")
            except Exception:  # noqa: BLE001
                log.exception("could not write the audit record of a C-STORE association")

    def _find(self, event: Any) -> Iterator[tuple[int, Dataset | None]]:
        try:
            caller = self.caller_for(event)
            self.services.guard.require(caller, Action.SEARCH)
            identifier = event.identifier
            level, query, returns = self._parse_find(identifier, caller)
        except (OlogiesError, ValueError) as exc:
            yield _failure(dicom_status_for(exc) if not isinstance(exc, QueryError) else dcm.DATASET_DOES_NOT_MATCH, str(exc)[:64])
            return
        index = self.services.repository.index
        shown: list[str] = []
        patients: set[str] = set()
        offset = 0
        page_size = 1000
        while offset < MAX_WINDOW:
            page_query = AttributeQuery(query.matches, limit=min(page_size, MAX_WINDOW - offset), offset=offset, trusts_visible=query.trusts_visible)
            try:
                if level == "instance":
                    page = index.search_instances(page_query)
                    rows = [(doc, {}) for doc in page.items]
                else:
                    aggregate = (index.search_studies if level == "study" else index.search_series)(page_query)
                    page = aggregate
                    rows = [(row.document, _computed(row, level)) for row in aggregate.rows]
            except OlogiesError as exc:
                yield _failure(dcm.OUT_OF_RESOURCES, exc.message[:64])
                return
            for doc, computed in rows:
                if event.is_cancelled:
                    yield 0xFE00, None
                    return
                patients.add(str(doc.get("PatientID") or ""))
                shown.append(str(doc.get(_KEY_OF[level]) or ""))
                yield 0xFF00, self._result(identifier, level, returns, doc, computed)
            if not page.has_more:
                break
            offset += page_size
        self.services.guard.record(
            caller, "search", detail=f"C-FIND {level}", patient_ids=sorted(p for p in patients if p),
            sop_instance_uids=shown if level == "instance" else [], study_uids=shown if level == "study" else [],
        )  # fmt: skip

    def _parse_find(self, identifier: Dataset, caller: Caller) -> tuple[qido.Level, AttributeQuery, list[str]]:
        level_name = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
        level = _LEVELS.get(level_name)
        if level is None:
            raise QueryError(f"QueryRetrieveLevel {level_name!r} is not STUDY, SERIES or IMAGE")
        matches = []
        returns: list[str] = []
        patient_id = None
        for elem in identifier:
            keyword = elem.keyword
            if keyword in ("QueryRetrieveLevel", "SpecificCharacterSet"):
                continue
            value = _as_query_text(elem)
            attribute = qido.ATTRIBUTES.get(keyword)
            if attribute is None or not _at_level(attribute, level):
                if value:
                    raise QueryError(f"{keyword or elem.tag} cannot be matched")
                continue  # an unsupported key: returned empty
            returns.append(keyword)
            match = qido.to_match(attribute, value)
            if match is not None:
                matches.append(match)
            if keyword == "PatientID" and value and not any(c in value for c in "*?"):
                patient_id = value
        visible = self.services.policy.visible_trusts(caller.principal, patient_id)
        return level, AttributeQuery(tuple(matches), limit=1, trusts_visible=visible), returns

    def _result(self, identifier: Dataset, level: qido.Level, returns: list[str], doc: dict[str, Any], computed: dict[str, Any]) -> Dataset:
        out = Dataset()
        out.SpecificCharacterSet = "ISO_IR 192"
        out.QueryRetrieveLevel = identifier.QueryRetrieveLevel
        out.RetrieveAETitle = self.settings.dimse_ae_title
        for elem in identifier:
            keyword = elem.keyword
            if keyword in ("QueryRetrieveLevel", "SpecificCharacterSet", "RetrieveAETitle"):
                continue
            value: Any = None
            if keyword in computed:
                value = computed[keyword]
            elif keyword in returns:  # not a key of a lower level (from one of its instances)
                field = qido.ATTRIBUTES[keyword].field
                if field is not None:
                    value = doc.get(field)
            if elem.VR == "SQ":
                out.add_new(elem.tag, "SQ", [])
                continue
            if value in (None, ""):
                out.add_new(elem.tag, elem.VR, None)
            else:
                out.add_new(elem.tag, elem.VR, value if not isinstance(value, str) or "\\" not in value else value.split("\\"))
        key = _KEY_OF[level]
        if key not in out:
            setattr(out, key, doc.get(key))
        return out


def _at_level(attribute: qido.Attribute, level: qido.Level) -> bool:
    """Whether a key is supported in a query at ``level``: one of that level or above it, and not
    a count or ModalitiesInStudy of a level above (they describe a whole study or series).
    A STUDY-level answer describes the study, so a series or instance key would be one series'
    or instance's value presented as the study's (PS3.4 C.4.1.1.3)."""
    rank = qido._LEVEL_RANK  # noqa: SLF001
    if rank[attribute.level] > rank[level]:
        return False
    return attribute.level == level or attribute.keyword not in qido._AGGREGATES[attribute.level]  # noqa: SLF001


def _computed(row: Any, level: str) -> dict[str, Any]:
    if level == "study":
        return {"ModalitiesInStudy": list(row.modalities), "NumberOfStudyRelatedSeries": row.series, "NumberOfStudyRelatedInstances": row.instances}
    return {"NumberOfSeriesRelatedInstances": row.instances}


def _as_query_text(elem: Any) -> str:
    if elem.VR == "SQ":
        if elem.value:
            raise QueryError(f"{elem.keyword}: matching within sequences is not supported")
        return ""
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def _failure(status: int, comment: str) -> tuple[int, Dataset | None]:
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = "".join(c for c in comment if 32 <= ord(c) < 127)[:64]
    return ds, None  # type: ignore[return-value]


class _PduBoundedSocket(socket.socket):
    """An accepted connection that follows the PDU framing of what it receives (PS3.8 9.3.1:
    type, reserved, 4-byte length) and refuses a PDU by its header, before pynetdicom reads its
    body: pynetdicom reads each PDU whole into memory (``DULServiceProvider._read_pdu_data``)
    before any event is raised, so a peer could otherwise make it buffer up to 4 GiB, before it
    even names itself.

    pynetdicom reads from the socket only there, header (6 bytes) then body (its length), in
    ``recv`` calls of at most 4096 bytes; reads here never cross a PDU boundary. A refused PDU is
    answered with an A-ABORT and the connection shut down; ``recv`` then returns no data, which
    pynetdicom takes as the transport connection closed (Evt17), ending the association.

    Time is bounded too. pynetdicom's ARTIM and idle timers run in the loop that blocks in
    ``recv`` once a PDU has begun, so a peer that sends a header and then stalls or trickles
    would hold the connection for ever. The A-ASSOCIATE-RQ must therefore be whole within the ACSE
    timeout of the connection, and every later PDU within the network timeout of its first byte
    (256 KiB in 30 s is 9 KB/s: a slow link still gets through, PDU by PDU). A read past that
    raises ``TimeoutError``, which pynetdicom takes as the connection closed (Evt17)."""

    def bound(self, address: str, max_pdu: int, acse_timeout: float, network_timeout: float) -> None:
        self.peer, self.max_pdu, self.network_timeout = address, max_pdu, network_timeout
        self.association: Any = None  # pynetdicom's, once it has one (DimseListener._opened)
        self._header = bytearray()
        self._remaining = 0  # bytes of the current PDU's body not yet read
        self._deadline: float | None = time.monotonic() + acse_timeout  # for the current PDU
        self.settimeout(network_timeout)  # what sending has too: a peer that reads nothing

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self._remaining:
            data = self._recv_in_time(min(bufsize, self._remaining), flags)
            self._remaining -= len(data)
            if not self._remaining:
                self._deadline = None
            return data
        if self._deadline is None:  # the first byte of a PDU
            self._deadline = time.monotonic() + self.network_timeout
        data = self._recv_in_time(min(bufsize, 6 - len(self._header)), flags)
        self._header += data
        if len(self._header) == 6:
            pdu_type, length = self._header[0], int.from_bytes(self._header[2:6], "big")
            self._header = bytearray()
            if not 0x01 <= pdu_type <= 0x07:
                self._deadline = None
                return data  # pynetdicom refuses an unknown PDU type without reading on
            limit = self.max_pdu if pdu_type == PDU_P_DATA_TF else MAX_CONTROL_PDU
            if length > limit:
                log.warning("DIMSE connection from %s aborted: a PDU of type 0x%02X of %d bytes (at most %d)",
                            self.peer, pdu_type, length, limit)  # fmt: skip
                self._abort()
                return b""
            self._remaining = length
            if not length:
                self._deadline = None
        return data

    def _recv_in_time(self, bufsize: int, flags: int) -> bytes:
        left = (self._deadline or 0.0) - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError("PDU not received in time")
            self.settimeout(left)
            return super().recv(bufsize, flags)
        except TimeoutError:
            log.warning("DIMSE connection from %s dropped: a PDU not received whole in time", self.peer)
            raise
        finally:
            self.settimeout(self.network_timeout)

    def _abort(self) -> None:
        try:
            self.sendall(ABORT_INVALID_PDU_PARAMETER)
            self.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _discard_unstored(assoc: Any) -> None:
    """Remove the temporary files of data sets received on an association that has ended
    without storing them: the one being received when it was aborted (by the peer, by the
    connection closing, or by ``_data_received`` for its size), which pynetdicom writes with
    ``NamedTemporaryFile(delete=False)`` and leaves behind, and any received whole but not yet
    handed to ``_store`` (which removes those it is given)."""
    import queue

    dimse = getattr(assoc, "dimse", None)
    paths: list[Any] = []
    file = getattr(getattr(dimse, "message", None), "_data_set_file", None)
    if file is not None:
        try:
            file.close()
        except OSError:
            pass
        paths.append(file.name)
    messages = getattr(dimse, "msg_queue", None)
    while messages is not None:
        try:
            _, primitive = messages.get_nowait()
        except queue.Empty:
            break
        path = getattr(primitive, "_dataset_path", None)
        paths.append(path[0] if isinstance(path, tuple) else path)
    for path in paths:
        if path:
            try:
                Path(path).unlink(missing_ok=True)
            except OSError:
                log.warning("could not remove a partly received data set")


def _bounded_server_class(listener: DimseListener) -> type:
    from pynetdicom.transport import ThreadedAssociationServer

    class BoundedAssociationServer(ThreadedAssociationServer):
        """Counts connections per address before pynetdicom reads anything from them, until
        they are closed."""

        #: connection threads are not waited for by server_close (they live as long as the
        #: association; DimseListener.stop aborts those)
        daemon_threads = True

        def verify_request(self, request: Any, client_address: Any) -> bool:
            address = client_address[0] if isinstance(client_address, tuple) else str(client_address)
            return listener.allow_connection(address)

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            address = client_address[0] if isinstance(client_address, tuple) else str(client_address)
            try:
                super().process_request_thread(request, client_address)
                # pynetdicom's handler starts the association in a thread of its own and returns
                # at once: the connection is counted until that thread has ended.
                association = getattr(request, "association", None)
                if association is not None and association.ident is not None:
                    association.join()
                    if association.dul.ident is not None:
                        association.dul.join(timeout=5)
                    _discard_unstored(association)
            finally:
                self.shutdown_request(request)  # closed, if pynetdicom has not already
                listener.connection_closed(address)

        def get_request(self) -> Any:
            client, address = super().get_request()
            # No Nagle: otherwise each small C-STORE-RSP waits for a delayed ACK (~40 ms).
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if type(client) is socket.socket:  # (a TLS socket, were one configured, is left as it is)
                bounded = _PduBoundedSocket(client.family, client.type, client.proto, fileno=client.detach())
                s = listener.settings
                bounded.bound(str(address[0]), s.dimse_max_pdu, s.dimse_acse_timeout, s.dimse_network_timeout)
                client = bounded
            return client, address

    return BoundedAssociationServer


def serve_forever(services: Any, *, host: str | None = None, port: int | None = None) -> None:
    """``ologies dimse``: run the listener until interrupted."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())  # run after the listener's own
    listener = DimseListener(services)
    listener.start(host, port)
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()

