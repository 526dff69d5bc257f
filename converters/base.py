"""The neutral result of parsing an input file, shared by every converter and every builder."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from converters.bitstream import Bitstream

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Limits:
    """Bounds checked before any decoding (decompression bombs, absurd dimensions)."""

    max_pixels: int = 150_000_000
    max_dimension: int = 30_000


@dataclass(frozen=True)
class SourceFile:
    """An uploaded file as the registry saw it: where it is, what its magic bytes say it is, and the
    SHA-256 and size of its bytes (streamed once, before any parsing)."""

    path: Path
    media_type: str
    sha256: str
    size: int


@dataclass
class CaptureMetadata:
    """What the camera said about the capture; GPS and owner fields are never read into it."""

    acquisition_datetime: dt.datetime | None = None  # aware (with tzinfo) when known
    # OFFSET_INFERRED (no EXIF offset: read as local time), DST_GAP_SHIFTED, DST_OVERLAP_EARLIER
    time_flags: list[str] = field(default_factory=list)
    manufacturer: str = ""
    model: str = ""
    software: str = ""
    lens_make: str = ""
    lens_model: str = ""
    exposure_time_s: float | None = None
    f_number: float | None = None
    iso: int | None = None
    focal_length_mm: float | None = None
    flash_fired: bool | None = None


@dataclass(frozen=True)
class LossyStep:
    """One lossy compression in the image's history (Lossy Image Compression Method/Ratio)."""

    method: str  # defined term: ISO_10918_1 (JPEG), ISO_23008_2 (HEVC), ...
    ratio: float


@dataclass
class CapturedImage:
    """An upright image ready to be wrapped, with exactly one of ``jpeg`` or ``pixels`` set.

    ``jpeg`` is a JPEG bitstream to encapsulate unchanged (metadata segments already removed);
    ``pixels`` is a native array (rows, columns[, samples]) of uint8 or uint16.
    """

    media_type: str  # what sniffing detected, e.g. image/jpeg
    original_sha256: str
    original_size: int
    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int  # 8 or 16
    bits_stored: int
    photometric_interpretation: str  # MONOCHROME2, RGB, YBR_FULL_422, YBR_FULL
    transfer_syntax_uid: str
    jpeg: bytes | Bitstream | None = None  # a Bitstream holds views of the source, see there
    pixels: "np.ndarray | None" = None
    lossy_history: list[LossyStep] = field(default_factory=list)
    # True when the pixels are not the camera's own (re-encoded, or transformed in any way);
    # Image Type becomes DERIVED and derivation_description says what was done.
    derived: bool = False
    derivation_description: str = ""
    capture: CaptureMetadata = field(default_factory=CaptureMetadata)
    icc_profile: bytes | None = None
    # Chroma subsampling of a JPEG bitstream as found in its frame header ("4:2:0", "4:2:2",
    # "4:4:4", ...); empty for native pixels and greyscale. Informative: the Photometric
    # Interpretation of YCbCr JPEG is YBR_FULL_422 whatever this says (see converters.jpeg).
    chroma_subsampling: str = ""
    # Things a person may want to know about the conversion, as stable upper-case codes, e.g.
    # EXIF_ORIENTATION_INVALID, ALPHA_COMPOSITED, BIT_DEPTH_REDUCED, ICC_PROFILE_INVALID,
    # ICC_PROFILE_MISMATCH.
    flags: list[str] = field(default_factory=list)

    @property
    def lossy(self) -> bool:
        return bool(self.lossy_history)
