"""ICC profiles made from colour primaries, for images that state their colour space as coded
values rather than with a profile (a HEIC's ``nclx`` box: ISO/IEC 23091-2 colour primaries and
transfer characteristics). The stored DICOM object then carries a profile that describes its
pixels (PS3.3 C.11.15.1.1), as it does for a JPEG that came with one, and renditions convert
from it.

Only what phones write is covered: Display P3 primaries (12) with the sRGB transfer curve (13),
an iPhone's and many Android phones' default. BT.709/sRGB primaries (1) need no profile.
"""

from __future__ import annotations

import struct
from functools import lru_cache

#: ISO/IEC 23091-2 ColourPrimaries code of SMPTE EG 432-1 (Display P3, D65)
DISPLAY_P3 = 12
#: TransferCharacteristics of IEC 61966-2-1 (the sRGB curve)
SRGB_TRANSFER = 13

# Display P3 colorants adapted to the ICC's D50 (Bradford), as Apple's profile has them
_P3_COLORANTS = ((0.515102, 0.241196, -0.001053), (0.291965, 0.692245, 0.041884), (0.157153, 0.066561, 0.784056))
_D50 = (0.9642, 1.0, 0.8249)


def _s15(value: float) -> bytes:
    return struct.pack(">i", int(round(value * 65536)))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + bytes(4) + _s15(x) + _s15(y) + _s15(z)


def _srgb_curve() -> bytes:
    """parametricCurveType, function 3: the sRGB transfer curve exactly."""
    g, a, b, c, d = 2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045
    return b"para" + bytes(4) + struct.pack(">HH", 3, 0) + b"".join(_s15(v) for v in (g, a, b, c, d))


def _mluc(text: str) -> bytes:
    encoded = text.encode("utf-16-be")
    return b"mluc" + bytes(4) + struct.pack(">II", 1, 12) + b"enUS" + struct.pack(">II", len(encoded), 28) + encoded


@lru_cache(maxsize=None)
def profile_for(primaries: int, transfer: int) -> bytes | None:
    """An ICC v4 matrix/TRC display profile for these coded values, or None when none is made
    (sRGB itself, or values this module does not cover)."""
    if primaries != DISPLAY_P3 or transfer != SRGB_TRANSFER:
        return None
    curve = _srgb_curve()
    tags = [(b"desc", _mluc("Display P3")), (b"cprt", _mluc("No copyright, use freely")), (b"wtpt", _xyz(*_D50)),
            (b"rXYZ", _xyz(*_P3_COLORANTS[0])), (b"gXYZ", _xyz(*_P3_COLORANTS[1])), (b"bXYZ", _xyz(*_P3_COLORANTS[2])),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]  # fmt: skip
    offset, table, data = 128 + 4 + 12 * len(tags), b"", b""
    for signature, body in tags:
        data += bytes(-(offset + len(data)) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    body = struct.pack(">I", len(tags)) + table + data
    header = (struct.pack(">I", 128 + len(body)) + bytes(4) + bytes([4, 0x30, 0, 0]) + b"mntrRGB XYZ " + bytes(12)
              + b"acsp" + bytes(4 + 4 + 4 + 4 + 8 + 4) + b"".join(_s15(v) for v in _D50) + bytes(4 + 16 + 28))  # fmt: skip
    return header + body
