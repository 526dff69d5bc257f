"""Medians over the rounds of tests/bench/dicomweb_vs_orthanc.sh: one line per measurement and
server, from the harness's JSON records (each round appends records with the same label).

    .venv/bin/python -m tests.bench.summarise_dicomweb tests/bench/results/dicomweb.json
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict

KEYS = {
    "stow": ("inst_per_s", "p50_ms", "p95_ms"),
    "dimse": ("inst_per_s",),
    "qido": ("p50_ms", "p95_ms", "mean_results"),
    "wado": ("p50_ms", "p95_ms", "mean_kb"),
}


def cell(values: list[float]) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    fmt = (lambda v: f"{v:.0f}") if med >= 100 else (lambda v: f"{v:.1f}")
    return f"{fmt(med)} [{fmt(min(values))}-{fmt(max(values))}]"


def main(path: str) -> None:
    records = json.load(open(path))
    runs: dict[tuple[str, str], list[dict]] = defaultdict(list)
    loads: dict[tuple[str, str], list[float]] = defaultdict(list)
    for record in records:
        if record.get("kind") not in KEYS:
            continue
        runs[(record["kind"], record["label"])] += record.get("runs", [])
        for run in record.get("runs", []):
            if run.get("load1_before") is not None:
                loads[(record["kind"], record["label"])].append(run["load1_before"])
    for kind, keys in KEYS.items():
        print(f"\n### {kind}\n")
        print("| measurement | runs | " + " | ".join(keys) + " | load (1 min) |")
        print("|---|---|" + "---|" * len(keys) + "---|")
        for (k, label), items in sorted(runs.items()):
            if k != kind:
                continue
            cells = [cell([r[key] for r in items if r.get(key) is not None]) for key in keys]
            print(f"| {label} | {len(items)} | " + " | ".join(cells) + f" | {cell(loads[(k, label)])} |")


if __name__ == "__main__":
    main(sys.argv[1])
