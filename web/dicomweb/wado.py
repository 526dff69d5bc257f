"""WADO-RS (PS3.18 10.4): instances, metadata, bulk data, frames, rendered and thumbnails.

Studies and series are listed from the object store (``studies/{study}/series/{series}/...``
keys), so everything stored can be retrieved even while the index is down. Every instance is
checked by the guard before anything is sent: another trust's instance is "not found".
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.encaps import generate_frames
from starlette.responses import Response, StreamingResponse

from converters import dicom as dcm
from repository import keys
from repository.access import Action
from repository.errors import InvalidInput, NotFound, QueryError
from repository.guard import Caller
from repository.media import SpanReader, bitstream_spans
from repository.renditions import to_pil, to_srgb
from repository.service import read_header
from web.dicomweb import dicomjson, negotiation
from web.dicomweb.multipart import new_boundary, related_content_type, stream_parts
from web.ranges import PLAYBACKS, ranged_response

CHUNK = 1024 * 1024
PRIVATE = "private, max-age=86400, immutable"
ENCAPSULATED = dcm.ENCAPSULATED


@dataclass(frozen=True)
class Located:
    study: str
    series: str
    sop: str
    key: str

    def url(self, base: str) -> str:
        return f"{base}/studies/{self.study}/series/{self.series}/instances/{self.sop}"


class Wado:
    def __init__(self, services: Any, caller: Caller, base_url: str) -> None:
        self.services = services
        self.repository = services.repository
        self.guard = services.guard
        self.caller = caller
        self.base = base_url

    # -- finding and checking ----------------------------------------------------------------
    def locate(self, study: str, series: str | None = None, sop: str | None = None) -> list[Located]:
        for uid in (study, series, sop):
            if uid is not None and not keys.is_valid_uid(uid):
                raise NotFound("not found")
        if sop is not None:
            key = self.repository.locate(sop)
            found_study, found_series, _ = keys.uids_from_instance_key(key)
            if found_study != study or (series is not None and found_series != series):
                raise NotFound(f"instance {sop} is not in that study or series")
            return [Located(found_study, found_series, sop, key)]
        prefix = f"{keys.STUDIES}{study}/" + (f"series/{series}/" if series else "")
        found = []
        for key in self.repository.store.iter_keys(prefix):
            if keys.is_instance_key(key):
                s, se, i = keys.uids_from_instance_key(key)
                found.append(Located(s, se, i, key))
        if not found:
            raise NotFound("no such study or series" if series is None else "no such series")
        return sorted(found, key=lambda x: (x.series, x.sop))

    def check(self, located: list[Located], action: Action, detail: str, *, audit: bool = True) -> list[dict[str, Any]]:
        """Every instance must be the caller's to see; one audit record for them all (unless
        ``audit`` is False: the caller records it with ``audit`` once it knows it should)."""
        docs = [self.guard.open_instance(self.caller, x.sop, action, audit=False, detail=detail) for x in located]
        if audit:
            self.audit(located, docs, action, detail)
        return docs

    def visible(self, located: list[Located]) -> list[Located]:
        """Of a study's or series' instances, those the caller may see. A study can hold another
        trust's instances (a device there stored into the same study): they are left out, as
        QIDO-RS leaves them out, rather than making the whole study "not found" to the trust
        whose study it is. One instance asked for by UID is checked as it is (``check``)."""
        if len(located) <= 1:
            return located
        principal = self.caller.principal
        shown = []
        for x in located:
            doc = self.guard.document(x.sop)
            trusts = self.guard.policy.visible_trusts(principal, str(doc.get("PatientID") or ""))
            if trusts is None or str(doc.get("_trust") or "") in trusts:
                shown.append(x)
        if not shown:
            raise NotFound("no such study or series")
        return shown

    def audit(self, located: list[Located], docs: list[dict[str, Any]], action: Action, detail: str) -> None:
        self.guard.record(
            self.caller, "download" if action is Action.DOWNLOAD else "view",
            patient_ids=sorted({str(d.get("PatientID") or "") for d in docs}),
            study_uids=sorted({x.study for x in located}), sop_instance_uids=[x.sop for x in located],
            detail=f"DICOMweb {detail}",
        )  # fmt: skip

    def _header(self, x: Located) -> Dataset:
        with self.repository.store.open(x.key) as handle:
            return read_header(handle)

    def _dataset(self, x: Located) -> Dataset:
        return self.repository.read_instance(x.sop)

    def _syntax(self, x: Located, doc: dict[str, Any]) -> str:
        """The stored transfer syntax: from the index, or the object's header if it lacks it."""
        return str(doc.get("TransferSyntaxUID") or "") or str(self._header(x).file_meta.TransferSyntaxUID)

    # -- instances -----------------------------------------------------------------------------
    def retrieve(self, located: list[Located], accept: str | None, detail: str) -> Response:
        located = self.visible(located)
        docs = self.check(located, Action.DOWNLOAD, detail)
        stored = [self._syntax(x, d) for x, d in zip(located, docs)]
        syntax, single = negotiation.instance_syntax(accept, stored)
        store = self.repository.store
        if single and len(located) == 1:
            x = located[0]
            return StreamingResponse(
                _chunks(store, x.key), media_type="application/dicom",
                headers={"Content-Length": str(store.head(x.key).size), "Cache-Control": PRIVATE},
            )  # fmt: skip
        boundary = new_boundary()
        parts = (
            (f"application/dicom; transfer-syntax={ts}", _chunks(store, x.key), x.url(self.base), None)
            for x, ts in zip(located, stored)
        )
        content_type = related_content_type("application/dicom", boundary, None if syntax == "*" else syntax)
        return StreamingResponse(stream_parts(boundary, parts), media_type=content_type, headers={"Cache-Control": PRIVATE})

    # -- metadata ------------------------------------------------------------------------------
    def metadata(self, located: list[Located], accept: str | None, detail: str) -> list[dict[str, Any]]:
        negotiation.require_json(accept)
        located = self.visible(located)
        self.check(located, Action.VIEW, detail)
        return [self._metadata_of(x) for x in located]

    def _metadata_of(self, x: Located) -> dict[str, Any]:
        ds = self._header(x)
        url = x.url(self.base)
        paths = _bulk_paths(ds)

        def bulk_uri(elem: DataElement) -> str:
            return f"{url}/bulkdata/{paths.get(id(elem), f'{int(elem.tag):08X}')}"

        pixel_vr = None
        if "Rows" in ds:
            ts = str(ds.file_meta.get("TransferSyntaxUID", ""))
            pixel_vr = "OB" if ts in ENCAPSULATED or int(ds.get("BitsAllocated", 8) or 8) <= 8 else "OW"
        return dicomjson.metadata(ds, bulk_uri, pixel_vr=pixel_vr, pixel_uri=f"{url}/bulkdata/7FE00010")

    # -- bulk data -----------------------------------------------------------------------------
    def bulkdata(self, x: Located, path: str, accept: str | None, range_header: str | None) -> Response:
        (doc,) = self.check([x], Action.VIEW, "bulk data", audit=False)
        location = f"{x.url(self.base)}/bulkdata/{path.strip('/')}"
        if path.strip("/").upper() == "7FE00010":
            ts = self._syntax(x, doc)
            if ts in negotiation.VIDEO_MEDIA_TYPES:
                return self._video(x, doc, ts, accept, range_header, location)
        self.audit([x], [doc], Action.VIEW, "bulk data")
        ds = self._dataset(x)
        elem = _element_at(ds, path)
        if int(elem.tag) == 0x7FE00010:
            ts = str(ds.file_meta.TransferSyntaxUID)
            if ts in ENCAPSULATED:
                frames = list(range(1, int(ds.get("NumberOfFrames", 1) or 1) + 1))
                return self._frames_response(x, ds, frames, accept, whole=True)
        multipart = negotiation.bulk_media(accept)
        value = bytes(elem.value if isinstance(elem.value, (bytes, bytearray)) else elem.value or b"")
        if multipart:
            # the standard's default: the value as the one part of multipart/related (a Range
            # is then not applied: the whole value, 200, as RFC 9110 allows)
            boundary = new_boundary()
            part = (f"application/octet-stream; transfer-syntax={negotiation.EXPLICIT_VR_LE}", [value], location, len(value))
            content_type = related_content_type("application/octet-stream", boundary, negotiation.EXPLICIT_VR_LE)
            return Response(b"".join(stream_parts(boundary, [part])), media_type=content_type, headers={"Cache-Control": PRIVATE})
        return octet_response(value, range_header)

    def _video(self, x: Located, doc: dict[str, Any], ts: str, accept: str | None, range_header: str | None, location: str) -> Response:
        """A video's Pixel Data is the video (PS3.18 8.7.3): its MP4, read from the stored
        fragments (pad byte excluded) as the playback route reads it, never the whole object;
        single-part with byte ranges, or the one part of ``multipart/related`` (whole, 200)."""
        media, multipart = negotiation.video_media(accept, ts)
        range_header = None if multipart else range_header
        # audited as the playback route is: the request that starts a playback, not each range
        if PLAYBACKS.needs_audit(self.caller.principal.subject, x.sop, range_header):
            self.audit([x], [doc], Action.VIEW, "bulk data")
        store = self.repository.store
        stream = bitstream_spans(store, x.key)
        reader = SpanReader(store, x.key, stream.spans, block=CHUNK)
        if multipart:
            boundary = new_boundary()
            part = (f"{media}; transfer-syntax={ts}", _read_all(reader.read_at, stream.size), location, stream.size)
            return StreamingResponse(
                stream_parts(boundary, [part]), media_type=related_content_type(media, boundary, ts), headers={"Cache-Control": PRIVATE},
            )  # fmt: skip
        return ranged_response(stream.size, reader.read_at, range_header, media_type=media, headers={"Cache-Control": PRIVATE})

    # -- frames --------------------------------------------------------------------------------
    def frames(self, x: Located, frame_list: str, accept: str | None) -> Response:
        (doc,) = self.check([x], Action.VIEW, "frames", audit=False)
        ts = self._syntax(x, doc)
        if ts in negotiation.VIDEO_MEDIA_TYPES:
            # A video's frames are not separable in its MPEG-4 bitstream: the frames resource
            # answers the stream, as its bulk data does (PS3.18 8.7.3: video media types)
            parse_frames(frame_list, int(doc.get("NumberOfFrames") or 0) or 2**31 - 1)
            return self._video(x, doc, ts, accept, None, f"{x.url(self.base)}/frames/{frame_list}")
        self.audit([x], [doc], Action.VIEW, "frames")
        ds = self._dataset(x)
        if "PixelData" not in ds or "Rows" not in ds:
            # an Encapsulated PDF, for one: the instance exists, its frames do not
            raise NotFound("this instance has no pixel data, so it has no frames (retrieve the instance or its bulk data)")
        count = int(ds.get("NumberOfFrames", 1) or 1)
        numbers = parse_frames(frame_list, count)
        return self._frames_response(x, ds, numbers, accept)

    def _frames_response(self, x: Located, ds: Dataset, numbers: list[int], accept: str | None, *, whole: bool = False) -> Response:
        """The frames ``numbers`` as multipart/related, one to a part, or as one single-part
        body when that was asked for: one frame, or (``whole``: the Pixel Data bulk data) the
        native frames one after another."""
        ts = str(ds.file_meta.TransferSyntaxUID)
        media, decode, single = negotiation.frame_media(accept, ts, frames=len(numbers), whole=whole)
        boundary = new_boundary()
        url = x.url(self.base)
        bodies = [_frame_bytes(ds, ts, n, decode) for n in numbers]
        part_ts = negotiation.EXPLICIT_VR_LE if decode or ts not in ENCAPSULATED else ts
        if single:
            return Response(b"".join(bodies), media_type=f"{media}; transfer-syntax={part_ts}", headers={"Cache-Control": PRIVATE})
        parts = ((f"{media}; transfer-syntax={part_ts}", [body], f"{url}/frames/{n}", len(body)) for n, body in zip(numbers, bodies))
        content_type = related_content_type(media, boundary, part_ts)
        return Response(b"".join(stream_parts(boundary, parts)), media_type=content_type, headers={"Cache-Control": PRIVATE})

    # -- rendered and thumbnails ---------------------------------------------------------------
    def rendered(self, x: Located, accept: str | None, *, frame: int = 1, viewport: str | None = None, quality: str | None = None) -> Response:
        media = negotiation.rendered_media(accept)
        (doc,) = self.check([x], Action.VIEW, "rendered")
        size = parse_viewport(viewport)
        renditions = self.services.renditions
        if frame == 1:
            small = size is not None and max(size) <= renditions.thumbnail_size
            data = renditions.thumbnail(x.sop) if small else renditions.rendered(x.sop)
            if size is None and media == "image/jpeg" and quality is None:
                return Response(data, media_type="image/jpeg", headers={"Cache-Control": PRIVATE})
            image = Image.open(io.BytesIO(data))
        else:
            if self._syntax(x, doc) in negotiation.VIDEO_MEDIA_TYPES:
                raise QueryError("a video is rendered as its first frame only; play its bulk data (video/mp4) for the rest", field="frame")
            ds = self._dataset(x)
            count = int(ds.get("NumberOfFrames", 1) or 1)
            parse_frames(str(frame), count)
            image = _frame_image(ds, frame)
        if size is not None:
            image.thumbnail(size)
        return Response(_encode(image, media, quality), media_type=media, headers={"Cache-Control": PRIVATE})

    def thumbnail(self, located: list[Located], accept: str | None, viewport: str | None = None) -> Response:
        media = negotiation.rendered_media(accept)
        first = located[0]
        self.check([first], Action.VIEW, "thumbnail")
        data = self.services.renditions.thumbnail(first.sop)
        size = parse_viewport(viewport)
        if media == "image/jpeg" and size is None:
            return Response(data, media_type="image/jpeg", headers={"Cache-Control": PRIVATE})
        image = Image.open(io.BytesIO(data))
        if size is not None:
            image.thumbnail(size)
        return Response(_encode(image, media, None), media_type=media, headers={"Cache-Control": PRIVATE})


