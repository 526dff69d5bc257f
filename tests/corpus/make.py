"""The hostile-input corpus of RELIABILITY.md section 3 A, generated at test time: nothing here is
a third-party exploit file, every case is built from scratch and the same seed gives the same
bytes.

    .venv/bin/python -m tests.corpus.make OUT_DIR [--seed N] [--scale N]   # write the files
    from tests.corpus.make import build; cases = build()                      # in a test

Each :class:`Case` has an ``id`` (unique, stable for a seed), the catalogue ``family`` it belongs to
(A1 ... A17, plus EXIF, COLOUR, PDF, MP4, RANDOM, BITFLIP, OVERWRITE, TRUNCATE, REGRESSION), the
bytes, the file name a client would send, and what the service must do with it: ``expect`` is
``"refused"`` (a 4xx, nothing stored), ``"stored"`` (a 2xx) or ``"any"`` (either, as long as the
invariants hold: most mutated files may or may not still decode). ``kind`` says which routes can
carry it (``image``, ``dicom``, ``media``, ``other``); ``gps`` marks sources that carry location or
owner metadata, whose served renditions the metadata-leak scan reads.

``scale`` multiplies the number of mutated variants (truncations, bit flips, overwrites, random
files): 1 is the CI corpus (about 1,100 files), larger values the long seeded runs.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import random
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from tests import dicomgen, imagegen

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"


@dataclass(frozen=True)
class Case:
    id: str
    family: str
    data: bytes
    filename: str
    expect: str = "any"  # refused | stored | any
    kind: str = "image"  # image | dicom | media | other
    gps: bool = False
    note: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class _Builder:
    seed: int
    scale: int
    cases: list[Case] = field(default_factory=list)
    _ids: set[str] = field(default_factory=set)

    def add(self, id: str, family: str, data: bytes, filename: str, expect: str = "any", kind: str = "image",
            gps: bool = False, note: str = "") -> None:  # noqa: A002  # fmt: skip
        if id in self._ids:
            raise ValueError(f"duplicate case id {id}")
        self._ids.add(id)
        self.cases.append(Case(id, family, data, filename, expect, kind, gps, note))

    def rng(self, name: str) -> random.Random:
        return random.Random(f"{self.seed}:{name}")


# -- base files: small valid inputs of every accepted kind -------------------------------------
def _pixels(w: int = 64, h: int = 48, seed: int = 0) -> np.ndarray:
    return imagegen.photo(w, h, seed=seed)


def _dicom_uids(name: str, seed: int) -> dict[str, str]:
    def uid(part: str) -> str:
        return "2.25." + str(int(hashlib.sha256(f"corpus:{seed}:{name}:{part}".encode()).hexdigest()[:30], 16))

    return {"sop_uid": uid("sop"), "study_uid": uid("study"), "series_uid": uid("series")}


def _dicom(name: str, seed: int, **kwargs: object) -> bytes:
    return dicomgen.part10(dicomgen.photo_dataset(pixels=_pixels(64, 48, seed=seed), **{**_dicom_uids(name, seed), **kwargs}))


def _tiff_bytes(mode: str, pixels: np.ndarray) -> bytes:
    im = Image.fromarray(pixels)
    if mode == "CMYK":
        im = im.convert("CMYK")
    elif mode == "I;16":
        im = Image.fromarray((pixels[:, :, 0].astype(np.uint16) * 257))
    elif mode == "1":
        im = im.convert("1")
    elif mode == "LAB":
        im = im.convert("LAB")
    elif mode == "P":
        im = im.convert("P")
    out = io.BytesIO()
    im.save(out, format="TIFF")
    return out.getvalue()


def base_files(seed: int) -> dict[str, tuple[bytes, str, str]]:
    """name -> (bytes, filename, kind): the valid files every mutation starts from."""
    px = _pixels(64, 48, seed=seed)
    exif = imagegen.exif_bytes(orientation=6, datetime_original="2026:03:29 01:30:00")
    bases: dict[str, tuple[bytes, str, str]] = {
        "jpeg": (imagegen.jpeg(px, exif=exif, xmp=True, comment=b"clinic camera 3"), "lesion.jpg", "image"),
        "jpeg-progressive": (imagegen.jpeg(px, progressive=True), "prog.jpg", "image"),
        "png": (imagegen.png(px), "wound.png", "image"),
        "png16": (imagegen.png(px, bits=16), "deep.png", "image"),
        "png-exif": (imagegen.png(px, exif=exif), "exif.png", "image"),
        "tiff": (imagegen.tiff(px), "scan.tif", "image"),
        "tiff-cmyk": (_tiff_bytes("CMYK", px), "cmyk.tif", "image"),
        "webp": (imagegen.webp(px, lossless=False, exif=exif), "phone.webp", "image"),
        "bmp": (imagegen.bmp(px), "old.bmp", "image"),
        "dicom": (_dicom("base", seed), "image.dcm", "dicom"),
        "pdf": (_pdf(), "consent.pdf", "media"),
    }
    heic = _maybe(lambda: imagegen.heic(px, exif=exif))
    if heic:
        bases["heic"] = (heic, "phone.heic", "image")
    mp4 = _maybe(_tiny_mp4)
    if mp4:
        bases["mp4"] = (mp4, "clip.mp4", "media")
    return bases


def _maybe(make: Callable[[], bytes]) -> bytes | None:
    try:
        return make()
    except Exception:  # noqa: BLE001 - an optional codec missing here: that base is left out
        return None


def _pdf(*extra: bytes, catalog_extra: bytes = b"", page_extra: bytes = b"") -> bytes:
    from tests import mediagen

    return mediagen.pdf(*extra, catalog_extra=catalog_extra, page_extra=page_extra)


def _tiny_mp4() -> bytes:
    import tempfile

    from tests import mediagen

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.mp4"
        mediagen.video(path, width=64, height=48, frames=6, rate=6)
        return path.read_bytes()


# -- A1, A4: wrong magic and formats not on the allow-list --------------------------------------
def _pillow_format(fmt: str, pixels: np.ndarray, **options: object) -> bytes | None:
    def make() -> bytes:
        out = io.BytesIO()
        im = Image.fromarray(pixels)
        if fmt in ("GIF", "PCX", "ICO", "SPIDER", "XBM", "PPM", "TGA", "SGI", "IM", "DDS", "EPS"):
            im = im.convert({"SPIDER": "F", "XBM": "1", "EPS": "RGB"}.get(fmt, "RGB"))
        im.save(out, format=fmt, **options)
        return out.getvalue()

    return _maybe(make)


def wrong_types(b: _Builder, seed: int) -> None:
    px = _pixels(32, 24, seed=seed)
    png = imagegen.png(px)
    tiff = imagegen.tiff(px)
    others = {
        "png-named-jpg": (png, "photo.jpg", "any"),  # the bytes decide: a real PNG is accepted
        "tiff-named-jpg": (tiff, "photo.jpg", "any"),
        "eps": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n(x) print showpage\n", "photo.jpg", "refused"),
        "eps-binary": (b"\xc5\xd0\xd3\xc6" + b"\x00" * 60, "photo.jpg", "refused"),
        "postscript-run": (b"%!PS\n(/etc/passwd) (r) file\n", "a.png", "refused"),
        "html": (b"<!DOCTYPE html><html><script>alert(1)</script></html>", "photo.jpg", "refused"),
        "svg": (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "photo.png", "refused"),
        "svg-xxe": (b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]><svg>&x;</svg>',
                    "photo.svg", "refused"),  # fmt: skip
        "pe": (b"MZ" + b"\x90" * 58 + struct.pack("<I", 64) + b"PE\0\0" + b"\0" * 200, "photo.jpg", "refused"),
        "elf": (b"\x7fELF\x02\x01\x01" + b"\0" * 200, "photo.jpg", "refused"),
        "shell": (b"#!/bin/sh\nrm -rf /\n", "photo.jpg", "refused"),
        "json": (b'{"nhs_number": "9990000018"}', "photo.jpg", "refused"),
        "xml": (b"<?xml version='1.0'?><a>b</a>", "photo.jpg", "refused"),
        "text": (b"hello world\n" * 10, "photo.jpg", "refused"),
        "gzip": (gzip.compress(png), "photo.png", "refused"),
        "7z": (b"7z\xbc\xaf\x27\x1c" + b"\0" * 100, "photo.jpg", "refused"),
        "rar": (b"Rar!\x1a\x07\x01\x00" + b"\0" * 100, "photo.jpg", "refused"),
        "psd": (b"8BPS\x00\x01" + b"\0" * 6 + struct.pack(">HIIHH", 3, 100000, 100000, 8, 3) + b"\0" * 64, "a.psd", "refused"),
        "fits": (b"SIMPLE  =                    T" + b" " * 50 + b"BITPIX  = 8" + b" " * 2800, "a.jpg", "refused"),
        "fpx-ole": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504, "a.jpg", "refused"),
        "wmf": (b"\xd7\xcd\xc6\x9a" + b"\0" * 60, "a.jpg", "refused"),
        "jp2": (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\0" * 64, "a.jpg", "refused"),
        "j2k": (b"\xff\x4f\xff\x51" + b"\0" * 64, "a.jpg", "refused"),
        "jxl": (b"\xff\x0a" + b"\0" * 64, "a.jpg", "refused"),
        "avif": (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + b"\0" * 64, "a.heic", "refused"),
        "mcidas": (b"\x00\x00\x00\x00\x00\x00\x00\x04" + b"\0" * 248, "a.jpg", "refused"),
    }
    for name, (data, filename, expect) in others.items():
        b.add(f"A1-{name}", "A1", data, filename, expect, kind="other" if expect == "refused" else "image")
    for fmt in ("GIF", "PCX", "ICO", "SPIDER", "XBM", "PPM", "TGA", "SGI", "IM", "DDS", "JPEG2000", "EPS", "PDF", "MPO"):
        data = _pillow_format(fmt, px)
        if data:
            # MPO is JPEG with more pictures after the first (accepted as the first); a PDF that
            # Pillow wrote around an image is a PDF document (accepted as one)
            b.add(f"A4-{fmt.lower()}", "A4", data, f"photo.{fmt.lower()}", "any" if fmt in ("MPO", "PDF") else "refused",
                  kind={"MPO": "image", "PDF": "media"}.get(fmt, "other"))
    animated = _maybe(lambda: _animated("GIF", px))
    if animated:
        b.add("A4-gif-animated", "A4", animated, "anim.gif", "refused", kind="other")


def _animated(fmt: str, px: np.ndarray) -> bytes:
    frames = [Image.fromarray(np.roll(px, i, axis=1)) for i in range(4)]
    out = io.BytesIO()
    frames[0].save(out, format=fmt, save_all=True, append_images=frames[1:])
    return out.getvalue()


# -- A3: polyglots -----------------------------------------------------------------------------
def polyglots(b: _Builder, seed: int) -> None:
    px = _pixels(48, 32, seed=seed)
    jpg = imagegen.jpeg(px)
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("payload.html", "<script>alert(1)</script>")
    z = zbuf.getvalue()
    dicom = _dicom("polyglot", seed)
    pe_preamble = b"MZ" + b"\x90" * 58 + struct.pack("<I", 64) + b"\0" * 64
    elf_preamble = b"\x7fELF\x02\x01\x01" + b"\0" * 121
    b.add("A3-jpeg-zip", "A3", jpg + z, "photo.jpg", "any")
    b.add("A3-jpeg-html-trailer", "A3", jpg + b"<html><script>alert(1)</script></html>", "photo.jpg", "any")
    b.add("A3-png-zip", "A3", imagegen.png(px) + z, "photo.png", "any")
    b.add("A3-pdf-html", "A3", _pdf() + b"<html><script>alert(document.cookie)</script></html>", "a.pdf", "any", kind="media")
    b.add("A3-html-pdf", "A3", b"<html><!--" + b" " * 64 + _pdf(), "a.pdf", "any", kind="media")
    b.add("A3-dicom-pe-preamble", "A3", pe_preamble[:128].ljust(128, b"\0") + dicom[128:], "a.dcm", "any", kind="dicom",
          note="stored only with the preamble zeroed")  # fmt: skip
    b.add("A3-dicom-elf-preamble", "A3", elf_preamble[:128] + dicom[128:], "a.dcm", "any", kind="dicom")
    b.add("A3-dicom-jpeg-preamble", "A3", jpg[:128].ljust(128, b"\0") + dicom[128:], "a.dcm", "any", kind="dicom")
    b.add("A3-jpeg-pdf-in-comment", "A3", imagegen.jpeg(px, comment=_pdf()[:60000]), "a.jpg", "any")
    b.add("A3-gif-jar", "A3", (_pillow_format("GIF", px) or b"GIF89a") + z, "a.jpg", "refused", kind="other")


# -- A5, A6: decompression bombs and pixel floods ----------------------------------------------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_idat(width: int, height: int, raw_bytes: int, *, bit_depth: int = 8, colour: int = 2) -> bytes:
    """A PNG whose IDAT inflates to ``raw_bytes`` of zeros (a zlib bomb when that is large)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    comp = zlib.compressobj(9)
    zeros = b"\0" * (1 << 20)
    parts = [comp.compress(zeros) for _ in range(raw_bytes >> 20)]
    parts.append(comp.compress(b"\0" * (raw_bytes & ((1 << 20) - 1))))
    parts.append(comp.flush())
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(parts)) + _png_chunk(b"IEND", b"")


