"""Reproducers of the crashes the corpus and the fuzzers found, kept in the corpus for good
(``make.regressions``). Each entry: name -> (bytes, file name, kind, expected outcome), built
here rather than committed as binary files, with the finding and its fix next to it.
"""

from __future__ import annotations

import hashlib

from tests import dicomgen, imagegen


def _uid(part: str) -> str:
    return "2.25." + str(int(hashlib.sha256(f"regression:{part}".encode()).hexdigest()[:30], 16))


def _dicom_with_study_uid_bytes(name: str, replacement: bytes) -> bytes:
    """A valid object whose StudyInstanceUID bytes are then replaced (same length): a value no
    writer would produce, as a corrupted or hostile sender would."""
    study = _uid(f"{name}:study")
    ds = dicomgen.photo_dataset(pixels=imagegen.photo(32, 24, seed=3), sop_uid=_uid(f"{name}:sop"), study_uid=study,
                                series_uid=_uid(f"{name}:series"))  # fmt: skip
    data = dicomgen.part10(ds)
    raw = study.encode()
    assert len(replacement) <= len(raw)
    at = data.index(raw, 200)  # the data set's, not the file meta's
    return data[:at] + replacement + raw[len(replacement):] + data[at + len(raw):]


def _mp4_unknown_codec() -> bytes:
    from tests.corpus.make import _tiny_mp4

    data = _tiny_mp4()
    at = data.index(b"avc1", 40)  # the sample entry in stsd, not the ftyp brand
    return data[:at] + b"zzzz" + data[at + 4 :]


def _mp4_huge_frame() -> bytes:
    import tempfile
    from pathlib import Path

    from tests import mediagen

    with tempfile.TemporaryDirectory() as tmp:
        return mediagen.huge_frame_video(Path(tmp) / "huge.mp4").read_bytes()


def _dicom_columns_as_two_byte_ul() -> bytes:
    data = dicomgen.part10(dicomgen.photo_dataset(pixels=imagegen.photo(32, 24, seed=4), sop_uid=_uid("ul:sop"),
                                                  study_uid=_uid("ul:study"), series_uid=_uid("ul:series")))  # fmt: skip
    header = b"\x28\x00\x11\x00US\x02\x00"
    at = data.index(header, 132)
    return data[:at] + b"\x28\x00\x11\x00UL\x02\x00" + data[at + len(header) :]


def build() -> dict[str, tuple[bytes, str, str, str]]:
    return {
        # every DICOM route would have answered 500 (pydicom's BytesLengthException): Columns
        # with VR UL and 2 bytes (fuzzing, harness "dicom", session 7). Fixed: the structural
        # walk in converters/dicom_read.py refuses a length that is not a whole number of values.
        "dicom-columns-ul-two-bytes": (_dicom_columns_as_two_byte_ul(), "a.dcm", "dicom", "refused"),
        # libFuzzer out-of-memory, 2.4 GB (fuzzing, harness "video", CI of session 6): a small MP4
        # whose parameter sets declare a huge frame was decoded by av.open before its size was
        # checked (this 1.4 kB one: 690 MB). Fixed: converters/video.py decoder_options (max_pixels, one thread).
        "video-huge-frame": (_mp4_huge_frame(), "clip.mp4", "media", "refused"),
        # the video converter answered 500: a track whose sample entry FFmpeg does not know has
        # no codec context (fuzzing, harness "video"). Fixed: converters/video.py refuses it (415).
        "video-unknown-codec": (_mp4_unknown_codec(), "clip.mp4", "media", "refused"),
        # STOW-RS answered 500: its Warning header quoted the invalid UID, whose byte 0xB7 the
        # header could not carry (corpus BITFLIP-dicom-5575). Fixed: web/dicomweb/stow.py
        # warning_header keeps printable ASCII only.
        "stow-warning-header-non-ascii": (_dicom_with_study_uid_bytes("latin1", b"2.25.4781\xb7"), "a.dcm", "dicom", "refused"),
        "stow-warning-header-crlf": (_dicom_with_study_uid_bytes("crlf", b"2.25.1\r\nX-Injected: 1"), "a.dcm", "dicom", "refused"),
        "stow-warning-header-utf8": (_dicom_with_study_uid_bytes("utf8", "2.25.ŷ".encode()), "a.dcm", "dicom", "refused"),
        # every DICOM route would have answered 500 (struct.error): file meta whose last element
        # has a long VR (OB) and ends inside its 4-byte length (fuzzing, harness "dicom", CI of
        # session 4). Fixed: converters/dicom_read.py _parse_meta checks the length is there.
        "dicom-meta-long-vr-length-cut": (
            bytes(128) + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00\xbe\x00\x00\x00" + b"\x02\x00\x01\x00OB\x00\x00\x02\x00\x00",
            "a.dcm", "dicom", "refused",
        ),
    }


REGRESSIONS = build()
