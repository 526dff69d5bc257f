"""Realistic test photographs, generated at test time (nothing binary is committed).

Pixels come from scikit-image's bundled sample photographs (astronaut, coffee, chelsea, rocket),
resized with Pillow and given a little sensor noise, so that JPEG sizes and the behaviour of
encoders and decoders are those of real photographs, not of flat test cards.

Every encoder helper takes *upright* pixels. Helpers that write an EXIF orientation store the
pixels transformed by the inverse of that orientation (:func:`stored_for_orientation`), so a
correct reader that applies the orientation gets the upright image back.
"""

from __future__ import annotations

import io
import struct
import zlib
from functools import lru_cache

import numpy as np
from PIL import Image, ImageCms, TiffImagePlugin

SOURCES = ("astronaut", "coffee", "chelsea", "rocket")
GPS_LATITUDE = (53.0, 24.0, 30.5)  # a spot in Liverpool, written in every "leaky" EXIF
OWNER = "Dr Example Owner"
SERIAL = "SN-0042-SECRET"
XMP_GPS = b"exif:GPSLatitude"
LEAK_MARKERS = (
    b"GPSLatitude",
    b"GPSLongitude",
    OWNER.encode(),
    SERIAL.encode(),
    b"DEPTHMAP",
    b"http://ns.adobe.com/xap/1.0/",
    b"photo of the patient's face",
)

# Pillow transposes that *undo* each EXIF orientation (the inverse of how it is displayed).
_INVERSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@lru_cache(maxsize=8)
def _sample(name: str) -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(getattr(skimage.data, name)()[..., :3])


def photo(
    width: int = 320,
    height: int = 240,
    *,
    source: str = "astronaut",
    seed: int = 0,
    noise: float = 2.0,
) -> np.ndarray:
    """An RGB uint8 photograph of ``width`` x ``height`` from a scikit-image sample."""
    image = Image.fromarray(_sample(source)).resize((width, height), Image.Resampling.BICUBIC)
    pixels = np.asarray(image, np.float32)
    if noise:
        pixels = pixels + np.random.default_rng(seed).normal(0, noise, pixels.shape).astype(
            np.float32
        )
    return np.clip(pixels, 0, 255).astype(np.uint8)


