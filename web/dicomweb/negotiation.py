"""Accept headers (RFC 9110 12.5.1, PS3.18 8.7). Byte ranges are in ``web.ranges``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from converters import dicom as dcm
from converters.iods.media import VIDEO_TRANSFER_SYNTAXES
from repository.errors import NotAcceptable

EXPLICIT_VR_LE = dcm.EXPLICIT_VR_LE
#: stored transfer syntax -> the media type its frames are served as, unchanged
FRAME_MEDIA_TYPES: dict[str, str] = {
    dcm.JPEG_BASELINE: "image/jpeg",
    dcm.JPEG_EXTENDED: "image/jpeg",
    dcm.JPEG_LS_LOSSLESS: "image/jls",
    dcm.JPEG_LS_NEAR_LOSSLESS: "image/jls",
    dcm.JPEG_2000_LOSSLESS: "image/jp2",
    dcm.JPEG_2000: "image/jp2",
    dcm.RLE_LOSSLESS: "image/x-dicom-rle",
}
#: stored transfer syntax -> the media type of a video's Pixel Data bulk data (PS3.18 8.7.3):
#: our MPEG-4 AVC and HEVC bitstreams are MP4 files, so video/mp4 for all of them
VIDEO_MEDIA_TYPES: dict[str, str] = dict.fromkeys(sorted(VIDEO_TRANSFER_SYNTAXES), "video/mp4")
_ITEM = re.compile(r'(?:[^,"]|"[^"]*")+')
_PARAM = re.compile(r';\s*([^=;\s]+)\s*=\s*("[^"]*"|[^;]*)')


@dataclass(frozen=True)
class MediaRange:
    media_type: str  # lower case; "*/*" and "type/*" as sent
    params: dict[str, str]
    q: float

    @property
    def part_type(self) -> str:
        """The ``type`` parameter of a multipart/related range (lower case, unquoted)."""
        return self.params.get("type", "").lower()

    @property
    def transfer_syntax(self) -> str | None:
        return self.params.get("transfer-syntax")


def parse_accept(header: str | None) -> list[MediaRange]:
    """The ranges of an Accept header, most preferred first; ``*/*`` when there is none."""
    if not header or not header.strip():
        return [MediaRange("*/*", {}, 1.0)]
    ranges: list[tuple[float, int, MediaRange]] = []
    for position, item in enumerate(_ITEM.findall(header[:4096])):
        item = item.strip()
        if not item:
            continue
        media_type = item.split(";", 1)[0].strip().lower()
        params = {k.lower(): v.strip().strip('"') for k, v in _PARAM.findall(item)}
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 1.0
        if q > 0:
            ranges.append((-q, position, MediaRange(media_type, params, q)))
    return [r for _, _, r in sorted(ranges, key=lambda t: (t[0], t[1]))]


def accepts_any(ranges: list[MediaRange], *media_types: str) -> bool:
    wanted = set(media_types)
    for r in ranges:
        if r.media_type in wanted or r.media_type == "*/*" or (r.media_type.endswith("/*") and any(m.startswith(r.media_type[:-1]) for m in wanted)):
            return True
    return False


def require_json(header: str | None) -> None:
    """DICOM JSON answers (QIDO-RS, metadata): 406 unless the client takes JSON."""
    if not accepts_any(parse_accept(header), "application/dicom+json", "application/json"):
        raise NotAcceptable("this resource is available as application/dicom+json only (XML is not supported)")


def instance_syntax(header: str | None, stored: list[str]) -> tuple[str, bool]:
    """Negotiate the retrieval of DICOM instances stored in the transfer syntaxes ``stored``.

    Returns (``"*"`` or the transfer syntax to send, whether as one ``application/dicom`` part
    rather than ``multipart/related``). No transcoding is done: a request that needs it (the
    default, Explicit VR Little Endian, for a JPEG photograph) is refused with 406, naming
    ``transfer-syntax=*``. Single-part ``application/dicom`` holds one instance: for several it
    is passed over (RFC 9110 12.5.1: never answered with a type the client did not accept), and
    406 if nothing else is acceptable. See the conformance statement.
    """
    ranges = parse_accept(header)
    several = False
    for r in ranges:
        single = r.media_type == "application/dicom"
        if r.media_type in ("*/*", "multipart/*") or (r.media_type == "multipart/related" and r.part_type in ("", "*/*")):
            return "*", False
        if r.media_type == "multipart/related" and r.part_type != "application/dicom":
            continue
        if not single and r.media_type != "multipart/related":
            continue
        if single and len(stored) > 1:
            several = True
            continue
        wanted = r.transfer_syntax or EXPLICIT_VR_LE
        if wanted == "*" or all(ts == wanted for ts in stored):
            return wanted, single
    if several:
        raise NotAcceptable(
            f"these are {len(stored)} instances, and application/dicom holds one: ask for "
            'multipart/related; type="application/dicom"; transfer-syntax=*, or retrieve each instance'
        )
    names = ", ".join(sorted(set(stored)))
    raise NotAcceptable(
        f"stored as {names}; this server does not transcode: ask for "
        'multipart/related; type="application/dicom"; transfer-syntax=*'
    )


