"""The figures report's load row says how fast the machine was and who had its cores, since the
same program's p95 moved by half between sessions with the host's speed (README, session 9)."""

from __future__ import annotations

from tests.figures import table


def phase(name: str) -> dict[str, object]:
    kinds = {k: {"n": 10, "p95_ms": ms} for k, ms in (("search", 481.0), ("thumbnail", 295.0), ("upload", 1850.0), ("stow", 2897.0))}
    return {"phase": name, "requests": 16767, "error_rate": 0.0, "honest_503": 0, **kinds,
            "cpu_cores": {"server": 0.877, "minio": 0.351, "elasticsearch": 0.46, "busy": 1.934, "steal": 0.002,
                          "rest": 0.09, "cores": 2.0, "clients": 0.156}}  # fmt: skip


def test_load_row_gives_machine_speed_and_cpu_shares():
    load = {"clients": 20, "duration_s": 300, "targets_p95_ms": {"search": 300, "thumbnail": 200, "upload": 2000, "stow": 3000},
            "machine_speed": {"python_loop_mops": 30.25, "sha256_mb_s": 1618.1}, "phases": [phase("clean")]}  # fmt: skip
    rows = {figure: (value, verdict) for figure, value, _, verdict in table({"load": load})}
    value, verdict = rows["Load held at p95"]
    assert "p95 search 481 ms" in value and verdict == "FAIL"
    assert "machine 30.25 M loop steps/s, SHA-256 1.6 GB/s" in value
    assert "1.93 of 2 cores busy (server 0.88, elasticsearch 0.46, minio 0.35, clients 0.16; steal 0.00)" in value


def test_load_row_from_an_older_run_without_them():
    load = {"clients": 20, "duration_s": 300, "targets_p95_ms": {"search": 300, "thumbnail": 200, "upload": 2000, "stow": 3000},
            "phases": [{k: v for k, v in phase("clean").items() if k != "cpu_cores"}]}  # fmt: skip
    value, _ = {f: (v, x) for f, v, _, x in table({"load": load})}["Load held at p95"]
    assert value.endswith("errors 0.00%")
