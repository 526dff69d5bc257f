"""``ologies serve --workers 2``: workers forked from one parent that imported the application
once, so that they share its pages; a worker that dies is replaced; the DICOM listener runs
beside them; SIGTERM stops the lot."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from tests.conftest import NHS_A
from tests.serverproc import ServerProcess, free_port


def children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def shared_kb(pid: int) -> int:
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    return sum(int(line.split()[1]) for line in rollup if line.startswith(("Shared_Clean:", "Shared_Dirty:")))


def wait_for(predicate, timeout: float = 30) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_workers_share_the_imported_application_and_a_dead_one_is_replaced():
    dimse_port = free_port()
    peers = {"OLOGIES_DIMSE_PEERS": json.dumps({"TESTSCU": {"trust": "REM", "department": "dermatology"}})}
    with ServerProcess(workers=2, env=peers, args=("--dimse-port", str(dimse_port))) as server:
        assert wait_for(lambda: len(children(server.pid)) == 3), children(server.pid)  # 2 web + DICOM
        workers = children(server.pid)
        # Forked after the import, each worker shares tens of MB with its parent and siblings;
        # spawned workers (uvicorn's own supervisor) would share almost nothing.
        assert all(shared_kb(pid) > 40_000 for pid in workers), {pid: shared_kb(pid) for pid in workers}

        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: victim not in children(server.pid) and len(children(server.pid)) == 3)
        with httpx.Client(base_url=server.url, headers=server.headers(), timeout=30) as http:
            for _ in range(6):
                assert http.get(f"/api/v1/patients/{NHS_A}/images").status_code == 200

        ae = AE(ae_title="TESTSCU")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", dimse_port, ae_title="OLOGIES")
        try:
            assert assoc.is_established
            assert assoc.send_c_echo().Status == 0
        finally:
            assoc.release()

        # the workers' Prometheus samples are files they map, in the folder the parent made
        maps = "".join(Path(f"/proc/{pid}/maps").read_text() for pid in children(server.pid))
        (metrics,) = {Path(line.split()[-1]).parent for line in maps.splitlines() if "ologies-metrics-" in line}
        assert metrics.is_dir()
        server.signal(signal.SIGTERM)
        assert server.wait(timeout=40) == 0
        assert not children(server.pid)
        assert not metrics.exists()  # the samples folder it made goes with it (was one left per start)
        assert "ended (exit -9); starting another" in server.log_tail(400)
