"""``search.attributes`` queries on SQLite: instance, study and series searches for QIDO-RS and
C-FIND. Kept beside ``search.backends.sqlite``, whose ``SQLiteIndex`` delegates here."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from search.attributes import (
    RANGE_HIGH_SUFFIX,
    AggregatePage,
    AggregateRow,
    AttributeQuery,
    InstancePage,
    Match,
    name_globs,
    sqlite_glob,
)

if TYPE_CHECKING:
    from search.backends.sqlite import SQLiteIndex

_CHUNK = 500  # SQL variables per IN list
INSTANCE_ORDER = '"StudyInstanceUID", "SeriesInstanceUID", "InstanceNumber", "SOPInstanceUID"'


def _column(name: str) -> str:
    if '"' in name:
        raise ValueError(f"bad field name {name!r}")
    return f'"{name}"'


def where(query: AttributeQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = ["1=1"]
    params: list[Any] = []
    for match in query.matches:
        clause, values = _clause(match)
        clauses.append(clause)
        params.extend(values)
    if query.trusts_visible is not None:
        if not query.trusts_visible:
            clauses.append("0=1")
        else:
            clauses.append(f'"_trust" IN ({", ".join("?" for _ in query.trusts_visible)})')
            params.extend(query.trusts_visible)
    return " AND ".join(clauses), params


def _clause(match: Match) -> tuple[str, list[Any]]:
    column = _column(match.field)
    if match.kind == "equals":
        return f"{column} = ?", [match.values[0]]
    if match.kind == "any_of":
        return f"{column} IN ({', '.join('?' for _ in match.values)})", list(match.values)
    if match.kind == "wildcard":
        return f"({column} != '' AND {column} GLOB ?)", [sqlite_glob(str(match.values[0]))]
    if match.kind == "range":
        low, high = (str(v) for v in match.values)
        parts, values = [f"{column} != ''"], []
        if low:
            parts.append(f"{column} >= ?")
            values.append(low)
        if high:
            parts.append(f"{column} <= ?")
            values.append(high + RANGE_HIGH_SUFFIX)
        return "(" + " AND ".join(parts) + ")", values
    if match.kind == "name":
        pattern = str(match.values[0])
        globs = name_globs(pattern, match.fuzzy)
        clause = "(" + " OR ".join(f"{column} GLOB ?" for _ in globs) + ")"
        values: list[Any] = [sqlite_glob(g) for g in globs]
        prefix = literal_prefix(pattern)
        if prefix and not match.fuzzy:
            # Both alternatives start with the literal prefix: a range the name index can serve.
            clause = f"({column} >= ? AND {column} < ? AND {clause})"
            values = [prefix, prefix + "\U0010ffff", *values]
        return clause, values
    raise ValueError(f"unknown match kind {match.kind!r}")


def literal_prefix(pattern: str) -> str:
    """The characters of ``pattern`` before its first wildcard."""
    for position, char in enumerate(pattern):
        if char in "*?":
            return pattern[:position]
    return pattern


def search_instances(index: SQLiteIndex, query: AttributeQuery) -> InstancePage:
    sql, params = where(query)

    def go(conn: sqlite3.Connection) -> InstancePage:
        rows = conn.execute(
            f"SELECT * FROM instances WHERE {sql} ORDER BY {INSTANCE_ORDER} LIMIT ? OFFSET ?",
            [*params, query.limit + 1, query.offset],
        ).fetchall()
        items = [dict(r) for r in rows]
        return InstancePage(items[: query.limit], len(items) > query.limit)

    return index._run(go)  # type: ignore[no-any-return]


def search_studies(index: SQLiteIndex, query: AttributeQuery) -> AggregatePage:
    return _aggregate(index, query, "StudyInstanceUID")


def search_series(index: SQLiteIndex, query: AttributeQuery) -> AggregatePage:
    return _aggregate(index, query, "SeriesInstanceUID")


def _aggregate(index: SQLiteIndex, query: AttributeQuery, group: str) -> AggregatePage:
    sql, params = where(query)
    column = _column(group)
    scope, scope_params = where(AttributeQuery(trusts_visible=query.trusts_visible))

    def go(conn: sqlite3.Connection) -> AggregatePage:
        uids = [r[0] for r in conn.execute(
            f"SELECT {column} FROM instances WHERE {sql} GROUP BY {column} ORDER BY {column} LIMIT ? OFFSET ?",
            [*params, query.limit + 1, query.offset],
        ).fetchall()]  # fmt: skip
        has_more = len(uids) > query.limit
        uids = uids[: query.limit]
        counts: dict[str, tuple[int, int, str]] = {}
        modalities: dict[str, set[str]] = {}
        representatives: dict[str, dict[str, object]] = {}
        for start in range(0, len(uids), _CHUNK):
            chunk = uids[start : start + _CHUNK]
            marks = ", ".join("?" for _ in chunk)
            for uid, n, series, first in conn.execute(
                f'SELECT {column}, COUNT(*), COUNT(DISTINCT "SeriesInstanceUID"), MIN("SOPInstanceUID") '
                f"FROM instances WHERE {column} IN ({marks}) AND {scope} GROUP BY {column}",
                [*chunk, *scope_params],
            ):
                counts[uid] = (int(n), int(series), first)
            for uid, modality in conn.execute(
                f'SELECT DISTINCT {column}, "Modality" FROM instances WHERE {column} IN ({marks}) AND {scope} '
                "AND \"Modality\" IS NOT NULL AND \"Modality\" != ''",
                [*chunk, *scope_params],
            ):
                modalities.setdefault(uid, set()).add(modality)
            firsts = [counts[u][2] for u in chunk if u in counts]
            for row in conn.execute(
                f'SELECT * FROM instances WHERE "SOPInstanceUID" IN ({", ".join("?" for _ in firsts)})', firsts
            ):
                doc = dict(row)
                representatives[str(doc[group])] = doc
        rows = [
            AggregateRow(uid, representatives[uid], counts[uid][0], counts[uid][1], tuple(sorted(modalities.get(uid, ()))))
            for uid in uids
            if uid in counts and uid in representatives
        ]
        return AggregatePage(rows, has_more)

    return index._run(go)  # type: ignore[no-any-return]
