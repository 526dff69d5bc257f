"""DICOMweb at the edges of the standard: frames of an instance that has none, frame numbers and
transfer syntaxes a frame request cannot be answered in, time matching by value, RetrieveURL in
includefield, and a multipart body with a preamble. Each answers as PS3.18 (and RFC 2046) say."""

from __future__ import annotations

import io

from pydicom import dcmread

from tests import mediagen
from tests.web.test_dicomweb import instance_url, stow
from tests.web.test_dicomweb import archive  # noqa: F401 - a fixture, shared


# -- WADO-RS --------------------------------------------------------------------------------------
def test_frames_of_an_instance_without_pixel_data_are_404(client):
    raw = mediagen.dicom_pdf(mediagen.pdf())
    assert stow(client, [raw]).status_code == 200
    ds = dcmread(io.BytesIO(raw))
    for accept in (None, "application/octet-stream", 'multipart/related; type="application/octet-stream"'):
        response = client.get(instance_url(ds) + "/frames/1", headers={"Accept": accept} if accept else {})
        assert response.status_code == 404, response.text
        assert "no pixel data" in response.json()["error"]["message"]
