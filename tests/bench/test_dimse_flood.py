"""RELIABILITY.md C6: while 50 idle connections (from 50 addresses, each re-opened as soon as it is
dropped) are held against ``ologies serve --dimse-port``, at least 99% of a modality's
associations succeed, and the first one after the flood succeeds within the ACSE timeout + 1 s.
(pynetdicom's defaults: 0% during a flood of 10.)"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("pynetdicom")

from tests.bench.dimse_flood import measure  # noqa: E402

SECONDS = float(os.environ.get("OLOGIES_FLOOD_SECONDS", "8"))


def test_modalities_get_through_an_idle_connection_flood():
    result = measure([50], SECONDS, log=print)
    row = result["floods"][0]
    assert row["associations"] >= 10, row
    assert row["availability_pct"] >= 99.0, row
    assert row["recovery_s"] is not None and row["recovery_s"] <= 6.0, row
