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


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return children


def process_tree(root: int, children: dict[int, list[int]] | None = None) -> list[int]:
    """``root`` and every live process under it."""
    children = _children() if children is None else children
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


class CpuMeter:
    """CPU seconds used by named process trees between ``start`` and ``stop``, and by the whole
    machine, so that a figure taken at saturation says who had the cores. A tree's time is the
    user and system time of its live processes plus what their reaped children used (cutime,
    cstime), so a store worker that exits in between is still counted. ``steal`` is time the
    hypervisor gave to other guests; ``rest`` is what no named tree used (the load clients,
    the kernel's own threads, anything else running)."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self._start: dict[str, float] = {}
        self.cores: dict[str, float] = {}  # unrounded, as ``stop`` returns them
        self.wall_s = 0.0

    def _read(self) -> dict[str, float]:
        children = _children()
        out: dict[str, float] = {}
        for name, root in self.roots.items():
            ticks = 0
            for pid in process_tree(root, children):
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                ticks += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
            out[name] = ticks / self.TICK
        cpu = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        # user nice system idle iowait irq softirq steal: busy is all but idle and iowait
        out["_busy"] = (sum(cpu[:8]) - cpu[3] - cpu[4] - cpu[7]) / self.TICK
        out["_steal"] = cpu[7] / self.TICK
        out["_wall"] = time.monotonic()
        return out

    def start(self) -> "CpuMeter":
        self._start = self._read()
        return self

    def stop(self) -> dict[str, float]:
        """Per tree, the share of one core used on average (1.0 = one core busy), plus
        ``busy``, ``steal`` and ``rest`` on the same scale and ``cores``."""
        end = self._read()
        wall = self.wall_s = end["_wall"] - self._start["_wall"]
        used = {name: (end[name] - self._start[name]) / wall for name in self.roots}
        busy = (end["_busy"] - self._start["_busy"]) / wall
        self.cores = {**used, "busy": busy, "steal": (end["_steal"] - self._start["_steal"]) / wall,
                      "rest": busy - sum(used.values()), "cores": float(os.cpu_count() or 1)}  # fmt: skip
        return {k: round(v, 3) for k, v in self.cores.items()}


def machine_speed(repeat: int = 5) -> dict[str, float]:
    """A reference for comparing figures taken at different hours on a shared machine, whose
    speed drifts by 20-30% with its neighbours' load: the best of ``repeat`` timings of an
    interpreter-bound loop and of SHA-256 over 64 MB (the two kinds of work an upload does)."""
    import hashlib

    data = bytes(64 * 1024 * 1024)
    loop = sha = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i % 7
        loop = min(loop, time.perf_counter() - started)
        started = time.perf_counter()
        hashlib.sha256(data).digest()
        sha = min(sha, time.perf_counter() - started)
    return {"python_loop_mops": round(2.0 / loop, 2), "sha256_mb_s": round(64 / sha, 1)}


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
        return process_tree(self.pid)

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
