from __future__ import annotations

import pytest

from search.backends.sqlite import SQLiteIndex
from tests.contract.index_contract import FoldingContract, SearchIndexContract


class TestSQLiteIndexOnDisk(SearchIndexContract, FoldingContract):
    @pytest.fixture
    def index(self, tmp_path):
        index = SQLiteIndex(tmp_path / "index.sqlite3")
        index.ensure_schema()
        yield index
        index.close()


class TestSQLiteIndexInMemory(SearchIndexContract):
    @pytest.fixture
    def index(self):
        index = SQLiteIndex(":memory:")
        index.ensure_schema()
        return index


def test_replacing_a_document_keeps_one_text_row_found_by_rowid(tmp_path):
    from search.query import InstanceQuery
    from tests.contract.index_contract import make_doc

    index = SQLiteIndex(tmp_path / "index.sqlite3")
    index.ensure_schema()
    for n in range(5):
        index.upsert(make_doc(n, ImageComments=f"lesion number{n}"))
    for _ in range(3):
        index.upsert(make_doc(2, ImageComments="healed wound"))
    index.delete(make_doc(4)["SOPInstanceUID"])
    conn = index._connect()  # noqa: SLF001 - the layout is what is under test
    rows = conn.execute("SELECT f.rowid, f.uid, i.rowid FROM instances_fts f LEFT JOIN instances i ON i.rowid = f.rowid").fetchall()
    assert len(rows) == 4 and all(fts_rowid == row for fts_rowid, _, row in rows)
    assert index.search(InstanceQuery(text="healed")).total == 1
    assert index.search(InstanceQuery(text="number2")).total == 0
    index.close()


def test_a_database_from_before_rowid_keyed_text_is_migrated(tmp_path):
    import sqlite3

    from search.query import InstanceQuery
    from tests.contract.index_contract import make_doc

    index = SQLiteIndex(tmp_path / "index.sqlite3")
    index.ensure_schema()
    index.upsert_many([make_doc(n, ImageComments=f"burn dressing {n}") for n in range(3)])
    index.close()
    with sqlite3.connect(tmp_path / "index.sqlite3") as old:  # the old layout: text rows by uid
        old.execute("DELETE FROM instances_fts")
        old.executemany("INSERT INTO instances_fts (rowid, uid, body) VALUES (?, ?, ?)",
                        [(100 + n, make_doc(n)["SOPInstanceUID"], f"burn dressing {n}") for n in range(3)])
        old.execute("PRAGMA user_version = 0")
    index = SQLiteIndex(tmp_path / "index.sqlite3")
    index.ensure_schema()
    assert index.search(InstanceQuery(text="dressing")).total == 3
    index.upsert(make_doc(1, ImageComments="skin graft"))
    assert index.search(InstanceQuery(text="dressing")).total == 2
    assert index.search(InstanceQuery(text="graft")).total == 1
    index.close()
