"""Run David Clunie's ``dciodvfy`` (dicom3tools) on a dataset or file, for any test to reuse.

``dciodvfy_errors`` returns the lines that report an error; ``dciodvfy_report`` returns every
line (warnings included) for a closer look.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pydicom import Dataset

__all__ = ["KNOWN_FALSE_ERRORS", "dciodvfy_errors", "dciodvfy_path", "dciodvfy_report"]

# Error lines that are defects of dciodvfy, not of the object, by the IOD name dciodvfy prints.
# Its template for DermoscopicPhotographyImage lists the Frame of Reference module as Usage "U"
# without the "NeedModule..." condition every other optional module has, so it always demands
# Frame of Reference UID and Position Reference Indicator, although the module is optional
# (PS3.3 A.32.11) and a hand-held dermoscope photograph has no frame of reference
# (dicom3tools snapshot 20260927).
KNOWN_FALSE_ERRORS: dict[str, frozenset[str]] = {
    "DermoscopicPhotographyImage": frozenset(
        {
            (
                "Error - </FrameOfReferenceUID(0020,0052)> - Missing attribute for Type 1"
                " Required - Module=<FrameOfReference>"
            ),
            (
                "Error - </PositionReferenceIndicator(0020,1040)> - Missing attribute for Type 2"
                " Required - Module=<FrameOfReference>"
            ),
        }
    ),
}


def dciodvfy_path() -> str | None:
    """Return the ``dciodvfy`` executable: next to the running interpreter, else on PATH."""
    beside = Path(sys.executable).with_name("dciodvfy")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("dciodvfy")


def dciodvfy_report(path_or_dataset: str | os.PathLike[str] | Dataset) -> list[str]:
    """Validate one DICOM file (or a dataset, written to a temporary Part 10 file).

    Parameters
    ----------
    path_or_dataset: str | os.PathLike | pydicom.Dataset
        A Part 10 file, or a dataset with ``file_meta``.

    Returns
    -------
    list[str]
        Every non-empty line that dciodvfy printed (stdout and stderr).
    """
    tool = dciodvfy_path()
    if tool is None:
        raise FileNotFoundError("dciodvfy (dicom3tools) is not installed")
    if isinstance(path_or_dataset, Dataset):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "object.dcm"
            path_or_dataset.save_as(path, enforce_file_format=True)
            return _run(tool, path)
    return _run(tool, Path(path_or_dataset))


def dciodvfy_errors(
    path_or_dataset: str | os.PathLike[str] | Dataset, *, ignore_known_false: bool = True
) -> list[str]:
    """Return the lines of the dciodvfy report that contain ``Error``.

    Parameters
    ----------
    path_or_dataset: str | os.PathLike | pydicom.Dataset
        A Part 10 file, or a dataset with ``file_meta``.
    ignore_known_false: bool, optional
        Leave out the :data:`KNOWN_FALSE_ERRORS` of the IOD that dciodvfy recognised.

    Returns
    -------
    list[str]
        The error lines; empty for a valid object.
    """
    report = dciodvfy_report(path_or_dataset)
    ignored: set[str] = set()
    if ignore_known_false:
        for line in report:
            ignored |= KNOWN_FALSE_ERRORS.get(line.strip(), frozenset())
    return [line for line in report if "Error" in line and line.strip() not in ignored]


def _run(tool: str, path: Path) -> list[str]:
    # -new: check against the current standard rather than tolerating retired usage.
    done = subprocess.run(
        [tool, "-new", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
