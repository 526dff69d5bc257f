"""Videos and PDFs made at test time (nothing binary is committed).

Videos are real H.264/HEVC encodes by PyAV's bundled FFmpeg (libx264, libx265), written as MP4
or QuickTime, optionally with a display rotation and location metadata as phones write it.
PDFs are written by hand, object by object, with a correct cross-reference table.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

#: where the test videos "were recorded": the Royal Liverpool, as an ISO 6709 string
LOCATION = "+53.4096-002.9665+010.000/"
LOCATION_MARKER = b"+53.4096"


def video(
    path: Path,
    *,
    container: str = "mp4",
    codec: str = "libx264",
    width: int = 320,
    height: int = 240,
    frames: int = 30,
    rate: int = 30,
    rotation: int = 0,
    location: bool = False,
    profile: str | None = "high",
    audio: bool = False,
    pix_fmt: str = "yuv420p",
    level: str | None = None,
    make: str = "",
    b_frames: bool = True,
) -> Path:
    """Encode a short clip of a moving gradient (a real, decodable bitstream)."""
    import av

    options = {"movflags": "use_metadata_tags"} if container == "mov" else {}
    with av.open(str(path), "w", format=container, options=options) as out:
        if location:
            out.metadata["location"] = LOCATION
            out.metadata["com.apple.quicktime.location.ISO6709"] = LOCATION
        if make:
            out.metadata["com.apple.quicktime.make"] = make
            out.metadata["com.apple.quicktime.creationdate"] = "2024-06-12T14:30:15+0100"
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        opts = {"preset": "ultrafast" if codec == "libx265" else "veryfast"}
        if profile and codec == "libx264":
            opts["profile"] = profile
        if level and codec == "libx264":
            opts["level"] = level
        if codec == "libx265":
            # without B-frames for a clip of a frame or two: with them the muxer sometimes refused
            # x265's timestamps ("pts/dts pair unsupported")
            opts["x265-params"] = "log-level=error" + ("" if b_frames else ":bframes=0")
        stream.options = opts
        if rotation:
            stream.set_display_rotation(rotation)
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=48000)
            sound.layout = "mono"
        y, x = np.mgrid[0:height, 0:width]
        for i in range(frames):
            rgb = np.stack([(x + 4 * i) % 256, (y + 2 * i) % 256, np.full_like(x, 128)], axis=-1).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if sound is not None:
            samples = (np.sin(np.arange(48000 * frames // rate) / 20) * 8000).astype(np.int16)
            for start in range(0, len(samples), 1024):
                chunk = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="s16", layout="mono")
                chunk.sample_rate = 48000
                chunk.pts = start
                for packet in sound.encode(chunk):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
    return path


def flat_video(path: Path, side: int) -> Path:
    """One flat grey frame of side x side pixels, encoded quickly (x264 ultrafast)."""
    import av

    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        frame = av.VideoFrame.from_ndarray(np.full((side, side, 3), 128, np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    return path


def big_video(path: Path, target_bytes: int, *, container: str = "mp4", location: bool = False) -> Path:
    """A video of about ``target_bytes``, made quickly: a second of 720p H.264 noise (so its frames
    are large) encoded once, its packets then repeated by stream copy with shifted timestamps.
    With ``location`` (and ``container="mov"``) the file carries a phone's location metadata."""
    import av

    clip = path.with_suffix(".clip.mp4")
    rng = np.random.default_rng(0)
    with av.open(str(clip), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "1", "profile": "high", "level": "4.1"}
        for _ in range(30):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    options = {"movflags": "use_metadata_tags"} if container == "mov" else {}
    with av.open(str(clip)) as source, av.open(str(path), "w", format=container, options=options) as out:
        if location:
            out.metadata["location"] = LOCATION
            out.metadata["com.apple.quicktime.location.ISO6709"] = LOCATION
        video = source.streams.video[0]
        target = out.add_stream_from_template(video)
        packets = [p for p in source.demux(video) if p.dts is not None]
        span = max(p.pts for p in packets) + packets[0].duration - min(p.pts for p in packets)
        clip_bytes = sum(p.size for p in packets)
        loops = max(1, target_bytes // clip_bytes + 1)
        for loop in range(loops):
            for packet in packets:
                copy = av.Packet(bytes(packet))
                copy.pts, copy.dts = packet.pts + loop * span, packet.dts + loop * span
                copy.duration, copy.time_base = packet.duration, packet.time_base
                copy.is_keyframe = packet.is_keyframe
                copy.stream = target
                out.mux(copy)
    clip.unlink()
    return path


def huge_frame_video(path: Path, side: int = 16000) -> Path:
    """A 1.4 kB H.264 MP4 whose sequence parameter set declares side x side frames (16000x16000:
    256 Mpixel, 384 MB a frame) while its sample entry and its slices are of a 64x64 clip: the
    lie a hostile or fuzzed file tells a decoder. Made by rewriting the SPS of a real encode."""
    import struct

    from converters.mp4boxes import walk

    data = bytearray(flat_video(path, 64).read_bytes())
    at = data.index(b"avcC") - 4  # the decoder configuration (ISO 14496-15 5.3.3.1)
    config = at + 8
    assert data[config + 5] & 0x1F == 1, "one SPS"
    old_length = struct.unpack(">H", data[config + 6 : config + 8])[0]
    old = bytes(data[config + 8 : config + 8 + old_length])
    new = _resize_sps(old, side // 16)
    grow = len(new) - len(old)
    boxes = walk(io.BytesIO(bytes(data)), len(data))
    assert [b.type for b in boxes.top_level][-1] == b"moov", "moov last: no chunk offset moves"
    sample_entry = data.rindex(b"avc1", 0, at) - 4
    for offset in [b.offset for b in boxes.boxes if b.offset < at < b.offset + b.size] + [sample_entry, at]:
        struct.pack_into(">I", data, offset, struct.unpack(">I", data[offset : offset + 4])[0] + grow)
    data[config + 6 : config + 8 + old_length] = struct.pack(">H", len(new)) + new
    path.write_bytes(data)
    return path


def _resize_sps(sps: bytes, macroblocks: int) -> bytes:
    """An H.264 SPS with pic_width_in_mbs_minus1 and pic_height_in_map_units_minus1 replaced
    (ITU-T H.264 7.3.2.1.1); everything else kept bit for bit."""
    r = _Rbsp(sps, header=1)
    profile = r.u(8)
    r.u(16)  # constraint flags, level
    r.ue()  # seq_parameter_set_id
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        if r.ue() == 3:
            r.u(1)
        r.ue(), r.ue(), r.u(1)
        assert r.u(1) == 0, "no scaling matrices"
    r.ue()  # log2_max_frame_num_minus4
    order = r.ue()
    assert order in (0, 2), "pic_order_cnt_type 0 or 2"
    if order == 0:
        r.ue()
    r.ue(), r.u(1)  # max_num_ref_frames, gaps_in_frame_num_value_allowed_flag
    return r.replace_two_ue(macroblocks - 1, macroblocks - 1)


def _resize_hevc_sps(sps: bytes, side: int) -> bytes:
    """An HEVC SPS with pic_width_in_luma_samples and pic_height_in_luma_samples replaced
    (ITU-T H.265 7.3.2.2.1, one sub-layer); everything else kept bit for bit."""
    r = _Rbsp(sps, header=2)
    r.u(4)  # sps_video_parameter_set_id
    assert r.u(3) == 0, "one sub-layer"
    r.u(1), r.u(88), r.u(8)  # temporal id nesting, general profile_tier_level, general_level_idc
    r.ue()  # sps_seq_parameter_set_id
    if r.ue() == 3:  # chroma_format_idc
        r.u(1)
    return r.replace_two_ue(side, side)


class _Rbsp:
    """Bits of a NAL unit's payload, emulation prevention removed (H.264 7.4.1, H.265 7.4.2)."""

    def __init__(self, nal: bytes, *, header: int) -> None:
        self.header = nal[:header]
        self.bits = "".join(f"{b:08b}" for b in _unescape(nal[header:]))
        self.pos = 0

    def u(self, n: int) -> int:
        self.pos += n
        return int(self.bits[self.pos - n : self.pos], 2)

    def ue(self) -> int:
        leading = self.bits.index("1", self.pos) - self.pos
        self.pos += leading + 1
        return (1 << leading) - 1 + (self.u(leading) if leading else 0)

    def replace_two_ue(self, first: int, second: int) -> bytes:
        """The NAL unit with the next two ue(v) fields set to these values, re-escaped."""
        start = self.pos
        self.ue(), self.ue()

        def ue_bits(value: int) -> str:
            coded = bin(value + 1)[2:]
            return "0" * (len(coded) - 1) + coded

        out = self.bits[:start] + ue_bits(first) + ue_bits(second) + self.bits[self.pos : self.bits.rindex("1")] + "1"
        out += "0" * (-len(out) % 8)  # the stop bit, then alignment
        escaped, zeros = bytearray(self.header), 0
        for byte in (int(out[i : i + 8], 2) for i in range(0, len(out), 8)):
            if zeros >= 2 and byte <= 3:
                escaped.append(3)
                zeros = 0
            escaped.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return bytes(escaped)


def _unescape(payload: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for byte in payload:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def huge_frame_heic(side: int = 16000) -> bytes:
    """A 64x64 HEIC (its ``ispe`` says so) whose HEVC SPS declares side x side pictures: the
    same lie as :func:`huge_frame_video`, in the container phones use for photographs. The
    ``iloc`` extents move with the longer ``hvcC`` (ISO/IEC 14496-12 8.11.3)."""
    import struct

    import pillow_heif
    from PIL import Image

    out = io.BytesIO()
    pillow_heif.from_pillow(Image.fromarray(np.full((64, 64, 3), 128, np.uint8))).save(out, quality=50)
    data = bytearray(out.getvalue())
    assert data.index(b"iloc") < data.index(b"hvcC") < data.index(b"mdat"), "meta before mdat"
    pos = data.index(b"hvcC") + 4 + 22  # after HEVCDecoderConfigurationRecord's fixed part
    grow = None
    arrays, pos = data[pos], pos + 1  # numOfArrays
    for _ in range(arrays):
        nal_type, count, pos = data[pos] & 0x3F, struct.unpack(">H", data[pos + 1 : pos + 3])[0], pos + 3
        for _ in range(count):
            length = struct.unpack(">H", data[pos : pos + 2])[0]
            if nal_type == 33 and grow is None:  # the SPS
                new = _resize_hevc_sps(bytes(data[pos + 2 : pos + 2 + length]), side)
                grow = len(new) - length
                data[pos : pos + 2 + length] = struct.pack(">H", len(new)) + new
                length = len(new)
            pos += 2 + length
    assert grow is not None, "an SPS in hvcC"
    for name in (b"meta", b"iprp", b"ipco", b"hvcC"):  # the boxes that hold the SPS
        at = data.index(name) - 4
        struct.pack_into(">I", data, at, struct.unpack(">I", data[at : at + 4])[0] + grow)
    at = data.index(b"iloc") - 4
    version, fields = data[at + 8], at + 12  # after size, type, version and flags
    offset_size, length_size = data[fields] >> 4, data[fields] & 15
    base_size, index_size = data[fields + 1] >> 4, data[fields + 1] & 15
    pos = fields + 2
    items, pos = struct.unpack(">H", data[pos : pos + 2])[0], pos + 2

    def shift(at: int, size: int) -> None:  # an offset into the file, which mdat's move moves
        data[at : at + size] = (int.from_bytes(data[at : at + size], "big") + grow).to_bytes(size, "big")

    for _ in range(items):
        pos += 4 + (2 if version in (1, 2) else 0)  # item_ID, [construction_method], data_reference_index
        base = int.from_bytes(data[pos : pos + base_size], "big") if base_size else 0
        if base:
            shift(pos, base_size)  # the extents are relative to it
        pos += base_size
        extents, pos = struct.unpack(">H", data[pos : pos + 2])[0], pos + 2
        for _ in range(extents):
            pos += index_size if version in (1, 2) else 0
            if not base:
                shift(pos, offset_size)
            pos += offset_size + length_size
    return bytes(data)


def pdf(*objects_extra: bytes, pages: int = 1, catalog_extra: bytes = b"", page_extra: bytes = b"",
        text: str = "Consent for clinical photography") -> bytes:
    """A minimal valid PDF with ``pages`` pages of text; extras are spliced into the catalog or
    the first page dictionary, and ``objects_extra`` appended as further objects (numbered from
    4 + 2 * pages)."""
    objects: list[bytes] = []
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(pages)).encode()
    objects.append(b"<< /Type /Catalog /Pages 2 0 R " + catalog_extra + b">>")
    objects.append(b"<< /Type /Pages /Kids [" + kids + b"] /Count " + str(pages).encode() + b" >>")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i in range(pages):
        content = f"BT /F1 18 Tf 72 720 Td ({text} - page {i + 1}) Tj ET".encode()
        extra = page_extra if i == 0 else b""
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            + f"/Contents {5 + 2 * i} 0 R ".encode() + extra + b">>"
        )
        objects.append(b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream")
    objects.extend(objects_extra)
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


# -- the same media as DICOM objects, as a device or another archive would send them ------------
def dicom_video(workdir: Path, *, location: bool = False, patient_id: str = "9434765919", **options: object) -> bytes:
    """A Video Photographic Image Part 10 file built by this project's builder from a video made
    at test time. With ``location`` the Pixel Data is the camera's own MP4, location metadata and
    all: a phone's QuickTime file, as a device that wraps without cleaning or remuxing sends it
    (FFmpeg's MP4 muxer would not write the location at all)."""
    from pydicom import dcmread

    from converters.dicom_media import encapsulated_video
    from converters.iods.media import write_video_file

    workdir.mkdir(parents=True, exist_ok=True)
    if location:
        options.setdefault("container", "mov")
    source = video(workdir / f"camera.{options.get('container', 'mp4')}", location=location, **options)  # type: ignore[arg-type]
    dataset, _ = _video_dataset(source, "video/mp4", workdir, patient_id)
    out = workdir / "video.dcm"
    write_video_file(dataset, out)
    if not location:
        return out.read_bytes()
    ds = dcmread(out)
    ds.PixelData = encapsulated_video(source.read_bytes())
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def big_dicom_video(workdir: Path, megabytes: int, *, patient_id: str = "9434765919") -> Path:
    """A Video Photographic Image Part 10 file of about ``megabytes``, written to disk without
    holding it in memory, whose Pixel Data is a phone's QuickTime file with its location (as
    :func:`dicom_video` with ``location``): every check and the location's removal run on it."""
    from converters.iods.media import write_video_file

    workdir.mkdir(parents=True, exist_ok=True)
    source = big_video(workdir / "camera.mov", megabytes * 1024 * 1024, container="mov", location=True)
    dataset, captured = _video_dataset(source, "video/quicktime", workdir, patient_id)
    dataset._bitstream = source  # the camera's file as it is, not the converter's clean remux
    out = workdir / "video.dcm"
    write_video_file(dataset, out)
    captured.mp4_path.unlink()
    return out


def dicom_pdf(document: bytes, *, patient_id: str = "9434765919") -> bytes:
    """An Encapsulated PDF Part 10 file holding ``document`` as it is (active content included),
    built by this project's builder, as another archive would send it."""
    from converters.iods.build_media import build_document
    from converters.pdf import CapturedDocument

    captured = CapturedDocument("0" * 64, len(document), document, 1, "Consent form")
    dataset = build_document(captured, _context(patient_id), **_new_object(series_number=3))
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _video_dataset(source: Path, media_type: str, workdir: Path, patient_id: str):  # type: ignore[no-untyped-def]
    """The Video Photographic Image this project builds from ``source`` (converted in
    ``workdir``), and what the converter captured."""
    from converters import video as video_converter
    from converters.base import SourceFile
    from converters.iods.build_media import build_video

    captured = video_converter.convert(SourceFile(source, media_type, "0" * 64, source.stat().st_size), workdir=workdir)
    return build_video(captured, _context(patient_id), **_new_object(series_number=1)), captured


def _new_object(*, series_number: int) -> dict[str, object]:
    """The builders' arguments that make a new object: fresh UIDs, its place, route and time."""
    import datetime as dt

    from pydicom.uid import generate_uid

    return {
        "study_instance_uid": generate_uid(prefix=None), "series_instance_uid": generate_uid(prefix=None),
        "sop_instance_uid": generate_uid(prefix=None), "series_number": series_number, "instance_number": 1,
        "ingest_route": "api", "now": dt.datetime(2026, 11, 28, 9, 30, tzinfo=dt.timezone.utc),
    }  # fmt: skip


def _context(patient_id: str):  # type: ignore[no-untyped-def]
    import datetime as dt

    from repository.catalogue import Catalogue
    from repository.model import IngestContext

    values = {
        "nhs_number": patient_id, "family_name": "O'Brien-Jones", "given_name": "Zoë",
        "birth_date": "1980-02-03", "sex": "F", "trust": "RBN", "specialty": "burns-plastics",
        "body_site": "14975008", "laterality": "L", "consent": "clinical-care",
        "photographer": "Llŷr Evans", "description": "Dressing change",
    }  # fmt: skip
    return IngestContext.parse(values, catalogue=Catalogue.load(), allow_test_numbers=True, today=dt.date(2026, 11, 28))
