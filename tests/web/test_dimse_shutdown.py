"""SIGTERM to the processes that run the DIMSE listener (``ologies dimse``, ``ologies serve
--dimse-port``) ends its store-worker processes and multiprocessing's resource tracker with it:
they were left running (parent 1), holding the index open, once per restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pynetdicom import AE

from tests import dicomgen
from tests.serverproc import REPO, ServerProcess, embedded_env, free_port

PEERS = {"OLOGIES_DIMSE_PEERS": json.dumps({"CAMERA": {"trust": "REM", "department": "dermatology"}})}


def descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        children = {child for child, ppid in parents.items() if ppid == parent}
        found |= children
        todo.extend(children)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def store_one(port: int) -> int:
    """A C-STORE, so that the listener has started its store worker (and the resource tracker)."""
    ds = dicomgen.photo_dataset()
    ae = AE(ae_title="CAMERA")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    deadline = time.monotonic() + 60
    while True:  # the listener is starting
        assoc = ae.associate("127.0.0.1", port, ae_title="OLOGIES")
        if assoc.is_established or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert assoc.is_established
    try:
        return int(assoc.send_c_store(ds).Status)
    finally:
        assoc.release()


def ended_with(pid: int, before: set[int], timeout: float = 15) -> set[int]:
    """The processes of ``before`` still running ``timeout`` s after ``pid`` exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in before):
        time.sleep(0.2)
    return {p for p in before if alive(p)}


def test_sigterm_to_ologies_dimse_ends_its_store_workers(tmp_path):
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OLOGIES_", "PROMETHEUS_"))}
    env = {**base, **embedded_env(tmp_path), **PEERS, "OLOGIES_WORKERS": "1"}
    log = (tmp_path / "dimse.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "ingest.cli", "dimse", "--port", str(port)],
                            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    children: set[int] = set()
    try:
        assert store_one(port) == 0x0000
        children = descendants(proc.pid)
        assert len(children) >= 2, children  # the store worker and the resource tracker
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert ended_with(proc.pid, children) == set()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        kill_left(children)
        log.close()


def test_sigterm_to_ologies_serve_ends_the_listeners_store_workers():
    # one web worker: the listener runs in the server's process, and uvicorn re-raises SIGTERM
    # (default action) once it has shut down, so the server's own clean-up never ran
    port = free_port()
    children: set[int] = set()
    with ServerProcess(env={**PEERS, "OLOGIES_WORKERS": "1"}, workers=1, args=("--dimse-port", str(port))) as server:
        try:
            assert store_one(port) == 0x0000
            children = descendants(server.pid)
            assert len(children) >= 2, children
            server.signal(signal.SIGTERM)
            server.wait(timeout=40)
            assert ended_with(server.pid, children) == set()
        finally:
            kill_left(children)


def kill_left(pids: set[int]) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
