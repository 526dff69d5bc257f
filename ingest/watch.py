"""``ologies watch DIR``: ingest the files that studio and departmental devices drop in a folder.

Layout::

    DIR/                      files arrive here (with their sidecars or a manifest)
    DIR/done/                 each file once stored (with its sidecar)
    DIR/failed/               each file refused, beside NAME.reason.txt saying why
    DIR/.ologies-watch/journal.jsonl   what was stored and moved (append-only)

**Context** (the upload form's fields, same names) comes from, in order:

1. a sidecar JSON object next to the file: ``NAME.json`` or ``NAME.EXT.json``;
2. a CSV manifest in DIR (any ``*.csv`` with a header row): the row whose ``file`` column is
   the file's name, the other columns being form fields;
3. for a DICOM file, its own header (stored as received; the form fields are optional);
4. the watcher's defaults (``--trust``, ``--specialty``, ... given to the command) fill gaps.

A file with no context yet waits ``context_grace_seconds`` (its sidecar may still be coming),
then fails with a reason. Files of one patient, trust, specialty and day share a study.

**Never a file still being written**: a file is taken only when its size and modification time
have not changed for ``settle_seconds`` and no process has it open for writing (checked in
``/proc/*/fd`` on Linux). Names ending ``.part``, ``.tmp``, ``.crdownload`` or ``~`` and hidden
names are ignored, so a device may also write ``NAME.part`` and rename it when complete.

**Restarts**: the SOP Instance UID of a file is derived from its bytes, so ingesting a file again
finds the stored instance (no duplicate); the journal also records every file stored but not yet
moved, so after a crash between storing and moving the file is just moved. Bad input never stops
the watcher: each file's failure is written beside it; a store or index outage leaves the file
in place to be retried.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converters.sniff import HEAD_SIZE, sniff
from repository.errors import BackendUnavailable, OlogiesError
from repository.uids import uid_from

log = logging.getLogger(__name__)

ROUTE = "watch"
DONE, FAILED, STATE = "done", "failed", ".ologies-watch"
_PARTIAL_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial", "~")
_CONTEXT_SUFFIXES = (".json", ".csv")
_MAX_SIDECAR_BYTES = 64 * 1024
_MAX_MANIFEST_BYTES = 16 * 1024 * 1024


@dataclass
class WatchConfig:
    folder: Path
    settle_seconds: float = 5.0
    poll_seconds: float = 1.0
    context_grace_seconds: float = 120.0
    defaults: dict[str, str] = field(default_factory=dict)
    check_open_files: bool = True
    workers: int = 2


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str  # stored, existing, failed, retry
    reason: str = ""
    sop_instance_uids: tuple[str, ...] = ()


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float


class Watcher:
    """One folder. ``scan_once`` does one pass; ``run`` loops until ``stop`` is set."""

    def __init__(self, ingestor: Any, config: WatchConfig, *, on_stored: Callable[[Any, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.ingestor = ingestor
        self.config = config
        self.folder = config.folder.resolve()
        self.on_stored = on_stored
        self._clock = clock
        self._seen: dict[str, _Seen] = {}
        self._waiting_context: dict[str, float] = {}
        self._lock = threading.Lock()
        for sub in (DONE, FAILED, STATE):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self.journal_path = self.folder / STATE / "journal.jsonl"
        self._stored = self._read_journal()

    # -- the loop ----------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        log.info("watching %s", self.folder)
        while not stop.is_set():
            try:
                self.scan_once()
            except Exception:  # noqa: BLE001 - the watcher must outlive any one bad pass
                log.exception("watch pass failed; continuing")
            stop.wait(self.config.poll_seconds)

    def scan_once(self) -> list[Outcome]:
        ready = self._ready_files()
        if not ready:
            self._settle_manifests()
            return []
        manifests = self._manifests()
        with ThreadPoolExecutor(max(1, self.config.workers), thread_name_prefix="ologies-watch") as pool:
            outcomes = list(pool.map(lambda p: self._handle(p, manifests), ready))
        self._settle_manifests()
        return [o for o in outcomes if o is not None]

    # -- which files are ready ---------------------------------------------------------------
    def _candidates(self) -> list[Path]:
        found = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(".") or name.endswith(_PARTIAL_SUFFIXES) or name.endswith(_CONTEXT_SUFFIXES):
                    continue
                if entry.is_file(follow_symlinks=False):
                    found.append(Path(entry.path))
        return sorted(found)

    def _ready_files(self) -> list[Path]:
        now = self._clock()
        ready = []
        present = set()
        writing: set[str] | None = None  # one pass over /proc per scan, only if needed
        for path in self._candidates():
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            present.add(path.name)
            seen = self._seen.get(path.name)
            if seen is None or (seen.size, seen.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
                self._seen[path.name] = _Seen(stat.st_size, stat.st_mtime_ns, now)
                continue
            if now - seen.since < self.config.settle_seconds or stat.st_size == 0:
                continue
            if self.config.check_open_files:
                writing = files_open_for_writing() if writing is None else writing
                if str(path.resolve()) in writing:
                    continue
            ready.append(path)
        for gone in set(self._seen) - present:
            del self._seen[gone]
        return ready

    # -- one file ----------------------------------------------------------------------------
    def _handle(self, path: Path, manifests: dict[str, tuple[Path, dict[str, str]]]) -> Outcome | None:
        name = path.name
        try:
            journaled = self._stored.get(name)
            if journaled and journaled["size"] == path.stat().st_size and journaled["sha256"] == _sha256(path):
                self._move(path, DONE)  # stored before a crash, not yet moved
                return Outcome(name, "existing", sop_instance_uids=tuple(journaled["uids"]))
            fields, source = self._context(path, manifests)
            if fields is None:
                first = self._waiting_context.setdefault(name, self._clock())
                if self._clock() - first < self.config.context_grace_seconds:
                    return None
                return self._fail(path, f"no context for {name}: add {name}.json (the upload form's fields) "
                                        "or a row for it in a CSV manifest")  # fmt: skip
            self._waiting_context.pop(name, None)
            batch, sha = self._ingest(path, fields)
        except BackendUnavailable as exc:
            log.warning("%s: storage unavailable, will retry: %s", name, exc.message)
            return Outcome(name, "retry", exc.message)
        except OlogiesError as exc:
            where = f" ({exc.field})" if exc.field and exc.field not in ("file",) else ""
            return self._fail(path, f"{exc.message}{where}")
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the watcher
            log.exception("%s: unexpected failure", name)
            return self._fail(path, f"internal error ({type(exc).__name__}); the file was not stored")
        uids = tuple(f.outcome.sop_instance_uid for f in batch.files)
        status = "stored" if batch.any_created else "existing"
        self._journal({"event": "stored", "name": name, "size": path.stat().st_size, "sha256": sha,
                       "uids": list(uids), "context": source})  # fmt: skip
        if self.on_stored is not None:
            try:
                self.on_stored(batch, name)
            except Exception:  # noqa: BLE001 - an audit hook failure is logged, the file is stored
                log.exception("%s: on_stored hook failed", name)
        self._move(path, DONE)
        return Outcome(name, status, sop_instance_uids=uids)

    def _ingest(self, path: Path, fields: dict[str, str]) -> tuple[Any, str]:
        from ingest.pipeline import IncomingFile

        fields = dict(fields)
        if not fields.get("study_uid") and fields.get("nhs_number"):
            # one study per patient, trust, specialty and day at this device (not one per file)
            fields["study_uid"] = uid_from(
                "watch-study", fields["nhs_number"].replace(" ", "").upper(), fields.get("trust", ""),
                fields.get("specialty", ""), dt.date.today().isoformat(), fields.get("accession_number", ""),
            )  # fmt: skip
        sha = _sha256(path)
        return self.ingestor.ingest([IncomingFile(path, path.name, sha, private=False)], fields, route=ROUTE), sha

    def _context(self, path: Path, manifests: dict[str, tuple[Path, dict[str, str]]]) -> tuple[dict[str, str] | None, str]:
        for sidecar in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
            if sidecar.is_file():
                return {**self.config.defaults, **_read_sidecar(sidecar)}, sidecar.name
        if path.name in manifests:
            manifest, row = manifests[path.name]
            return {**self.config.defaults, **row}, manifest.name
        with path.open("rb") as handle:
            if sniff(handle.read(HEAD_SIZE)) == "application/dicom":
                return dict(self.config.defaults), "DICOM header"
        return None, ""

    # -- manifests ---------------------------------------------------------------------------
    def _manifests(self) -> dict[str, tuple[Path, dict[str, str]]]:
        rows: dict[str, tuple[Path, dict[str, str]]] = {}
        for manifest in sorted(self.folder.glob("*.csv")):
            try:
                for row in _read_manifest(manifest):
                    rows.setdefault(row["file"], (manifest, {k: v for k, v in row.items() if k != "file"}))
            except (OSError, ValueError, KeyError) as exc:
                log.warning("manifest %s unreadable: %s", manifest.name, exc)
        return rows

    def _settle_manifests(self) -> None:
        """Report files a manifest names that never arrived; move a finished manifest to done/."""
        now = time.time()
        for manifest in sorted(self.folder.glob("*.csv")):
            try:
                age = now - manifest.stat().st_mtime
                rows = _read_manifest(manifest)
            except (OSError, ValueError, KeyError) as exc:
                if now - manifest.stat().st_mtime > self.config.context_grace_seconds:
                    self._fail(manifest, f"the manifest cannot be read: {exc}")
                continue
            if age < self.config.settle_seconds:
                continue
            pending = False
            for row in rows:
                name = row["file"]
                if (self.folder / name).exists():
                    pending = True
                    continue
                if self._resolved(name):
                    continue
                if age >= self.config.context_grace_seconds:
                    self._write_reason(name, f"{name} is listed in the manifest {manifest.name} but never arrived in "
                                             f"{self.folder.name}/ (within {self.config.context_grace_seconds:.0f} s)")  # fmt: skip
                    self._journal({"event": "missing", "name": name, "manifest": manifest.name})
                else:
                    pending = True
            if not pending:
                self._move(manifest, DONE)

    def _resolved(self, name: str) -> bool:
        return any((self.folder / sub / name).exists() or (self.folder / sub / f"{name}.reason.txt").exists()
                   for sub in (DONE, FAILED))  # fmt: skip

    # -- moving and journalling --------------------------------------------------------------
    def _fail(self, path: Path, reason: str) -> Outcome:
        target = self._move(path, FAILED)
        self._write_reason(target.name if target else path.name, reason)
        self._journal({"event": "failed", "name": path.name, "reason": reason})
        return Outcome(path.name, "failed", reason)

    def _write_reason(self, name: str, reason: str) -> None:
        stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        (self.folder / FAILED / f"{name}.reason.txt").write_text(f"{reason}\n\n(ologies watch, {stamp})\n", encoding="utf-8")

    def _move(self, path: Path, where: str) -> Path | None:
        target = _free_name(self.folder / where / path.name)
        try:
            os.replace(path, target)
        except FileNotFoundError:
            return None
        for sidecar in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
            if sidecar != path and sidecar.is_file() and not _shared_sidecar(sidecar, path):
                os.replace(sidecar, _free_name(self.folder / where / sidecar.name))
        self._seen.pop(path.name, None)
        self._journal({"event": "moved", "name": path.name, "to": f"{where}/{target.name}"})
        with self._lock:
            self._stored.pop(path.name, None)
        return target

    def _journal(self, record: Mapping[str, object]) -> None:
        line = json.dumps({"at": time.time(), **record}, ensure_ascii=False)
        with self._lock, self.journal_path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if record.get("event") == "stored":
            with self._lock:
                self._stored[str(record["name"])] = dict(record)

    def _read_journal(self) -> dict[str, dict[str, Any]]:
        """Files stored whose move was not recorded (a crash between the two)."""
        stored: dict[str, dict[str, Any]] = {}
        if not self.journal_path.exists():
            return stored
        for line in self.journal_path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            if record.get("event") == "stored":
                stored[record["name"]] = record
            elif record.get("event") == "moved":
                stored.pop(record.get("name"), None)
        return stored


def open_for_writing(path: Path) -> bool:
    """Whether any process has ``path`` open for writing (Linux ``/proc``; False elsewhere)."""
    return str(path.resolve()) in files_open_for_writing()


def files_open_for_writing() -> set[str]:
    """Every file some process has open for writing, from ``/proc/*/fd`` (empty elsewhere;
    processes of other users are not visible to an unprivileged watcher)."""
    proc = Path("/proc")
    found: set[str] = set()
    if not proc.is_dir():
        return found
    for fd_dir in proc.glob("[0-9]*/fd"):
        try:
            fds = list(os.scandir(fd_dir))
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd.path)
                if not target.startswith("/"):
                    continue  # pipes, sockets, anonymous inodes
                flags = int(
                    next(line for line in (fd_dir.parent / "fdinfo" / fd.name).read_text().splitlines() if line.startswith("flags:")).split()[1],
                    8,
                )  # fmt: skip
            except (OSError, StopIteration, ValueError):
                continue
            if flags & (os.O_WRONLY | os.O_RDWR):
                found.add(target)
    return found


