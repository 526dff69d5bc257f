"""DICOM listener availability under an idle-connection flood (RELIABILITY.md C6 and the "DICOM
listener availability under flood" figure): while ``idle`` TCP connections that never send a PDU
are held open (each re-opened as soon as the listener drops it, from as many different loopback
addresses, so that no per-host cap can stop them all), a modality associates again and again,
sends a C-ECHO and every fifth time a C-STORE; the percentage of those associations that succeed,
and how long after the flood ends the first one succeeds.

    .venv/bin/python -m tests.bench.dimse_flood --idle 10 50 500 --seconds 20

The listener is the one ``ologies serve --dimse-port`` runs, in its own process, with the
shipped defaults (``dimse_acse_timeout`` 5 s, ``dimse_max_associations`` 20,
``dimse_max_associations_per_peer`` 4).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from typing import Any

from tests.serverproc import ServerProcess, free_port

CALLING = "CAMERA"


def _source(i: int) -> str:
    return f"127.0.{1 + i // 250}.{2 + i % 250}"


class Flood:
    """``n`` idle connections from ``n`` addresses, each re-opened when dropped."""

    def __init__(self, port: int, n: int) -> None:
        self.port, self.n = port, n
        self.stop = threading.Event()
        self.opened = 0
        self.threads = [threading.Thread(target=self._hold, args=(i,), daemon=True) for i in range(n)]

    def _hold(self, i: int) -> None:
        while not self.stop.is_set():
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=2, source_address=(_source(i), 0))
            except OSError:
                self.stop.wait(0.05)
                continue
            self.opened += 1
            sock.settimeout(0.5)
            try:
                while not self.stop.is_set():
                    try:
                        if sock.recv(1024) == b"":
                            break  # dropped by the listener: come straight back
                    except socket.timeout:
                        continue
                    except OSError:
                        break
            finally:
                sock.close()

    def __enter__(self) -> "Flood":
        for thread in self.threads:
            thread.start()
        time.sleep(1.0)  # let the sockets land before measuring
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=5)


def legitimate(port: int, *, store: bool, dataset: Any) -> bool:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=CALLING)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(Verification)
    ae.add_requested_context(dataset.SOPClassUID, dataset.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="OLOGIES")
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_echo()
        ok = bool(status) and int(status.Status) == 0
        if ok and store:
            status = assoc.send_c_store(dataset)
            ok = bool(status) and int(status.Status) in (0x0000, 0xB000, 0xB006, 0xB007)
        return ok
    finally:
        assoc.release()


def measure(idle_counts: list[int], seconds: float, *, log: Any = print) -> dict[str, Any]:
    from tests import dicomgen, imagegen

    dimse_port = free_port()
    env = {"OLOGIES_DIMSE_PEERS": json.dumps({CALLING: {"trust": "REM", "department": "dermatology"}})}
    results: dict[str, Any] = {"seconds_per_flood": seconds, "floods": []}
    with ServerProcess(env=env, workers=1, args=("--dimse-port", str(dimse_port))) as _server:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the listener starts beside the web workers
            try:
                with socket.create_connection(("127.0.0.1", dimse_port), timeout=1):
                    break
            except OSError:
                time.sleep(0.3)
        n = 0
        for idle in idle_counts:
            attempts = successes = 0
            with Flood(dimse_port, idle) as flood:
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    n += 1
                    ds = dicomgen.photo_dataset(pixels=imagegen.photo(64, 48, seed=n), patient_id="9990000018")
                    attempts += 1
                    successes += legitimate(dimse_port, store=n % 5 == 0, dataset=ds)
                    time.sleep(0.1)
                opened = flood.opened
            started = time.monotonic()
            recovered = None
            while time.monotonic() - started < 60:
                ds = dicomgen.photo_dataset(pixels=imagegen.photo(64, 48, seed=10**6 + n), patient_id="9990000018")
                if legitimate(dimse_port, store=False, dataset=ds):
                    recovered = time.monotonic() - started
                    break
                time.sleep(0.2)
            row = {"idle_connections": idle, "idle_sockets_opened": opened, "associations": attempts,
                   "succeeded": successes, "availability_pct": round(100.0 * successes / max(1, attempts), 2),
                   "recovery_s": round(recovered, 2) if recovered is not None else None}  # fmt: skip
            log(json.dumps(row))
            results["floods"].append(row)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=int, nargs="+", default=[10, 50, 500])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.idle, args.seconds), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