def tiff_header(width: int, height: int, *, strip_bytes: int = 16, compression: int = 1, samples: int = 3) -> bytes:
    """A little-endian TIFF with the given dimensions and a tiny strip (a header-only bomb)."""
    entries = [
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, compression),
        (262, 3, 1, 2 if samples == 3 else 1), (273, 4, 1, 0), (277, 3, 1, samples),
        (278, 4, 1, height), (279, 4, 1, strip_bytes),
    ]  # fmt: skip
    ifd_offset = 8
    data_offset = ifd_offset + 2 + 12 * len(entries) + 4
    out = b"II*\x00" + struct.pack("<I", ifd_offset) + struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        if tag == 273:
            value = data_offset
        packed = struct.pack("<I", value) if typ == 4 else struct.pack("<HH", value, 0)
        out += struct.pack("<HHI", tag, typ, count) + packed
    return out + b"\0\0\0\0" + b"\0" * strip_bytes


def webp_vp8x(width: int, height: int) -> bytes:
    vp8x = struct.pack("<B3x", 0) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    return b"RIFF" + struct.pack("<I", len(body)) + body


def bmp_header(width: int, height: int) -> bytes:
    dib = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 16, 0, 0, 54) + dib + b"\0" * 16


def bombs(b: _Builder, seed: int, max_pixels: int) -> None:
    over = int((max_pixels * 1.2) ** 0.5) + 1  # just over the configured pixel limit
    for w, h in ((100_000, 100_000), (65_535, 65_535), (over, over), (1, 2**31 - 1), (2**31 - 1, 1), (0, 0), (0, 100)):
        b.add(f"A5-png-header-{w}x{h}", "A5", imagegen.header_only_png(max(w, 1) if w else 0, h) if w else png_with_idat(0, h, 16),
              "bomb.png", "refused")  # fmt: skip
    for w, h in ((65_500, 65_500), (over, over), (0, 480), (640, 0)):
        b.add(f"A5-jpeg-header-{w}x{h}", "A5", imagegen.header_only_jpeg(w, h), "bomb.jpg", "refused")
    for w, h in ((100_000, 100_000), (over, over), (2**32 - 1, 2)):
        b.add(f"A5-tiff-header-{w}x{h}", "A5", tiff_header(w, h), "bomb.tif", "refused")
    for w, h in ((16_383, 16_383), (over, over)):
        b.add(f"A5-webp-vp8x-{w}x{h}", "A5", webp_vp8x(min(w, 1 << 24), min(h, 1 << 24)), "bomb.webp", "refused")
    for w, h in ((100_000, 100_000), (over, -over)):
        b.add(f"A5-bmp-header-{w}x{h}", "A5", bmp_header(w, h), "bomb.bmp", "refused")
    # zlib bombs: IDAT that inflates far beyond what the header's size needs, or a header just
    # under the pixel limit whose data inflates to all of it (decoded: a big but allowed image)
    b.add("A5-png-zlib-bomb-small-header", "A5", png_with_idat(64, 48, 64 << 20), "zbomb.png", "any")
    b.add("A5-png-zlib-bomb-over-limit", "A5", png_with_idat(over, over, 8 << 20), "zbomb.png", "refused")
    b.add("A5-tiff-deflate-bomb", "A5", _tiff_deflate_bomb(over), "zbomb.tif", "refused")
    heic = _heic_huge_ispe()
    if heic:
        b.add("A5-heic-ispe-huge", "A5", heic, "bomb.heic", "refused")
    # A6: multi-frame floods
    px = _pixels(64, 48, seed=seed)
    frames = [Image.fromarray(np.roll(px, i, axis=0)) for i in range(10)]
    out = io.BytesIO()
    frames[0].save(out, format="TIFF", save_all=True, append_images=frames[1:])
    b.add("A6-tiff-10-frames", "A6", out.getvalue(), "multi.tif", "any")
    apng = _maybe(lambda: _animated("PNG", px))
    if apng:
        b.add("A6-apng", "A6", apng, "anim.png", "any")
    awebp = _maybe(lambda: _animated("WEBP", px))
    if awebp:
        b.add("A6-webp-animated", "A6", awebp, "anim.webp", "any")