def _read_sidecar(path: Path) -> dict[str, str]:
    from repository.errors import InvalidInput

    if path.stat().st_size > _MAX_SIDECAR_BYTES:
        raise InvalidInput(f"the sidecar {path.name} is larger than {_MAX_SIDECAR_BYTES} bytes")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the sidecar {path.name} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, (str, int)) for v in data.values()):
        raise InvalidInput(f"the sidecar {path.name} must be a JSON object of text fields")
    return {str(k): str(v) for k, v in data.items()}


def _read_manifest(path: Path) -> list[dict[str, str]]:
    if path.stat().st_size > _MAX_MANIFEST_BYTES:
        raise ValueError("the manifest is too large")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "file" not in reader.fieldnames:
            raise ValueError("the manifest needs a header row with a 'file' column")
        return [{k: (v or "").strip() for k, v in row.items() if k} for row in reader if (row.get("file") or "").strip()]


def _shared_sidecar(sidecar: Path, path: Path) -> bool:
    """``NAME.json`` may serve ``NAME.jpg`` and ``NAME.mp4`` alike: keep it while another uses it."""
    if sidecar.name == path.name + ".json":
        return False
    stem = sidecar.stem
    return any(p.stem == stem and p != path and p.suffix not in _CONTEXT_SUFFIXES for p in sidecar.parent.iterdir())


def _free_name(target: Path) -> Path:
    if not target.exists():
        return target
    for n in range(1, 10_000):
        candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
        if not candidate.exists():
            return candidate
    raise OSError(f"no free name for {target.name}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()

