"""A pytest plugin (loaded by tests/conftest.py) that keeps every log line the whole test session
writes, formatted exactly as ``ologies serve`` writes them (web/observability.py: JSON, NHS
numbers scrubbed), so that ``tests/security/test_log_leaks.py`` can scan the logs of the whole
run for patient data (RELIABILITY.md J6, ASVS 16.2.5). Tests marked ``runs_last`` run after all
others, so that scan sees everything.

The lines are kept in memory; when a scan finds something they are written to
``test-artifacts/logs/session.jsonl`` for a person to read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

LINES: list[str] = []
MAX_LINES = 500_000  # a bound, in case a runaway test logs without end


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        from web.observability import json_formatter

        self.setFormatter(json_formatter())
        self.set_name("ologies-test-session")

    def emit(self, record: logging.LogRecord) -> None:
        if len(LINES) < MAX_LINES:
            try:
                LINES.append(self.format(record))
            except Exception:  # noqa: BLE001 - a record that cannot be formatted is kept raw
                LINES.append(record.getMessage())


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "runs_last: run after every other test of the session (log scans)")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    last = [item for item in items if item.get_closest_marker("runs_last")]
    if last:
        items[:] = [item for item in items if not item.get_closest_marker("runs_last")] + last


@pytest.fixture(scope="session", autouse=True)
def keep_session_logs() -> Iterator[list[str]]:
    root = logging.getLogger()
    handler = _Keep()
    previous = root.level
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)  # the access lines are INFO, as in production
    try:
        yield LINES
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
