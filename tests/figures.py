"""The reliability figures of RELIABILITY.md section 4, measured in one command:

    .venv/bin/python -m tests.figures              # the full run (about an hour on 2 cores)
    .venv/bin/python -m tests.figures --quick      # the CI-sized run (about ten minutes)

It runs, in turn:

1. the hostile-input corpus through every ingest route (tests/corpus: bad inputs tried /
   crashed, and the metadata-leak scan of every served rendition);
2. every fuzzing harness for ``--fuzz-seconds`` (tests/fuzz: executions and crashes);
3. schemathesis over every API operation (``--api-examples`` per operation);
4. the fault loop (``--faults``, 1,000 by default) against private MinIO and Elasticsearch
   servers started from infra/ (faults injected / acknowledged items lost / half visible);
5. the load test (``--clients`` for ``--load-seconds``, then the same with Elasticsearch cut
   off) on MinIO + Elasticsearch (p50/p95/p99, error rate);
6. the DICOM listener under idle-connection floods of 10, 50 and 500 sockets.

It prints a table (figure, value, goal, pass) and writes ``test-artifacts/figures/latest.json``
and ``latest.md`` (and a dated copy), with the date, the commit, the backends and the machine.
Steps whose servers are not installed are reported as not measured. The README's "Reliability
figures" section is a copy of ``latest.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "test-artifacts" / "figures"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def _machine() -> str:
    memory = ""
    try:
        kb = int(next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")).split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{platform.machine()}, {os.cpu_count()} CPUs{memory}, Python {platform.python_version()}"


def say(message: str) -> None:
    print(f"[figures {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the steps -----------------------------------------------------------------------------------
def corpus(scale: int, seed: int) -> dict[str, Any]:
    from tests.corpus.make import build, families
    from tests.corpus.runner import ROUTES, run_corpus

    cases = build(seed, scale)
    say(f"corpus: {len(cases)} files x {len(ROUTES)} routes")
    report = run_corpus(cases, routes=ROUTES, work=Path(tempfile.mkdtemp(prefix="ologies-figures-corpus-")),
                        log=lambda m: say(f"corpus: {m}"))  # fmt: skip
    report.write(OUT / "corpus-report.json")
    summary = report.summary()
    summary["families"] = families(cases)
    summary["failures"] = report.failures()[:50]
    return summary


def fuzz(seconds: int) -> dict[str, Any]:
    from tests.fuzz.harnesses import HARNESSES

    results: dict[str, Any] = {}
    artifacts = OUT / "fuzz"
    artifacts.mkdir(parents=True, exist_ok=True)
    for name in sorted(HARNESSES):
        work = Path(tempfile.mkdtemp(prefix=f"ologies-figures-fuzz-{name}-"))
        done = subprocess.run(
            [sys.executable, "-m", "tests.fuzz.run", name, f"-max_total_time={seconds}", "-rss_limit_mb=2048",
             "-timeout=10", f"-artifact_prefix={artifacts}/{name}-", "-print_final_stats=1", str(work)],
            cwd=REPO, capture_output=True, text=True, timeout=seconds + 600,
        )  # fmt: skip
        runs = next((int(line.split(":")[-1]) for line in done.stderr.splitlines()
                     if line.startswith("stat::number_of_executed_units")), 0)  # fmt: skip
        results[name] = {"executions": runs, "crashed": done.returncode != 0}
        say(f"fuzz {name}: {runs} executions, {'CRASH' if done.returncode else 'no crash'}")
    return {"seconds_per_harness": seconds, "harnesses": results,
            "executions": sum(r["executions"] for r in results.values()),
            "crashes": sum(1 for r in results.values() if r["crashed"])}  # fmt: skip


def api(examples: int) -> dict[str, Any]:
    say(f"schemathesis: {examples} examples per operation")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/api", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "OLOGIES_SCHEMATHESIS_EXAMPLES": str(examples)},
    )  # fmt: skip
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    passed = failed = 0
    for word, number in zip(last.split()[1::2], last.split()[::2]):
        if word.startswith("passed"):
            passed = int(number)
        elif word.startswith("failed"):
            failed = int(number)
    return {"operations": passed + failed, "examples_per_operation": examples, "failed_operations": failed, "summary": last}


def faults(count: int, seed: int) -> dict[str, Any]:
    from tests.integration.fault_loop import run_fault_loop

    say(f"fault loop: {count} faults against private MinIO and Elasticsearch")
    report = run_fault_loop(count, work=Path(tempfile.mkdtemp(prefix="ologies-figures-faults-")), s3_service="minio",
                            seed=seed, log=lambda m: say(f"faults: {m}"))  # fmt: skip
    summary = report.summary()
    summary["lost_items"] = report.lost[:20]
    summary["half_visible_items"] = report.half_visible[:20]
    return summary


def load(seconds: float, clients: int) -> dict[str, Any]:
    from tests.bench.load import run

    say(f"load: {clients} clients x {seconds:g} s on MinIO + Elasticsearch, then with Elasticsearch cut off")
    return run(seconds, clients, backends="real", index_down=True, workers=2, log=lambda m: say(f"load: {m}"))


def flood(seconds: float) -> dict[str, Any]:
    from tests.bench.dimse_flood import measure

    say("DIMSE flood: 10, 50 and 500 idle connections")
    return measure([10, 50, 500], seconds, log=lambda m: say(f"flood: {m}"))


def _step(results: dict[str, Any], name: str, fn: Any, *args: Any) -> None:
    started = time.monotonic()
    try:
        results[name] = fn(*args)
    except Exception as exc:  # noqa: BLE001 - one step failing must not lose the others' figures
        traceback.print_exc()
        results[name] = {"not_measured": f"{type(exc).__name__}: {exc}"}
    results[name]["step_seconds"] = round(time.monotonic() - started, 1)
    results[name]["measured"] = results["meta"]["date"]
    say(f"{name}: done in {results[name]['step_seconds']:.0f} s")


# -- the table -----------------------------------------------------------------------------------
def _phase(load_result: dict[str, Any], name: str) -> dict[str, Any]:
    return next((p for p in load_result.get("phases", []) if p["phase"] == name), {})


def _load_machine(ld: dict[str, Any], clean: dict[str, Any]) -> str:
    """How fast the machine was and who had its cores: a load figure depends on both."""
    out = ""
    speed, cpu = ld.get("machine_speed"), clean.get("cpu_cores")
    if speed:
        out += f"; machine {speed['python_loop_mops']:g} M loop steps/s, SHA-256 {speed['sha256_mb_s'] / 1000:.1f} GB/s"
    if cpu:
        named = ", ".join(f"{k} {cpu[k]:.2f}" for k in ("server", "elasticsearch", "minio", "clients") if k in cpu)
        out += f"; {cpu['busy']:.2f} of {cpu['cores']:g} cores busy ({named}; steal {cpu['steal']:.2f})"
    return out


def table(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, value, goal, verdict) rows, in the order of RELIABILITY.md section 4."""
    rows: list[tuple[str, str, str, str]] = []

    def verdict(ok: bool | None) -> str:
        return "not measured" if ok is None else ("pass" if ok else "FAIL")

    c, fz = results.get("corpus", {}), results.get("fuzz", {})
    if "tried" in c:
        crashed = c["crashed"] + c["over_memory_budget"] + fz.get("crashes", 0)
        value = (f"{c['tried']:,} tried ({c['distinct_files']:,} files x {len(c['routes'])} routes: "
                 f"{', '.join(c['routes'])}) + {fz.get('executions', 0):,} fuzz executions / {crashed} crashed, "
                 f"{c['server_errors_other_than_503']} 5xx, {c['invariant_violations']} invariant violations")  # fmt: skip
        rows.append(("Bad inputs tried / crashed", value, ">= 2,000 tried; 0 crashed",
                     verdict(c["tried"] >= 2000 and crashed == 0 and c["invariant_violations"] == 0)))  # fmt: skip
        rows.append(("Metadata leak scan", f"{c['metadata_artefacts_scanned']:,} served artefacts scanned / {c['metadata_leaks']} leaks",
                     "0 leaks", verdict(c["metadata_leaks"] == 0)))  # fmt: skip
    else:
        rows.append(("Bad inputs tried / crashed", c.get("not_measured", "-"), ">= 2,000 tried; 0 crashed", verdict(None)))
    if "harnesses" in fz:
        rows.append(("Fuzzing (this run)", f"{len(fz['harnesses'])} harnesses x {fz['seconds_per_harness']} s: "
                     f"{fz['executions']:,} executions, {fz['crashes']} crashes", ">= 24 CPU-hours per harness per release; 0 crashes",
                     verdict(fz["crashes"] == 0)))  # fmt: skip
    f = results.get("faults", {})
    if "faults_injected" in f:
        allowed = {"200", "201", "202", "503", "connection lost"}
        odd = {k: v for part in (f["uploads"], f["searches"]) for k, v in part.items() if k not in allowed}
        value = (f"{f['faults_injected']:,} faults injected ({', '.join(f'{k} {v}' for k, v in sorted(f['faults'].items()))}) / "
                 f"{f['acknowledged_lost']} of {f['acknowledged']:,} acknowledged items lost, {f['half_visible']} half visible; "
                 f"slowest answer {f['slowest_answer_s']} s; recovered by itself in {f['recovery_s']} s"
                 + (f"; unexpected answers {odd}" if odd else ""))  # fmt: skip
        rows.append(("Faults injected / acknowledged items lost", value, ">= 1,000 faults; 0 lost; 0 half visible",
                     verdict(f["faults_injected"] >= 1000 and f["acknowledged_lost"] == 0 and f["half_visible"] == 0
                             and not odd)))  # fmt: skip
        rows.append(("Search-down honesty", f"{f['searches'].get('503', 0):,} searches answered 503 during faults; "
                     f"{f['dishonest_searches']} answered an empty 200", "100% 503, never an empty list",
                     verdict(f["dishonest_searches"] == 0)))  # fmt: skip
    else:
        rows.append(("Faults injected / acknowledged items lost", f.get("not_measured", "-"), ">= 1,000 faults; 0 lost", verdict(None)))
    ld = results.get("load", {})
    clean, down = _phase(ld, "clean"), _phase(ld, "index down")
    if clean:
        targets = ld["targets_p95_ms"]

        def p95(phase: dict[str, Any], kind: str) -> float:
            return float(phase.get(kind, {}).get("p95_ms", float("nan")))

        ok = all(p95(clean, k) <= targets[k] for k in ("search", "thumbnail", "upload", "stow")) and clean["error_rate"] <= 0.001
        value = (f"{ld['clients']} clients x {ld['duration_s']:g} s, {clean['requests']:,} requests: p95 search {p95(clean, 'search'):.0f} ms, "
                 f"thumbnail {p95(clean, 'thumbnail'):.0f} ms, 5 MB upload {p95(clean, 'upload'):.0f} ms, "
                 f"STOW-RS x10 {p95(clean, 'stow'):.0f} ms; errors {clean['error_rate']:.2%}")  # fmt: skip
        value += _load_machine(ld, clean)
        rows.append(("Load held at p95", value, "search <= 300 ms; thumbnail <= 200 ms; upload <= 2 s; STOW <= 3 s; errors <= 0.1%",
                     verdict(ok)))  # fmt: skip
        if down:
            value = (f"index down: searches {down['honest_503']:,} x 503 (0 empty 200s); p95 thumbnail {p95(down, 'thumbnail'):.0f} ms, "
                     f"upload (202) {p95(down, 'upload'):.0f} ms, STOW-RS {p95(down, 'stow'):.0f} ms; errors {down['error_rate']:.2%}")  # fmt: skip
            same = all(p95(down, k) <= 1.2 * p95(clean, k) for k in ("thumbnail", "upload"))
            rows.append(("Load with Elasticsearch down", value, "paths that do not need it keep their p95 (+-20%); errors <= 0.1%",
                         verdict(down["error_rate"] <= 0.001 and same)))  # fmt: skip
    else:
        rows.append(("Load held at p95", ld.get("not_measured", "-"), "search <= 300 ms; thumbnail <= 200 ms; upload <= 2 s", verdict(None)))
    fl = results.get("flood", {})
    if fl.get("floods"):
        value = "; ".join(f"{r['idle_connections']} idle: {r['availability_pct']:.1f}% of {r['associations']} associations, "
                          f"recovery {r['recovery_s']} s" for r in fl["floods"])  # fmt: skip
        goals = {10: 99.0, 50: 99.0, 500: 95.0}
        ok = all(r["availability_pct"] >= goals.get(r["idle_connections"], 99.0) and (r["recovery_s"] or 99) <= 6 for r in fl["floods"])
        rows.append(("DICOM listener availability under flood", value, ">= 99% / 99% / 95% at 10 / 50 / 500; recovery <= 6 s",
                     verdict(ok)))  # fmt: skip
    else:
        rows.append(("DICOM listener availability under flood", fl.get("not_measured", "-"), ">= 99% at 50", verdict(None)))
    a = results.get("api", {})
    if "operations" in a:
        rows.append(("API robustness (schemathesis)", f"{a['operations']} operations x {a['examples_per_operation']} examples / "
                     f"{a['failed_operations']} failing", ">= 1,000 examples per operation per release; 0 failures",
                     verdict(a["failed_operations"] == 0 and a["operations"] > 0)))  # fmt: skip
    return rows