def _tiff_deflate_bomb(side: int) -> bytes:
    raw = zlib.compress(b"\0" * (8 << 20), 9)
    head = tiff_header(side, side, strip_bytes=len(raw), compression=8)
    return head[: -16] + raw


def _heic_huge_ispe() -> bytes | None:
    """A real HEIC with its ispe (image spatial extents) rewritten to 60000 x 60000."""
    data = _maybe(lambda: imagegen.heic(_pixels(64, 64)))
    if not data:
        return None
    at = data.find(b"ispe")
    if at < 0:
        return None
    return data[: at + 8] + struct.pack(">II", 60000, 60000) + data[at + 16 :]


# -- A7-A9, A14, A15: DICOM ---------------------------------------------------------------------
def dicom_cases(b: _Builder, seed: int) -> None:
    for depth in (1, 16, 17, 150, 250, 2000):
        b.add(f"A7-nested-{depth}", "A7", dicomgen.nested(depth), "nested.dcm", "refused", kind="dicom")
    b.add("A8-lying-length", "A8", dicomgen.lying_length(), "lying.dcm", "refused", kind="dicom")
    good = _dicom("lengths", seed)
    pixel_at = good.rfind(b"\xe0\x7f\x10\x00")
    for i, at in enumerate((132 + 8, 150, 200, 260, 300, pixel_at + 8)):
        if 0 < at < len(good) - 4:
            b.add(f"A8-length-{i}-ffffffff", "A8", good[:at] + b"\xf0\xff\xff\xff" + good[at + 4 :], "len.dcm", "any", kind="dicom")
            b.add(f"A8-length-{i}-plus-1", "A8", good[:at] + struct.pack("<I", (struct.unpack("<I", good[at:at + 4])[0] + 1) & 0xFFFFFFFF)
                  + good[at + 4 :], "len.dcm", "any", kind="dicom")  # fmt: skip
    # a wrong File Meta group length: the file meta is rewritten by us anyway
    b.add("A8-meta-group-length-huge", "A8", good[:140] + b"\xf0\xff\xff\x7f" + good[144:], "meta.dcm", "any", kind="dicom")
    b.add("A9-deflate-bomb-64MiB", "A9", dicomgen.deflate_bomb(64), "bomb.dcm", "refused", kind="dicom")
    b.add("A9-deflate-bomb-400MiB", "A9", dicomgen.deflate_bomb(400), "bomb.dcm", "refused", kind="dicom")
    b.add("A9-deflated-valid", "A9", dicomgen.deflated(dicomgen.photo_dataset(pixels=_pixels(), native=True,
          **_dicom_uids("deflated", seed))), "deflated.dcm", "stored", kind="dicom")  # fmt: skip
    for name, uid in (("traversal", "../../etc/cron.d/x"), ("65-chars", "1." + "2" * 63), ("leading-zero", "1.02.3"),
                      ("nul", "1.2.3\x004"), ("empty", ""), ("letters", "1.2.abc"), ("slash", "1/2/3")):
        try:
            data = _dicom(f"uid-{name}", seed, sop_uid=uid or " ")
        except Exception:  # noqa: BLE001 - pydicom refuses to write it: splice it in by hand
            continue
        b.add(f"A14-uid-{name}", "A14", data, "uid.dcm", "refused", kind="dicom")
    b.add("A14-study-uid-traversal", "A14", _dicom("study-trav", seed, study_uid="1.2.3/../../x"), "uid.dcm", "refused", kind="dicom")
    dicomdir = dicomgen.photo_dataset(pixels=_pixels(), **_dicom_uids("dicomdir", seed))
    dicomdir.SOPClassUID = DICOMDIR_SOP_CLASS
    dicomdir.file_meta.MediaStorageSOPClassUID = DICOMDIR_SOP_CLASS
    b.add("A15-dicomdir", "A15", dicomgen.part10(dicomdir), "DICOMDIR", "refused", kind="dicom")
    b.add("A15-dicomdir-meta-only", "A15", dicomgen.meta(sop_class=DICOMDIR_SOP_CLASS), "DICOMDIR", "refused", kind="dicom")
    b.add("DICOM-meta-only", "DICOM", dicomgen.meta(), "meta.dcm", "refused", kind="dicom")
    b.add("DICOM-big-endian", "DICOM", dicomgen.meta("1.2.840.10008.1.2.2") + b"\0\x10\0\x10PN\0\x04ABCD", "be.dcm", "refused", kind="dicom")
    b.add("DICOM-implicit-valid", "DICOM", dicomgen.part10(dicomgen.photo_dataset(pixels=_pixels(), native=True,
          **_dicom_uids("implicit", seed)), implicit=True), "implicit.dcm", "stored", kind="dicom")  # fmt: skip
    b.add("DICOM-gps-owner", "O1", _dicom("gps", seed, gps=True), "gps.dcm", "stored", kind="dicom", gps=True)
    b.add("DICOM-leaky-jpeg", "O1", dicomgen.part10(dicomgen.photo_dataset(jpeg_bytes=dicomgen.leaky_jpeg(),
          **_dicom_uids("leaky", seed))), "leaky.dcm", "stored", kind="dicom", gps=True)  # fmt: skip
    b.add("DICOM-not-a-patient-id", "DICOM", _dicom("hospno", seed, patient_id="H1234567"), "h.dcm", "refused", kind="dicom")
    b.add("DICOM-bad-check-digit", "DICOM", _dicom("badcheck", seed, patient_id="9434765918"), "h.dcm", "refused", kind="dicom")
    b.add("DICOM-private-creator-spoof", "DICOM", _dicom("spoof", seed), "spoof.dcm", "any", kind="dicom")


