"""SQLite search index, the embedded default (``sqlite:///path/index.sqlite3``).

One ``instances`` table whose columns are the document's DICOM keywords, plus an FTS5 table
(unicode61 tokenizer with diacritics removed) for free text. WAL mode lets searches run while an
upload or a rebuild writes; a rebuild runs in one transaction, so readers keep seeing the old
rows until it commits.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from repository.errors import IndexUnavailable, NotFound
from search.attributes import AggregatePage, AttributeQuery, InstancePage
from search.backends import sqlite_attributes
from search.document import ALL_FIELDS, INT_KEYWORDS, INTERNAL_INT, fold
from search.query import InstanceQuery, SearchPage

_INT_FIELDS = set(INT_KEYWORDS) | set(INTERNAL_INT)
_COLUMNS = ", ".join(f'"{f}" {"INTEGER" if f in _INT_FIELDS else "TEXT"}' for f in ALL_FIELDS)
_FACET_COLUMNS = {
    "specialty": "_specialty",
    "body_site": "_body_site_code",
    "trust": "_trust",
    "year": "_year",
    "modality": "Modality",
}
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS instances ({_COLUMNS}, PRIMARY KEY ("SOPInstanceUID"));
CREATE INDEX IF NOT EXISTS instances_patient ON instances ("PatientID", "_capture_date");
CREATE INDEX IF NOT EXISTS instances_study ON instances ("StudyInstanceUID");
CREATE INDEX IF NOT EXISTS instances_series ON instances ("SeriesInstanceUID");
CREATE INDEX IF NOT EXISTS instances_capture ON instances ("_capture_date", "ContentTime");
CREATE INDEX IF NOT EXISTS instances_tracking ON instances ("TrackingID");
CREATE INDEX IF NOT EXISTS instances_study_date ON instances ("StudyDate");
CREATE INDEX IF NOT EXISTS instances_name ON instances ("_patient_name_folded");
CREATE VIRTUAL TABLE IF NOT EXISTS instances_fts USING fts5(
    uid UNINDEXED, body, tokenize = 'unicode61 remove_diacritics 2'
);
"""
_INSERT = (
    f'INSERT OR REPLACE INTO instances ({", ".join(chr(34) + f + chr(34) for f in ALL_FIELDS)}) '
    f'VALUES ({", ".join("?" for _ in ALL_FIELDS)})'
)


def _fts_body(doc: dict[str, object]) -> str:
    parts = ("ImageComments", "_body_site_meaning", "StudyDescription", "SeriesDescription",
             "PatientName", "DocumentTitle", "TrackingID")  # fmt: skip
    return " ".join(str(doc.get(p) or "").replace("^", " ") for p in parts)


def _fts_match(text: str) -> str:
    # Quote every term so that user input can never be FTS5 syntax; each is a prefix match.
    terms = [t.replace('"', '""') for t in fold(text).split() if t.strip('"')]
    return " AND ".join(f'"{t}"*' for t in terms)


#: ``PRAGMA user_version`` from which each instances_fts row has the rowid of its instance, so that
#: replacing or deleting one finds its text by rowid; before, by the unindexed uid column, which
#: scanned the whole text table on every upload (quadratic as the index grew)
_FTS_SHARES_ROWID = 1

#: connections a process opens at most; more threads than this wait their turn (reads are short)
MAX_CONNECTIONS = 4


def _delete_text(conn: sqlite3.Connection, uid: object) -> None:
    found = conn.execute('SELECT rowid FROM instances WHERE "SOPInstanceUID" = ?', (uid,)).fetchone()
    if found is not None:
        conn.execute("DELETE FROM instances_fts WHERE rowid = ?", (found[0],))


def _reindex_text(conn: sqlite3.Connection) -> None:
    """Make the free-text table again from the instances, keyed by their rowids (a database
    written before ``_FTS_SHARES_ROWID``), in one transaction."""
    with conn:
        conn.execute("DELETE FROM instances_fts")
        last = -1
        while True:
            rows = conn.execute("SELECT rowid AS _rowid, * FROM instances WHERE rowid > ? ORDER BY rowid LIMIT 1000", (last,)).fetchall()
            if not rows:
                break
            conn.executemany(
                "INSERT INTO instances_fts (rowid, uid, body) VALUES (?, ?, ?)",
                [(r["_rowid"], r["SOPInstanceUID"], fold(_fts_body(dict(r)))) for r in rows],
            )
            last = rows[-1]["_rowid"]
        conn.execute(f"PRAGMA user_version = {_FTS_SHARES_ROWID}")


