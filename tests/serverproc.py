"""``ologies serve`` as a child process on a free loopback port, for the tests and benchmarks
that need a real server: graceful shutdown, load, faults, the DIMSE flood.

The server gets its configuration from ``OLOGIES_*`` variables (embedded backends in a temporary
folder unless ``env`` says otherwise) and an API key made beforehand through the accounts store
it will read, as ``ologies keys create`` would make one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def embedded_env(data: Path) -> dict[str, str]:
    return {
        "OLOGIES_STORE_URL": (data / "store").as_uri(),
        "OLOGIES_INDEX_URL": f"sqlite:///{data / 'index.sqlite3'}",
        "OLOGIES_ALLOW_TEST_NHS_NUMBERS": "true",
        "OLOGIES_SPOOL_DIR": str(data),
    }


def make_key(env: dict[str, str], *, role: str = "admin", trust: str = "REM", **extra: str) -> str:
    """An API key in the store the server of ``env`` uses."""
    from repository.settings import Settings
    from web.services import Services

    values = {k[len("OLOGIES_"):].lower(): json.loads(v) if v.startswith(("{", "[")) else v
              for k, v in env.items() if k.startswith("OLOGIES_")}  # fmt: skip
    services = Services.build(Settings(_env_file=None, **values))  # type: ignore[arg-type]
    try:
        return services.accounts.create_key(name=f"test {role} {trust}", role=role, trust=trust, **extra)[1]
    finally:
        services.close()


class ServerProcess:
    """One ``ologies serve``; ``start()`` waits for /healthz, ``stop()`` ends it (SIGTERM)."""

    def __init__(self, *, env: dict[str, str] | None = None, workers: int = 1, data: Path | None = None,
                 args: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.data = data or Path(tempfile.mkdtemp(prefix="ologies-serve-"))
        if data is None:  # ours: removed once nobody holds the server (tests read it after stop)
            weakref.finalize(self, shutil.rmtree, self.data, True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("OLOGIES_", "PROMETHEUS_"))}
        self.env = {**base, **embedded_env(self.data), **(env or {})}
        self.workers = workers
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data / "server.log"
        self._key: str | None = None

    @property
    def key(self) -> str:
        if self._key is None:
            self._key = make_key(self.env)
        return self._key

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def start(self, timeout: float = 90) -> "ServerProcess":
        _ = self.key  # made before the server starts: the store exists and holds it
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ingest.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(self.workers), *self.args],
            env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ologies serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"ologies serve did not answer within {timeout:g} s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """A crash: SIGKILL to the server and its workers (its own process group)."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.keep_logs()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 40) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.keep_logs()

    def keep_logs(self) -> None:
        """Hand the server's log lines to the session's patient-data scan (tests/logscan.py), once."""
        from tests import logscan

        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return
        kept = getattr(self, "_kept", 0)
        room = logscan.MAX_LINES - len(logscan.LINES)
        logscan.LINES.extend(lines[kept : kept + max(0, room)])
        self._kept = len(lines)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