# -- A10-A12: archives, playlists, MP4 boxes ---------------------------------------------------
def archives(b: _Builder, seed: int) -> None:
    def zipped(entries: list[tuple[str, bytes]], **kw: object) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in entries:
                zf.writestr(name, data)
        return out.getvalue()

    b.add("A11-zip-bomb", "A11", zipped([(f"f{i}.bin", b"\0" * (8 << 20)) for i in range(4)]), "photos.zip", "refused", kind="other")
    b.add("A11-zip-slip", "A11", zipped([("../../etc/cron.d/evil", b"* * * * * root sh")]), "photos.zip", "refused", kind="other")
    b.add("A11-zip-of-jpegs", "A11", zipped([("a.jpg", imagegen.jpeg(_pixels()))]), "a.jpg", "refused", kind="other")
    symlink = io.BytesIO()
    with zipfile.ZipFile(symlink, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    b.add("A11-zip-symlink", "A11", symlink.getvalue(), "a.zip", "refused", kind="other")
    b.add("A11-quoted-overlap", "A11", _overlap_zip(), "a.zip", "refused", kind="other")
    b.add("A10-gzip-bomb-as-file", "A10", gzip.compress(b"\0" * (32 << 20)), "a.jpg.gz", "refused", kind="other")
    # A12: playlists named as videos (ffmpeg would follow them), and MP4 box structures
    for name, text in (
        ("hls", b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"),
        ("hls-http", b"#EXTM3U\n#EXTINF:1,\nhttp://169.254.169.254/latest/meta-data/\n"),
        ("concat", b"ffconcat version 1.0\nfile /etc/passwd\n"),
        ("sdp", b"v=0\no=- 0 0 IN IP4 127.0.0.1\nc=IN IP4 169.254.169.254\nm=video 5004 RTP/AVP 96\n"),
    ):
        b.add(f"A12-playlist-{name}", "A12", text, "clip.mp4", "refused", kind="media")
        b.add(f"A12-playlist-{name}-ftyp", "A12", _box(b"ftyp", b"isom\0\0\0\0isomavc1") + text, "clip.mp4", "refused", kind="media")
    mp4_boxes(b)


def _overlap_zip() -> bytes:
    """Two central-directory entries pointing at one local file (the CVE-2024-0450 shape)."""
    data = zlib.compress(b"A" * 100000)[2:-4]
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, 0, len(data), 100000, 1, 0) + b"a" + data
    cd = b""
    for name in (b"a", b"b"):
        cd += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, 0, len(data), 100000, 1, 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 2, 2, len(cd), len(local), 0)
    return local + cd + end