class SQLiteIndex:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # A small pool, not a connection per thread: each connection keeps its own page cache
        # (up to 2 MB by default), and a web worker runs requests on up to 40 threads.
        self._new_pool()
        self._inherited: list[sqlite3.Connection] = []
        self._fork_lock = threading.Lock()
        self._memory_conn: sqlite3.Connection | None = None
        self._write_lock = threading.Lock()

    # -- connections -------------------------------------------------------------------------
    def _new_pool(self) -> None:
        self._pid = os.getpid()
        self._idle: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def _connect(self) -> sqlite3.Connection:
        """A new connection (the in-memory database: the one shared connection)."""
        if self.path == ":memory:":
            # One shared connection, so every thread sees the same in-memory database.
            if self._memory_conn is None:
                self._memory_conn = sqlite3.connect(":memory:", check_same_thread=False)
                self._memory_conn.row_factory = sqlite3.Row
            return self._memory_conn
        try:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise IndexUnavailable(f"SQLite index {self.path} cannot be opened: {exc}") from exc
        conn.row_factory = sqlite3.Row
        return conn

    def _run(self, fn):  # type: ignore[no-untyped-def]
        """``fn(connection)`` on a pooled connection (at most ``MAX_CONNECTIONS`` at once)."""
        if self.path == ":memory:":
            return self._call(fn, self._connect())
        if self._pid != os.getpid():  # forked: SQLite connections must not cross a fork
            with self._fork_lock:  # not the write lock: a writer calls this holding that
                if self._pid != os.getpid():
                    self._inherited.extend(self._idle.queue)  # kept, never used or closed here
                    self._new_pool()
        with self._slots:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._connect()
            try:
                return self._call(fn, conn)
            finally:
                self._idle.put(conn)

    @staticmethod
    def _call(fn, conn: sqlite3.Connection):  # type: ignore[no-untyped-def]
        try:
            return fn(conn)
        except sqlite3.OperationalError as exc:
            raise IndexUnavailable(f"SQLite index unavailable: {exc}") from exc

    # -- port --------------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        def go(conn: sqlite3.Connection) -> None:
            existing = {r[1] for r in conn.execute("PRAGMA table_info(instances)")}
            for name in ALL_FIELDS if existing else ():  # fields added since the table was made
                if name not in existing:
                    conn.execute(f'ALTER TABLE instances ADD COLUMN "{name}" {"INTEGER" if name in _INT_FIELDS else "TEXT"}')
            conn.executescript(_SCHEMA)
            if conn.execute("PRAGMA user_version").fetchone()[0] < _FTS_SHARES_ROWID:
                _reindex_text(conn)

        with self._write_lock:
            self._run(go)

    def _write(self, conn: sqlite3.Connection, docs: Iterable[dict[str, object]]) -> int:
        n = 0
        for doc in docs:
            uid = doc["SOPInstanceUID"]
            _delete_text(conn, uid)
            row = conn.execute(_INSERT, [doc.get(f) for f in ALL_FIELDS]).lastrowid
            conn.execute("INSERT INTO instances_fts (rowid, uid, body) VALUES (?, ?, ?)", (row, uid, fold(_fts_body(doc))))
            n += 1
        return n

    def upsert(self, document: dict[str, object]) -> None:
        self.upsert_many([document])

    def upsert_many(self, documents: Iterable[dict[str, object]]) -> int:
        def go(conn: sqlite3.Connection) -> int:
            with conn:
                return self._write(conn, documents)

        with self._write_lock:
            return int(self._run(go))

    def get(self, sop_instance_uid: str) -> dict[str, object]:
        row = self._run(
            lambda c: c.execute('SELECT * FROM instances WHERE "SOPInstanceUID" = ?', (sop_instance_uid,)).fetchone()
        )
        if row is None:
            raise NotFound(f"instance {sop_instance_uid} is not indexed")
        return dict(row)

    def delete(self, sop_instance_uid: str) -> None:
        def go(conn: sqlite3.Connection) -> None:
            with conn:
                _delete_text(conn, sop_instance_uid)
                conn.execute('DELETE FROM instances WHERE "SOPInstanceUID" = ?', (sop_instance_uid,))

        with self._write_lock:
            self._run(go)

    def rebuild(self, documents: Iterable[dict[str, object]]) -> int:
        def go(conn: sqlite3.Connection) -> int:
            # One transaction: WAL readers keep the old snapshot until COMMIT.
            with conn:
                conn.execute("DELETE FROM instances")
                conn.execute("DELETE FROM instances_fts")
                return self._write(conn, documents)

        with self._write_lock:
            return int(self._run(go))

    def count(self) -> int:
        return int(self._run(lambda c: c.execute("SELECT COUNT(*) FROM instances").fetchone()[0]))

    def iter_uids(self) -> Iterator[str]:
        rows = self._run(lambda c: c.execute('SELECT "SOPInstanceUID" FROM instances').fetchall())
        return (r[0] for r in rows)

    def ping(self) -> None:
        self._run(lambda c: c.execute("SELECT 1 FROM instances LIMIT 1").fetchall())

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return

    # -- attribute matching (QIDO-RS, C-FIND): search/backends/sqlite_attributes.py ------------
    def search_instances(self, query: AttributeQuery) -> InstancePage:
        return sqlite_attributes.search_instances(self, query)

    def search_studies(self, query: AttributeQuery) -> AggregatePage:
        return sqlite_attributes.search_studies(self, query)

    def search_series(self, query: AttributeQuery) -> AggregatePage:
        return sqlite_attributes.search_series(self, query)

    # -- search ------------------------------------------------------------------------------
    def search(self, query: InstanceQuery) -> SearchPage:
        where, params = _where(query)
        order = '"_capture_date" DESC, "ContentTime" DESC, "SOPInstanceUID"' if query.newest_first else '"_capture_date", "ContentTime", "SOPInstanceUID"'

        def go(conn: sqlite3.Connection) -> SearchPage:
            total = conn.execute(f"SELECT COUNT(*) FROM instances WHERE {where}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT * FROM instances WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
                [*params, query.limit, query.offset],
            ).fetchall()
            facets: dict[str, dict[str, int]] = {}
            for name in query.facets:
                column = _FACET_COLUMNS[name]
                counts = conn.execute(
                    f'SELECT "{column}", COUNT(*) FROM instances WHERE {where} AND "{column}" IS NOT NULL '
                    f'AND "{column}" != \'\' GROUP BY "{column}" ORDER BY COUNT(*) DESC, "{column}"',
                    params,
                ).fetchall()
                facets[name] = {str(value): int(n) for value, n in counts}
            return SearchPage(int(total), [dict(r) for r in rows], facets, query.limit, query.offset)

        return self._run(go)  # type: ignore[no-any-return]


