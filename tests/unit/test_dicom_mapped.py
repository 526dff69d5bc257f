"""A DICOM object received as a file (a STOW-RS part spooled to disk, an upload, a C-STORE data
set) is mapped, not read: its Pixel Data is walked, checked, hashed and written out from the page
cache without a copy on the heap. A 334 MB video sent by STOW-RS had grown the server by 707 MB,
twice its size; now by about 30 MB of heap (the mapped pages are the page cache's to reclaim)."""

from __future__ import annotations

import hashlib
import tracemalloc

import pytest
from pydicom import dcmread

from converters.dicom import Provenance, prepare_dicom
from converters.dicom_read import mapped
from repository.errors import OlogiesError
from tests import dicomgen, mediagen

MB = 1024 * 1024


def prepare(data, out):  # type: ignore[no-untyped-def]
    return prepare_dicom(data, out, provenance=Provenance("stowrs"), allow_test_numbers=True)


@pytest.fixture(scope="module")
def big_video(tmp_path_factory):  # type: ignore[no-untyped-def]
    return mediagen.big_dicom_video(tmp_path_factory.mktemp("big"), 64)


def test_a_large_video_is_checked_cleaned_and_written_without_a_copy_on_the_heap(big_video, tmp_path):
    size = big_video.stat().st_size
    tracemalloc.start()
    try:
        prepared = prepare(big_video, tmp_path / "out.dcm")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MB, f"preparing a {size // MB} MB object allocated {peak // MB} MB"
    # The same checks ran: the phone's location was found in the container and removed.
    assert [c.keyword for c in prepared.coercions if c.action == "modified"] == ["PixelData"]
    written = (tmp_path / "out.dcm").read_bytes()
    assert mediagen.LOCATION_MARKER not in written
    assert hashlib.sha256(written).hexdigest() == prepared.instance.sha256
    assert dcmread(tmp_path / "out.dcm").SOPInstanceUID == prepared.instance.sop_instance_uid


@pytest.mark.parametrize("make", ["photo", "native", "video"])
def test_a_mapped_object_is_stored_as_the_same_bytes_as_one_received_in_memory(make, tmp_path):
    data = {
        "photo": lambda: dicomgen.photo_file(),
        "native": lambda: dicomgen.part10(dicomgen.photo_dataset(native=True), implicit=True),
        "video": lambda: mediagen.dicom_video(tmp_path / "v", location=True),
    }[make]()
    received = tmp_path / "received.dcm"
    received.write_bytes(data)
    from_memory = prepare(data, tmp_path / "a.dcm")
    from_file = prepare(received, tmp_path / "b.dcm")
    assert (tmp_path / "a.dcm").read_bytes() == (tmp_path / "b.dcm").read_bytes()
    assert from_file.instance.sha256 == from_memory.instance.sha256
    assert from_file.original_sha256 == from_memory.original_sha256 == hashlib.sha256(data).hexdigest()
    assert from_file.coercions == from_memory.coercions


def test_an_empty_or_truncated_file_is_refused_and_leaves_nothing(tmp_path):
    empty = tmp_path / "empty.dcm"
    empty.touch()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(dicomgen.truncated(dicomgen.photo_file()))
    for received in (empty, cut):
        with pytest.raises(OlogiesError):
            prepare(received, tmp_path / "out.dcm")
        assert not (tmp_path / "out.dcm").exists()


def test_the_mapping_is_released_when_the_object_is_done(tmp_path):
    received = tmp_path / "received.dcm"
    received.write_bytes(dicomgen.photo_file())
    with mapped(received) as view:
        assert view[128:132] == b"DICM"
    assert view.closed
    prepare(received, tmp_path / "out.dcm")
    with open("/proc/self/maps") as maps:
        assert str(received) not in maps.read()


def test_a_filesystem_that_cannot_map_files_is_read_instead(tmp_path, monkeypatch):
    import errno
    import mmap

    def cannot(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENODEV, "No such device")

    received = tmp_path / "received.dcm"
    received.write_bytes(dicomgen.photo_file())
    expected = prepare(received.read_bytes(), tmp_path / "a.dcm")
    monkeypatch.setattr(mmap, "mmap", cannot)
    with mapped(received) as data:
        assert isinstance(data, bytes)
    assert prepare(received, tmp_path / "b.dcm").instance.sha256 == expected.instance.sha256
