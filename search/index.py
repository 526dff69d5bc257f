"""The search-index port. Adapters: ``search.backends.sqlite.SQLiteIndex`` (embedded default)
and ``search.backends.elasticsearch.ElasticsearchIndex``; both pass ``tests/contract``.

Documents are flat dicts keyed by DICOM keywords (``search.document``). Unavailability is
raised as ``IndexUnavailable`` so that the service can fall back to pending markers and the web
layer can answer 503 instead of an empty result (DECISIONS.md 2-3).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from search.attributes import AggregatePage, AttributeQuery, InstancePage
from search.query import InstanceQuery, SearchPage

Document = dict[str, object]


@runtime_checkable
class SearchIndex(Protocol):
    def ensure_schema(self) -> None: ...

    def upsert(self, document: Document) -> None:
        """Insert or replace the document keyed by its SOPInstanceUID."""
        ...

    def upsert_many(self, documents: Iterable[Document]) -> int: ...

    def get(self, sop_instance_uid: str) -> Document:
        """The document, or ``NotFound``."""
        ...

    def delete(self, sop_instance_uid: str) -> None: ...

    def search(self, query: InstanceQuery) -> SearchPage: ...

    # Attribute matching for QIDO-RS and C-FIND (search/attributes.py): instances, and the
    # studies and series having a matching instance, with counts over all their instances.
    def search_instances(self, query: AttributeQuery) -> InstancePage: ...

    def search_studies(self, query: AttributeQuery) -> AggregatePage: ...

    def search_series(self, query: AttributeQuery) -> AggregatePage: ...

    def rebuild(self, documents: Iterable[Document]) -> int:
        """Build a fresh index from ``documents`` and swap it in atomically; return the count.

        Searches keep answering from the old index until the swap.
        """
        ...

    def count(self) -> int: ...

    def iter_uids(self) -> Iterable[str]:
        """Every indexed SOPInstanceUID (for the consistency check)."""
        ...

    def ping(self) -> None:
        """Raise ``IndexUnavailable`` unless the index answers."""
        ...

    def close(self) -> None: ...
