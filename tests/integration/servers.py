"""Private instances of the infra/ servers for tests that stop, hang and kill them.

Each instance runs from the same cached binaries as the shared servers that ``infra/test.sh``
starts, but on free loopback ports with its own run folder (``OLOGIES_RUN_DIR``), so killing it
disturbs no other test and no other user of the shared servers. ``resume`` brings a killed server
back on the data of its last run (``infra/<service>.sh resume``), as a restart would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port(also_plus: int | None = None) -> int:
    """A free loopback port (and, if asked, free at port + ``also_plus`` too: weed's gRPC)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if also_plus is None or port + also_plus > 65535:
            if also_plus is None:
                return port
            continue
        with socket.socket() as other:
            try:
                other.bind(("127.0.0.1", port + also_plus))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


class PrivateServer:
    """One infra/<service>.sh server in its own run folder on free ports."""

    def __init__(self, service: str, run_dir: Path) -> None:
        self.service = service
        self.run_dir = run_dir
        self.env = dict(os.environ, OLOGIES_RUN_DIR=str(run_dir), OLOGIES_START_TIMEOUT="180")
        if service == "elasticsearch":
            self.port = free_port()
            self.env.update(ES_PORT=str(self.port), ES_TRANSPORT_PORT=str(free_port()), ES_HEAP="384m")
        elif service == "minio":
            self.port = free_port()
            self.env.update(MINIO_PORT=str(self.port))
        elif service == "seaweedfs":
            self.port = free_port(10000)
            self.env.update(
                SEAWEEDFS_S3_PORT=str(self.port), SEAWEEDFS_MASTER_PORT=str(free_port(10000)),
                SEAWEEDFS_VOLUME_PORT=str(free_port(10000)), SEAWEEDFS_FILER_PORT=str(free_port(10000)),
            )  # fmt: skip
        else:
            raise ValueError(service)
        self.url = f"http://127.0.0.1:{self.port}"

    def _run(self, command: str) -> None:
        done = subprocess.run(
            ["bash", str(REPO / "infra" / f"{self.service}.sh"), command],
            env=self.env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"infra/{self.service}.sh {command} failed:\n{done.stderr[-3000:]}")

    def start(self) -> None:
        self._run("start")

    def resume(self) -> None:
        """Start again on the data of the last run (after ``kill``)."""
        self.wait_gone()
        self._run("resume")

    def stop(self) -> None:
        self._run("stop")

    @property
    def pid(self) -> int:
        return int((self.run_dir / self.service / f"{self.service}.pid").read_text())

    def signal(self, sig: signal.Signals) -> None:
        """Signal the server's whole process group (the launcher and the server it runs)."""
        os.killpg(self.pid, sig)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)  # hung: connections are accepted, nothing answers

    def cont(self) -> None:
        self.signal(signal.SIGCONT)

    def kill(self) -> None:
        """A crash: SIGKILL (a stopped process dies too), then wait until it is gone."""
        self.signal(signal.SIGKILL)
        self.wait_gone()

    def wait_gone(self, timeout: float = 60) -> None:
        try:
            pid = self.pid
        except FileNotFoundError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.service} (pid {pid}) did not exit")
