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
