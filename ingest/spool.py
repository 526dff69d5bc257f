"""The upload spool's leftovers. Every route spools a request's files under a folder of its own
and removes it when the request ends; a server stopped in the middle of a long upload (SIGTERM
past the shutdown drain, a kill, a crash) cannot, and the folder stays: patient data outside the
store, and disk that a busy server runs out of. The server removes such folders when it starts.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

#: the folders the routes make (web/routes/images.py, web/pages/upload.py, web/dicomweb/routes.py,
#: ingest/pipeline.py, ingest/dicom.py)
PREFIXES = ("ologies-upload-", "ologies-page-upload-", "ologies-page-find-", "ologies-stow-", "ologies-ingest-", "ologies-dicom-")
#: older than this, a folder is no request's of any server sharing the spool (an upload is
#: bounded far below it by the request limits and timeouts)
STALE_SECONDS = 3600.0


def tidy_spool(spool_dir: str | Path | None, *, now: float | None = None) -> int:
    """Remove the routes' spool folders older than ``STALE_SECONDS``; returns how many."""
    root = Path(spool_dir or tempfile.gettempdir())
    cutoff = (time.time() if now is None else now) - STALE_SECONDS
    removed = 0
    try:
        entries = list(root.iterdir())
    except OSError:
        return 0
    for entry in entries:
        try:
            if entry.name.startswith(PREFIXES) and entry.is_dir() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        except OSError:
            continue
    if removed:
        log.info("removed %d upload folder(s) left by a server stopped mid-upload", removed)
    return removed
