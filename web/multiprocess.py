"""Prometheus multi-process mode for ``ologies serve --workers N``, set up before anything
imports ``prometheus_client`` (which decides at import time where samples go). Kept free of
imports for that reason."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_metrics() -> str:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at an empty folder (a fresh temporary one, unless the
    operator chose one, which is then emptied of a previous run's samples), so that every worker
    process writes its samples there and a scrape of any of them, or of the separate exporter,
    reports the sum over all of them."""
    chosen = os.environ.get(MULTIPROC_ENV)
    if chosen:
        folder = Path(chosen)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        folder = Path(tempfile.mkdtemp(prefix="ologies-metrics-"))
        os.environ[MULTIPROC_ENV] = str(folder)
        atexit.register(_remove, folder, os.getpid())  # one folder a start was left behind, for ever
    return str(folder)


def _remove(folder: Path, owner: int) -> None:
    # Forked workers inherit the handler: only the process that made the folder removes it.
    if os.getpid() == owner:
        shutil.rmtree(folder, ignore_errors=True)