def stored_for_orientation(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores so that EXIF ``orientation`` displays ``upright``."""
    if orientation == 1:
        return upright
    return np.asarray(Image.fromarray(upright).transpose(_INVERSE[orientation]))


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def display_p3_icc() -> bytes:
    """An ICC profile of Display P3 (the primaries an iPhone records in), as the HEIC converter
    makes one from nclx values; its description says "Display P3"."""
    from converters.icc import DISPLAY_P3, SRGB_TRANSFER, profile_for

    profile = profile_for(DISPLAY_P3, SRGB_TRANSFER)
    assert profile is not None
    return profile


def exif_bytes(
    *,
    orientation: int | None = None,
    datetime_original: str | None = None,
    offset_original: str | None = None,
    make: str = "Canon",
    model: str = "EOS R5",
    gps: bool = True,
    owner: bool = True,
    extra_ifd0: dict | None = None,
    extra_exif: dict | None = None,
) -> bytes:
    """EXIF (starting ``Exif\\0\\0``) as a phone or camera writes it, GPS and owner included."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0131] = make, model, "Firmware 1.2"
    if orientation is not None:
        exif[0x0112] = orientation
    sub: dict[int, object] = {
        0x829A: TiffImagePlugin.IFDRational(1, 125),  # ExposureTime
        0x829D: TiffImagePlugin.IFDRational(28, 10),  # FNumber
        0x8827: 400,  # ISO
        0x920A: TiffImagePlugin.IFDRational(50, 1),  # FocalLength
        0x9209: 0x19,  # Flash fired, auto
        0xA433: "Canon",
        0xA434: "RF 50mm F1.8",
    }
    if datetime_original:
        sub[0x9003] = datetime_original
    if offset_original:
        sub[0x9011] = offset_original
    if owner:
        sub[0xA430], sub[0xA431] = OWNER, SERIAL  # CameraOwnerName, BodySerialNumber
    sub.update(extra_exif or {})
    exif[0x8769] = sub
    if gps:
        exif[0x8825] = {1: "N", 2: GPS_LATITUDE, 3: "W", 4: (2.0, 58.0, 12.0)}
    for tag, value in (extra_ifd0 or {}).items():
        exif[tag] = value
    raw = exif.tobytes()
    return raw if raw[:6] == b"Exif\x00\x00" else b"Exif\x00\x00" + raw


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def jpeg(
    pixels: np.ndarray,
    *,
    quality: int = 90,
    subsampling: str = "4:2:0",
    progressive: bool = False,
    exif: bytes | None = None,
    icc: bytes | None = None,
    comment: bytes | None = None,
    xmp: bool = False,
    trailer: bool = False,
) -> bytes:
    """Encode pixels as JPEG; ``xmp`` adds an XMP packet with GPS, ``trailer`` an MPF-style
    second image (a fake depth map) after the EOI."""
    out = io.BytesIO()
    options: dict[str, object] = {"quality": quality, "progressive": progressive}
    if pixels.ndim == 3:
        options["subsampling"] = subsampling
    if exif:
        options["exif"] = exif
    if icc:
        options["icc_profile"] = icc
    if comment:
        options["comment"] = comment
    Image.fromarray(pixels).save(out, "JPEG", **options)
    data = out.getvalue()
    if xmp:
        packet = (
            b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta xmlns:x='adobe:ns:meta/'>"
            b"<rdf:Description exif:GPSLatitude='53,24.5N' exif:GPSLongitude='2,58.2W'/>"
            b"</x:xmpmeta>"
        )
        data = data[:2] + _segment(0xE1, packet) + data[2:]
    if trailer:
        depth = io.BytesIO()
        Image.new("L", (16, 16), 128).save(depth, "JPEG", comment=b"DEPTHMAP of the scene")
        data += depth.getvalue()
    return data


def cmyk_jpeg(pixels: np.ndarray, *, icc: bytes | None = None) -> bytes:
    out = io.BytesIO()
    options = {"quality": 92} | ({"icc_profile": icc} if icc else {})
    Image.fromarray(pixels).convert("CMYK").save(out, "JPEG", **options)
    return out.getvalue()


def png(
    pixels: np.ndarray,
    *,
    bits: int = 8,
    alpha: np.ndarray | None = None,
    palette: bool = False,
    exif: bytes | None = None,
    icc: bytes | None = None,
) -> bytes:
    """PNG: 8-bit grey/RGB(A), palette, 16-bit grey, or 16-bit RGB (written by hand, as Pillow
    cannot write it; the 16-bit value is the 8-bit one times 257)."""
    if bits == 16 and pixels.ndim == 3:
        return _png16_rgb(pixels)
    if bits == 16:
        image = Image.fromarray(pixels.astype(np.uint16) * 257)
    elif alpha is not None:
        image = Image.fromarray(np.dstack([pixels, alpha]), "RGBA" if pixels.ndim == 3 else "LA")
    else:
        image = Image.fromarray(pixels)
    if palette:
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    out = io.BytesIO()
    options = {"exif": exif[6:] if exif and exif[:6] == b"Exif\x00\x00" else exif} if exif else {}
    options |= {"icc_profile": icc} if icc else {}
    image.save(out, "PNG", **options)
    return out.getvalue()


def _png16_rgb(pixels: np.ndarray) -> bytes:
    height, width, _ = pixels.shape
    wide = pixels.astype(">u2") * 257
    raw = b"".join(b"\x00" + wide[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def header_only_png(width: int, height: int) -> bytes:
    """A decompression bomb's header: IHDR says width x height, then a tiny IDAT and IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def header_only_jpeg(width: int, height: int) -> bytes:
    """A JPEG whose SOF announces width x height and which has (almost) nothing after it."""
    small = jpeg(photo(16, 16))
    sof = small.index(b"\xff\xc0")
    return small[: sof + 5] + struct.pack(">HH", height, width) + small[sof + 9 :]


def tiff(
    pixels: np.ndarray,
    *,
    compression: str | None = None,
    orientation: int | None = None,
    make: str = "Canon",
    model: str = "EOS R5",
) -> bytes:
    """TIFF with camera tags in IFD0, where TIFF keeps them (Orientation is tag 274)."""
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[0x010F], info[0x0110] = make, model
    if orientation is not None:
        info[0x0112] = orientation
    out = io.BytesIO()
    options: dict[str, object] = {"tiffinfo": info}
    if compression:
        options["compression"] = compression
    Image.fromarray(pixels).save(out, "TIFF", **options)
    return out.getvalue()


def bmp(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "BMP")
    return out.getvalue()


def webp(
    pixels: np.ndarray,
    *,
    lossless: bool,
    exif: bytes | None = None,
    alpha: np.ndarray | None = None,
) -> bytes:
    image = (
        Image.fromarray(np.dstack([pixels, alpha]), "RGBA")
        if alpha is not None
        else Image.fromarray(pixels)
    )
    out = io.BytesIO()
    options: dict[str, object] = {"lossless": lossless, "quality": 90}
    if exif:
        options["exif"] = exif[6:] if exif[:6] == b"Exif\x00\x00" else exif
    image.save(out, "WEBP", **options)
    return out.getvalue()


def heic(pixels: np.ndarray, *, exif: bytes | None = None, quality: int = 90) -> bytes:
    """HEIC via pillow-heif. With an EXIF orientation, pillow-heif writes the matching
    irot/imir transforms, as a phone does."""
    import pillow_heif

    heif = pillow_heif.from_pillow(Image.fromarray(pixels))
    out = io.BytesIO()
    options: dict[str, object] = {"quality": quality}
    if exif:
        options["exif"] = exif[6:] if exif[:6] == b"Exif\x00\x00" else exif
    heif.save(out, **options)
    return out.getvalue()


def camera_jpeg(seed: int = 0) -> bytes:
    """A ~12 MP (4000x3000) camera-like JPEG of about 4 MB, with EXIF, GPS and an ICC profile."""
    return _textured_jpeg(4000, 3000, seed, noise=10.0, quality=90)


def dermatoscope_jpeg(seed: int = 0) -> bytes:
    """A ~2 MP (1632x1224) dermatoscope-like JPEG: round field of view, dark surround."""
    pixels = photo(1632, 1224, source="coffee", seed=seed, noise=6.0).astype(np.float32)
    yy, xx = np.mgrid[0:1224, 0:1632].astype(np.float32)
    inside = np.clip((1.0 - np.hypot(yy - 612, xx - 816) / 600.0) / 0.02, 0, 1)[..., None]
    pixels = np.clip(pixels * inside + 4 * (1 - inside), 0, 255).astype(np.uint8)
    return jpeg(
        pixels,
        quality=90,
        exif=exif_bytes(
            make="ExampleDerm", model="DermoScope 2", datetime_original="2026:06:01 10:15:00"
        ),
    )


def _textured_jpeg(width: int, height: int, seed: int, *, noise: float, quality: int) -> bytes:
    rng = np.random.default_rng(seed)
    source = SOURCES[seed % len(SOURCES)]
    pixels = np.asarray(
        Image.fromarray(_sample(source)).resize((width, height), Image.Resampling.BICUBIC),
        np.float32,
    )
    pixels *= rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    pixels += rng.standard_normal(pixels.shape, dtype=np.float32) * np.float32(noise)
    exif = exif_bytes(
        datetime_original="2026:07:14 09:30:00",
        offset_original="+01:00",
        make="Apple",
        model="iPhone 15 Pro",
    )
    return jpeg(
        np.clip(pixels, 0, 255).astype(np.uint8), quality=quality, exif=exif, icc=srgb_icc()
    )


# --- reading results back (independent of the code under test) -------------------------------


def as_bytes(captured):  # type: ignore[no-untyped-def]
    """A CapturedImage with its JPEG as one bytes object (converters keep it as a Bitstream of
    views of the source), for tests that search and slice it."""
    import dataclasses

    if getattr(captured, "jpeg", None) is None or isinstance(captured.jpeg, bytes):
        return captured
    return dataclasses.replace(captured, jpeg=bytes(captured.jpeg))


def decode(captured: object) -> np.ndarray:
    """Pixels of a CapturedImage as uint8 RGB or grey, decoding its JPEG with Pillow if needed."""
    if getattr(captured, "jpeg", None) is not None:
        with Image.open(io.BytesIO(bytes(captured.jpeg))) as im:  # type: ignore[attr-defined]
            return np.asarray(im.convert("L" if im.mode == "L" else "RGB"))
    return np.asarray(captured.pixels)  # type: ignore[attr-defined]


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, bytes) for every segment up to EOI; a scan's entropy-coded data is returned as
    marker 0 right after its SOS. A deliberately naive walker, written separately from the
    parser under test."""
    segments: list[tuple[int, bytes]] = []
    pos = 2
    while pos < len(data):
        assert data[pos] == 0xFF, f"expected a marker at {pos}"
        marker = data[pos + 1]
        if marker == 0xD9:
            segments.append((marker, data[pos : pos + 2]))
            return segments
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        segments.append((marker, data[pos : pos + 2 + length]))
        pos += 2 + length
        if marker == 0xDA:
            start = pos
            while not (data[pos] == 0xFF and data[pos + 1] not in (0x00, *range(0xD0, 0xD8))):
                pos += 1
            segments.append((0, data[start:pos]))
    return segments


def entropy_data(data: bytes) -> list[bytes]:
    return [body for marker, body in jpeg_segments(data) if marker == 0]
