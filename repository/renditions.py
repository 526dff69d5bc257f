"""Consumer renditions of stored images: a full-size JPEG and a thumbnail, made once and cached
in the object store under ``derived/`` (they are derived data and can always be remade).

The stored pixels are already upright (orientation is applied at ingest), so a rendition never
needs EXIF; and it never carries any metadata at all, so no GPS can leak through it.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

import numpy as np
from PIL import Image, ImageCms
from pydicom import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import JPEGBaseline8Bit, JPEGExtended12Bit

from repository import keys
from repository.errors import ConversionFailed, NotFound
from repository.service import Repository

_JPEG_SYNTAXES = {JPEGBaseline8Bit, JPEGExtended12Bit}


class _Recent:
    """The most recently used thumbnails, up to a number of bytes. A rendition never changes:
    an instance's pixels are immutable (a reconciliation rewrites its header only), and every
    request is authorised against the index before a rendition is looked up, so a deleted or
    withheld instance is refused before this cache is reached."""

    def __init__(self, limit: int) -> None:
        self.limit, self.size = limit, 0
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self.limit // 4:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = data
            self.size += len(data)
            while self.size > self.limit:
                self.size -= len(self._items.popitem(last=False)[1])


class Renditions:
    def __init__(self, repository: Repository, *, thumbnail_size: int = 256, rendered_max_size: int = 8192,
                 cache_bytes: int = 0) -> None:  # fmt: skip
        self.repository = repository
        self.thumbnail_size = thumbnail_size
        self.rendered_max_size = rendered_max_size
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._recent = _Recent(cache_bytes) if cache_bytes > 0 else None

    # "-srgb": renditions are in sRGB since the names gained it; older ones (in the camera's own
    # colour space, shown wrongly) are not read again, and are made afresh on the next view.
    def rendered(self, sop_instance_uid: str) -> bytes:
        return self._cached(sop_instance_uid, "rendered-srgb.jpg", self._make_rendered)

    def thumbnail(self, sop_instance_uid: str) -> bytes:
        """The thumbnail, from this worker's memory where it was recently served (a store read
        costs the store, and boto3, more than the request costs everything else)."""
        name = f"thumbnail-{self.thumbnail_size}-srgb.jpg"
        if self._recent is None:
            return self._cached(sop_instance_uid, name, self._make_thumbnail)
        data = self._recent.get(sop_instance_uid)
        if data is None:
            data = self._cached(sop_instance_uid, name, self._make_thumbnail)
            self._recent.put(sop_instance_uid, data)
        return data

    def _cached(self, uid: str, name: str, make) -> bytes:  # type: ignore[no-untyped-def]
        key = keys.derived_key(uid, name)
        try:
            with self.repository.store.open(key) as handle:
                return handle.read()
        except NotFound:
            pass
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one render per rendition even under concurrent first requests
            if self.repository.store.exists(key):
                with self.repository.store.open(key) as handle:
                    return handle.read()
            data: bytes = self._media(uid, name) or make(self.repository.read_instance(uid))
            self.repository.store.put(key, data, media_type="image/jpeg")
        with self._guard:
            self._locks.pop(key, None)
        return data

    # -- makers ------------------------------------------------------------------------------
    def _media(self, uid: str, name: str) -> bytes | None:
        """Video poster frame or page 1 of a document, without loading a whole video; None for images."""
        from repository import media

        sop_class = str(self.repository.read_instance_header(uid).get("SOPClassUID", ""))
        if sop_class in media.VIDEO_CLASSES:
            poster = media.video_poster(self.repository.store, self.repository.locate(uid))
        elif sop_class in media.DOCUMENT_CLASSES:
            poster = media.document_poster(self.repository.read_instance(uid))
        else:
            return None
        image = Image.open(io.BytesIO(poster))
        size = self.thumbnail_size if name.startswith("thumbnail") else self.rendered_max_size
        if max(image.size) <= size:
            return poster
        image.thumbnail((size, size))
        return _encode(image.convert("RGB"), quality=85)

    def _make_rendered(self, ds: Dataset) -> bytes:
        frame = _first_jpeg_frame(ds)
        if frame is not None and ds.get("PhotometricInterpretation") != "RGB" and display_profile(ds) is None:
            with Image.open(io.BytesIO(frame)) as probe:
                if max(probe.size) <= self.rendered_max_size and probe.mode in ("RGB", "L"):
                    return frame  # already an upright, metadata-free baseline JPEG in sRGB
        image = to_pil(ds)
        image.thumbnail((self.rendered_max_size, self.rendered_max_size))
        return _encode(to_srgb(image, ds), quality=92)

    def _make_thumbnail(self, ds: Dataset) -> bytes:
        size = self.thumbnail_size
        frame = _first_jpeg_frame(ds)
        if frame is not None:
            image = Image.open(io.BytesIO(frame))
            image.draft("RGB", (size, size))  # decode at 1/2..1/8 scale: much faster
            image = image.convert("RGB") if image.mode not in ("RGB", "L") else image
        else:
            image = to_pil(ds)
        image.thumbnail((size, size))
        return _encode(to_srgb(image, ds), quality=85)


def display_profile(ds: Dataset) -> ImageCms.ImageCmsProfile | None:
    """The ICC profile of an RGB image's stored pixels when it is not sRGB (Display P3 from a
    phone, Adobe RGB from a camera): renditions are converted from it, as PS3.3 C.11.15 says
    the profile is how the pixels are to be read. None for sRGB, no profile, or one that
    cannot be read (then the pixels are shown as sRGB, as before)."""
    raw = ds.get("ICCProfile")
    if not raw or ds.get("SamplesPerPixel", 3) != 3:
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(bytes(raw)))
        if profile.profile.xcolor_space.strip() != "RGB":
            return None  # not a profile of RGB pixels (one copied from a CMYK source, say)
        description = (ImageCms.getProfileDescription(profile) or "").lower()
    except (OSError, ImageCms.PyCMSError, ValueError, TypeError):
        return None
    return None if "srgb" in description or "iec61966-2" in description else profile


_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def to_srgb(image: Image.Image, ds: Dataset) -> Image.Image:
    """``image`` (decoded from ``ds``) converted to sRGB for display, if its profile is another."""
    profile = display_profile(ds)
    if profile is None or image.mode != "RGB":
        return image
    try:
        converted = ImageCms.profileToProfile(image, profile, _SRGB, renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode="RGB")
    except ImageCms.PyCMSError:
        return image
    return converted if converted is not None else image


def _first_jpeg_frame(ds: Dataset) -> bytes | None:
    if ds.file_meta.get("TransferSyntaxUID") not in _JPEG_SYNTAXES or "PixelData" not in ds:
        return None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return next(generate_frames(ds.PixelData, number_of_frames=frames))


def to_pil(ds: Dataset) -> Image.Image:
    """Decode the first frame of ``ds`` into an 8-bit RGB or L image for display."""
    frame = _first_jpeg_frame(ds)
    if frame is not None:
        image = Image.open(io.BytesIO(frame))
        image.load()
        return image.convert("RGB") if image.mode not in ("RGB", "L") else image
    if "PixelData" not in ds:
        raise ConversionFailed("this instance has no image to render")
    try:
        array = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for undecodable data
        raise ConversionFailed(f"pixel data cannot be decoded: {exc}") from exc
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        array = array[0]
    if ds.get("PhotometricInterpretation", "").startswith("YBR"):
        from pydicom.pixels import convert_color_space

        array = convert_color_space(array, ds.PhotometricInterpretation, "RGB")
    if array.dtype != np.uint8:
        array = array.astype(np.float64)
        low, high = float(array.min()), float(array.max())
        array = ((array - low) * (255.0 / (high - low or 1.0))).astype(np.uint8)
    return Image.fromarray(array)


def _encode(image: Image.Image, *, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality, optimize=False)
    return out.getvalue()