def _box(kind: bytes, payload: bytes, size: int | None = None) -> bytes:
    return struct.pack(">I", len(payload) + 8 if size is None else size) + kind + payload


def mp4_boxes(b: _Builder) -> None:
    ftyp = _box(b"ftyp", b"isom\0\0\x02\0isomiso2avc1mp41")
    nest = b"\0" * 8
    for _ in range(200):
        nest = _box(b"moov", nest)
    cases = {
        "zero-size-mid": ftyp + struct.pack(">I", 0) + b"moov" + b"\0" * 64 + _box(b"mdat", b"\0" * 16),
        "size-below-8": ftyp + struct.pack(">I", 4) + b"moov" + b"\0" * 64,
        "size-1-largesize-huge": ftyp + struct.pack(">I", 1) + b"mdat" + struct.pack(">Q", 2**63 - 1) + b"\0" * 32,
        "size-1-largesize-small": ftyp + struct.pack(">I", 1) + b"moov" + struct.pack(">Q", 3) + b"\0" * 32,
        "child-beyond-parent": ftyp + _box(b"moov", _box(b"trak", b"\0" * 8, size=0x7FFFFFFF)),
        "moov-beyond-eof": ftyp + struct.pack(">I", 0x7FFFFFF0) + b"moov" + b"\0" * 64,
        "deep-nesting": ftyp + nest,
        "many-boxes": ftyp + _box(b"free", b"") * 50000,
        "ftyp-only": ftyp,
        "no-moov": ftyp + _box(b"mdat", b"\0" * 1024),
        "stsc-zero": ftyp + _box(b"moov", _box(b"trak", _box(b"mdia", _box(b"minf", _box(b"stbl", _box(b"stsc",
                     b"\0\0\0\0" + struct.pack(">IIII", 1, 1, 0, 1))))))),  # fmt: skip
        "udta-location": ftyp + _box(b"moov", _box(b"udta", _box(b"\xa9xyz", b"\0\x12\x15\xc7+51.5074-000.1278/"))),
        "huge-stsz": ftyp + _box(b"moov", _box(b"trak", _box(b"mdia", _box(b"minf", _box(b"stbl",
                     _box(b"stsz", b"\0\0\0\0" + struct.pack(">II", 0, 0xFFFFFFFF)))))))  # fmt: skip
    }
    for name, data in cases.items():
        b.add(f"MP4-{name}", "MP4", data, "clip.mp4", "refused", kind="media")


# -- A13, A17, EXIF: metadata tricks ----------------------------------------------------------
def _app1(payload: bytes) -> bytes:
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _with_segment(jpg: bytes, segment: bytes) -> bytes:
    return jpg[:2] + segment + jpg[2:]


def _raw_exif(entries: list[tuple[int, int, int, bytes]], next_ifd: int = 0, trailer: bytes = b"") -> bytes:
    """An EXIF APP1 payload (``Exif\\0\\0`` + little-endian TIFF) with hand-built IFD0 entries."""
    body = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        body += struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\0")[:4]
    return b"Exif\x00\x00" + body + struct.pack("<I", next_ifd) + trailer


