"""dcmtk (Debian's echoscu, storescu, findscu) against the DIMSE listener."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from pydicom import dcmread
from pydicom.encaps import generate_fragments

from tests import dicomgen, mediagen
from tests.conftest import NHS_A
from tests.interop.conftest import AE_TITLE

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk is not installed (apt-get install dcmtk)"),
]


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=cwd)


def test_echoscu(ologies):
    ok = run("echoscu", "-aet", "ECHOSCU", "-aec", AE_TITLE, "127.0.0.1", str(ologies.dimse_port))
    assert ok.returncode == 0, ok.stderr
    stranger = run("echoscu", "-aet", "STRANGER", "-aec", AE_TITLE, "127.0.0.1", str(ologies.dimse_port))
    assert stranger.returncode != 0 and "Calling AE Title Not Recognized" in stranger.stderr


def test_storescu_batch_of_mixed_files(ologies, tmp_path):
    study = dicomgen.uid()
    good = {
        "jpeg.dcm": dicomgen.photo_dataset(study_uid=study),
        "native.dcm": dicomgen.photo_dataset(study_uid=study, native=True),
        "dermoscopy.dcm": dicomgen.photo_dataset(study_uid=study, sop_class=dicomgen.DERMOSCOPIC),
        "gps.dcm": dicomgen.photo_dataset(study_uid=study, gps=True, jpeg_bytes=dicomgen.leaky_jpeg()),
        "implicit.dcm": dicomgen.photo_dataset(study_uid=study, native=True),
    }
    for name, ds in good.items():
        (tmp_path / name).write_bytes(dicomgen.part10(ds, implicit=name == "implicit.dcm"))
    refused = dicomgen.photo_dataset(study_uid=study, patient_id="H99887")
    (tmp_path / "hospital-number.dcm").write_bytes(dicomgen.part10(refused))
    names = sorted(p.name for p in tmp_path.iterdir())
    done = run("storescu", "-v", "-R", "-nh", "-xy", "-aet", "STORESCU", "-aec", AE_TITLE, "127.0.0.1", str(ologies.dimse_port),
               *[str(tmp_path / n) for n in names])  # fmt: skip
    log = done.stdout + done.stderr
    repository = ologies.services.repository
    for name, ds in good.items():
        stored = dcmread(repository.open_instance(ds.SOPInstanceUID))
        assert stored.SOPInstanceUID == ds.SOPInstanceUID, name
        assert stored.PixelData == ds.PixelData or name == "gps.dcm"
        assert "GPSLatitude" not in stored
    with pytest.raises(Exception):
        repository.locate(refused.SOPInstanceUID)
    assert "Received Store Response (Error: DataSetDoesNotMatchSOPClass)" in log, log[-2000:]
    assert "Received Store Response (Warning: CoercionOfDataElements)" in log  # GPS and EXIF removed
    # sending the batch again changes nothing (identical content is a no-op)
    again = run("storescu", "-v", "-R", "-nh", "-xy", "-aet", "STORESCU", "-aec", AE_TITLE, "127.0.0.1", str(ologies.dimse_port),
                *[str(tmp_path / n) for n in names if n != "hospital-number.dcm"])  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]


def test_storescu_of_video_and_pdf_objects(ologies, tmp_path):
    """A ward camera's video (its container's location removed on the way in) and a consent
    PDF by C-STORE; a PDF with JavaScript is refused with a reason and nothing is stored."""
    files = {
        "video.dcm": mediagen.dicom_video(tmp_path / "clean"),
        "located.dcm": mediagen.dicom_video(tmp_path / "located", location=True),
        "consent.dcm": mediagen.dicom_pdf(mediagen.pdf()),
        "script.dcm": mediagen.dicom_pdf(mediagen.pdf(catalog_extra=b"/OpenAction << /S /JavaScript /JS (x) >> ")),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    log = ""
    # -xn: propose MPEG-4 AVC for the videos (storescu offers uncompressed syntaxes by default)
    for options, names in ((["-xn"], ["located.dcm", "video.dcm"]), ([], ["consent.dcm", "script.dcm"])):
        done = run("storescu", "-v", "-R", *options, "-nh", "-aet", "STORESCU", "-aec", AE_TITLE, "127.0.0.1",
                   str(ologies.dimse_port), *[str(tmp_path / n) for n in names])  # fmt: skip
        log += done.stdout + done.stderr
    repository = ologies.services.repository
    sent = {name: dcmread(tmp_path / name) for name in files}
    clean = dcmread(repository.open_instance(sent["video.dcm"].SOPInstanceUID))
    assert b"".join(generate_fragments(clean.PixelData)) == b"".join(generate_fragments(sent["video.dcm"].PixelData))
    cleaned = repository.open_instance(sent["located.dcm"].SOPInstanceUID).read()
    assert mediagen.LOCATION_MARKER not in cleaned and cleaned.count(b"ftyp") == 1
    assert dcmread(repository.open_instance(sent["consent.dcm"].SOPInstanceUID)).MIMETypeOfEncapsulatedDocument == "application/pdf"
    with pytest.raises(Exception):
        repository.locate(sent["script.dcm"].SOPInstanceUID)
    assert "Received Store Response (Warning: CoercionOfDataElements)" in log, log[-2000:]
    assert "Received Store Response (Error: CannotUnderstand)" in log, log[-2000:]


def test_storescu_of_a_sop_class_we_do_not_take(ologies, tmp_path):
    (tmp_path / "ct.dcm").write_bytes(dicomgen.photo_file(sop_class=dicomgen.CT_IMAGE))
    done = run("storescu", "-aet", "STORESCU", "-aec", AE_TITLE, "127.0.0.1", str(ologies.dimse_port), str(tmp_path / "ct.dcm"))
    assert done.returncode != 0
    assert "presentation context" in (done.stdout + done.stderr).lower()


def test_findscu_study_series_image(ologies, tmp_path):
    study, series = dicomgen.uid(), dicomgen.uid()
    files = []
    for n in range(3):
        path = tmp_path / f"{n}.dcm"
        path.write_bytes(dicomgen.photo_file(study_uid=study, series_uid=series, InstanceNumber=n + 1, AccessionNumber="FIND1"))
        files.append(str(path))
    assert run("storescu", "-R", "-xy", "-aet", "STORESCU", "-aec", AE_TITLE, "127.0.0.1", str(ologies.dimse_port), *files).returncode == 0
    out = tmp_path / "responses"
    out.mkdir()

    def findscu(*keys: str) -> list:
        args = ["findscu", "-S", "-X", "-od", str(out), "-aet", "FINDSCU", "-aec", AE_TITLE, "127.0.0.1", str(ologies.dimse_port)]
        for key in keys:
            args += ["-k", key]
        for old in out.iterdir():
            old.unlink()
        done = run(*args)
        assert done.returncode == 0, done.stderr[-2000:]
        return [dcmread(p) for p in sorted(out.iterdir())]

    (found,) = findscu("QueryRetrieveLevel=STUDY", "AccessionNumber=FIND1", "StudyInstanceUID",
                       "NumberOfStudyRelatedInstances", "PatientID", "PatientName")  # fmt: skip
    assert found.StudyInstanceUID == study and int(found.NumberOfStudyRelatedInstances) == 3
    assert found.PatientID == NHS_A and str(found.PatientName) == "O'Brien-Jones^Siân"
    (found,) = findscu("QueryRetrieveLevel=SERIES", f"StudyInstanceUID={study}", "SeriesInstanceUID", "NumberOfSeriesRelatedInstances")
    assert found.SeriesInstanceUID == series and int(found.NumberOfSeriesRelatedInstances) == 3
    images = findscu("QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={study}", f"SeriesInstanceUID={series}", "SOPInstanceUID", "InstanceNumber")
    assert sorted(int(i.InstanceNumber) for i in images) == [1, 2, 3]
    wrong = run("findscu", "-v", "-S", "-aet", "FINDSCU", "-aec", AE_TITLE, "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientWeight=70",
                "127.0.0.1", str(ologies.dimse_port))  # fmt: skip
    assert re.search(r"(Failed|Error).*(a900|DoesNotMatch)", wrong.stdout + wrong.stderr, re.IGNORECASE), wrong.stderr[-1000:]
