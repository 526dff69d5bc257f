"""How much one conversion grows a process's peak resident memory, measured in a fresh process
so that the peak is the conversion's alone (a child started from pytest would report pytest's
peak through ``ru_maxrss``; ``VmHWM`` is the child's own)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_SCRIPT = """
import hashlib, sys, tempfile
from pathlib import Path
from converters.base import Limits, SourceFile
from repository.errors import ConversionFailed
path, media_type, warm, call = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
data = path.read_bytes()
source = SourceFile(path, media_type, hashlib.sha256(data).hexdigest(), len(data))
exec(warm)  # imports and set-up that are not the conversion's cost
def peak_kb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1])
before = peak_kb()
try:
    exec(call)
    outcome = "converted"
except ConversionFailed as exc:
    outcome = str(exc)
print((peak_kb() - before) // 1024)
print(outcome.replace("\\n", " "))
"""


def conversion_growth_mb(path: Path, media_type: str, *, call: str, warm: str = "") -> tuple[int, str]:
    """(MB the peak grew by, "converted" or the ConversionFailed message) for ``call``, Python
    that converts ``source`` (a SourceFile of ``path``), after ``warm`` has run."""
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(path), media_type, warm, call], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    grown_mb, outcome = done.stdout.splitlines()[:2]
    return int(grown_mb), outcome
