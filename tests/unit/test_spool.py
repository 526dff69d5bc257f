"""Upload folders left by a server stopped mid-upload are removed when a server starts."""

from __future__ import annotations

import os
import time

from ingest.spool import STALE_SECONDS, tidy_spool


def test_stale_upload_folders_go_and_young_ones_and_others_stay(tmp_path):
    old, young, other = tmp_path / "ologies-upload-abc", tmp_path / "ologies-stow-def", tmp_path / "someone-else"
    for folder in (old, young, other):
        folder.mkdir()
        (folder / "00001").write_bytes(b"part of a photograph")
    long_ago = time.time() - STALE_SECONDS - 60
    for folder in (old, other):
        os.utime(folder, (long_ago, long_ago))
    assert tidy_spool(tmp_path) == 1
    assert not old.exists() and young.exists() and other.exists()
    assert tidy_spool(tmp_path / "missing") == 0