def metadata_tricks(b: _Builder, seed: int) -> None:
    px = _pixels(48, 32, seed=seed)
    jpg = imagegen.jpeg(px)
    billion = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">' + b"".join(
        b'<!ENTITY %s "%s">' % (chr(98 + i).encode(), ("&" + chr(97 + i) + ";").encode() * 10) for i in range(9))
        + b"]><x:xmpmeta xmlns:x='adobe:ns:meta/'>&j;</x:xmpmeta>")  # fmt: skip
    xxe = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "http://169.254.169.254/latest/meta-data/">'
           b'<!ENTITY f SYSTEM "file:///etc/passwd">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&e;&f;</x:xmpmeta>')  # fmt: skip
    xmp_ns = b"http://ns.adobe.com/xap/1.0/\x00"
    b.add("A13-xmp-billion-laughs", "A13", _with_segment(jpg, _app1(xmp_ns + billion)), "xmp.jpg", "any")
    b.add("A13-xmp-xxe", "A13", _with_segment(jpg, _app1(xmp_ns + xxe)), "xmp.jpg", "any")
    b.add("A13-xmp-gps", "A13", _with_segment(jpg, _app1(xmp_ns + b'<x:xmpmeta xmlns:x="adobe:ns:meta/" '
          b'xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="53,24.5N"/>')), "xmp.jpg", "stored", gps=True)  # fmt: skip
    itxt = _png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + xxe)
    png = imagegen.png(px)
    b.add("A13-png-itxt-xxe", "A13", png[:33] + itxt + png[33:], "xmp.png", "any")
    script = "<script>alert(1)</script>"
    crlf = 'x\r\n{"level":"error","event":"fake log line"}\r\n'
    for name, text in (("script", script), ("crlf", crlf), ("long", "A" * 1_000_000), ("nul", "a\x00b"),
                       ("rtl", "\u202eevil"), ("ansi", "\x1b[31mred\x1b[0m")):  # fmt: skip
        exif = imagegen.exif_bytes(make=text[:20000], model=text[:200], gps=True, extra_ifd0={0x010E: text[:20000]})
        b.add(f"A17-exif-{name}", "A17", imagegen.jpeg(px, exif=exif), "text.jpg", "stored", gps=True)
        if len(text) > 60000:  # beyond a JPEG segment: a PNG eXIf chunk can carry it
            exif = imagegen.exif_bytes(gps=True, extra_ifd0={0x010E: text})
            b.add(f"A17-png-exif-{name}", "A17", imagegen.png(px, exif=exif), "text.png", "any", gps=True)
    b.add("A17-comment-script", "A17", imagegen.jpeg(px, comment=script.encode()), "c.jpg", "stored")
    b.add("A16-eicar-in-comment", "A16", imagegen.jpeg(px, comment=EICAR), "eicar.jpg", "any", note="COM segments are removed")
    b.add("A16-eicar-in-pdf", "A16", _pdf(page_extra=b"/EICAR (" + EICAR.replace(b"(", b"\\(").replace(b")", b"\\)") + b") "),
          "eicar.pdf", "any", kind="media", note="no antivirus stage: the PDF is stored as it is")  # fmt: skip
    # EXIF structure: huge IFD counts, loops, offsets outside the data, GPS in odd places,
    # orientation values outside 1-8 and of the wrong type
    exif_cases = {
        "ifd-count-65535": b"Exif\x00\x00II*\x00" + struct.pack("<IH", 8, 0xFFFF) + b"\0" * 24,
        "ifd-loop-self": _raw_exif([(0x010F, 2, 4, b"Cam\0")], next_ifd=8),
        "ifd-loop-exif-pointer": _raw_exif([(0x8769, 4, 1, struct.pack("<I", 8))]),
        "gps-pointer-loop": _raw_exif([(0x8825, 4, 1, struct.pack("<I", 8))]),
        "offset-beyond-end": _raw_exif([(0x010E, 2, 0x7FFFFFFF, struct.pack("<I", 0x7FFFFFF0))]),
        "count-overflow": _raw_exif([(0x0111, 4, 0x40000001, struct.pack("<I", 26))]),
        "gps-in-ifd1": _raw_exif([(0x010F, 2, 4, b"Cam\0")], next_ifd=26,
                                 trailer=struct.pack("<H", 1) + struct.pack("<HHI", 0x8825, 4, 1) + struct.pack("<I", 8) + b"\0" * 4),
        "orientation-0": _raw_exif([(0x0112, 3, 1, struct.pack("<H", 0))]),
        "orientation-9": _raw_exif([(0x0112, 3, 1, struct.pack("<H", 9))]),
        "orientation-65535": _raw_exif([(0x0112, 3, 1, struct.pack("<H", 65535))]),
        "orientation-ascii": _raw_exif([(0x0112, 2, 2, b"6\0")]),
        "orientation-rational": _raw_exif([(0x0112, 5, 1, struct.pack("<I", 26))], trailer=struct.pack("<II", 6, 0)),
        "datetime-garbage": _raw_exif([(0x0132, 2, 20, struct.pack("<I", 26))], trailer=b"9999:99:99 99:99:99\0"),
        "unknown-type": _raw_exif([(0x010F, 99, 1, b"\0\0\0\0")]),
        "big-endian-truncated": b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00",
        "not-tiff": b"Exif\x00\x00hello",
        "thumbnail-ifd1": _raw_exif([(0x010F, 2, 4, b"Cam\0")], next_ifd=26, trailer=struct.pack("<H", 2)
                                    + struct.pack("<HHII", 0x0201, 4, 1, 56) + struct.pack("<HHII", 0x0202, 4, 1, len(jpg))
                                    + b"\0\0\0\0" + jpg),  # fmt: skip
    }
    for name, payload in exif_cases.items():
        b.add(f"EXIF-{name}", "EXIF", _with_segment(jpg, _app1(payload)), "exif.jpg", "any", gps="gps" in name or "thumb" in name)
        if name in ("ifd-loop-self", "gps-pointer-loop", "orientation-9", "count-overflow"):
            b.add(f"EXIF-png-{name}", "EXIF", png[:33] + _png_chunk(b"eXIf", payload[6:]) + png[33:], "exif.png", "any")
    b.add("EXIF-gps-owner-makernote", "O1", imagegen.jpeg(px, exif=imagegen.exif_bytes(
          gps=True, owner=True, extra_exif={0x927C: b"MAKERNOTE" * 20})), "gps.jpg", "stored", gps=True)  # fmt: skip
    b.add("EXIF-png-gps", "O1", imagegen.png(px, exif=imagegen.exif_bytes(gps=True)), "gps.png", "stored", gps=True)
    b.add("EXIF-webp-gps", "O1", imagegen.webp(px, lossless=True, exif=imagegen.exif_bytes(gps=True)), "gps.webp", "stored", gps=True)
    b.add("EXIF-tiff-gps", "O1", _tiff_with_gps(px), "gps.tif", "stored", gps=True)
    heic = _maybe(lambda: imagegen.heic(px, exif=imagegen.exif_bytes(gps=True, orientation=6)))
    if heic:
        b.add("EXIF-heic-gps", "O1", heic, "gps.heic", "stored", gps=True)


