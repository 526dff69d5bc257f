"""Consumer renditions of stored images: a full-size JPEG and a thumbnail, made once and cached
in the object store under ``derived/`` (they are derived data and can always be remade).

The stored pixels are already upright (orientation is applied at ingest), so a rendition never
needs EXIF; and it never carries any metadata at all, so no GPS can leak through it.
"""

from __future__ import annotations

import io
import threading

import numpy as np
from PIL import Image
from pydicom import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import JPEGBaseline8Bit, JPEGExtended12Bit

from repository import keys
from repository.errors import ConversionFailed, NotFound
from repository.service import Repository

_JPEG_SYNTAXES = {JPEGBaseline8Bit, JPEGExtended12Bit}


class Renditions:
    def __init__(self, repository: Repository, *, thumbnail_size: int = 256, rendered_max_size: int = 8192) -> None:
        self.repository = repository
        self.thumbnail_size = thumbnail_size
        self.rendered_max_size = rendered_max_size
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def rendered(self, sop_instance_uid: str) -> bytes:
        return self._cached(sop_instance_uid, "rendered.jpg", self._make_rendered)

    def thumbnail(self, sop_instance_uid: str) -> bytes:
        return self._cached(sop_instance_uid, f"thumbnail-{self.thumbnail_size}.jpg", self._make_thumbnail)

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
        if frame is not None and ds.get("PhotometricInterpretation") != "RGB":
            with Image.open(io.BytesIO(frame)) as probe:
                if max(probe.size) <= self.rendered_max_size and probe.mode in ("RGB", "L"):
                    return frame  # already an upright, metadata-free baseline JPEG
        image = to_pil(ds)
        image.thumbnail((self.rendered_max_size, self.rendered_max_size))
        return _encode(image, quality=92)

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
        return _encode(image, quality=85)


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