def markdown(results: dict[str, Any], rows: list[tuple[str, str, str, str]]) -> str:
    meta = results["meta"]
    lines = [
        f"Measured {meta['date']} at commit `{meta['commit']}` on {meta['machine']}, by `{meta['command']}`; "
        f"backends: {meta['backends']}. Definitions and goals: RELIABILITY.md section 4.",
        "",
        "| Figure | Value | Goal | |",
        "|---|---|---|---|",
    ]
    lines += [f"| {figure} | {value} | {goal} | {ok} |" for figure, value, goal, ok in rows]
    reused = sorted({name for name, part in results.items() if name != "meta" and isinstance(part, dict)
                     and part.get("measured") not in (None, meta["date"])})  # fmt: skip
    if reused:
        lines += ["", "Reused from an earlier run: " + "; ".join(f"{n} ({results[n]['measured']})" for n in reused) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI-sized counts (faults 40, load 20 s, fuzz 6 s)")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--corpus-scale", type=int, default=None)
    parser.add_argument("--fuzz-seconds", type=int, default=None)
    parser.add_argument("--api-examples", type=int, default=None)
    parser.add_argument("--faults", type=int, default=None)
    parser.add_argument("--load-seconds", type=float, default=None)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--flood-seconds", type=float, default=None)
    parser.add_argument("--skip", nargs="*", default=[], choices=("corpus", "fuzz", "api", "faults", "load", "flood"))
    parser.add_argument("--reuse", action="store_true",
                        help="take the figures of skipped steps from the previous latest.json (their own dates kept)")
    args = parser.parse_args(argv)
    quick = args.quick
    scale = args.corpus_scale or 1
    fuzz_s = args.fuzz_seconds or (6 if quick else 30)
    examples = args.api_examples or (25 if quick else 200)
    fault_count = args.faults or (40 if quick else 1000)
    load_s = args.load_seconds or (20 if quick else 300)
    flood_s = args.flood_seconds or (8 if quick else 20)

    results: dict[str, Any] = {"meta": {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": _commit(), "machine": _machine(),
        "command": "python -m tests.figures" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip(),
        "backends": "corpus: file store + SQLite, in process; faults and load: MinIO + Elasticsearch (infra/, private ports); "
                    "flood: ologies serve --dimse-port",
    }}  # fmt: skip
    steps = (("corpus", corpus, scale, args.seed), ("fuzz", fuzz, fuzz_s), ("api", api, examples),
             ("faults", faults, fault_count, args.seed), ("load", load, load_s, args.clients), ("flood", flood, flood_s))  # fmt: skip
    previous: dict[str, Any] = {}
    if args.reuse and (OUT / "latest.json").exists():
        previous = json.loads((OUT / "latest.json").read_text())
    for name, fn, *step_args in steps:
        if name in args.skip:
            if name in previous and "not_measured" not in previous[name]:
                results[name] = {**previous[name], "measured": previous[name].get("measured", previous["meta"]["date"])}
            else:
                results[name] = {"not_measured": "skipped (--skip)"}
            continue
        _step(results, name, fn, *step_args)
    rows = table(results)
    text = markdown(results, rows)
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M")
    for name in ("latest", stamp):
        (OUT / f"{name}.json").write_text(json.dumps({**results, "table": rows}, indent=1, default=str))
        (OUT / f"{name}.md").write_text(text)
    print()
    print(text)
    print(f"written to {OUT / 'latest.md'} and {OUT / 'latest.json'}")
    return 0 if all(r[3] in ("pass", "not measured") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