# -- helpers --------------------------------------------------------------------------------------
def _read_all(read_at: Any, size: int) -> Iterator[bytes]:
    """``size`` bytes from ``read_at(position, length)``, a chunk at a time."""
    position = 0
    while position < size:
        data = read_at(position, min(CHUNK, size - position))
        if not data:
            return  # the store gave less than it said it held: end rather than spin
        position += len(data)
        yield data


def _chunks(store: Any, key: str) -> Iterator[bytes]:
    with store.open(key) as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def parse_frames(text: str, count: int) -> list[int]:
    try:
        numbers = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise QueryError(f"frame list {text[:40]!r} must be numbers separated by commas", field="frames") from None
    if not numbers or len(numbers) > 10_000:
        raise QueryError("give between 1 and 10000 frame numbers", field="frames")
    bad = [n for n in numbers if not 1 <= n <= count]
    if bad:
        raise NotFound(f"frame {bad[0]} does not exist: the instance has {count} frame{'s' if count != 1 else ''}")
    return numbers


def parse_frame(text: str) -> int:
    """One frame number (the rendered frame resource); 400 for anything else."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise QueryError(f"frame {text[:40]!r} must be one frame number", field="frame")
    return int(text)


def parse_viewport(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    parts = value.split(",")
    try:
        width, height = int(parts[0]), int(parts[1] if len(parts) > 1 else parts[0])
    except (ValueError, IndexError):
        raise QueryError("viewport must be width,height in pixels", field="viewport") from None
    if not (1 <= width <= 8192 and 1 <= height <= 8192):
        raise QueryError("viewport must be between 1 and 8192 pixels each way", field="viewport")
    return width, height


def _encode(image: Image.Image, media: str, quality: str | None) -> bytes:
    out = io.BytesIO()
    if media == "image/png":
        image.save(out, format="PNG")
    else:
        try:
            q = int(quality) if quality else 90
        except ValueError:
            raise QueryError("quality must be a number from 1 to 100", field="quality") from None
        if not 1 <= q <= 100:
            raise QueryError("quality must be a number from 1 to 100", field="quality")
        image = image.convert("RGB") if image.mode not in ("RGB", "L") else image
        image.save(out, format="JPEG", quality=q)
    return out.getvalue()


def _frame_bytes(ds: Dataset, ts: str, number: int, decode: bool) -> bytes:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if ts in ENCAPSULATED and not decode:
        for n, frame in enumerate(generate_frames(ds.PixelData, number_of_frames=frames), start=1):
            if n == number:
                return bytes(frame)
        raise NotFound(f"frame {number} does not exist")
    if ts not in ENCAPSULATED:
        rows, columns = int(ds.Rows), int(ds.Columns)
        size = rows * columns * int(ds.SamplesPerPixel) * (int(ds.BitsAllocated) // 8 or 1)
        return bytes(ds.PixelData[(number - 1) * size : number * size])
    return np.ascontiguousarray(_decode(ds, number)).tobytes()


def _decode(ds: Dataset, number: int) -> np.ndarray:
    from pydicom.pixels import pixel_array

    try:
        return pixel_array(ds, index=number - 1, as_rgb=True)
    except Exception as exc:  # noqa: BLE001 - decoders raise many types
        raise InvalidInput(f"frame {number} cannot be decoded here: {exc}") from exc


def _frame_image(ds: Dataset, number: int) -> Image.Image:
    if number == 1:
        return to_pil(ds)
    array = _decode(ds, number)
    if array.dtype != np.uint8:
        low, high = float(array.min()), float(array.max())
        array = ((array.astype(np.float64) - low) * (255.0 / (high - low or 1.0))).astype(np.uint8)
    return to_srgb(Image.fromarray(array), ds)


def _bulk_paths(ds: Dataset, prefix: str = "", out: dict[int, str] | None = None, depth: int = 0) -> dict[int, str]:
    """id(element) -> bulk data path ("00880200/0/7FE00010") of every binary element."""
    out = {} if out is None else out
    for elem in ds:
        path = f"{prefix}{int(elem.tag):08X}"
        if elem.VR == "SQ" and depth < 16:
            for index, item in enumerate(elem.value or ()):
                _bulk_paths(item, f"{path}/{index}/", out, depth + 1)
        elif elem.VR in dicomjson.BULK_VRS:
            out[id(elem)] = path
    return out


def _element_at(ds: Dataset, path: str) -> DataElement:
    parts = path.strip("/").split("/")
    if len(parts) % 2 != 1 or len(parts) > 33:
        raise NotFound("no such bulk data")
    current: Dataset = ds
    try:
        for i in range(0, len(parts) - 1, 2):
            current = current[int(parts[i], 16)].value[int(parts[i + 1])]
        elem = current[int(parts[-1], 16)]
    except (KeyError, ValueError, IndexError, TypeError):
        raise NotFound("no such bulk data") from None
    if elem.VR not in dicomjson.BULK_VRS:
        raise NotFound("that element is not bulk data")
    return elem


def octet_response(data: bytes, range_header: str | None) -> Response:
    return ranged_response(
        len(data), lambda at, length: data[at : at + length], range_header,
        media_type="application/octet-stream", headers={"Cache-Control": PRIVATE},
    )  # fmt: skip