def frame_media(header: str | None, stored_ts: str, *, frames: int = 1, whole: bool = False) -> tuple[str, bool, bool]:
    """Negotiate ``frames`` frames: (media type, decode to native pixels?, single part?).

    Compressed frames are served unchanged in their own media type (``image/jpeg`` for JPEG),
    also when ``application/octet-stream`` is asked for with ``transfer-syntax=*``; plain
    ``application/octet-stream`` (the standard's default) decodes them to native pixels. Native
    frames are served as they are, in Explicit VR Little Endian, unless a range names another
    transfer syntax: nothing is encoded, so such a range is passed over (406 if none is left).

    A single-part range (``image/jpeg`` rather than ``multipart/related; type="image/jpeg"``)
    is answered with the frame alone, and holds one frame: for several it is passed over, as a
    range nothing can be sent in is (RFC 9110 12.5.1). ``whole``: the frames are a Pixel Data
    value (its bulk data), which single-part ``application/octet-stream`` holds as the native
    frames one after another.
    """
    native = stored_ts in (EXPLICIT_VR_LE, dcm.IMPLICIT_VR_LE)
    as_stored = "application/octet-stream" if native else FRAME_MEDIA_TYPES[stored_ts]
    several = False
    for r in parse_accept(header):
        if r.media_type == "*/*":
            return as_stored, False, False
        single = r.media_type != "multipart/related"
        part = r.media_type if single else (r.part_type or "application/octet-stream")
        ts = r.transfer_syntax
        if part == "*/*":
            return as_stored, False, False
        chosen: tuple[str, bool] | None = None
        if part == "application/octet-stream":
            if ts in ("*", stored_ts) or (native and ts in (None, EXPLICIT_VR_LE)):
                chosen = as_stored, False
            elif ts in (None, EXPLICIT_VR_LE):
                chosen = "application/octet-stream", True
        elif part == as_stored and ts in (None, "*", stored_ts):
            chosen = as_stored, False
        if chosen is None:
            continue
        media, decode = chosen
        if single and frames > 1 and not (whole and media == "application/octet-stream"):
            several = True
            continue
        return media, decode, single
    if several:
        raise NotAcceptable(
            f"{frames} frames are sent as multipart/related, one frame to a part: a single-part type "
            f'holds one; ask for multipart/related; type="{as_stored}"'
        )
    if native:
        raise NotAcceptable(
            f"frames are stored uncompressed ({stored_ts}) and this server does not transcode: ask for "
            'multipart/related; type="application/octet-stream" without a transfer-syntax, or with transfer-syntax=*'
        )
    raise NotAcceptable(f"frames are stored as {as_stored} ({stored_ts}); ask for that, or application/octet-stream")


def rendered_media(header: str | None) -> str:
    for r in parse_accept(header):
        if r.media_type in ("image/jpeg", "image/*", "*/*"):
            return "image/jpeg"
        if r.media_type == "image/png":
            return "image/png"
    raise NotAcceptable("rendered images are available as image/jpeg or image/png")


def bulk_media(header: str | None) -> bool:
    """Negotiate bulk data other than encapsulated Pixel Data (native Pixel Data, and every
    other binary value): whether to send it as one part of ``multipart/related`` (True) rather
    than as a single-part ``application/octet-stream`` body (False).

    ``multipart/related; type="application/octet-stream"`` is the standard's default for bulk
    data (PS3.18 8.7.3, what dicomweb-client asks for), ``type="*/*"`` and ``multipart/*`` are
    answered the same way; ``application/octet-stream`` (or ``*/*``, or no Accept) is the single
    value, with byte ranges. The values are little endian as stored (Explicit VR Little Endian):
    nothing is encoded, so a range naming another transfer syntax is passed over (406 if none is
    left).
    """
    for r in parse_accept(header):
        if r.transfer_syntax not in (None, "*", EXPLICIT_VR_LE):
            continue
        if r.media_type in ("application/octet-stream", "application/*", "*/*"):
            return False
        if r.media_type == "multipart/*" or (r.media_type == "multipart/related" and r.part_type in ("", "application/octet-stream", "*/*")):
            return True
    raise NotAcceptable(
        'bulk data is available as application/octet-stream or multipart/related; type="application/octet-stream" '
        f"(transfer syntax {EXPLICIT_VR_LE}, as stored; this server does not transcode)"
    )


def video_media(header: str | None, stored_ts: str) -> tuple[str, bool]:
    """Negotiate a video's Pixel Data bulk data: the video itself, in its own media type, as a
    single-part body (with byte ranges) or, for ``multipart/related; type="video/mp4"`` (or
    ``type="*/*"``, ``"video/*"``), as the one part of a multipart body. Returns (media type,
    multipart?).

    The MP4 is all there is to offer (the encapsulated value, item tags and all, is no use to a
    client), so ``application/octet-stream`` alone, or as the type of ``multipart/related``
    (the bulk data default), is refused rather than answered with MP4.
    """
    media = VIDEO_MEDIA_TYPES[stored_ts]
    for r in parse_accept(header):
        if r.transfer_syntax not in (None, "*", stored_ts):
            continue
        if r.media_type in ("*/*", "video/*", media):
            return media, False
        if r.media_type == "multipart/related" and r.part_type in ("*/*", "video/*", media):
            return media, True
    raise NotAcceptable(
        f'the pixel data of this video is available as {media} or multipart/related; type="{media}" only '
        f"(transfer syntax {stored_ts})"
    )
