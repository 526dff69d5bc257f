"""Sniff a file and hand it to the converter for what it really is.

Each converter module offers the same small surface (pydicom's plugin contract, STYLE.md 3.4):
``MEDIA_TYPES``, ``DEPENDENCIES`` (packages to install), ``is_available()`` and
``convert(source, *, limits, local_tz) -> CapturedImage``. Modules are imported lazily; one whose
optional packages are missing stays registered, so the refusal can name the package to install
(HEIC without pillow-heif) instead of pretending the format is unknown.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from converters.base import CapturedImage, Limits, SourceFile
from converters.raster import ACCEPTED
from converters.sniff import HEAD_SIZE, OCTET_STREAM, sniff
from repository.errors import InvalidInput, UnsupportedMediaType

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ConverterEntry:
    """One input kind: the module that converts it and the pip packages it needs beyond the core."""

    module: str
    packages: tuple[str, ...] = ()


CONVERTERS: dict[str, ConverterEntry] = {
    "image/jpeg": ConverterEntry("converters.jpeg"),
    "image/png": ConverterEntry("converters.raster"),
    "image/tiff": ConverterEntry("converters.raster"),
    "image/bmp": ConverterEntry("converters.raster"),
    "image/webp": ConverterEntry("converters.raster"),
    "image/heic": ConverterEntry("converters.heic", ("pillow-heif",)),
}

_DESCRIPTIONS = {
    OCTET_STREAM: "unrecognised content",
    "application/pdf": "a PDF document",
    "image/gif": "a GIF image",
    "application/zip": "a ZIP archive",
    "application/dicom": "a DICOM file",
    "video/mp4": "an MP4 video",
    "video/quicktime": "a QuickTime video",
    "image/avif": "an AVIF image",
}


def convert_image(
    path: Path, *, limits: Limits, local_tz: str = "Europe/London", sha256: str | None = None
) -> CapturedImage:
    """Convert one photograph file into a :class:`CapturedImage`.

    Parameters
    ----------
    path : pathlib.Path
        The uploaded file; its name and extension are ignored.
    limits : Limits
        Pixel limits checked from the header before anything is decoded.
    local_tz : str
        IANA zone for EXIF times without an offset (DECISIONS.md 12).
    sha256 : str, optional
        The file's SHA-256 when the caller already hashed it while receiving it; saves a
        second pass over the bytes.

    Raises
    ------
    InvalidInput
        The file is empty, or has too many pixels.
    UnsupportedMediaType
        The bytes are not a photograph format, or its converter's packages are not installed.
    ConversionFailed
        The file is a photograph format but damaged or not decodable.
    """
    if sha256 is None:
        head, sha256, size = _digest(path)
    else:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(HEAD_SIZE)
    if size == 0:
        raise InvalidInput("the file is empty (0 bytes)", field="file")
    media_type = sniff(head)
    module = converter_for(media_type)
    source = SourceFile(path=path, media_type=media_type, sha256=sha256, size=size)
    return module.convert(source, limits=limits, local_tz=local_tz)  # type: ignore[no-any-return]


def converter_for(media_type: str) -> ModuleType:
    """The converter module for ``media_type``; :class:`UnsupportedMediaType` naming what was
    detected, or the package to install, when there is none that works."""
    entry = CONVERTERS.get(media_type)
    if entry is None:
        described = _DESCRIPTIONS.get(media_type, media_type)
        detected = media_type if described == media_type else f"{media_type} ({described})"
        raise UnsupportedMediaType(
            f"detected {detected}; expected a photograph ({ACCEPTED})", field="file"
        )
    missing = missing_packages(media_type)
    if missing:
        raise UnsupportedMediaType(
            f"detected {media_type}, but this server cannot convert it: install {', '.join(missing)}",
            field="file",
        )
    return importlib.import_module(entry.module)


def missing_packages(media_type: str) -> tuple[str, ...]:
    """Packages that must be installed before ``media_type`` can be converted (empty if none)."""
    entry = CONVERTERS[media_type]
    try:
        module = importlib.import_module(entry.module)
        available = bool(module.is_available())
    except ImportError:
        available = False
    return () if available else entry.packages or ("(unknown dependency)",)


def supported_media_types() -> frozenset[str]:
    """Media types that can be converted on this server right now."""
    return frozenset(m for m in CONVERTERS if not missing_packages(m))


def _digest(path: Path) -> tuple[bytes, str, int]:
    """Stream the file once: its first bytes for sniffing, its SHA-256 and its size."""
    digest = hashlib.sha256()
    head = b""
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            if len(head) < HEAD_SIZE:
                head += chunk[: HEAD_SIZE - len(head)]
            digest.update(chunk)
            size += len(chunk)
    return head, digest.hexdigest(), size
