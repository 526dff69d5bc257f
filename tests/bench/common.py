"""Shared benchmark plumbing: start a server process, sample its memory, summarise latencies.

Benchmarks are run by hand (see the README), never as timed assertions in the test suite.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MemorySampler:
    """Peak memory of a server and its worker processes, sampled every ``interval`` seconds
    (50 ms unless told; each sample walks /proc and has the kernel total every page table, which
    a long load test need not pay twenty times a second): the sum of their
    resident sets (which counts pages the forked workers share once per worker) and the sum of
    their proportional set sizes (PSS: each shared page divided among its sharers), which is
    what the processes together take from the machine. ``peak_anon_mb`` is the summed anonymous
    memory alone (the heap, not the pages of files mapped or cached), the part the kernel cannot
    give back without killing a process."""

    def __init__(self, pid: int, *, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kb = self.peak_pss_kb = self.peak_anon_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _pids(self) -> list[int]:
        """The server and every process under it: its web workers, and the DICOM listener's
        sidecar with its store workers (grandchildren of the server)."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        pids, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo.extend(children.get(pid, []))
        return pids

    def _sample_kb(self) -> tuple[int, int, int]:
        rss = pss = anon = 0
        for pid in self._pids():
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith("Anonymous:"):
                        anon += int(line.split()[1])
            except OSError:
                pass
        return rss, pss, anon

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            rss, pss, anon = self._sample_kb()
            self.peak_kb, self.peak_pss_kb = max(self.peak_kb, rss), max(self.peak_pss_kb, pss)
            self.peak_anon_kb = max(self.peak_anon_kb, anon)

    def reset(self) -> None:
        self.peak_kb, self.peak_pss_kb, self.peak_anon_kb = self._sample_kb()

    def start(self) -> "MemorySampler":
        self._thread.start()
        return self

    def stop(self) -> float:
        """Stop sampling; returns the peak of the summed resident sets in MB (``peak_pss_mb``
        has the proportional one)."""
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024

    @property
    def peak_pss_mb(self) -> float:
        return self.peak_pss_kb / 1024

    @property
    def peak_anon_mb(self) -> float:
        return self.peak_anon_kb / 1024


@contextmanager
def ologies_server(env_overrides: dict[str, str] | None = None, workers: int | None = None):
    """Run ``ologies serve`` on a free port over a fresh temporary embedded store."""
    data = Path(tempfile.mkdtemp(prefix="ologies-bench-"))
    port = free_port()
    env = dict(os.environ)
    env.update({
        "OLOGIES_STORE_URL": (data / "store").as_uri(),
        "OLOGIES_INDEX_URL": f"sqlite:///{data / 'index.sqlite3'}",
        "OLOGIES_ALLOW_TEST_NHS_NUMBERS": "true",
        "OLOGIES_SPOOL_DIR": str(data),
    })  # fmt: skip
    env.update(env_overrides or {})
    if workers is not None:  # otherwise the default of ologies serve (OLOGIES_WORKERS)
        env["OLOGIES_WORKERS"] = str(workers)
    log = (data / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"server did not start; see {data / 'server.log'}")
        yield base, proc.pid, data
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        if not os.environ.get("OLOGIES_BENCH_KEEP"):
            shutil.rmtree(data, ignore_errors=True)  # hundreds of MB a run (set OLOGIES_BENCH_KEEP to look)


def admin_headers(data: Path, env_overrides: dict[str, str] | None = None) -> dict[str, str]:
    """An administrator's API key for a server started by ``ologies_server`` (made directly in
    its store, as ``ologies keys create`` would)."""
    from repository.accounts import Accounts
    from repository.registry import open_store
    from repository.settings import Settings

    values = {"store_url": (data / "store").as_uri(), "index_url": f"sqlite:///{data / 'index.sqlite3'}"}
    for key, value in (env_overrides or {}).items():
        if key.startswith("OLOGIES_"):
            values[key[len("OLOGIES_"):].lower()] = value
    store = open_store(Settings(**values, _env_file=None))
    _, secret = Accounts(store).create_key(name="benchmark", role="admin", trust="REM")
    return {"Authorization": f"Bearer {secret}"}


def summarise(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    if not ordered:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "max_ms": 0.0}

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))] * 1000

    return {"p50_ms": round(pct(0.5), 1), "p95_ms": round(pct(0.95), 1), "max_ms": round(ordered[-1] * 1000, 1),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 1)}  # fmt: skip
