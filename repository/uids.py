"""Deterministic UIDs (DECISIONS.md 4): the same inputs always give the same ``2.25.`` UID.

A ``2.25.`` UID is the decimal form of a UUID (PS3.5 B.2). We derive a name-based UUID from a
SHA-256 over the inputs, so re-sending the same upload finds the same instance.
"""

from __future__ import annotations

import hashlib
import uuid


def uid_from(*parts: str) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return "2.25." + str(uuid.UUID(bytes=digest[:16], version=5).int)


def sop_instance_uid_for_upload(original_sha256: str) -> str:
    """The SOP Instance UID of a converted upload, from the SHA-256 of its bytes alone."""
    return uid_from("sop", original_sha256)