def _tiff_with_gps(px: np.ndarray) -> bytes:
    im = Image.fromarray(px)
    out = io.BytesIO()
    im.save(out, format="TIFF", exif=imagegen.exif_bytes(gps=True))
    return out.getvalue()


# -- odd colour models and bit depths -----------------------------------------------------------
def colour_oddities(b: _Builder, seed: int) -> None:
    px = _pixels(48, 32, seed=seed)
    alpha = (np.arange(48 * 32).reshape(32, 48) % 256).astype(np.uint8)
    odd: dict[str, Callable[[], bytes]] = {
        "jpeg-cmyk": lambda: imagegen.cmyk_jpeg(px),
        "jpeg-cmyk-icc": lambda: imagegen.cmyk_jpeg(px, icc=imagegen.srgb_icc()),
        "jpeg-grey": lambda: imagegen.jpeg(px[:, :, 0]),
        "jpeg-444": lambda: imagegen.jpeg(px, subsampling="4:4:4"),
        "jpeg-bad-icc": lambda: imagegen.jpeg(px, icc=b"not an icc profile" * 10),
        "png-16-grey": lambda: imagegen.png(px[:, :, 0], bits=16),
        "png-alpha": lambda: imagegen.png(px, alpha=alpha),
        "png-palette": lambda: imagegen.png(px, palette=True),
        "png-1bit": lambda: _pillow_mode_png(px, "1"),
        "png-la": lambda: _pillow_mode_png(px, "LA"),
        "png-i": lambda: _pillow_mode_png(px, "I"),
        "tiff-16": lambda: _tiff_bytes("I;16", px),
        "tiff-1bit": lambda: _tiff_bytes("1", px),
        "tiff-lab": lambda: _tiff_bytes("LAB", px),
        "tiff-palette": lambda: _tiff_bytes("P", px),
        "tiff-jpeg-compressed": lambda: imagegen.tiff(px, compression="jpeg"),
        "tiff-lzw": lambda: imagegen.tiff(px, compression="tiff_lzw"),
        "webp-lossless-alpha": lambda: imagegen.webp(px, lossless=True, alpha=alpha),
        "bmp-32": lambda: _bmp32(px),
        "tiny-1x1": lambda: imagegen.png(px[:1, :1]),
        "tall-1x4000": lambda: imagegen.png(np.repeat(px[:1, :1], 4000, axis=0)),
    }
    for name, make in odd.items():
        data = _maybe(make)
        if data:
            b.add(f"COLOUR-{name}", "COLOUR", data, f"{name}.img", "any")