def _where(query: InstanceQuery) -> tuple[str, list[object]]:
    clauses: list[str] = ["1=1"]
    params: list[object] = []

    def equals(column: str, value: object) -> None:
        if value not in (None, ""):
            clauses.append(f'"{column}" = ?')
            params.append(value)

    equals("PatientID", query.patient_id)
    equals("_specialty", query.specialty)
    equals("_body_site_code", query.body_site)
    equals("_trust", query.trust)
    equals("Modality", query.modality)
    equals("StudyInstanceUID", query.study_instance_uid)
    equals("SeriesInstanceUID", query.series_instance_uid)
    equals("TrackingID", query.tracking_id)
    if query.patient_birth_date:
        equals("PatientBirthDate", query.patient_birth_date.strftime("%Y%m%d"))
    if query.sop_instance_uids:
        clauses.append(f'"SOPInstanceUID" IN ({", ".join("?" for _ in query.sop_instance_uids)})')
        params.extend(query.sop_instance_uids)
    if query.trusts_visible is not None:
        if not query.trusts_visible:
            clauses.append("0=1")
        else:
            clauses.append(f'"_trust" IN ({", ".join("?" for _ in query.trusts_visible)})')
            params.extend(query.trusts_visible)
    if query.date_from:
        clauses.append('"_capture_date" >= ?')
        params.append(query.date_from.isoformat())
    if query.date_to:
        clauses.append('"_capture_date" <= ?')
        params.append(query.date_to.isoformat())
    if query.patient_name:
        # Prefix match on any word of the folded name: "sian" finds "Siân", "o'brien" finds
        # "O'Brien-Jones".
        needle = fold(query.patient_name.strip()).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append("(\"_patient_name_folded\" LIKE ? ESCAPE '\\' OR \"_patient_name_folded\" LIKE ? ESCAPE '\\')")
        params.extend([f"{needle}%", f"% {needle}%"])
    if query.text.strip():
        match = _fts_match(query.text)
        if match:
            clauses.append("rowid IN (SELECT rowid FROM instances_fts WHERE instances_fts MATCH ?)")
            params.append(match)
    return " AND ".join(clauses), params
