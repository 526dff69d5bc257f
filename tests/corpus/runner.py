"""Run the hostile-input corpus through every ingest route and check the invariants after every
case (RELIABILITY.md section 3 A; the "bad inputs tried / crashed" figure of section 4).

Routes, all against one in-process service over embedded backends (a file store and SQLite):

* ``api``: ``POST /api/v1/images`` (multipart/form-data), as a photographer's API key;
* ``web``: ``POST /upload``, the upload page's form (the birth date in parts), same key;
* ``stow``: ``POST /dicomweb/studies`` (multipart/related; ``type="application/dicom"``);
* ``cstore``: C-STORE to the DIMSE listener on loopback (pynetdicom, the file sent as it is,
  after its file meta information, so that what the listener receives is the hostile data set);
* ``watch``: the watched folder (``ingest.watch.Watcher``) with a sidecar per file.

After every case: the status (a 5xx other than 503 is a crash; so is an exception escaping a
route, a watcher "internal error" and a listener that no longer answers a C-ECHO), the outcome
against what the case expects, ``assert_repository_consistent(strict=True)`` (nothing lost,
nothing half-visible, nothing stored that was refused, no spool left), and the peak resident
memory of the process while the case ran against ``rss_budget_mb``.

Afterwards, the metadata-leak scan (RELIABILITY.md O1): every served artefact (the DICOM file,
its thumbnail and its rendered JPEG) of every stored case is read and searched for GPS, owner and
maker-note metadata, EXIF and XMP segments.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import api_key, patient_fields
from tests.corpus.make import EICAR, Case
from tests.invariants import InvariantViolation, Ledger, assert_repository_consistent

ROUTES = ("api", "web", "stow", "cstore", "watch")
CALLING_AE = "CORPUSCAM"
#: served bytes that must never appear in a rendition of an uploaded photograph (O1)
LEAK_MARKERS = (b"Exif\x00\x00", b"GPSLatitude", b"exif:GPS", b"\xa9xyz", b"Dr Example Owner", b"SN-0042-SECRET",
                b"http://ns.adobe.com/xap/1.0/", b"MAKERNOTE", b"\x01\x02secret")  # fmt: skip
LEAK_KEYWORDS = ("CameraOwnerName", "MakerNote", "LensSerialNumber", "CameraSerialNumber")


@dataclass
class Attempt:
    case: str
    family: str
    route: str
    status: str  # the HTTP status, the C-STORE status (hex) or the watcher's outcome
    outcome: str  # stored | refused | unavailable | crash
    seconds: float
    rss_mb: float
    expected: str
    detail: str = ""

    @property
    def unexpected(self) -> bool:
        return self.outcome != "crash" and self.expected != "any" and self.outcome != self.expected


@dataclass
class Report:
    attempts: list[Attempt] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    artefacts_scanned: int = 0
    routes: list[str] = field(default_factory=list)
    skipped_routes: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def crashes(self) -> list[Attempt]:
        return [a for a in self.attempts if a.outcome == "crash"]

    @property
    def over_budget(self) -> list[Attempt]:
        return [a for a in self.attempts if a.detail.startswith("rss over budget")]

    @property
    def unexpected(self) -> list[Attempt]:
        return [a for a in self.attempts if a.unexpected]

    def summary(self) -> dict[str, Any]:
        by_route: dict[str, Counter[str]] = {}
        for a in self.attempts:
            by_route.setdefault(a.route, Counter())[a.outcome] += 1
        slowest = sorted(self.attempts, key=lambda a: a.seconds, reverse=True)[:5]
        return {
            "tried": len(self.attempts),
            "distinct_files": len({a.case for a in self.attempts}),
            "crashed": len(self.crashes),
            "server_errors_other_than_503": sum(1 for a in self.crashes if a.status.isdigit() and int(a.status) >= 500),
            "over_memory_budget": len(self.over_budget),
            "invariant_violations": len(self.violations),
            "unexpected_outcomes": len(self.unexpected),
            "metadata_artefacts_scanned": self.artefacts_scanned,
            "metadata_leaks": len(self.leaks),
            "routes": self.routes,
            "skipped_routes": self.skipped_routes,
            "by_route": {r: dict(c) for r, c in by_route.items()},
            "peak_rss_mb": max((a.rss_mb for a in self.attempts), default=0.0),
            "slowest": [(a.case, a.route, round(a.seconds, 2)) for a in slowest],
            "seconds": round(self.seconds, 1),
        }

    def failures(self) -> list[str]:
        out = [f"CRASH {a.route} {a.case}: {a.status} {a.detail[:300]}" for a in self.crashes]
        out += [f"MEMORY {a.route} {a.case}: {a.detail}" for a in self.over_budget]
        out += [f"INVARIANT {v}" for v in self.violations]
        out += [f"EXPECTED {a.expected}, GOT {a.outcome} ({a.status}) {a.route} {a.case}: {a.detail[:200]}" for a in self.unexpected]
        out += [f"LEAK {leak}" for leak in self.leaks]
        return out

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"summary": self.summary(), "failures": self.failures(),
                                    "attempts": [asdict(a) for a in self.attempts]}, indent=1))  # fmt: skip


class RssSampler:
    """Peak resident memory of the largest of this process and its children (the DIMSE
    listener's store workers), sampled every few milliseconds in a thread."""

    def __init__(self, every: float = 0.005) -> None:
        self.every = every
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._children: list[int] = []
        self._listed = 0.0

    @staticmethod
    def _rss_of(pid: int | str) -> int:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _child_pids(self) -> list[int]:
        now = time.monotonic()
        if now - self._listed > 0.5:  # list /proc twice a second, sample often
            me = str(os.getpid())
            found = []
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    if stat.read_text().rsplit(")", 1)[1].split()[1] == me:
                        found.append(int(stat.parent.name))
                except (OSError, IndexError):
                    continue
            self._children, self._listed = found, now
        return self._children

    def rss_kb(self) -> int:
        # The bound is per worker: the largest single process (this one, or a child such as a
        # DIMSE store worker or a PDF renderer). A sum would charge a case for a worker pool
        # that merely started during it (seen in CI: a pool start-up counted as 874 MB).
        return max([self._rss_of("self"), *(self._rss_of(pid) for pid in self._child_pids())])

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.peak_kb = max(self.peak_kb, self.rss_kb())

    def start(self) -> "RssSampler":
        self._thread.start()
        return self

    def reset(self) -> int:
        now = self.rss_kb()
        self.peak_kb = now
        return now

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def effective_expect(case: Case, route: str) -> str:
    """What this route must do with this case: STOW-RS and C-STORE carry DICOM only."""
    if route in ("stow", "cstore") and case.kind != "dicom":
        return "refused"
    if route == "stow" and case.expect == "stored" and case.id.startswith("A9-deflated"):
        return "any"  # a deflated object sent as one part: stored or refused per STOW-RS's syntaxes
    return case.expect


class CorpusRunner:
    def __init__(self, work: Path, *, routes: Iterable[str] = ROUTES, max_pixels: int = 20_000_000,
                 rss_budget_mb: float = 700.0, check_every: int = 1, leak_every: int = 1,
                 log: Callable[[str], None] | None = None) -> None:  # fmt: skip
        from repository.settings import Settings
        from web.app import create_app

        self.work = work
        self.spool = work / "spool"
        self.spool.mkdir(parents=True, exist_ok=True)
        self.rss_budget_mb = rss_budget_mb
        self.check_every = check_every
        self.leak_every = leak_every  # scan the renditions of every n-th stored item (and all with GPS)
        self.log = log or (lambda message: None)
        self.settings = Settings(
            store_url=(work / "store").as_uri(), index_url=f"sqlite:///{work / 'index.sqlite3'}",
            allow_test_nhs_numbers=True, spool_dir=self.spool, max_image_pixels=max_pixels, _env_file=None,
            dimse_peers={CALLING_AE: {"trust": "REM", "department": "dermatology"}},
            dimse_acse_timeout=2.0, dimse_network_timeout=10.0, dimse_dimse_timeout=10.0,
        )  # fmt: skip
        self.app = create_app(self.settings, reconcile=False)
        self.services = self.app.state.services
        self.client = TestClient(self.app, raise_server_exceptions=False)
        self.client.__enter__()
        self.key = api_key(self.app, role="photographer", trust="REM")
        self.admin = api_key(self.app, role="admin", trust="REM")
        self.client.headers["Authorization"] = f"Bearer {self.key}"
        self.ledger = Ledger()
        self.case_of: dict[str, Case] = {}  # acknowledged UID -> the case that stored it first
        self.report = Report()
        self.listener = None
        self.routes = []
        for route in routes:
            reason = self._unavailable(route)
            if reason:
                self.report.skipped_routes[route] = reason
            else:
                self.routes.append(route)
        self.report.routes = list(self.routes)
        if "cstore" in self.routes:
            from ingest.dimse import DimseListener

            self.listener = DimseListener(self.services)
            self.listener.start("127.0.0.1", 0)
        if "watch" in self.routes:
            from ingest.watch import WatchConfig, Watcher

            self.folder = work / "watch"
            self.folder.mkdir()
            self.clock = [1000.0]
            config = WatchConfig(folder=self.folder, settle_seconds=1, context_grace_seconds=1, workers=1, check_open_files=False)
            self.watcher = Watcher(self.services.ingestor, config, clock=lambda: self.clock[0])
        self.sampler = RssSampler().start()
        self._seen_violations: set[str] = set()

    def _unavailable(self, route: str) -> str:
        if route == "stow" and self.client.post("/dicomweb/studies", content=b"").status_code == 404:
            return "DICOMweb STOW-RS is not routed in this build"
        if route == "cstore":
            try:
                import pynetdicom  # noqa: F401

                from ingest.dimse import DimseListener  # noqa: F401
            except ImportError as exc:
                return f"the DIMSE listener is not available: {exc}"
        if route not in ROUTES:
            return "unknown route"
        return ""

    def close(self) -> None:
        self.sampler.stop()
        if self.listener is not None:
            self.listener.stop()
        self.client.__exit__(None, None, None)
        self.services.close()

    # -- running -----------------------------------------------------------------------------
    def run(self, cases: Iterable[Case]) -> Report:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom and Pillow warn about the hostile inputs, by design
            return self._run(cases)

    def _run(self, cases: Iterable[Case]) -> Report:
        started = time.perf_counter()
        cases = list(cases)
        for number, case in enumerate(cases, start=1):
            for route in self.routes:
                self._one(case, route)
            if number % self.check_every == 0 or number == len(cases):
                self._check(f"after {case.id} ({', '.join(self.routes)})")
            if number % 100 == 0:
                self.log(f"{number}/{len(cases)} cases, {len(self.report.attempts)} attempts, "
                         f"{len(self.report.failures())} failures")  # fmt: skip
        self._check("at the end", full=True)
        self.leak_scan()
        self.report.seconds += time.perf_counter() - started
        return self.report

    def _check(self, when: str, full: bool = False) -> None:
        try:
            assert_repository_consistent(self.services.repository, self.ledger, strict=True, spool=self.spool, full=full)
        except InvariantViolation as exc:
            for line in str(exc).splitlines()[1:]:
                line = line.strip()
                if line not in self._seen_violations:
                    self._seen_violations.add(line)
                    self.report.violations.append(f"{when}: {line}")

    def _one(self, case: Case, route: str) -> None:
        base_kb = self.sampler.reset()
        started = time.perf_counter()
        try:
            status, outcome, detail = getattr(self, f"_via_{route}")(case)
        except Exception as exc:  # noqa: BLE001 - anything escaping a route is a crash
            status, outcome, detail = "exception", "crash", f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - started
        for uid in self.ledger.acknowledged:
            self.case_of.setdefault(uid, case)
        rss_mb = max(0, self.sampler.peak_kb - base_kb) / 1024
        if rss_mb > self.rss_budget_mb:
            detail = f"rss over budget: {rss_mb:.0f} MB > {self.rss_budget_mb:.0f} MB; {detail}"
        self.report.attempts.append(
            Attempt(case.id, case.family, route, str(status), outcome, seconds, round(rss_mb, 1), effective_expect(case, route), detail)
        )

    @staticmethod
    def _classify(status: int) -> str:
        if 200 <= status < 300:
            return "stored"
        if status == 503:
            return "unavailable"
        if 400 <= status < 500:
            return "refused"
        return "crash"

    def _via_api(self, case: Case) -> tuple[str, str, str]:
        response = self.client.post("/api/v1/images", data=patient_fields(),
                                    files={"file": (case.filename, case.data, "application/octet-stream")})  # fmt: skip
        outcome = self._classify(response.status_code)
        if outcome == "stored":
            self.ledger.ack_response(response.json(), case.sha256)
        return str(response.status_code), outcome, response.text[:300] if outcome != "stored" else ""

    def _via_web(self, case: Case) -> tuple[str, str, str]:
        fields = {k: v for k, v in patient_fields().items() if k != "birth_date"}
        fields.update({"birth_date[day]": "02", "birth_date[month]": "03", "birth_date[year]": "1984"})
        response = self.client.post("/upload", data=fields, files={"file": (case.filename, case.data, "application/octet-stream")})
        outcome = self._classify(response.status_code)
        if outcome == "stored":
            uids = re.findall(r'href="/images/([0-9.]+)"', response.text)
            if not uids:
                return str(response.status_code), "crash", "a 2xx upload page naming no stored image"
            for uid in uids:
                self.ledger.ack(uid, case.sha256)
        return str(response.status_code), outcome, "" if outcome == "stored" else _page_error(response.text)

    def _via_stow(self, case: Case) -> tuple[str, str, str]:
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + case.data
                + f"\r\n--{boundary}--\r\n".encode())  # fmt: skip
        response = self.client.post(
            "/dicomweb/studies", content=body,
            headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                     "Accept": "application/dicom+json"},
        )  # fmt: skip
        stored = []
        if response.headers.get("content-type", "").startswith("application/dicom+json"):
            stored = [item["00081155"]["Value"][0] for item in response.json().get("00081199", {}).get("Value", [])]
        if response.status_code >= 500:
            return str(response.status_code), self._classify(response.status_code), response.text[:300]
        for uid in stored:
            self.ledger.ack(uid, case.sha256)
        if response.status_code in (200, 202) and stored:
            return str(response.status_code), "stored", ""
        return str(response.status_code), "refused", response.text[:200]

    def _via_cstore(self, case: Case) -> tuple[str, str, str]:
        from pydicom.filereader import read_preamble  # noqa: F401 - pydicom is there
        from pynetdicom import AE, _config

        path = self.work / "cstore.dcm"
        path.write_bytes(case.data)
        try:
            from pynetdicom.dsutils import split_dataset

            meta, _ = split_dataset(path)
            context = (str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID))
            if not all(re.fullmatch(r"[0-9.]{1,64}", uid) for uid in context):
                raise ValueError("no SOP class or transfer syntax a modality could propose")
        except Exception as exc:  # noqa: BLE001 - no modality could send this: nothing to test
            return "unsendable", "refused", f"no file meta a modality could send: {type(exc).__name__}"
        _config.STORE_SEND_CHUNKED_DATASET = True  # send the bytes as they are, after the meta
        ae = AE(ae_title=CALLING_AE)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
        try:
            ae.add_requested_context(*context)
        except ValueError as exc:
            return "unsendable", "refused", f"context not requestable: {exc}"
        assoc = ae.associate("127.0.0.1", self.listener.port, ae_title=self.settings.dimse_ae_title)
        if not assoc.is_established:
            # refused as a whole (no acceptable presentation context): fine if it still answers
            alive = self._echo()
            return "association-rejected", "refused" if alive else "crash", "" if alive else "the listener stopped answering"
        try:
            if not assoc.accepted_contexts:
                return "context-rejected", "refused", "presentation context not accepted"
            try:
                status = assoc.send_c_store(path)
            except Exception as exc:  # noqa: BLE001 - our SCU cannot encode it (a listener crash shows as a status or an abort)
                return "unsendable", "refused", f"{type(exc).__name__}: {exc}"
            code = int(status.Status) if status and "Status" in status else -1
        finally:
            if assoc.is_established:
                assoc.release()
        if code == -1:
            # aborted: fine for a hostile data set if the listener still answers afterwards
            return "aborted", ("refused" if self._echo() else "crash"), "association aborted"
        if code == 0x0000 or 0xB000 <= code <= 0xBFFF:
            uid = str(meta.MediaStorageSOPInstanceUID)
            self.ledger.ack(uid, case.sha256)
            return f"0x{code:04X}", "stored", ""
        if code == 0xA700:  # out of resources: over a size budget here (no store outage is injected)
            return f"0x{code:04X}", "refused", ""
        if code == 0x0110:  # "processing failure": our catch-all for the unexpected
            return f"0x{code:04X}", "crash", "processing failure (an unexpected error in the listener)"
        return f"0x{code:04X}", "refused", ""

    def _echo(self) -> bool:
        from pynetdicom import AE
        from pynetdicom.sop_class import Verification

        ae = AE(ae_title=CALLING_AE)
        ae.add_requested_context(Verification)
        ae.acse_timeout = ae.network_timeout = 10
        assoc = ae.associate("127.0.0.1", self.listener.port, ae_title=self.settings.dimse_ae_title)
        if not assoc.is_established:
            return False
        status = assoc.send_c_echo()
        assoc.release()
        return bool(status) and int(status.Status) == 0

    def _via_watch(self, case: Case) -> tuple[str, str, str]:
        name = f"{hashlib.sha256(case.id.encode()).hexdigest()[:16]}-{Path(case.filename).name}"
        (self.folder / name).write_bytes(case.data)
        (self.folder / f"{name}.json").write_text(json.dumps(patient_fields()))
        outcomes = []
        for _ in range(3):
            outcomes += [o for o in self.watcher.scan_once() if o.name == name]
            if outcomes:
                break
            self.clock[0] += 2
        if not outcomes:
            if case.data:
                return "ignored", "crash", "the watcher neither stored nor refused the file"
            (self.folder / name).unlink(missing_ok=True)  # an empty file is never taken: by design
            (self.folder / f"{name}.json").unlink(missing_ok=True)
            return "ignored-empty", "refused", ""
        outcome = outcomes[-1]
        if outcome.status in ("stored", "existing"):
            for uid in outcome.sop_instance_uids:
                self.ledger.ack(uid, case.sha256)
            return outcome.status, "stored", ""
        if outcome.status == "retry":
            return outcome.status, "unavailable", outcome.reason
        if outcome.reason.startswith("internal error"):
            return outcome.status, "crash", outcome.reason
        return outcome.status, "refused", outcome.reason[:200]

    # -- the metadata-leak scan (O1) ----------------------------------------------------------
    def leak_scan(self) -> None:
        from pydicom import dcmread

        headers = {"Authorization": f"Bearer {self.admin}"}
        for number, uid in enumerate(sorted(self.ledger.acknowledged)):
            source = self.case_of.get(uid)
            if number % self.leak_every and not (source is not None and source.gps):
                continue
            for rendition in ("file", "thumbnail", "rendered"):
                response = self.client.get(f"/api/v1/instances/{uid}/{rendition}", headers=headers)
                if response.status_code in (404, 406, 415, 422) and rendition != "file":
                    continue  # no such rendition for this kind (a video, a document)
                if response.status_code != 200:
                    self.report.leaks.append(f"{uid} {rendition}: could not be read ({response.status_code})")
                    continue
                self.report.artefacts_scanned += 1
                data = response.content
                for marker in LEAK_MARKERS:
                    if marker in data:
                        self.report.leaks.append(f"{uid} {rendition}: holds {marker!r}")
                case = self.case_of.get(uid)
                if case is not None and case.kind == "image" and EICAR in data:
                    self.report.leaks.append(f"{uid} {rendition}: holds the EICAR string of {case.id} (metadata segments must go)")
                if rendition == "file":
                    if data[:128] != bytes(128):  # CVE-2019-11687: the preamble of what we store is zeroed
                        self.report.leaks.append(f"{uid} file: non-zero preamble ({case.id if case else '?'})")
                    ds = dcmread(io.BytesIO(data))
                    for element in ds.iterall():
                        keyword = element.keyword or ""
                        if keyword.startswith("GPS") or keyword in LEAK_KEYWORDS:
                            self.report.leaks.append(f"{uid} file: holds {keyword}")


def _page_error(html: str) -> str:
    found = re.findall(r'nhsuk-error-(?:message|summary__list)[^>]*>(.*?)<', html, re.S)
    return " | ".join(t.strip() for t in found if t.strip())[:200]


def run_corpus(cases: list[Case], *, routes: Iterable[str] = ROUTES, work: Path | None = None, **options: Any) -> Report:
    work = work or Path(tempfile.mkdtemp(prefix="ologies-corpus-"))
    runner = CorpusRunner(work, routes=routes, **options)
    try:
        return runner.run(cases)
    finally:
        runner.close()