def _pillow_mode_png(px: np.ndarray, mode: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(px).convert(mode).save(out, format="PNG")
    return out.getvalue()


def _bmp32(px: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(px).convert("RGBA").save(out, format="BMP")
    return out.getvalue()


# -- PDF ------------------------------------------------------------------------------------------
def pdf_cases(b: _Builder) -> None:
    js = b"/OpenAction << /S /JavaScript /JS (app.alert\\(1\\)) >> "
    bomb = zlib.compress(b"\0" * (64 << 20), 9)
    cases = {
        "javascript-openaction": (_pdf(catalog_extra=js), "refused"),
        "javascript-names": (_pdf(catalog_extra=b"/Names << /JavaScript 99 0 R >> "), "refused"),
        "launch": (_pdf(page_extra=b"/AA << /O << /S /Launch /F (cmd.exe) >> >> "), "refused"),
        "embedded-file": (_pdf(catalog_extra=b"/Names << /EmbeddedFiles << /Names [(a.exe) 9 0 R] >> >> "), "refused"),
        "xfa": (_pdf(catalog_extra=b"/AcroForm << /XFA 9 0 R >> "), "refused"),
        "uri": (_pdf(page_extra=b"/Annots [<< /Type /Annot /Subtype /Link /A << /S /URI /URI (http://169.254.169.254/) >> >>] "), "any"),
        "flate-bomb": (_pdf(b"<< /Length " + str(len(bomb)).encode() + b" /Filter /FlateDecode >>\nstream\n" + bomb + b"\nendstream"), "any"),
        "self-parent": (_pdf(page_extra=b"/Parent 4 0 R "), "any"),
        "pages-loop": (_pdf(catalog_extra=b"/Pages 1 0 R "), "any"),
        "no-xref": (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", "any"),
        "header-only": (b"%PDF-1.7\n", "refused"),
        "huge-declared-length": (_pdf(b"<< /Length 99999999999 >>\nstream\nabc\nendstream"), "any"),
        "encrypted": (_pdf(catalog_extra=b"/Encrypt << /Filter /Standard /V 1 /R 2 /O (x) /U (y) /P -4 >> "), "any"),
        "many-pages": (_pdf_pages(400), "any"),
    }
    for name, (data, expect) in cases.items():
        b.add(f"PDF-{name}", "PDF", data, "consent.pdf", expect, kind="media")


def _pdf_pages(n: int) -> bytes:
    from tests import mediagen

    return mediagen.pdf(pages=n)


# -- generic mutations of the base files ---------------------------------------------------------
def empties_and_noise(b: _Builder) -> None:
    b.add("ZERO-bytes", "RANDOM", b"", "empty.jpg", "refused", kind="other")
    for n in (1, 2, 3, 4, 8, 131, 132, 133):
        b.add(f"TINY-{n}-zero", "RANDOM", b"\0" * n, "tiny.jpg", "refused", kind="other")
    b.add("TINY-dicm-only", "RANDOM", b"\0" * 128 + b"DICM", "a.dcm", "refused", kind="other")
    b.add("TINY-ff-4096", "RANDOM", b"\xff" * 4096, "ff.jpg", "refused", kind="other")
    b.add("TINY-jpeg-soi", "RANDOM", b"\xff\xd8\xff", "soi.jpg", "refused", kind="other")
    b.add("TINY-jpeg-soi-eoi", "RANDOM", b"\xff\xd8\xff\xd9", "soi.jpg", "refused", kind="other")
    b.add("TINY-png-sig", "RANDOM", b"\x89PNG\r\n\x1a\n", "sig.png", "refused", kind="other")
    rng = b.rng("random")
    for i in range(40 * b.scale):
        size = rng.choice((16, 100, 1000, 5000, 20000))
        data = bytes(rng.getrandbits(8) for _ in range(size))
        b.add(f"RANDOM-{i}-{size}", "RANDOM", data, "noise.jpg", "refused", kind="other")
    # random bodies behind a real signature: each parser gets past its magic bytes
    magics = {"jpeg": b"\xff\xd8\xff\xe0", "png": b"\x89PNG\r\n\x1a\n", "tiff": b"II*\x00", "webp": b"RIFF\0\0\0\0WEBPVP8 ",
              "heic": b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", "dicom": b"\0" * 128 + b"DICM", "pdf": b"%PDF-1.7\n",
              "mp4": b"\0\0\0\x18ftypisom\0\0\0\0isomavc1", "bmp": b"BM" + struct.pack("<IHHI", 999, 0, 0, 54) + struct.pack("<I", 40)}  # fmt: skip
    for name, magic in magics.items():
        for i in range(6 * b.scale):
            data = magic + bytes(rng.getrandbits(8) for _ in range(rng.choice((10, 200, 3000))))
            kind = {"dicom": "dicom", "pdf": "media", "mp4": "media"}.get(name, "image")
            b.add(f"MAGIC-{name}-{i}", "RANDOM", data, f"x.{name}", "any", kind=kind)


def mutations(b: _Builder, bases: dict[str, tuple[bytes, str, str]]) -> None:
    for name, (data, filename, kind) in bases.items():  # the controls first: they must be stored
        b.add(f"VALID-{name}", "VALID", data, filename, "stored", kind=kind, gps=name in ("jpeg", "png-exif", "webp", "heic"))
    for name, (data, filename, kind) in bases.items():
        n = len(data)
        # truncations at fixed offsets and at fractions of the length (A2)
        offsets = {1, 2, 3, 4, 8, 12, 16, 24, 32, 64, 100, 128, 132, 133, 200, 256, 512, 1024}
        offsets |= {int(n * f) for f in (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)} | {n - 1, n - 2, n - 16}
        rng = b.rng(f"truncate:{name}")
        offsets |= {rng.randrange(1, n) for _ in range(8 * b.scale - 8)} if b.scale > 1 else set()
        for at in sorted(o for o in offsets if 0 < o < n):
            b.add(f"TRUNCATE-{name}-{at}", "A2", data[:at], filename, "any", kind=kind)
        # single bit flips at seeded positions, biased towards the headers
        rng = b.rng(f"flip:{name}")
        positions: set[int] = set()
        while len(positions) < min(n * 8, 24 * b.scale):
            byte = rng.randrange(min(n, 2048)) if rng.random() < 0.7 else rng.randrange(n)
            positions.add(byte * 8 + rng.randrange(8))
        for bit in sorted(positions):
            flipped = bytearray(data)
            flipped[bit // 8] ^= 1 << (bit % 8)
            b.add(f"BITFLIP-{name}-{bit}", "BITFLIP", bytes(flipped), filename, "any", kind=kind)
        # 4-byte overwrites with extreme values where lengths and counts live
        rng = b.rng(f"overwrite:{name}")
        for i in range(8 * b.scale):
            at = rng.randrange(0, max(1, min(n - 4, 1024)))
            value = rng.choice((b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00", b"\x00\x00\x00\x01"))
            b.add(f"OVERWRITE-{name}-{i}-{at}", "OVERWRITE", data[:at] + value + data[at + 4 :], filename, "any", kind=kind)


def regressions(b: _Builder) -> None:
    """Reproducers of crashes that fuzzing found (tests/corpus/regressions.py): each stays here."""
    try:
        from tests.corpus.regressions import REGRESSIONS
    except ImportError:
        return
    for name, (data, filename, kind, expect) in REGRESSIONS.items():
        b.add(f"REGRESSION-{name}", "REGRESSION", data, filename, expect, kind=kind)


# -- the corpus ------------------------------------------------------------------------------
def build(seed: int = 8, scale: int = 1, *, max_pixels: int = 20_000_000) -> list[Case]:
    """Every case, in a stable order. ``max_pixels``: the pixel limit the service under test is
    configured with (the floods are made just over it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid values we write on purpose
        return _build(seed, scale, max_pixels)


def _build(seed: int, scale: int, max_pixels: int) -> list[Case]:
    b = _Builder(seed, scale)
    bases = base_files(seed)
    wrong_types(b, seed)
    polyglots(b, seed)
    bombs(b, seed, max_pixels)
    dicom_cases(b, seed)
    archives(b, seed)
    metadata_tricks(b, seed)
    colour_oddities(b, seed)
    pdf_cases(b)
    empties_and_noise(b)
    mutations(b, bases)
    regressions(b)
    return b.cases


def families(cases: list[Case]) -> dict[str, int]:
    out: dict[str, int] = {}
    for case in cases:
        out[case.family] = out.get(case.family, 0) + 1
    return dict(sorted(out.items()))


def write(cases: list[Case], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for case in cases:
        (out / f"{case.id}__{case.filename}").write_bytes(case.data)


def iter_seeds(cases: list[Case], kinds: set[str]) -> Iterator[bytes]:
    for case in cases:
        if case.kind in kinds and len(case.data) <= 1 << 20:
            yield case.data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--scale", type=int, default=1)
    args = parser.parse_args()
    cases = build(args.seed, args.scale)
    write(cases, args.out)
    print(f"{len(cases)} cases in {args.out}: {families(cases)}")


if __name__ == "__main__":
    main()
