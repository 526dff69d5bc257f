"""The video converter's decoder bound: a frame larger than DICOM video allows is refused before
FFmpeg allocates it, and the largest frames DICOM does allow still decode.

Found by fuzzing (harness "video", CI of session 6): an MP4 of a kilobyte or two whose parameter
sets declare a huge frame made ``av.open`` decode it while finding the stream parameters,
before the converter compared the size with the limits: 2.4 GB, an out-of-memory.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

pytest.importorskip("av")

from converters import video  # noqa: E402
from converters.base import SourceFile  # noqa: E402
from tests import mediagen  # noqa: E402
from tests.peakmem import conversion_growth_mb  # noqa: E402


def _source(path: Path) -> SourceFile:
    data = path.read_bytes()
    return SourceFile(path, "video/mp4", hashlib.sha256(data).hexdigest(), len(data))


def test_a_frame_over_the_limit_is_refused_without_being_decoded(tmp_path):
    clip = mediagen.huge_frame_video(tmp_path / "huge.mp4")  # 1.4 kB; its SPS says 16000x16000
    assert clip.stat().st_size < 4096
    grown_mb, outcome = conversion_growth_mb(
        clip, "video/mp4", warm="from converters import video",
        call="video.convert(source, workdir=Path(tempfile.mkdtemp()))",
    )
    assert "16000x16000, larger than DICOM allows" in outcome
    # without the bound FFmpeg decoded the frame in av.open: 690 MB here, gigabytes with threads;
    # with it, about 100 MB (the decoder's per-macroblock tables for the declared size)
    assert grown_mb < 250, f"converting grew the process by {grown_mb} MB"


def test_the_bound_is_what_the_transfer_syntaxes_allow():
    options = video.decoder_options()
    assert options["threads"] == "1"
    assert 4096 * 2176 <= int(options["max_pixels"]) < 4200 * 2300


@pytest.mark.parametrize(
    ("options", "syntax"),
    [
        (dict(width=1920, height=1088, level="4.1"), "1.2.840.10008.1.2.4.102"),  # AVC High 4.1, its largest
        (dict(codec="libx265", width=4096, height=2176, profile=None, b_frames=False), "1.2.840.10008.1.2.4.107"),  # HEVC Main 5.1
    ],
    ids=["h264-1920x1088", "hevc-4096x2176"],
)
def test_the_largest_frames_dicom_allows_still_decode(tmp_path, options, syntax):
    clip = mediagen.video(tmp_path / "edge.mp4", frames=2, **options)  # x265 cannot mux one frame
    result = video.convert(_source(clip), workdir=tmp_path)
    assert (result.columns, result.rows) == (options["width"], options["height"])
    assert result.transfer_syntax_uid == syntax
    assert result.poster_jpeg.startswith(b"\xff\xd8")

