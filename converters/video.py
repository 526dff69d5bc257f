"""MP4 and QuickTime video -> an MPEG-4 bitstream ready to be encapsulated, without re-encoding.

Order of work, each step bounded (RELIABILITY.md 2.7):

1. :func:`converters.mp4boxes.walk` checks the box structure in pure Python: truncation, an
   index (``moov``), no external data references (a file that names other files is refused, the
   playlist class of bug), no absurdly large index.
2. PyAV (FFmpeg) opens the file with the demuxer *forced* (``mov``/``mp4`` family only), the
   ``file`` protocol only and data references disabled, and reads the stream parameters: codec,
   profile and level (from the ``avcC``/``hvcC`` decoder configuration), size, pixel format,
   frame rate, duration. These choose the DICOM transfer syntax (PS3.5 8.2.7, 8.2.8, 8.2.12).
3. The first frame is decoded (proving the stream decodes) into an upright poster JPEG.
4. The video is **remuxed to MP4 by stream copy** (no second lossy generation): only the first
   video track and one AAC audio track are kept; every container and track metadata entry is
   dropped (QuickTime ``©xyz``, ``udta``/``meta`` GPS, Apple ``com.apple.quicktime.location.ISO6709``,
   timed-metadata tracks), so no location survives. The display matrix (rotation) is kept.
5. The output is walked again and its metadata boxes byte-searched for location markers; any
   hit refuses the file (fail closed).

Rotation: phones record landscape-coded frames with a display matrix. The coded pixels cannot be
rotated without re-encoding, so the matrix stays in the MP4 (players honour it), the rotation is
recorded in the object (private ``VideoRotation``) and the poster frame is rotated upright.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from converters.base import CaptureMetadata, SourceFile

# the transfer syntax a video is wrapped in (PS3.5 8.2.7, 8.2.8, 8.2.12) is chosen by its profile
from converters.dicom_rules import HEVC_MAIN, HEVC_MAIN10, MPEG4_HP41, MPEG4_HP42_2D
from converters.mp4boxes import LOCATION_MARKERS, metadata_payloads, walk
from repository.errors import ConversionFailed, UnsupportedMediaType

log = logging.getLogger(__name__)

MEDIA_TYPES = frozenset({"video/mp4", "video/quicktime"})
DEPENDENCIES = ("av",)

# H.264 profile_idc values a High Profile decoder decodes: High, Main, and Constrained Baseline
# (Baseline with constraint_set1_flag). Plain Baseline may use FMO/ASO, which High lacks.
_H264_HIGH, _H264_MAIN, _H264_BASELINE = 100, 77, 66
_H264_PROFILE_NAMES = {66: "Baseline", 77: "Main", 88: "Extended", 100: "High", 110: "High 10",
                       122: "High 4:2:2", 244: "High 4:4:4 Predictive", 118: "Multiview High",
                       128: "Stereo High"}  # fmt: skip
_HEVC_MAIN, _HEVC_MAIN10 = 1, 2
_EIGHT_BIT_420 = frozenset({"yuv420p", "yuvj420p"})
_TEN_BIT_420 = frozenset({"yuv420p10le", "yuv420p10be"})
_SAFE_TEXT = re.compile(r"[^\w .,:;()/+'&-]")


@dataclass(frozen=True)
class VideoLimits:
    """Bounds checked before and while the video is read."""

    max_duration_s: float = 4 * 3600.0
    max_frame_rate: float = 240.0
    max_frames: int = 4 * 3600 * 240
    # PS3.5 limits of the transfer syntaxes: AVC High Profile up to 1920x1080, HEVC L5.1 4096x2176.
    max_avc_size: tuple[int, int] = (1920, 1088)
    max_hevc_size: tuple[int, int] = (4096, 2176)
    max_poster_packets: int = 600


@dataclass
class CapturedVideo:
    """A location-free MP4 on local disk and what the DICOM object must say about it."""

    media_type: str  # what sniffing detected: video/mp4 or video/quicktime
    original_sha256: str
    original_size: int
    mp4_path: Path  # the remuxed bitstream to encapsulate
    mp4_size: int
    codec: str  # h264 or hevc
    profile: str
    level: float
    transfer_syntax_uid: str
    rows: int  # coded frame size (before the display rotation)
    columns: int
    frame_rate: Fraction
    number_of_frames: int
    duration_s: float
    rotation: int  # degrees counter-clockwise the player turns the frames (0, 90, 180, 270)
    has_audio: bool
    poster_jpeg: bytes  # upright first frame, no metadata
    capture: CaptureMetadata = field(default_factory=CaptureMetadata)
    flags: list[str] = field(default_factory=list)

    @property
    def frame_time_ms(self) -> float:
        return 1000.0 / float(self.frame_rate)


def is_available() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def convert(source: SourceFile, *, workdir: Path, limits: VideoLimits | None = None) -> CapturedVideo:
    """Check, probe and remux one video file into ``workdir``.

    Raises
    ------
    ConversionFailed
        Truncated, corrupt, externally referencing, or outside what DICOM video can carry
        (the message says which, and what the person can do).
    UnsupportedMediaType
        Not H.264 or HEVC video.
    """
    import av

    limits = limits or VideoLimits()
    if source.media_type not in MEDIA_TYPES:
        raise UnsupportedMediaType(f"{source.media_type} is not a video this server accepts (MP4, MOV)")
    with source.path.open("rb") as handle:
        boxes = walk(handle, source.size)
    if boxes.external_references:
        raise ConversionFailed(
            "the video refers to media in other files (external data references), which is refused: "
            "export a self-contained MP4 or MOV"
        )
    out = workdir / "video.mp4"
    try:
        with av.open(str(source.path), format="mov", options=_open_options(limits)) as container:
            info = _probe(container, source, limits)
            poster, rotation = _poster(container, info, limits)
        with av.open(str(source.path), format="mov", options=_open_options(limits)) as container:
            frames, has_audio, dropped = _remux(container, out)
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        out.unlink(missing_ok=True)
        raise ConversionFailed(f"the video cannot be read: {_short(exc)}") from exc
    except Exception:
        out.unlink(missing_ok=True)
        raise
    size = out.stat().st_size
    with out.open("rb") as handle:
        leaked = _location(handle, walk(handle, size))
    if leaked:  # cannot happen with FFmpeg's muxer as configured; refuse rather than store
        out.unlink(missing_ok=True)
        raise ConversionFailed("location metadata could not be removed from the video")
    info.flags.extend(dropped)
    if frames <= 0:
        out.unlink(missing_ok=True)
        raise ConversionFailed("the video has no frames")
    info.mp4_path, info.mp4_size = out, size
    info.number_of_frames = frames
    info.has_audio = has_audio
    info.poster_jpeg, info.rotation = poster, rotation
    if rotation:
        info.flags.append("DISPLAY_ROTATION_KEPT")
    return info


@dataclass(frozen=True)
class ReceivedVideo:
    """What :func:`check_received` found in a video that arrived inside a DICOM object."""

    codec: str  # h264 or hevc
    cleaned: Path | None  # a remuxed MP4 without location metadata; None when kept as received


def check_received(path: Path, *, workdir: Path, limits: VideoLimits | None = None) -> ReceivedVideo:
    """Check an MP4 that arrived as the Pixel Data of a DICOM video object (STOW-RS, C-STORE).

    The same checks as an upload (box walk, external references, H.264 or HEVC within what the
    transfer syntaxes allow, the first frame decodes), but the bitstream is stored as received
    (DECISIONS.md 6) unless its container carries location metadata: then it is remuxed by
    stream copy, as an upload always is, and ``cleaned`` names the result (DECISIONS.md 9).
    """
    import av

    limits = limits or VideoLimits()
    size = path.stat().st_size
    with path.open("rb") as handle:
        if handle.read(8)[4:8] != b"ftyp":
            raise ConversionFailed(
                "the Pixel Data is not an MP4 file (ISO base media, starting with an ftyp box); "
                "MPEG-4 AVC and HEVC video is stored here in its MP4 container"
            )
        boxes = walk(handle, size)
        located = _location(handle, boxes)
    if boxes.external_references:
        raise ConversionFailed("the video refers to media in other files (external data references), which is refused")
    source = SourceFile(path, "video/mp4", "", size)
    cleaned = workdir / "cleaned.mp4" if located else None
    try:
        with av.open(str(path), format="mov", options=_open_options(limits)) as container:
            info = _probe(container, source, limits)
            _poster(container, info, limits)  # proves that it decodes
        if cleaned is not None:
            with av.open(str(path), format="mov", options=_open_options(limits)) as container:
                _remux(container, cleaned)
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        if cleaned is not None:
            cleaned.unlink(missing_ok=True)
        raise ConversionFailed(f"the video cannot be read: {_short(exc)}") from exc
    if cleaned is not None:
        with cleaned.open("rb") as handle:
            if _location(handle, walk(handle, cleaned.stat().st_size)):
                cleaned.unlink(missing_ok=True)
                raise ConversionFailed("location metadata could not be removed from the video")
    return ReceivedVideo(info.codec, cleaned)


def _location(handle, boxes) -> list[str]:  # type: ignore[no-untyped-def]
    """Location boxes, or location markers in the metadata boxes, of a walked MP4."""
    payloads = metadata_payloads(handle, boxes).lower()
    return boxes.location_boxes or [m.decode() for m in LOCATION_MARKERS if m.lower() in payloads]


_DEMUX_OPTIONS = {
    "protocol_whitelist": "file",  # never a network or a playlist protocol
    "enable_drefs": "0",  # never follow a data reference to another file
    "use_absolute_path": "0",
}


def decoder_options(limits: VideoLimits | None = None) -> dict[str, str]:
    """Codec options that bound what a decoder allocates, for ``av.open`` and a stream's context.

    ``av.open`` decodes the first frames while it finds the stream parameters, before
    :func:`_probe` can compare the frame size with the limits, and the size it decodes at comes
    from the bitstream's parameter sets, not the container's sample entry. A 1 kB file whose SPS
    declares 16384x16384 made FFmpeg allocate gigabytes of frame buffers (found by fuzzing: an
    out-of-memory). ``max_pixels`` makes the decoder refuse such a frame before allocating it;
    one thread keeps it to one set of frame buffers.
    """
    limits = limits or VideoLimits()
    long_side = max(limits.max_avc_size[0], limits.max_hevc_size[0])
    short_side = max(limits.max_avc_size[1], limits.max_hevc_size[1])
    return {"max_pixels": str((long_side + 64) * (short_side + 64)), "threads": "1"}


def _open_options(limits: VideoLimits) -> dict[str, str]:
    return {**_DEMUX_OPTIONS, **decoder_options(limits)}


def _probe(container, source: SourceFile, limits: VideoLimits) -> CapturedVideo:  # type: ignore[no-untyped-def]
    if not container.streams.video:
        raise ConversionFailed("the file has no video track")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    if ctx is None:  # a sample entry FFmpeg has no decoder for (found by fuzzing: was a 500)
        raise UnsupportedMediaType("the video's codec is not one FFmpeg knows; DICOM video here must be H.264 or HEVC")
    codec = ctx.name
    if codec not in ("h264", "hevc"):
        raise UnsupportedMediaType(
            f"the video is {codec.upper()}; DICOM video here must be H.264 or HEVC (as phones and "
            "cameras record it), and it is not re-encoded"
        )
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width <= 0 or height <= 0:
        raise ConversionFailed("the video declares no frame size")
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or rate <= 0:
        raise ConversionFailed("the video declares no frame rate")
    rate = Fraction(rate).limit_denominator(1001)
    if float(rate) > limits.max_frame_rate:
        raise ConversionFailed(f"the video's frame rate ({float(rate):.0f}/s) is implausible")
    duration = _duration(container, stream)
    if duration <= 0:
        raise ConversionFailed("the video has no duration")
    if duration > limits.max_duration_s:
        raise ConversionFailed(
            f"the video lasts {duration / 3600:.1f} h, more than the limit of {limits.max_duration_s / 3600:.1f} h"
        )
    frames = int(stream.frames or 0) or round(duration * float(rate))
    if frames > limits.max_frames:
        raise ConversionFailed("the video has more frames than allowed")
    pix_fmt = ctx.format.name if ctx.format else ""
    extradata = bytes(ctx.extradata or b"")
    if codec == "h264":
        syntax, profile, level = _avc_syntax(extradata, pix_fmt, width, height, float(rate), limits)
    else:
        syntax, profile, level = _hevc_syntax(extradata, pix_fmt, width, height, limits)
    return CapturedVideo(
        media_type=source.media_type,
        original_sha256=source.sha256,
        original_size=source.size,
        mp4_path=Path(),
        mp4_size=0,
        codec=codec,
        profile=profile,
        level=level,
        transfer_syntax_uid=syntax,
        rows=height,
        columns=width,
        frame_rate=rate,
        number_of_frames=frames,
        duration_s=duration,
        rotation=0,
        has_audio=False,
        poster_jpeg=b"",
        capture=_capture(dict(container.metadata)),
    )


def _duration(container, stream) -> float:  # type: ignore[no-untyped-def]
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return 0.0


def _avc_syntax(extradata: bytes, pix_fmt: str, width: int, height: int, rate: float,
                limits: VideoLimits) -> tuple[str, str, float]:
    """Transfer syntax of an H.264 stream, from its AVCDecoderConfigurationRecord (ISO 14496-15)."""
    if len(extradata) < 4 or extradata[0] != 1:
        raise ConversionFailed("the H.264 track has no decoder configuration (avcC)")
    profile_idc, constraints, level_idc = extradata[1], extradata[2], extradata[3]
    name = _H264_PROFILE_NAMES.get(profile_idc, f"profile {profile_idc}")
    constrained_baseline = profile_idc == _H264_BASELINE and constraints & 0x40
    if constrained_baseline:
        name = "Constrained Baseline"
    if profile_idc not in (_H264_HIGH, _H264_MAIN) and not constrained_baseline:
        raise ConversionFailed(
            f"H.264 {name} profile has no DICOM transfer syntax (High Profile and the profiles a "
            "High Profile decoder plays: Main, Constrained Baseline); it would need re-encoding"
        )
    if pix_fmt not in _EIGHT_BIT_420:
        raise ConversionFailed(f"H.264 video must be 8-bit 4:2:0 for DICOM; this is {pix_fmt or 'unknown'}")
    level = 1.1 if level_idc == 9 else level_idc / 10  # level_idc 9 is level 1b
    _check_size(width, height, limits.max_avc_size, f"H.264 level {level:g}")
    if level_idc <= 41:
        return MPEG4_HP41, name, level
    if level_idc <= 42:
        return MPEG4_HP42_2D, name, level
    raise ConversionFailed(
        f"H.264 level {level:g} is above 4.2, the highest DICOM transfer syntax for H.264 "
        "(typically 4K or high frame rate recordings): record at 1080p, or in HEVC"
    )


def _hevc_syntax(extradata: bytes, pix_fmt: str, width: int, height: int,
                 limits: VideoLimits) -> tuple[str, str, float]:
    """Transfer syntax of an HEVC stream, from its HEVCDecoderConfigurationRecord (ISO 14496-15)."""
    if len(extradata) < 13 or extradata[0] != 1:
        raise ConversionFailed("the HEVC track has no decoder configuration (hvcC)")
    profile_idc, level_idc = extradata[1] & 0x1F, extradata[12]
    level = level_idc / 30
    if level_idc > 153:
        raise ConversionFailed(f"HEVC level {level:g} is above 5.1, the highest DICOM transfer syntax for HEVC")
    _check_size(width, height, limits.max_hevc_size, f"HEVC level {level:g}")
    if pix_fmt in _TEN_BIT_420:
        # The VL Image module allows 8-bit samples only (PS3.3 C.8.12.1.1.2).
        raise ConversionFailed(
            "10-bit (HDR) HEVC video cannot be stored as a Video Photographic Image, which allows "
            "8-bit samples only: record or export it in SDR (8-bit)"
        )
    if pix_fmt not in _EIGHT_BIT_420:
        raise ConversionFailed(f"HEVC video must be 4:2:0 for DICOM; this is {pix_fmt or 'unknown'}")
    if profile_idc == _HEVC_MAIN:
        return HEVC_MAIN, "Main", level
    if profile_idc == _HEVC_MAIN10:
        return HEVC_MAIN10, "Main 10", level
    raise ConversionFailed(f"HEVC profile {profile_idc} has no DICOM transfer syntax (Main or Main 10 only)")


def _check_size(width: int, height: int, limit: tuple[int, int], what: str) -> None:
    long_side, short_side = max(width, height), min(width, height)
    if long_side > limit[0] or short_side > limit[1]:
        raise ConversionFailed(
            f"the video's frames are {width}x{height}, larger than DICOM allows for {what} "
            f"({limit[0]}x{limit[1]})"
        )


def _poster(container, info: CapturedVideo, limits: VideoLimits) -> tuple[bytes, int]:  # type: ignore[no-untyped-def]
    """The first decodable frame as an upright JPEG, and the display rotation it carried."""
    stream = container.streams.video[0]
    stream.thread_type = "NONE"
    stream.codec_context.options = decoder_options(limits)
    for count, packet in enumerate(container.demux(stream)):
        if count > limits.max_poster_packets:
            break
        for frame in packet.decode():
            rotation = int(getattr(frame, "rotation", 0) or 0) % 360
            image = frame.to_image()  # RGB; colour conversion by FFmpeg's swscale
            if rotation:
                # frame.rotation is counter-clockwise, as PIL's rotate
                image = image.rotate(rotation, expand=True)
            out = io.BytesIO()
            image.save(out, format="JPEG", quality=90)
            return out.getvalue(), rotation
    raise ConversionFailed("no frame of the video could be decoded (corrupt or truncated video data)")


def _remux(container, out: Path) -> tuple[int, bool, list[str]]:  # type: ignore[no-untyped-def]
    """Stream-copy the first video and first AAC audio track into a metadata-free MP4."""
    import av

    video = container.streams.video[0]
    audio = next((s for s in container.streams.audio if s.codec_context.name == "aac"), None)
    dropped = []
    if container.streams.audio and audio is None:
        dropped.append("AUDIO_DROPPED_NOT_AAC")
    if len(container.streams) > 1 + (audio is not None):
        dropped.append("TRACKS_DROPPED")
    frames = 0
    with av.open(str(out), "w", format="mp4") as target:
        target.metadata.clear()
        mapping = {video.index: target.add_stream_from_template(video)}
        if audio is not None:
            mapping[audio.index] = target.add_stream_from_template(audio)
        for stream in mapping.values():
            for key in list(stream.metadata):
                del stream.metadata[key]
        for packet in container.demux([s for s in (video, audio) if s is not None]):
            if packet.dts is None:
                continue  # the demuxer's end-of-stream marker
            source_index = packet.stream.index
            packet.stream = mapping[source_index]
            target.mux(packet)
            if source_index == video.index:
                frames += 1
    return frames, audio is not None, dropped


def _capture(metadata: dict[str, str]) -> CaptureMetadata:
    """Capture time, make, model and software from container tags; location tags are not read."""
    capture = CaptureMetadata()
    created = metadata.get("com.apple.quicktime.creationdate") or metadata.get("creation_time") or ""
    try:
        when = dt.datetime.fromisoformat(created.replace("Z", "+00:00")) if created else None
    except ValueError:
        when = None
    if when is not None and when.utcoffset() is not None and when.year >= 1990:
        capture.acquisition_datetime = when
    capture.manufacturer = _clean(metadata.get("com.apple.quicktime.make") or metadata.get("make") or "")
    capture.model = _clean(metadata.get("com.apple.quicktime.model") or metadata.get("model") or "")
    capture.software = _clean(metadata.get("com.apple.quicktime.software") or "")
    return capture


def _clean(text: str) -> str:
    """Untrusted container text for a LO value: printable, no delimiters, at most 64 characters."""
    return _SAFE_TEXT.sub("", text).strip()[:64]


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 160 else text[:157] + "..."
